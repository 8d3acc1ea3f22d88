//! `PUT` and `GET /tools/{slug}/submission`: drafts, submits, versions, ETags,
//! If-Match, Idempotency-Key, locks and resubmits.

use serde_json::json;
use sqlx::PgPool;

use crate::{TestApp, complete_data};

async fn outputs(
    app: &TestApp,
    schema: &str,
    user: uuid::Uuid,
) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select fo.field_id::text, fo.field_value from {schema}.field_outputs fo
         join {schema}.submissions s on s.id = fo.submission_id where s.user_id = $1 order by 1"
    )))
    .bind(user)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_draft_accepts_partial_data_and_starts_the_tool(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let response = app
        .save(&ana, "woop", json!({"wish": "a bakery"}), "draft")
        .await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    assert_eq!(response.header("etag"), Some("\"1\""));
    assert_eq!(response.body["submission"]["version"], 1);
    assert_eq!(response.body["submission"]["status"], "draft");
    assert_eq!(response.body["submission"]["submitted_data"], json!(null));
    assert_eq!(response.body["outputs"], json!({}));
    assert_eq!(response.body["unlocked_tools"], json!([]));
    assert_eq!(response.body["progress"]["status"], "in_progress");
    assert_eq!(response.body["progress"]["percentage"], 25);
    assert!(response.body["progress"]["started_at"].is_string());
    assert_eq!(app.status_of(&ana, "woop").await, "in_progress");
    assert!(outputs(&app, "sprint_00_woop", ana.id).await.is_empty());

    let again = app
        .save(
            &ana,
            "woop",
            json!({"wish": "a bakery", "plan": "p"}),
            "draft",
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("etag"), Some("\"2\""));
    assert_eq!(again.body["progress"]["percentage"], 50);
    assert_eq!(
        again.body["progress"]["started_at"],
        response.body["progress"]["started_at"]
    );
}

#[sqlx::test(migrations = false)]
async fn a_submit_stores_outputs_completes_the_tool_and_unlocks_dependents(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let data = json!({"dream": "d", "strengths": [{"strength": "craft", "fitPercent": 5}], "values": [{"value": "care"}], "notes": "kept, not an output"});
    app.submit_complete(&ana, "woop").await;
    let response = app
        .save(&ana, "know-thyself", data.clone(), "submitted")
        .await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    assert_eq!(response.body["submission"]["status"], "submitted");
    assert_eq!(response.body["submission"]["data"], data);
    assert_eq!(response.body["submission"]["submitted_data"], data);
    assert_eq!(
        response.body["outputs"],
        json!({"identity.personal_dream": "d", "identity.strengths.matrix": [{"strength": "craft", "fitPercent": 5}], "identity.personal_values": [{"value": "care"}]})
    );
    assert_eq!(response.body["unlocked_tools"], json!(["dream", "energy"]));
    assert_eq!(response.body["progress"]["status"], "completed");
    assert_eq!(response.body["progress"]["percentage"], 100);
    assert_eq!(app.status_of(&ana, "know-thyself").await, "completed");
    assert_eq!(app.status_of(&ana, "dream").await, "unlocked");
    assert_eq!(app.status_of(&ana, "energy").await, "unlocked");
    assert_eq!(app.status_of(&ana, "values").await, "locked");
    assert_eq!(
        outputs(&app, "sprint_01_know_thyself", ana.id).await,
        [
            ("identity.personal_dream".to_owned(), json!("d")),
            (
                "identity.personal_values".to_owned(),
                json!([{"value": "care"}])
            ),
            (
                "identity.strengths.matrix".to_owned(),
                json!([{"strength": "craft", "fitPercent": 5}])
            ),
        ]
    );
}

#[sqlx::test(migrations = false)]
async fn a_submit_missing_required_fields_is_422_listing_them_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let before = app.snapshot().await;
    let response = app
        .save(
            &ana,
            "woop",
            json!({"wish": "w", "outcome": "  ", "plan": []}),
            "submitted",
        )
        .await;
    assert_eq!(response.status, 422);
    assert_eq!(response.code(), "missing_fields");
    assert_eq!(
        response.body["error"]["details"]["missing"],
        json!(["outcome", "obstacle", "plan"])
    );
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn a_locked_tool_is_409_listing_the_missing_fields_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let before = app.snapshot().await;
    for status in ["draft", "submitted"] {
        let response = app
            .save(&ana, "dream", complete_data("dream"), status)
            .await;
        assert_eq!(response.status, 409, "{status}");
        assert_eq!(response.code(), "tool_locked");
        assert_eq!(
            response.body["error"]["details"]["missing"],
            json!(["identity.personal_dream", "identity.personal_values"])
        );
    }
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn if_match_guards_against_lost_updates(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = json!({"data": {"wish": "w"}, "status": "draft"});
    // If-Match on a submission that does not exist yet.
    let none = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(none.status, 412);
    let any = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(any.status, 412);

    assert_eq!(
        app.put("/tools/woop/submission", &ana.token, &body, &[])
            .await
            .status,
        201
    );
    let ok = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &json!({"data": {"wish": "changed"}, "status": "draft"}),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((ok.status, ok.header("etag")), (200, Some("\"2\"")));
    let before = app.snapshot().await;
    let stale = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &json!({"data": {"wish": "stale"}, "status": "draft"}),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.code(), "precondition_failed");
    assert_eq!(stale.body["error"]["details"]["current_version"], 2);
    assert_eq!(app.snapshot().await, before);
    let star = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(star.header("etag"), Some("\"3\""));
}

#[sqlx::test(migrations = false)]
async fn an_update_without_if_match_is_428_with_the_current_version_and_writes_nothing(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = json!({"data": {"wish": "w"}, "status": "draft"});
    let first = app
        .put("/tools/woop/submission", &ana.token, &body, &[])
        .await;
    assert_eq!(first.status, 201, "a first save needs no If-Match");
    let before = app.snapshot().await;
    for status in ["draft", "submitted"] {
        let body = json!({"data": complete_data("woop"), "status": status});
        let blind = app
            .put("/tools/woop/submission", &ana.token, &body, &[])
            .await;
        assert_eq!(
            (blind.status, blind.code()),
            (428, "precondition_required"),
            "{:?}",
            blind.body
        );
        assert_eq!(blind.body["error"]["details"]["current_version"], 1);
        let message = blind.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("If-Match"), "{message}");
        assert!(blind.body["error"]["request_id"].is_string());
    }
    assert_eq!(app.snapshot().await, before);
}

/// Two tabs (or a phone and a laptop) open on one draft: whichever saves
/// second learns that the other saved, instead of erasing it unseen.
#[sqlx::test(migrations = false)]
async fn two_tabs_editing_one_draft_never_overwrite_each_other_unseen(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.save(&ana, "woop", json!({"wish": "first"}), "draft")
        .await;
    let read = app.get("/tools/woop/submission", &ana.token).await;
    let etag = read.header("etag").unwrap().to_owned();
    let save = async |wish: &str, headers: &[(&str, &str)]| {
        let body = json!({"data": {"wish": wish}, "status": "draft"});
        app.put("/tools/woop/submission", &ana.token, &body, headers)
            .await
    };
    let laptop = save("laptop", &[("if-match", &etag)]).await;
    assert_eq!((laptop.status, laptop.header("etag")), (200, Some("\"2\"")));
    let phone = save("phone", &[("if-match", &etag)]).await;
    assert_eq!((phone.status, phone.code()), (412, "precondition_failed"));
    let forgetful = save("phone", &[]).await;
    assert_eq!(
        (forgetful.status, forgetful.code()),
        (428, "precondition_required")
    );
    assert_eq!(forgetful.body["error"]["details"]["current_version"], 2);
    let stored = app.get("/tools/woop/submission", &ana.token).await;
    assert_eq!(stored.body["submission"]["data"], json!({"wish": "laptop"}));
    // `*` is the explicit "overwrite whatever is stored".
    let star = save("phone", &[("if-match", "*")]).await;
    assert_eq!((star.status, star.header("etag")), (200, Some("\"3\"")));
}

/// Requiring If-Match costs a save nothing: it is checked by the statement
/// that writes.
#[sqlx::test(migrations = false)]
async fn an_update_with_if_match_takes_at_most_four_round_trips(pool: PgPool) {
    let test = TestApp::new(pool).await;
    let ana = test.user("ana", None, "user").await;
    let counter = crate::RoundTripCounter::new(&test.pool).await;
    let app = shared::app::App::new(
        counter.pool.clone(),
        shared::registry::Registry::embedded(),
        crate::settings(&[]),
        None,
    )
    .unwrap();
    let save = |version: Option<i32>| {
        let mut request = http::Request::put("/tools/woop/submission")
            .header("authorization", format!("Bearer {}", ana.token))
            .header("content-type", "application/json");
        if let Some(version) = version {
            request = request.header("if-match", format!("\"{version}\""));
        }
        // A new version each time: the same data again would change nothing.
        let mut data = complete_data("woop");
        data["note"] = json!(version);
        let body = json!({"data": data, "status": "submitted"});
        request
            .body(lambda_http::Body::Text(body.to_string()))
            .unwrap()
    };
    assert_eq!(app.handle(save(None)).await.status(), 201);
    assert_eq!(app.handle(save(Some(1))).await.status(), 200);
    counter.reset();
    assert_eq!(app.handle(save(Some(2))).await.status(), 200);
    // BEGIN, lock, write, COMMIT; behind a transaction pooler each statement is also prepared.
    let budget = if crate::behind_pooler() { 6 } else { 4 };
    assert!(counter.count() <= budget, "{} round trips", counter.count());
}

/// The check and the write are one step: of first saves sent at once without
/// If-Match, one creates the submission and every other is refused, none
/// overwrites it.
#[sqlx::test(migrations = false)]
async fn parallel_first_saves_without_if_match_create_once_and_refuse_the_rest(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool).await);
    let ana = std::sync::Arc::new(app.user("ana", None, "user").await);
    let saves = (0..8).map(|i| {
        let (app, ana) = (std::sync::Arc::clone(&app), std::sync::Arc::clone(&ana));
        tokio::spawn(async move {
            let body = json!({"data": {"wish": format!("tab {i}")}, "status": "draft"});
            app.put("/tools/woop/submission", &ana.token, &body, &[])
                .await
        })
    });
    let mut statuses = Vec::new();
    let mut created = None;
    for save in saves {
        let response = save.await.unwrap();
        if response.status == 201 {
            created = Some(response.body["submission"]["data"].clone());
        }
        statuses.push(response.status);
    }
    statuses.sort();
    assert_eq!(statuses, [201, 428, 428, 428, 428, 428, 428, 428]);
    let (version, data): (i32, serde_json::Value) =
        sqlx::query_as("select version, data from sprint_00_woop.submissions where user_id = $1")
            .bind(ana.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((version, Some(data)), (1, created));
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_replays_the_first_response_without_a_second_write(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = json!({"data": complete_data("woop"), "status": "submitted"});
    let first = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(first.status, 201);
    let after_first = app.snapshot().await;
    let retry = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.snapshot().await, after_first);

    let other_body = json!({"data": {"wish": "different"}, "status": "draft"});
    let reused = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &other_body,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (409, "idempotency_key_reused")
    );
    assert_eq!(app.snapshot().await, after_first);

    // Keys are scoped per user.
    let ben = app.user("ben", None, "user").await;
    let bens = app
        .put(
            "/tools/woop/submission",
            &ben.token,
            &body,
            &[("idempotency-key", "retry-1")],
        )
        .await;
    assert_eq!(
        (bens.status, bens.header("idempotent-replayed")),
        (201, None)
    );
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_expires_after_24_hours(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = json!({"data": {"wish": "w"}, "status": "draft"});
    app.put(
        "/tools/woop/submission",
        &ana.token,
        &body,
        &[("idempotency-key", "k")],
    )
    .await;
    sqlx::query("update shared.idempotency_keys set created_at = created_at - interval '25 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut changed = body.clone();
    changed["data"]["note"] = json!("a day later");
    let later = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &changed,
            &[("idempotency-key", "k"), ("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (
            later.status,
            later.header("idempotent-replayed"),
            later.header("etag")
        ),
        (200, None, Some("\"2\""))
    );
}

#[sqlx::test(migrations = false)]
async fn resubmitting_makes_a_new_version_and_dependents_see_the_new_values(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    app.save(
        &ana,
        "know-thyself",
        json!({"dream": "first", "strengths": [{"strength": "s"}], "values": [{"value": "v"}]}),
        "submitted",
    )
    .await;
    let second = app
        .save(
            &ana,
            "know-thyself",
            json!({"dream": "second", "strengths": [{"strength": "s"}], "values": [{"value": "v"}]}),
            "submitted",
        )
        .await;
    assert_eq!((second.status, second.header("etag")), (200, Some("\"2\"")));
    assert_eq!(second.body["unlocked_tools"], json!([]));
    let seen = app.get("/tools/dream/dependencies", &ana.token).await;
    assert_eq!(seen.body["dependencies"][0]["value"], "second");
}

#[sqlx::test(migrations = false)]
async fn a_later_draft_never_uncompletes_or_changes_what_dependents_see(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    let submitted = json!({"dream": "submitted dream", "strengths": [{"strength": "s"}], "values": [{"value": "v"}]});
    app.save(&ana, "know-thyself", submitted.clone(), "submitted")
        .await;
    let draft = app
        .save(
            &ana,
            "know-thyself",
            json!({"dream": "half-written"}),
            "draft",
        )
        .await;
    assert_eq!(draft.status, 200);
    assert_eq!(draft.body["progress"]["status"], "completed");
    assert_eq!(draft.body["progress"]["percentage"], 100);
    assert_eq!(draft.body["submission"]["status"], "draft");
    assert_eq!(draft.body["submission"]["submitted_data"], submitted);
    assert_eq!(app.status_of(&ana, "know-thyself").await, "completed");
    let seen = app.get("/tools/dream/dependencies", &ana.token).await;
    assert_eq!(seen.body["dependencies"][0]["value"], "submitted dream");
    assert_eq!(
        outputs(&app, "sprint_01_know_thyself", ana.id).await.len(),
        3
    );

    let view = app.get("/tools/know-thyself/submission", &ana.token).await;
    assert_eq!(view.status, 200);
    assert_eq!(view.header("etag"), Some("\"2\""));
    assert_eq!(
        view.body["submission"]["data"],
        json!({"dream": "half-written"})
    );
    assert_eq!(view.body["submission"]["submitted_data"], submitted);
    assert_eq!(view.body["progress"]["status"], "completed");
}

#[sqlx::test(migrations = false)]
async fn reading_a_tool_never_saved_returns_no_submission(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let response = app.get("/tools/woop/submission", &ana.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["submission"], json!(null));
    assert_eq!(response.body["progress"]["status"], "unlocked");
    assert_eq!(response.header("etag"), None);
}

#[sqlx::test(migrations = false)]
async fn a_tool_added_after_the_user_was_synced_can_be_saved_before_the_recompute(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    sqlx::query("delete from shared.user_progress where user_id = $1 and tool_slug = 'woop'")
        .bind(ana.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let response = app.submit_complete(&ana, "woop").await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    assert_eq!(app.status_of(&ana, "woop").await, "completed");
}

#[sqlx::test(migrations = false)]
async fn an_idempotent_save_of_a_tool_without_a_progress_row_succeeds_and_replays(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    sqlx::query("delete from shared.user_progress where user_id = $1 and tool_slug = 'woop'")
        .bind(ana.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let body = json!({"data": complete_data("woop"), "status": "submitted"});
    let first = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("idempotency-key", "new-tool-1")],
        )
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let retry = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("idempotency-key", "new-tool-1")],
        )
        .await;
    assert_eq!(
        (retry.status, retry.header("idempotent-replayed")),
        (201, Some("true"))
    );
}

/// focus needs goals and values; both can be open at once and submitted
/// together. Several users race at once so that the two writes overlap.
#[sqlx::test(migrations = false)]
async fn submitting_two_prerequisites_at_once_unlocks_their_dependent(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool).await);
    let mut users = Vec::new();
    for n in 0..8 {
        let user = app.user(&format!("racer{n}"), None, "user").await;
        for slug in ["woop", "know-thyself", "dream", "cash"] {
            app.submit_complete(&user, slug).await;
        }
        users.push(std::sync::Arc::new(user));
    }
    let races = users.iter().map(|user| {
        let (app, user) = (std::sync::Arc::clone(&app), std::sync::Arc::clone(user));
        tokio::spawn(async move {
            let (goals, values) = tokio::join!(
                app.submit_complete(&user, "goals"),
                app.submit_complete(&user, "values")
            );
            assert_eq!((goals.status, values.status), (201, 201));
            let unlocked: Vec<serde_json::Value> = [goals, values]
                .iter()
                .flat_map(|r| r.body["unlocked_tools"].as_array().unwrap().clone())
                .collect();
            unlocked.iter().filter(|t| *t == "focus").count()
        })
    });
    for (race, user) in races.collect::<Vec<_>>().into_iter().zip(&users) {
        assert_eq!(
            race.await.unwrap(),
            1,
            "one of the two submits unlocks focus"
        );
        assert_eq!(app.status_of(user, "focus").await, "unlocked");
    }
}

#[sqlx::test(migrations = false)]
async fn a_locked_tool_whose_fields_are_all_available_opens_on_save(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    // An unlock that was missed: know-thyself's needs are met but it says locked.
    app.relock(&ana, "know-thyself").await;
    let response = app
        .save(&ana, "know-thyself", json!({"dream": "d"}), "draft")
        .await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    assert_eq!(app.status_of(&ana, "know-thyself").await, "in_progress");
}

#[sqlx::test(migrations = false)]
async fn a_failed_if_match_names_the_etag_it_was_given(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = json!({"data": {"wish": "w"}, "status": "draft"});
    app.put("/tools/woop/submission", &ana.token, &body, &[])
        .await;
    let mut changed = body.clone();
    changed["data"]["note"] = json!("changed");
    app.put(
        "/tools/woop/submission",
        &ana.token,
        &changed,
        &[("if-match", "\"1\"")],
    )
    .await;
    let stale = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &body,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(
        stale.body["error"]["message"],
        "the submission has changed since version \"1\""
    );
}

#[sqlx::test(migrations = false)]
async fn saving_the_same_data_and_status_again_is_no_new_version(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let data = crate::complete_data("woop");
    let first = app.save(&ana, "woop", data.clone(), "submitted").await;
    assert_eq!(first.status, 201);
    let again = app.save(&ana, "woop", data.clone(), "submitted").await;
    assert_eq!((again.status, again.header("etag")), (200, Some("\"1\"")));
    assert_eq!(
        again.body["submission"]["submitted_at"],
        first.body["submission"]["submitted_at"]
    );
    // A draft of the same data is a change of status, and so a new version.
    let draft = app.save(&ana, "woop", data.clone(), "draft").await;
    assert_eq!(draft.header("etag"), Some("\"2\""));
    let same_draft = app.save(&ana, "woop", data, "draft").await;
    assert_eq!(same_draft.header("etag"), Some("\"2\""));
}

#[sqlx::test(migrations = false)]
async fn a_client_polling_with_the_current_etag_gets_a_304(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let auth = format!("Bearer {}", ana.token);
    let poll = |etag: &'static str| {
        let auth = auth.clone();
        let app = &app;
        async move {
            app.request(
                http::Method::GET,
                "/tools/woop/submission",
                &[("authorization", &auth), ("if-none-match", etag)],
                None,
            )
            .await
        }
    };
    // Nothing saved yet: no ETag to hold, a full answer.
    assert_eq!(poll("*").await.status, 200);
    app.save(&ana, "woop", json!({"wish": "x"}), "draft").await;
    let unchanged = poll("\"1\"").await;
    assert_eq!(
        (unchanged.status, unchanged.header("etag")),
        (304, Some("\"1\""))
    );
    assert_eq!(unchanged.body, serde_json::Value::Null);
    assert_eq!(poll("W/\"1\"").await.status, 304);
    app.save(&ana, "woop", json!({"wish": "y"}), "draft").await;
    let changed = poll("\"1\"").await;
    assert_eq!(
        (changed.status, changed.header("etag")),
        (200, Some("\"2\""))
    );
}

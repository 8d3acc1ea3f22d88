//! What coaches and admins do (the staff-actions function): roles and
//! organizations, overrides, comments, and what the participant sees of them.

use http::Method;
use serde_json::{Value, json};
use shared::registry::Registry;
use shared::unlocks::recompute;
use sqlx::PgPool;
use uuid::Uuid;

use crate::stand_in::StandIn;
use crate::{TestApp, TestResponse, TestUser, WEBHOOK_SECRET};

struct Cast {
    ana: TestUser,
    guru: TestUser,
    outsider: TestUser,
    admin: TestUser,
}

async fn cast(app: &TestApp) -> Cast {
    let cast = Cast {
        ana: app.user("ana", Some("acme"), "user").await,
        guru: app.user("guru", Some("acme"), "guru").await,
        outsider: app.user("outsider", Some("globex"), "guru").await,
        admin: app.user("admin", None, "admin").await,
    };
    app.submit_complete(&cast.ana, "woop").await;
    cast
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> TestResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    app.request(method, path, &headers, Some(body.to_string().as_bytes()))
        .await
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> TestResponse {
    send(app, Method::POST, path, token, body, &[]).await
}

/// `PATCH /users/{id}` with this If-Match (none when `None`) and a key.
async fn patch(
    app: &TestApp,
    who: &TestUser,
    target: Uuid,
    body: &Value,
    if_match: Option<&str>,
    key: &str,
) -> TestResponse {
    let mut headers = vec![("idempotency-key", key)];
    if let Some(if_match) = if_match {
        headers.push(("if-match", if_match));
    }
    send(
        app,
        Method::PATCH,
        &format!("/users/{target}"),
        &who.token,
        body,
        &headers,
    )
    .await
}

/// The ETag of `target`'s profile, as `who` reads it.
async fn etag(app: &TestApp, who: &TestUser, target: Uuid) -> String {
    let read = app.get(&format!("/users/{target}"), &who.token).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    read.header("etag").unwrap().to_owned()
}

/// (action, actor, subjects, reason, before, after) of every audit row
/// recording a change (not a read), oldest first.
type AuditRow = (
    String,
    Option<Uuid>,
    Vec<Uuid>,
    Option<String>,
    Option<Value>,
    Option<Value>,
);

async fn changes(app: &TestApp) -> Vec<AuditRow> {
    sqlx::query_as(
        "select action::text, actor_id, subjects, reason, before, after from shared.audit_log
         where action not like 'read.%' order by id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Everything a staff act may write, as one checksum.
async fn written(app: &TestApp) -> String {
    let staff: String = sqlx::query_scalar(
        "select concat_ws('|',
            (select count(*) from shared.audit_log where action not like 'read.%'),
            (select count(*) from shared.overrides), (select count(*) from shared.comments),
            (select count(*) from shared.submission_history),
            (select count(*) from shared.staff_idempotency_keys),
            (select count(*) from shared.comment_reads))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    format!("{staff}/{}", app.snapshot().await)
}

fn is_error_json(response: &TestResponse) -> bool {
    response.body["error"]["code"].is_string()
}

#[sqlx::test(migrations = false)]
async fn an_admin_changes_a_role_and_the_change_has_exactly_one_audit_row_with_before_and_after(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let tag = etag(&app, &c.admin, c.ana.id).await;
    let changed = patch(
        &app,
        &c.admin,
        c.ana.id,
        &json!({"role": "guru", "reason": "Coaches the spring cohort"}),
        Some(&tag),
        "k1",
    )
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["role"], "guru");
    assert_eq!(changed.body["role_set_by"], c.admin.id.to_string());
    assert!(changed.body["role_set_at"].is_string());
    assert_ne!(changed.header("etag").unwrap(), tag);
    assert_eq!(
        changed.header("etag").unwrap(),
        etag(&app, &c.admin, c.ana.id).await
    );
    let rows = changes(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (action, actor, subjects, reason, before, after) = &rows[0];
    assert_eq!(action, "change.role");
    assert_eq!(*actor, Some(c.admin.id));
    assert_eq!(subjects, &vec![c.ana.id]);
    assert_eq!(reason.as_deref(), Some("Coaches the spring cohort"));
    assert_eq!(before, &Some(json!({"role": "user"})));
    assert_eq!(after, &Some(json!({"role": "guru"})));
    // The request id of the change is recorded.
    let request_id: Option<String> =
        sqlx::query_scalar("select request_id from shared.audit_log where action = 'change.role'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(request_id.as_deref(), changed.header("x-request-id"));
}

#[sqlx::test(migrations = false)]
async fn a_stale_if_match_is_412_and_writes_nothing_not_even_an_audit_row(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let stale = etag(&app, &c.admin, c.ana.id).await;
    let body = json!({"role": "guru", "reason": "first"});
    let first = patch(&app, &c.admin, c.ana.id, &body, Some(&stale), "k1").await;
    assert_eq!(first.status, 200);
    let before = written(&app).await;
    let second = patch(
        &app,
        &c.admin,
        c.ana.id,
        &json!({"role": "user", "reason": "second"}),
        Some(&stale),
        "k2",
    )
    .await;
    assert_eq!(
        (second.status, second.code()),
        (412, "precondition_failed"),
        "{:?}",
        second.body
    );
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn a_change_without_if_match_is_428_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    let response = patch(
        &app,
        &c.admin,
        c.ana.id,
        &json!({"role": "guru", "reason": "x"}),
        None,
        "k1",
    )
    .await;
    assert_eq!(
        (response.status, response.code()),
        (428, "precondition_required")
    );
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn a_retried_change_replays_its_first_answer_and_a_key_reused_with_another_body_is_409(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let tag = etag(&app, &c.admin, c.ana.id).await;
    let body = json!({"role": "guru", "reason": "retry me"});
    let first = patch(&app, &c.admin, c.ana.id, &body, Some(&tag), "same-key").await;
    assert_eq!(first.status, 200);
    let after_first = written(&app).await;
    // The retry carries the ETag the first request was sent with, now stale.
    let retry = patch(&app, &c.admin, c.ana.id, &body, Some(&tag), "same-key").await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(written(&app).await, after_first);
    let other = patch(
        &app,
        &c.admin,
        c.ana.id,
        &json!({"role": "user", "reason": "retry me"}),
        Some(first.header("etag").unwrap()),
        "same-key",
    )
    .await;
    assert_eq!(
        (other.status, other.code()),
        (409, "idempotency_key_reused")
    );
    assert_eq!(written(&app).await, after_first);
    // A change without a key is refused before anything.
    let auth = format!("Bearer {}", c.admin.token);
    let keyless = app
        .request(
            Method::PATCH,
            &format!("/users/{}", c.ana.id),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("if-match", "*"),
            ],
            Some(body.to_string().as_bytes()),
        )
        .await;
    assert_eq!(keyless.status, 400);
    assert_eq!(written(&app).await, after_first);
}

#[sqlx::test(migrations = false)]
async fn the_last_admin_stays_an_admin_and_nobody_changes_their_own_role(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    let own = patch(
        &app,
        &c.admin,
        c.admin.id,
        &json!({"role": "user", "reason": "stepping down"}),
        Some("*"),
        "k1",
    )
    .await;
    assert_eq!(
        (own.status, own.code()),
        (409, "own_role"),
        "{:?}",
        own.body
    );
    assert_eq!(written(&app).await, before);

    // Two admins demoting each other at once: the admins' lock orders them,
    // the first passes, and the second is no longer an admin (or would leave
    // none): one admin remains, and only one change is recorded.
    let second = app.user("second", None, "admin").await;
    let demote = json!({"role": "user", "reason": "handover"});
    let (a, b) = tokio::join!(
        patch(&app, &second, c.admin.id, &demote, Some("*"), "k2"),
        patch(&app, &c.admin, second.id, &demote, Some("*"), "k3"),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 403] || statuses == [200, 409],
        "{statuses:?}: {:?} {:?}",
        a.body,
        b.body
    );
    let admins: i64 = sqlx::query_scalar("select count(*) from shared.users where role = 'admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(admins, 1);
    let roles = changes(&app)
        .await
        .into_iter()
        .filter(|r| r.0 == "change.role")
        .count();
    assert_eq!(roles, 1);
}

#[sqlx::test(migrations = false)]
async fn an_unknown_organization_is_422_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    let response = patch(
        &app,
        &c.admin,
        c.ana.id,
        &json!({"organization_id": Uuid::new_v4(), "reason": "move"}),
        Some("*"),
        "k1",
    )
    .await;
    assert_eq!(
        (response.status, response.code()),
        (422, "organization_not_found")
    );
    assert_eq!(written(&app).await, before);
    // An unknown user is a 404.
    let nobody = patch(
        &app,
        &c.admin,
        Uuid::new_v4(),
        &json!({"role": "guru", "reason": "x"}),
        Some("*"),
        "k2",
    )
    .await;
    assert_eq!((nobody.status, nobody.code()), (404, "user_not_found"));
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn only_an_admin_changes_a_role_or_an_organization(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    for who in [&c.ana, &c.guru, &c.outsider] {
        let response = patch(
            &app,
            who,
            c.ana.id,
            &json!({"role": "admin", "reason": "promote"}),
            Some("*"),
            "k1",
        )
        .await;
        assert_eq!(response.status, 403, "{:?}", response.body);
    }
    assert_eq!(written(&app).await, before);
}

fn user_updated(id: &str, email: &str, tags: &[&str]) -> Value {
    json!({
        "version": 2, "type": "userUpdated", "trigger": "user_updated", "school_id": "school-1",
        "data": {"user": {
            "id": id, "email": email, "username": "ana", "first_name": "Ana", "last_name": "Lopes",
            "tags": tags, "fields": {"company": "Acme Bakery"}, "created": 1_700_000_000.25
        }}
    })
}

async fn deliver(app: &TestApp, lms: &StandIn, id: &str, tags: &[&str]) -> TestResponse {
    lms.set_user(id, "mover@example.test", tags);
    let payload = user_updated(id, "mover@example.test", tags);
    let signature = format!("v1={WEBHOOK_SECRET}");
    app.request(
        Method::POST,
        "/webhooks/learnworlds",
        &[
            ("content-type", "application/json"),
            ("learnworlds-webhook-signature", &signature),
        ],
        Some(payload.to_string().as_bytes()),
    )
    .await
}

async fn organization_slug(app: &TestApp, user: Uuid) -> Option<String> {
    sqlx::query_scalar(
        "select o.slug::text from shared.users u left join shared.organizations o on o.id = u.organization_id
         where u.id = $1",
    )
    .bind(user)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_admins_organization_sticks_against_a_later_tag_until_it_is_handed_back(pool: PgPool) {
    let lms = StandIn::start().await;
    let app = TestApp::confirming_with(pool, &lms).await;
    let admin = app.user("admin", None, "admin").await;
    app.user("globex-guru", Some("globex"), "guru").await;
    let globex: Uuid =
        sqlx::query_scalar("select id from shared.organizations where slug = 'globex'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let id = "64a0f00000000000000000a1";
    let synced = deliver(&app, &lms, id, &["org:acme"]).await;
    assert_eq!(synced.body["outcome"], "synced", "{:?}", synced.body);
    let user: Uuid = synced.body["user_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(organization_slug(&app, user).await.as_deref(), Some("acme"));

    let moved = patch(
        &app,
        &admin,
        user,
        &json!({"organization_id": globex, "reason": "Joined the Globex cohort"}),
        Some(&etag(&app, &admin, user).await),
        "move",
    )
    .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["organization"]["slug"], "globex");
    assert_eq!(moved.body["organization_source"], "admin");
    assert_eq!(moved.body["organization_set_by"], admin.id.to_string());
    let rows = changes(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "change.organization");
    assert_eq!(
        rows[0].5,
        Some(json!({"organization_id": globex, "organization_source": "admin"}))
    );

    // LearnWorlds still tags them org:acme (a later delivery): they stay.
    let later = deliver(&app, &lms, id, &["org:acme", "vip"]).await;
    assert_eq!(later.body["outcome"], "synced", "{:?}", later.body);
    assert_eq!(
        organization_slug(&app, user).await.as_deref(),
        Some("globex")
    );

    // Handed back: the next tag sync applies.
    let back = patch(
        &app,
        &admin,
        user,
        &json!({"organization_source": "learnworlds", "reason": "Back to their LearnWorlds tag"}),
        Some(&etag(&app, &admin, user).await),
        "hand-back",
    )
    .await;
    assert_eq!(back.status, 200, "{:?}", back.body);
    assert_eq!(back.body["organization_source"], "learnworlds");
    assert_eq!(back.body["organization"]["slug"], "globex");
    let next = deliver(&app, &lms, id, &["org:acme", "vip", "returning"]).await;
    assert_eq!(next.body["outcome"], "synced", "{:?}", next.body);
    assert_eq!(organization_slug(&app, user).await.as_deref(), Some("acme"));
    assert_eq!(changes(&app).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn a_staff_read_of_a_profile_is_audited_and_a_guru_of_another_organization_gets_404(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let path = format!("/users/{}", c.ana.id);
    assert_eq!(app.get(&path, &c.ana.token).await.status, 200);
    assert_eq!(app.get(&path, &c.outsider.token).await.status, 404);
    let read = app.get(&path, &c.guru.token).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["organization_source"], "learnworlds");
    let reads: Vec<(Uuid, Vec<Uuid>)> = sqlx::query_as(
        "select actor_id, subjects from shared.audit_log where action = 'read.profile'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reads, vec![(c.guru.id, vec![c.ana.id])]);
}

#[sqlx::test(migrations = false)]
async fn an_unlocked_tool_survives_the_recompute_and_shows_its_missing_inputs_as_missing(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    assert_eq!(app.status_of(&c.ana, "dream").await, "locked");
    let path = format!("/users/{}/tools/dream/unlock", c.ana.id);
    let unlocked = post(
        &app,
        &path,
        &c.guru.token,
        &json!({"reason": "Did the workshop on paper"}),
    )
    .await;
    assert_eq!(unlocked.status, 201, "{:?}", unlocked.body);
    assert_eq!(unlocked.body["status"], "unlocked");
    assert_eq!(unlocked.body["override"]["kind"], "unlock");
    assert!(
        !unlocked.body["missing_required"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let rows = changes(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "override.unlock");
    assert_eq!(rows[0].4, Some(json!({"status": "locked"})));

    // Neither a full sweep nor a scheduled run that has ana as changed (her
    // mark, as any change of hers would leave) locks it again.
    for scope in [recompute::Scope::All, recompute::Scope::Changed] {
        sqlx::query(
            "insert into shared.recompute_dirty (user_id) values ($1) on conflict do nothing",
        )
        .bind(c.ana.id)
        .execute(&app.pool)
        .await
        .unwrap();
        let report = recompute::run_with(
            &app.app.context.pool,
            Registry::embedded(),
            2,
            recompute::Housekeeping::default(),
            scope,
        )
        .await
        .unwrap();
        assert!(report.marks_cleared >= 1, "{report:?}");
        assert_eq!(app.status_of(&c.ana, "dream").await, "unlocked");
    }
    let deps = app.get("/tools/dream/dependencies", &c.ana.token).await;
    assert_eq!(deps.status, 200, "{:?}", deps.body);
    assert_eq!(deps.body["unlocked"], true);
    assert!(!deps.body["missing_required"].as_array().unwrap().is_empty());
    // The participant works on it as on any open tool.
    let saved = app.save(&c.ana, "dream", json!({}), "draft").await;
    assert_eq!(saved.status, 201, "{:?}", saved.body);
    // A second unlock of an open tool is a conflict and writes nothing.
    let before = written(&app).await;
    let again = post(&app, &path, &c.admin.token, &json!({"reason": "again"})).await;
    assert_eq!((again.status, again.code()), (409, "not_locked"));
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn a_reopened_tool_keeps_its_history_its_dependents_and_can_be_submitted_again(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    // woop's submit unlocked know-thyself, which reads woop's wish.
    assert_eq!(app.status_of(&c.ana, "know-thyself").await, "unlocked");
    let submitted = app.get("/tools/woop/submission", &c.ana.token).await;
    let version = submitted.body["submission"]["version"].as_i64().unwrap();
    let reopened = post(
        &app,
        &format!("/users/{}/tools/woop/reopen", c.ana.id),
        &c.admin.token,
        &json!({"reason": "The plan needs a second look", "comment": "Revise your plan, please."}),
    )
    .await;
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    assert_eq!(reopened.body["submission"]["status"], "draft");
    assert_eq!(
        reopened.body["comment"]["body"],
        "Revise your plan, please."
    );
    assert_eq!(app.status_of(&c.ana, "woop").await, "in_progress");
    let rows = changes(&app).await;
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["override.reopen"]
    );
    let history: Vec<(i32, Value)> = sqlx::query_as(
        "select version, data from shared.submission_history where user_id = $1 and tool_slug = 'woop'",
    )
    .bind(c.ana.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![(version as i32, crate::complete_data("woop"))]
    );

    // The documented rule: the tools it unlocked stay unlocked and keep
    // reading what it submitted, until the resubmission replaces it.
    assert_eq!(app.status_of(&c.ana, "know-thyself").await, "unlocked");
    let deps = app
        .get("/tools/know-thyself/dependencies", &c.ana.token)
        .await;
    assert_eq!(deps.body["missing_required"], json!([]));
    let wish = &deps.body["dependencies"][0];
    assert_eq!(wish["available"], true);
    assert_eq!(wish["value"], crate::complete_data("woop")["wish"]);

    // The participant's editor reads the draft, edits and submits again.
    let read = app.get("/tools/woop/submission", &c.ana.token).await;
    assert_eq!(read.body["submission"]["status"], "draft");
    let mut revised = crate::complete_data("woop");
    revised["wish"] = json!("A revised wish");
    let resubmitted = app.save(&c.ana, "woop", revised, "submitted").await;
    assert_eq!(resubmitted.status, 200, "{:?}", resubmitted.body);
    assert_eq!(app.status_of(&c.ana, "woop").await, "completed");
    let deps = app
        .get("/tools/know-thyself/dependencies", &c.ana.token)
        .await;
    assert_eq!(deps.body["dependencies"][0]["value"], "A revised wish");

    // A tool that is not submitted is not reopened.
    let before = written(&app).await;
    let not_submitted = post(
        &app,
        &format!("/users/{}/tools/dream/reopen", c.ana.id),
        &c.admin.token,
        &json!({"reason": "x", "comment": "y"}),
    )
    .await;
    assert_eq!(
        (not_submitted.status, not_submitted.code()),
        (409, "not_submitted")
    );
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn comments_count_as_unread_in_progress_until_the_participant_reads_them(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let path = format!("/users/{}/tools/woop/comments", c.ana.id);
    for (who, text) in [(&c.guru, "Strong wish."), (&c.admin, "Agreed.")] {
        let posted = post(&app, &path, &who.token, &json!({"body": text})).await;
        assert_eq!(posted.status, 201, "{:?}", posted.body);
        assert_eq!(posted.body["body"], text);
    }
    let unread = |progress: &Value, slug: &str| {
        progress["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["slug"] == slug)
            .unwrap()["unread_comments"]
            .clone()
    };
    let progress = app.get("/progress", &c.ana.token).await;
    assert_eq!(unread(&progress.body, "woop"), 2);
    assert_eq!(unread(&progress.body, "dream"), 0);
    // A staff read marks nothing read, and is audited.
    let staff = app.get(&path, &c.guru.token).await;
    assert_eq!(staff.status, 200);
    assert_eq!(staff.body["comments"].as_array().unwrap().len(), 2);
    assert_eq!(staff.body["comments"][0]["author_name"], "guru");
    assert_eq!(staff.body["comments"][0]["author_role"], "guru");
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from shared.audit_log where action = 'read.comments' and actor_id = $1",
    )
    .bind(c.guru.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    assert_eq!(
        app.get(&path, &c.outsider.token).await.status,
        404,
        "another organization's guru"
    );
    let progress = app.get("/progress", &c.ana.token).await;
    assert_eq!(unread(&progress.body, "woop"), 2);
    // The participant reads them: the count resets.
    let own = app.get("/tools/woop/comments", &c.ana.token).await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(own.body["comments"][1]["body"], "Agreed.");
    let progress = app.get("/progress", &c.ana.token).await;
    assert_eq!(unread(&progress.body, "woop"), 0);
    // A new one counts again.
    post(&app, &path, &c.guru.token, &json!({"body": "One more."})).await;
    let progress = app.get("/progress", &c.ana.token).await;
    assert_eq!(unread(&progress.body, "woop"), 1);
    // Each comment has its one audit row.
    assert_eq!(
        changes(&app)
            .await
            .iter()
            .filter(|r| r.0 == "comment")
            .count(),
        3
    );
}

#[sqlx::test(migrations = false)]
async fn nobody_overrides_their_own_tools_and_a_guru_of_another_organization_gets_404(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    let reason = json!({"reason": "because"});
    // A participant on themself, and staff on their own tools.
    for who in [&c.ana, &c.guru, &c.admin] {
        let path = format!("/users/{}/tools/dream/unlock", who.id);
        let response = post(&app, &path, &who.token, &reason).await;
        assert_eq!(response.status, 403, "{:?}", response.body);
    }
    // A participant on someone else, another organization's guru: 404.
    let ben = app.user("ben", Some("acme"), "user").await;
    let before_ben = written(&app).await;
    for (who, target) in [(&ben, c.ana.id), (&c.outsider, c.ana.id)] {
        for path in [
            format!("/users/{target}/tools/dream/unlock"),
            format!("/users/{target}/tools/woop/reopen"),
            format!("/users/{target}/tools/woop/comments"),
        ] {
            let body = json!({"reason": "x", "comment": "y", "body": "z"});
            let response = post(&app, &path, &who.token, &body).await;
            // The body is checked first (422 for the fields a route does not
            // take); with its own body each is a 404.
            assert!(
                response.status == 404 || response.status == 422,
                "{path}: {:?}",
                response.body
            );
        }
        let unlock = post(
            &app,
            &format!("/users/{target}/tools/dream/unlock"),
            &who.token,
            &reason,
        )
        .await;
        assert_eq!((unlock.status, unlock.code()), (404, "user_not_found"));
        let comment = post(
            &app,
            &format!("/users/{target}/tools/woop/comments"),
            &who.token,
            &json!({"body": "hi"}),
        )
        .await;
        assert_eq!(comment.status, 404);
    }
    assert_ne!(before, before_ben);
    assert_eq!(written(&app).await, before_ben);
}

#[sqlx::test(migrations = false)]
async fn bad_input_is_a_4xx_json_answer_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = written(&app).await;
    let ana = c.ana.id;
    let cases: Vec<(String, Value, u16)> = vec![
        (format!("/users/{ana}/tools/dream/unlock"), json!({}), 422),
        (
            format!("/users/{ana}/tools/dream/unlock"),
            json!({"reason": ""}),
            422,
        ),
        (
            format!("/users/{ana}/tools/dream/unlock"),
            json!({"reason": "x".repeat(1001)}),
            422,
        ),
        (
            format!("/users/{ana}/tools/dream/unlock"),
            json!({"reason": "a\u{0}b"}),
            422,
        ),
        (
            format!("/users/{ana}/tools/dream/unlock"),
            json!({"reason": "ok", "extra": true}),
            422,
        ),
        (
            format!("/users/{ana}/tools/no-such-tool/unlock"),
            json!({"reason": "ok"}),
            404,
        ),
        (
            format!("/users/{ana}/tools/woop/reopen"),
            json!({"reason": "ok"}),
            422,
        ),
        (
            format!("/users/{ana}/tools/woop/comments"),
            json!({"body": "x".repeat(4001)}),
            422,
        ),
        (
            format!("/users/{ana}/tools/woop/comments"),
            json!({"body": "   "}),
            422,
        ),
        (
            "/users/not-a-uuid/tools/woop/comments".into(),
            json!({"body": "x"}),
            400,
        ),
    ];
    for (path, body, status) in &cases {
        let response = post(&app, path, &c.admin.token, body).await;
        assert_eq!(
            response.status, *status,
            "{path} {body}: {:?}",
            response.body
        );
        assert!(is_error_json(&response), "{path}");
    }
    let not_json = app
        .request(
            Method::POST,
            &format!("/users/{ana}/tools/dream/unlock"),
            &[
                ("authorization", &format!("Bearer {}", c.admin.token)),
                ("content-type", "application/json"),
            ],
            Some(b"{not json"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    let bad_patch = patch(
        &app,
        &c.admin,
        ana,
        &json!({"role": "owner", "reason": "x"}),
        Some("*"),
        "k",
    )
    .await;
    assert_eq!(bad_patch.status, 422);
    assert_eq!(written(&app).await, before);
}

#[sqlx::test(migrations = false)]
async fn the_participant_sees_what_staff_did_newest_first_in_pages(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let ana = c.ana.id;
    post(
        &app,
        &format!("/users/{ana}/tools/dream/unlock"),
        &c.guru.token,
        &json!({"reason": "unlock it"}),
    )
    .await;
    post(
        &app,
        &format!("/users/{ana}/tools/woop/comments"),
        &c.guru.token,
        &json!({"body": "first comment"}),
    )
    .await;
    post(
        &app,
        &format!("/users/{ana}/tools/woop/reopen"),
        &c.admin.token,
        &json!({"reason": "revise", "comment": "please revise"}),
    )
    .await;
    // Someone else's activity never shows.
    let ben = app.user("ben", Some("acme"), "user").await;
    post(
        &app,
        &format!("/users/{}/tools/woop/comments", ben.id),
        &c.guru.token,
        &json!({"body": "for ben"}),
    )
    .await;

    let mut kinds = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/me/activity?limit=2&cursor={cursor}"),
            None => "/me/activity?limit=2".to_owned(),
        };
        let page = app.get(&path, &c.ana.token).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for item in page.body["items"].as_array().unwrap() {
            kinds.push((
                item["kind"].as_str().unwrap().to_owned(),
                item["actor_role"].as_str().unwrap().to_owned(),
            ));
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    // Newest first: the reopen and its comment (same transaction), then the
    // comment, then the unlock.
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_eq!(kinds[3], ("unlock".to_owned(), "guru".to_owned()));
    assert_eq!(kinds[2], ("comment".to_owned(), "guru".to_owned()));
    let mut newest: Vec<&str> = kinds[..2].iter().map(|k| k.0.as_str()).collect();
    newest.sort_unstable();
    assert_eq!(newest, ["comment", "reopen"]);
    let bens = app.get("/me/activity", &ben.token).await;
    assert_eq!(bens.body["items"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_submitted_tool_with_a_draft_saved_over_it_is_reopened_and_keeps_the_draft(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let draft = json!({"wish": "a draft over the submit"});
    let saved = app.save(&c.ana, "woop", draft.clone(), "draft").await;
    assert_eq!(saved.status, 200, "{:?}", saved.body);
    assert_eq!(app.status_of(&c.ana, "woop").await, "completed");
    let reopened = post(
        &app,
        &format!("/users/{}/tools/woop/reopen", c.ana.id),
        &c.guru.token,
        &json!({"reason": "revise", "comment": "please revise"}),
    )
    .await;
    assert_eq!(reopened.status, 201, "{:?}", reopened.body);
    assert_eq!(app.status_of(&c.ana, "woop").await, "in_progress");
    let kept: Value = sqlx::query_scalar(
        "select data from shared.submission_history where user_id = $1 and tool_slug = 'woop'",
    )
    .bind(c.ana.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, crate::complete_data("woop"));
    let read = app.get("/tools/woop/submission", &c.ana.token).await;
    assert_eq!(read.body["submission"]["data"], draft);
    assert_eq!(read.body["submission"]["status"], "draft");
    // Reopened once, it is not submitted: a second reopen is a conflict.
    let again = post(
        &app,
        &format!("/users/{}/tools/woop/reopen", c.ana.id),
        &c.guru.token,
        &json!({"reason": "again", "comment": "again"}),
    )
    .await;
    assert_eq!((again.status, again.code()), (409, "not_submitted"));
}

//! What a guru reads of someone who moves between organizations: their
//! progress, and of their work only what was saved in the guru's organization
//! since they joined it (`shared::access`).

use http::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::stand_in::StandIn;
use crate::{TestApp, TestUser, WEBHOOK_SECRET};

/// What `viewer` reads of `user`: (progress, know-thyself's submission, the
/// values tool's dependencies), each a status and a body.
async fn reads(app: &TestApp, viewer: &TestUser, user: &TestUser) -> [(u16, Value); 3] {
    let paths = [
        format!("/users/{}/progress", user.id),
        format!("/tools/know-thyself/submission?user_id={}", user.id),
        format!("/tools/values/dependencies?user_id={}", user.id),
    ];
    let mut out = Vec::new();
    for path in &paths {
        let response = app.get(path, &viewer.token).await;
        out.push((response.status, response.body));
    }
    out.try_into().unwrap()
}

fn dependency_values(dependencies: &Value) -> Vec<(bool, Value)> {
    dependencies["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["available"].as_bool().unwrap(), d["value"].clone()))
        .collect()
}

fn status_of(progress: &Value, slug: &str) -> String {
    progress["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["slug"] == slug)
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_new_organizations_guru_never_reads_work_from_before_the_move(pool: PgPool) {
    let lms = StandIn::start().await;
    let app = TestApp::confirming_with(pool, &lms).await;
    let guru_a = app.user("guru-a", Some("org-a"), "guru").await;
    let guru_b = app.user("guru-b", Some("org-b"), "guru").await;
    let admin = app.user("admin", None, "admin").await;
    let ana = app.user("ana", Some("org-a"), "user").await;
    app.submit_complete(&ana, "woop").await;
    let values = json!({"dream": "a bakery", "strengths": [{"strength": "s"}], "values": [{"value": "care"}, {"value": "craft"}]});
    assert_eq!(
        app.save(&ana, "know-thyself", values.clone(), "submitted")
            .await
            .status,
        201
    );
    app.submit_complete(&ana, "dream").await;
    let [_, (_, before), (_, deps)] = reads(&app, &guru_a, &ana).await;
    assert_eq!(before["submission"]["submitted_data"], values);
    assert_eq!(
        dependency_values(&deps)[1],
        (true, json!([{"value": "care"}, {"value": "craft"}]))
    );

    // LearnWorlds moves her to org-b, and the webhook confirms it.
    lms.set_user(&ana.lms_user_id, "ana@example.test", &["org:org-b"]);
    let body = json!({"version": 2, "type": "userTagAdded", "trigger": "user_tag_added",
                      "data": {"id": ana.lms_user_id, "email": "ana@example.test", "tags": ["org:org-b"]}});
    let signature = format!("v1={WEBHOOK_SECRET}");
    let moved = app
        .request(
            Method::POST,
            "/webhooks/learnworlds",
            &[
                ("content-type", "application/json"),
                ("learnworlds-webhook-signature", &signature),
            ],
            Some(body.to_string().as_bytes()),
        )
        .await;
    assert_eq!(moved.body["membership"], "confirmed", "{:?}", moved.body);

    // The old guru sees nothing of hers any more.
    for (status, body) in reads(&app, &guru_a, &ana).await {
        assert_eq!(status, 404, "{body}");
    }
    // The new guru sees her progress, but none of the work saved before.
    let [(status, progress), (_, submission), (_, deps)] = reads(&app, &guru_b, &ana).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&progress, "know-thyself"), "completed");
    assert_eq!(submission["submission"], Value::Null, "{submission}");
    assert_eq!(submission["progress"]["status"], "completed");
    assert_eq!(
        dependency_values(&deps),
        [(true, Value::Null), (true, Value::Null)],
        "{deps}"
    );
    // She and an admin see all of it.
    for viewer in [&ana, &admin] {
        let [_, (_, submission), (_, deps)] = reads(&app, viewer, &ana).await;
        assert_eq!(submission["submission"]["submitted_data"], values);
        assert_eq!(
            dependency_values(&deps)[1],
            (true, json!([{"value": "care"}, {"value": "craft"}]))
        );
    }

    // A draft saved in org-b is hers to show the new guru; what she
    // submitted before the move is still not.
    let draft = json!({"dream": "two bakeries"});
    assert_eq!(
        app.save(&ana, "know-thyself", draft.clone(), "draft")
            .await
            .status,
        200
    );
    let [_, (_, submission), (_, deps)] = reads(&app, &guru_b, &ana).await;
    assert_eq!(submission["submission"]["data"], draft, "{submission}");
    assert_eq!(submission["submission"]["submitted_data"], Value::Null);
    assert_eq!(submission["submission"]["submitted_at"], Value::Null);
    assert_eq!(dependency_values(&deps)[1], (true, Value::Null));

    // Submitted again in org-b, it is.
    let resubmitted = json!({"dream": "two bakeries", "strengths": [{"strength": "s"}], "values": [{"value": "care"}]});
    app.save(&ana, "know-thyself", resubmitted.clone(), "submitted")
        .await;
    let [_, (_, submission), (_, deps)] = reads(&app, &guru_b, &ana).await;
    assert_eq!(submission["submission"]["submitted_data"], resubmitted);
    assert_eq!(
        dependency_values(&deps),
        [(true, Value::Null), (true, json!([{"value": "care"}]))],
        "dream's output is still from before the move: {deps}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_guru_keeps_reading_the_work_of_members_who_never_moved(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let guru = app.user("guru", Some("acme"), "guru").await;
    let ana = app.user("ana", Some("acme"), "user").await;
    app.submit_complete(&ana, "woop").await;
    let response = app
        .get(
            &format!("/tools/woop/submission?user_id={}", ana.id),
            &guru.token,
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body["submission"]["submitted_data"],
        crate::complete_data("woop")
    );
    // Nor does a sync that leaves her where she is restart her membership.
    let mut conn = app.pool.acquire().await.unwrap();
    shared::identity::users::sync(
        &mut conn,
        app.registry(),
        &TestApp::lms_user("ana", Some("acme")),
        false,
    )
    .await
    .unwrap();
    drop(conn);
    let again = app
        .get(
            &format!("/tools/woop/submission?user_id={}", ana.id),
            &guru.token,
        )
        .await;
    assert_eq!(again.body["submission"], response.body["submission"]);
}

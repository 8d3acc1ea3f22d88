//! `GET /tools/{slug}/dependencies`.

use serde_json::json;
use shared::app::App;
use shared::registry::Registry;
use sqlx::PgPool;

use crate::{RoundTripCounter, TestApp, settings};

#[sqlx::test(migrations = false)]
async fn dependencies_report_each_field_its_source_value_and_what_is_missing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let locked = app.get("/tools/values/dependencies", &ana.token).await;
    assert_eq!(locked.status, 200);
    assert_eq!(locked.body["unlocked"], false);
    assert_eq!(locked.body["status"], "locked");
    assert_eq!(
        locked.body["missing_required"],
        json!(["identity.dream.one_sentence", "identity.personal_values"])
    );

    app.submit_complete(&ana, "woop").await;
    app.save(
        &ana,
        "know-thyself",
        json!({"dream": "d", "strengths": [{"strength": "s"}], "values": [{"value": "care"}, {"value": "craft"}]}),
        "submitted",
    )
    .await;
    app.submit_complete(&ana, "dream").await;

    let response = app.get("/tools/values/dependencies", &ana.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["tool"], "values");
    assert_eq!(response.body["unlocked"], true);
    assert_eq!(response.body["missing_required"], json!([]));
    let deps = response.body["dependencies"].as_array().unwrap();
    assert_eq!(deps.len(), 2);
    assert_eq!(deps[0]["field_id"], "identity.dream.one_sentence");
    assert_eq!(deps[0]["source_tool"], "dream");
    assert_eq!(deps[0]["required"], true);
    assert_eq!(deps[0]["available"], true);
    assert_eq!(deps[0]["value"], "one_sentence for dream");
    assert!(deps[0]["updated_at"].is_string());
    assert_eq!(deps[1]["field_id"], "identity.personal_values");
    assert_eq!(deps[1]["source_tool"], "know-thyself");
    assert_eq!(
        deps[1]["value"],
        json!([{"value": "care"}, {"value": "craft"}])
    );
}

#[sqlx::test(migrations = false)]
async fn old_design_names_resolve_to_their_tools(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let response = app.get("/tools/vision/dependencies", &ana.token).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body["tool"], "dream");
}

/// program-overview reads nine fields from eight tool schemas.
#[sqlx::test(migrations = false)]
async fn resolving_takes_one_round_trip_however_many_schemas_are_read(pool: PgPool) {
    let test = TestApp::new(pool).await;
    let ana = test.user("ana", None, "user").await;
    test.submit_complete(&ana, "woop").await;
    let tool = Registry::embedded().tool("program-overview").unwrap();
    let sources: std::collections::BTreeSet<&str> = tool
        .dependencies
        .iter()
        .map(|d| d.source.as_str())
        .collect();
    assert!(sources.len() >= 8, "{sources:?}");

    let counter = RoundTripCounter::new(&test.pool).await;
    let (round_trips, response) = counter
        .of_second(|| {
            http::Request::get("/tools/program-overview/dependencies")
                .header("authorization", format!("Bearer {}", ana.token))
                .body(lambda_http::Body::Empty)
                .unwrap()
        })
        .await;
    assert_eq!(response.status(), 200);
    // Behind a transaction pooler a read is pinned in BEGIN/COMMIT and prepared unnamed.
    assert_eq!(round_trips, if crate::behind_pooler() { 4 } else { 1 });
}

#[sqlx::test(migrations = false)]
async fn a_save_that_unlocks_tools_takes_at_most_four_round_trips(pool: PgPool) {
    let test = TestApp::new(pool).await;
    let ana = test.user("ana", None, "user").await;
    let bob = test.user("bob", None, "user").await;
    let counter = RoundTripCounter::new(&test.pool).await;
    let app = App::new(
        counter.pool.clone(),
        Registry::embedded(),
        settings(&[]),
        None,
    )
    .unwrap();
    let submit = |token: &str| {
        http::Request::put("/tools/woop/submission")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header(
                "idempotency-key",
                format!("key-{}", &token[token.len() - 12..]),
            )
            .body(lambda_http::Body::Text(
                json!({"data": crate::complete_data("woop"), "status": "submitted"}).to_string(),
            ))
            .unwrap()
    };
    assert_eq!(app.handle(submit(&bob.token)).await.status(), 201);
    counter.reset();
    let response = app.handle(submit(&ana.token)).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["unlocked_tools"], json!(["know-thyself"]));
    // BEGIN, lock, write, COMMIT; behind a transaction pooler each statement is also prepared.
    let budget = if crate::behind_pooler() { 6 } else { 4 };
    assert!(counter.count() <= budget, "{} round trips", counter.count());
}

//! Handler tests from the API Gateway v2 events in `events/`: each is parsed by
//! lambda_http as Lambda would deliver it, and answered by the app scoped to the
//! function that owns the route.

use shared::app::App;
use shared::foundation::config::Secret;
use shared::http::events::{Placeholders, render, route_of};
use shared::http::routes::ROUTES;
use shared::registry::Registry;
use shared::sessions::launch::sign_launch;
use sqlx::PgPool;

use crate::{LAUNCH_SECRET, TestApp, WEBHOOK_SECRET, settings};

#[sqlx::test(migrations = false)]
async fn every_route_event_is_answered_by_its_function(pool: PgPool) {
    let test = TestApp::new(pool).await;
    // An admin, who may call every route (the audit log's among them), on
    // behalf of Bob, a participant; Carl asks for his own erasure.
    let ana = test.user("ana", None, "admin").await;
    let bob = test.user("bob", None, "user").await;
    let carl = test.user("carl", None, "user").await;
    // The save event updates a submission (`If-Match: *`), as the benchmark
    // and `render-event` invoke it for users who have one.
    test.submit_complete(&ana, "woop").await;
    test.submit_complete(&bob, "woop").await;
    // The tombstone the lift event lifts.
    let keys =
        shared::identity::tombstones::ErasureKeys::new(Secret::new(crate::ERASURE_HASH_KEY_SECRET));
    sqlx::query("insert into shared.tombstones (lms_hash, email_hash) values ($1, $2)")
        .bind(keys.lms_hash("64d0000000000000000000ff"))
        .bind(keys.email_hash("returning@example.test"))
        .execute(&test.pool)
        .await
        .unwrap();
    // The organization the staff-report events name.
    sqlx::query(
        "insert into shared.organizations (id, name, slug)
         values ('0e000000-0000-4000-8000-00000000e0e0', 'Event Org', 'event-org')",
    )
    .execute(&test.pool)
    .await
    .unwrap();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let (id, email, name) = (
        "64d000000000000000000001",
        "launch@example.test",
        "Launch Event",
    );
    let launch = serde_json::json!({
        "lms_user_id": id, "email": email, "name": name, "timestamp": now,
        "signature": sign_launch(&Secret::new(LAUNCH_SECRET), id, email, name, now, None),
    });
    let values = |caller: &crate::TestUser| Placeholders {
        token: Some(caller.token.clone()),
        user_id: Some(bob.id.to_string()),
        webhook_secret: Some(WEBHOOK_SECRET.to_owned()),
        launch_body: Some(launch.to_string()),
        refresh_token: None,
    };
    // Two sessions of Ana's (Bob's role changes and his erasure is requested,
    // which end his): one the logout event ends, one the refresh event renews.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut conn = test.pool.acquire().await.unwrap();
        let (token, _) = shared::sessions::refresh::start(
            &mut conn,
            ana.id,
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap();
        sessions.push(token);
    }
    let mut paths: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Bob's erasure is requested before it is cancelled.
    paths.sort_by_key(|path| (path.ends_with("cancel-erasure.json"), path.clone()));
    let mut answered = 0;
    for path in paths {
        let caller = match path.ends_with("request-own-erasure.json") {
            true => &carl,
            false => &ana,
        };
        let mut placeholders = values(caller);
        placeholders.refresh_token = Some(match path.ends_with("end-session.json") {
            true => sessions[0].clone(),
            false => sessions[1].clone(),
        });
        let text = render(&std::fs::read_to_string(&path).unwrap(), &placeholders);
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        if event["routeKey"].is_null() {
            continue; // the schedule's event
        }
        let route = route_of(&event).expect("an event for a known route");
        let app = App::new(
            test.app.context.pool.clone(),
            Registry::embedded(),
            settings(&[]),
            Some(route.function),
        )
        .unwrap();
        let request = lambda_http::request::from_str(&text).unwrap();
        let response = app.handle(request).await;
        let status = response.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{}: {status} {:?}",
            path.display(),
            response.body()
        );
        // API Gateway's request id is the id the answer and the logs carry.
        assert_eq!(
            response.headers()["x-request-id"],
            event["requestContext"]["requestId"].as_str().unwrap()
        );
        answered += 1;
    }
    assert_eq!(answered, ROUTES.len());
}

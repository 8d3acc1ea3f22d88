//! A request that runs out of time leaves nothing behind in the database: the
//! statement it was waiting on is cancelled and its transaction rolled back
//! before the 503 goes out.

use serde_json::json;
use sqlx::PgPool;

use crate::{TestApp, settings};

/// What the service's sessions (its runtime login, not this test's owner
/// role) are doing besides waiting for a request.
async fn busy_service_sessions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select concat_ws(' | ', state, wait_event_type, left(query, 60)) from pg_stat_activity
         where datname = current_database() and usename <> current_user and state <> 'idle'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_save_that_times_out_on_a_lock_holds_nothing_once_answered_and_the_next_save_succeeds(
    pool: PgPool,
) {
    let app =
        TestApp::with_settings(pool.clone(), settings(&[("REQUEST_TIMEOUT_MS", "300")])).await;
    let ana = app.user("ana", None, "user").await;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from shared.users where id = $1 for update")
        .bind(ana.id)
        .execute(&mut *holder)
        .await
        .unwrap();

    let timed_out = app
        .save(&ana, "woop", json!({"wish": "slow"}), "draft")
        .await;
    assert_eq!(
        (timed_out.status, timed_out.code()),
        (503, "service_unavailable"),
        "{:?}",
        timed_out.body
    );
    // The answer went out after the abandoned statement was cancelled and its
    // transaction rolled back: no session of the service waits or holds.
    assert_eq!(busy_service_sessions(&pool).await, Vec::<String>::new());

    holder.commit().await.unwrap();
    let next = app
        .save(&ana, "woop", json!({"wish": "next"}), "draft")
        .await;
    assert_eq!(next.status, 201, "{:?}", next.body);
    assert_eq!(next.body["submission"]["version"], 1);
    assert_eq!(next.body["submission"]["data"]["wish"], "next");
}

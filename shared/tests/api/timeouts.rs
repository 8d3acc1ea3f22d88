//! A request that runs out of time leaves nothing behind in the database: the
//! statement it was waiting on is cancelled and its transaction rolled back
//! before the 503 goes out.

use std::time::{Duration, Instant};

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

/// The service's statement, lock and idle-in-transaction timeout in the two
/// tests below: well below the request timeout (8 s by default).
const DATABASE_TIMEOUT: Duration = Duration::from_millis(400);

/// An app whose connections carry [`DATABASE_TIMEOUT`], and the request
/// timeout left at its default: PostgreSQL's timeouts end a wait first.
async fn app_with_database_timeout(pool: &PgPool) -> TestApp {
    TestApp::serving_from(pool.clone(), settings(&[]), None, |database| {
        database.statement_timeout = DATABASE_TIMEOUT;
    })
    .await
}

/// Every lock a session of the service (its runtime login, not this test's
/// owner role) holds in the test's database.
async fn service_locks(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select concat_ws(' | ', a.pid::text, a.state, l.locktype, l.mode, l.relation::regclass::text)
         from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where a.datname = current_database() and a.usename <> current_user",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn overwrite(app: &TestApp, user: &crate::TestUser, wish: &str) -> crate::TestResponse {
    app.put(
        "/tools/woop/submission",
        &user.token,
        &json!({"data": {"wish": wish}, "status": "draft"}),
        &[("if-match", "*")],
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn a_save_waiting_on_a_locked_submission_gives_up_at_the_lock_timeout_holds_nothing_and_the_next_save_succeeds_at_once(
    pool: PgPool,
) {
    if crate::behind_pooler() {
        return; // Behind a transaction pooler the timeouts are the role's, not ours.
    }
    let app = app_with_database_timeout(&pool).await;
    let ana = app.user("ana", None, "user").await;
    let first = app
        .save(&ana, "woop", json!({"wish": "first"}), "draft")
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);

    // Another connection holds the submission's row, as a stuck request
    // would.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from sprint_00_woop.submissions where user_id = $1 for update")
        .bind(ana.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let refused = overwrite(&app, &ana, "blocked").await;
    let waited = started.elapsed();
    assert_eq!(
        (refused.status, refused.code()),
        (503, "service_unavailable"),
        "{:?}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.body["error"]["message"],
        "The service is temporarily unavailable; retry shortly."
    );
    // PostgreSQL's lock_timeout ended the wait, not the 8 s request timeout.
    assert!(
        waited >= DATABASE_TIMEOUT && waited < Duration::from_secs(4),
        "answered after {waited:?}"
    );
    // The failed transaction was rolled back before the answer: no session of
    // the service holds or waits on anything, and nothing was written.
    assert_eq!(service_locks(&pool).await, Vec::<String>::new());
    assert_eq!(busy_service_sessions(&pool).await, Vec::<String>::new());
    let version: i32 =
        sqlx::query_scalar("select version from sprint_00_woop.submissions where user_id = $1")
            .bind(ana.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(version, 1);

    holder.rollback().await.unwrap();
    let started = Instant::now();
    let next = overwrite(&app, &ana, "next").await;
    let took = started.elapsed();
    assert_eq!(next.status, 200, "{:?}", next.body);
    assert_eq!(next.body["submission"]["version"], 2);
    assert_eq!(next.body["submission"]["data"]["wish"], "next");
    assert!(took < Duration::from_secs(2), "the next save took {took:?}");
}

/// A Lambda frozen in the middle of a transaction never sends its rollback:
/// PostgreSQL's idle_in_transaction_session_timeout ends the session, and
/// its locks with it, so the user's next save does not wait for them.
#[sqlx::test(migrations = false)]
async fn a_transaction_abandoned_mid_way_loses_its_locks_at_the_idle_timeout(pool: PgPool) {
    if crate::behind_pooler() {
        return; // Behind a transaction pooler the timeouts are the role's, not ours.
    }
    let app = app_with_database_timeout(&pool).await;
    let ana = app.user("ana", None, "user").await;
    assert_eq!(
        app.save(&ana, "woop", json!({"wish": "first"}), "draft")
            .await
            .status,
        201
    );

    // A connection of the service's own pool takes the submission's row in a
    // transaction, and then nothing more is ever sent on it.
    let mut frozen = app.app.context.pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *frozen)
        .await
        .unwrap();
    sqlx::raw_sql("begin").execute(&mut *frozen).await.unwrap();
    sqlx::query("select 1 from sprint_00_woop.submissions where user_id = $1 for update")
        .bind(ana.id)
        .execute(&mut *frozen)
        .await
        .unwrap();
    let held: i64 = sqlx::query_scalar("select count(*) from pg_locks where pid = $1")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(held > 0);
    let started = Instant::now();
    std::mem::forget(frozen);

    let gone = crate::eventually(async || {
        let left: i64 = sqlx::query_scalar(
            "select (select count(*) from pg_locks where pid = $1)
                  + (select count(*) from pg_stat_activity where pid = $1)",
        )
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
        (left == 0).then(|| started.elapsed())
    })
    .await
    .expect("the abandoned session and its locks are gone");
    assert!(gone < Duration::from_secs(5), "gone after {gone:?}");

    let started = Instant::now();
    let next = overwrite(&app, &ana, "next").await;
    assert_eq!(next.status, 200, "{:?}", next.body);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the next save took {:?}",
        started.elapsed()
    );
}

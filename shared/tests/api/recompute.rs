//! The scheduled unlock recompute.

use shared::registry::Registry;
use shared::unlocks::recompute;
use sqlx::PgPool;

use crate::{RoundTripCounter, TestApp};

#[sqlx::test(migrations = false)]
async fn recompute_creates_missing_rows_unlocks_what_it_should_and_is_idempotent(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    app.submit_complete(&ana, "know-thyself").await;
    // A tool "added to the registry" after the users were synced: no rows yet.
    sqlx::query("delete from shared.user_progress where tool_slug in ('dream', 'woop')")
        .execute(&app.pool)
        .await
        .unwrap();
    // An unlock missed by an earlier version of the service.
    app.relock(&ana, "energy").await;

    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 1)
        .await
        .unwrap();
    assert!(!report.skipped);
    assert_eq!(report.users, 2);
    assert_eq!(report.rows_created, 4);
    // woop starts unlocked for both; ana may open dream and energy again.
    assert_eq!(report.unlocked.get("woop"), Some(&2));
    assert_eq!(report.unlocked.get("dream"), Some(&1));
    assert_eq!(report.unlocked.get("energy"), Some(&1));
    assert_eq!(report.unlocked.len(), 3);
    assert_eq!(app.status_of(&ana, "dream").await, "unlocked");
    assert_eq!(app.status_of(&ben, "dream").await, "locked");
    // Completed tools stay completed; nothing is re-locked.
    assert_eq!(app.status_of(&ana, "know-thyself").await, "completed");

    let before = app.snapshot().await;
    let second = recompute::run(&app.app.context.pool, Registry::embedded(), 1)
        .await
        .unwrap();
    assert!(!second.changed_anything(), "{second:?}");
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn recompute_skips_when_another_run_holds_the_lock(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.relock(&ana, "woop").await;
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock(7377304608616639234)")
        .execute(&mut *holder)
        .await
        .unwrap();
    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(report.skipped);
    assert_eq!(app.status_of(&ana, "woop").await, "locked");
    holder.rollback().await.unwrap();
    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert_eq!(report.unlocked.get("woop"), Some(&1));
}

#[sqlx::test(migrations = false)]
async fn recompute_deletes_expired_idempotency_keys_and_launches(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let body = serde_json::json!({"data": {"wish": "w"}, "status": "draft"});
    app.put(
        "/tools/woop/submission",
        &ana.token,
        &body,
        &[("idempotency-key", "old")],
    )
    .await;
    app.put(
        "/tools/woop/submission",
        &ana.token,
        &body,
        &[("idempotency-key", "new"), ("if-match", "\"1\"")],
    )
    .await;
    sqlx::query("update shared.idempotency_keys set created_at = now() - interval '2 days' where key = 'old'")
        .execute(&app.pool)
        .await
        .unwrap();
    // Used launches: one past a day, one used 13 hours ago, which must stay
    // remembered (a launch is valid up to 12 hours either side of its time).
    sqlx::query(
        "insert into shared.session_launches (signature_sha256, lms_user_id, used_at) values
             (sha256('expired'), 'lms-ana', now() - interval '25 hours'),
             (sha256('kept'), 'lms-ana', now() - interval '13 hours')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert_eq!(report.expired_deleted, 2);
    let keys: Vec<String> = sqlx::query_scalar("select key::text from shared.idempotency_keys")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(keys, ["new"]);
    let launches: Vec<Vec<u8>> =
        sqlx::query_scalar("select signature_sha256 from shared.session_launches")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let kept: Vec<u8> = sqlx::query_scalar("select sha256('kept')")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(launches, [kept]);
}

#[sqlx::test(migrations = false)]
async fn recompute_leaves_a_tool_locked_when_a_completed_producer_lacks_a_required_output(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    app.submit_complete(&ana, "know-thyself").await;
    // know-thyself is completed, but one of the fields dream requires is gone
    // (an output added to the registry after ana submitted, say).
    sqlx::query(
        "delete from sprint_01_know_thyself.field_outputs where field_id = 'identity.personal_values'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.relock(&ana, "dream").await;
    app.relock(&ana, "energy").await;

    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert_eq!(app.status_of(&ana, "dream").await, "locked", "{report:?}");
    // energy needs only what is still there.
    assert_eq!(report.unlocked.get("energy"), Some(&1), "{report:?}");
    assert_eq!(report.unlocked.get("dream"), None, "{report:?}");
}

#[sqlx::test(migrations = false)]
async fn recompute_reaches_every_batch_including_a_last_partial_one(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let mut users = Vec::new();
    for name in ["ana", "ben", "cai", "dee", "eve"] {
        users.push(app.user(name, None, "user").await);
    }
    // Five users in batches of two (two full batches and one of one), then in
    // one batch that holds them exactly. Each time every user has a missed
    // unlock: whichever batch a user lands in, by id, the recompute must find it.
    for batch_size in [2, 5] {
        sqlx::query("update shared.user_progress set status = 'locked', unlocked_at = null where tool_slug = 'woop'")
            .execute(&app.pool)
            .await
            .unwrap();
        let report = recompute::run(&app.app.context.pool, Registry::embedded(), batch_size)
            .await
            .unwrap();
        assert_eq!(report.users, 5, "batches of {batch_size}: {report:?}");
        assert_eq!(report.unlocked.get("woop"), Some(&5), "{report:?}");
        for user in &users {
            assert_eq!(app.status_of(user, "woop").await, "unlocked");
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_full_sweep_with_nothing_to_do_reads_each_batch_three_times_and_writes_nothing(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.user("ben", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    let counter = RoundTripCounter::with_connections(&app.pool, 2).await;
    // The first run warms the connections and their statement caches.
    recompute::run_full(&counter.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    let before = app.snapshot().await;
    counter.reset();

    let report = recompute::run_full(&counter.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(!report.changed_anything(), "{report:?}");
    assert!(report.full && !report.registry_changed, "{report:?}");
    assert_eq!(report.users, 2);
    assert_eq!(app.snapshot().await, before);
    // The run's BEGIN and lock; the batch's BEGIN, user ids, marks, survey and
    // COMMIT; the cleanup and the run's COMMIT. The unlock statement would add
    // more, and so would marks to take off. The survey is unnamed, for a plan
    // made for its batch's bounds: it takes two (prepare, execute). Behind a
    // transaction pooler every statement is unnamed, so the lock, the user
    // ids, the marks and the cleanup take two each as well.
    assert_eq!(
        counter.count(),
        if crate::behind_pooler() { 14 } else { 10 }
    );
}

#[sqlx::test(migrations = false)]
async fn a_scheduled_run_with_nothing_changed_reads_the_marks_once_and_recomputes_nobody(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.user("ben", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    let counter = RoundTripCounter::with_connections(&app.pool, 2).await;
    // The first run finds no registry recorded: it sweeps everyone.
    let first = recompute::run(&counter.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(first.full && first.registry_changed, "{first:?}");
    assert_eq!(first.users, 2);
    assert_eq!(first.marks_cleared, 2, "both users' syncs marked them");
    // A scheduled run warms the connections' statement caches for the next.
    recompute::run(&counter.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    let before = app.snapshot().await;
    counter.reset();

    let report = recompute::run(&counter.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(!report.full && !report.registry_changed, "{report:?}");
    assert_eq!((report.users, report.marks_cleared), (0, 0), "{report:?}");
    assert_eq!(report.funnel_counts, None);
    assert_eq!(app.snapshot().await, before);
    // The run's BEGIN and lock; the batch's BEGIN, marks (none) and COMMIT;
    // the cleanup and the run's COMMIT. Behind a transaction pooler the lock,
    // the marks and the cleanup take two each.
    assert_eq!(counter.count(), if crate::behind_pooler() { 10 } else { 7 });
}

#[sqlx::test(migrations = false)]
async fn a_recompute_outlives_an_idle_in_transaction_timeout_shorter_than_the_run(pool: PgPool) {
    // Operators often cap idle transactions on the role or the database. Set
    // before the service opens any session on this database, so that every
    // one of them, direct or through the pooler, has it.
    sqlx::query(
        "do $$ begin
             execute format('alter database %I set idle_in_transaction_session_timeout = ''1s''', current_database());
         end $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.relock(&ana, "woop").await;
    // Ana's woop row is held until the batch that unlocks woop waits for it and
    // the run's own transaction has sat idle past the limit. (The limit is not
    // shorter, so that the test's other short idle moments, on a loaded
    // machine, stay well within it.)
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("set local idle_in_transaction_session_timeout = 0")
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::query(
        "select 1 from shared.user_progress where user_id = $1 and tool_slug = 'woop' for update",
    )
    .bind(ana.id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let holder_pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    let run = spawn_recompute(&app);
    // The batch's unlock (its text, cut at track_activity_query_size, begins
    // with the candidates; the survey that shares them never waits).
    crate::blocked_on_a_lock(&app.pool, "with tools as").await;
    let idle_past_the_limit = crate::eventually(async || {
        sqlx::query_scalar::<_, i32>(
            "select pid from pg_stat_activity
             where datname = current_database() and pid <> $1 and state = 'idle in transaction'
               and clock_timestamp() - state_change > interval '1500 milliseconds'",
        )
        .bind(holder_pid)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    })
    .await;
    assert!(
        idle_past_the_limit.is_some(),
        "the run's transaction never sat idle past 1 s"
    );
    holder.commit().await.unwrap();

    let report = run
        .await
        .unwrap()
        .expect("the run survives its idle transaction");
    assert_eq!(report.unlocked.get("woop"), Some(&1), "{report:?}");
    assert_eq!(app.status_of(&ana, "woop").await, "unlocked");
}

#[sqlx::test(migrations = false)]
async fn a_user_deleted_while_a_batch_runs_is_skipped_and_the_run_goes_on(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let bob = app.user("bob", None, "user").await;
    // Both lack a progress row, so the batch inserts the missing ones.
    sqlx::query("delete from shared.user_progress where tool_slug = 'program-overview'")
        .execute(&app.pool)
        .await
        .unwrap();
    // An operator deletes ana, and has not committed yet when the batch reads its users.
    let mut operator = app.pool.begin().await.unwrap();
    sqlx::query("delete from shared.users where id = $1")
        .bind(ana.id)
        .execute(&mut *operator)
        .await
        .unwrap();
    let run = spawn_recompute(&app);
    crate::blocked_on_a_lock(&app.pool, "insert into shared.user_progress").await;
    operator.commit().await.unwrap();
    let report = run.await.unwrap().expect("the run goes on without ana");
    assert_eq!(report.rows_created, 1, "{report:?}");
    assert_eq!(app.status_of(&bob, "program-overview").await, "locked");
}

/// A recompute pass over `app`'s database, running beside the test.
fn spawn_recompute(
    app: &TestApp,
) -> tokio::task::JoinHandle<Result<recompute::Report, sqlx::Error>> {
    let service = app.app.context.pool.clone();
    tokio::spawn(async move { recompute::run(&service, Registry::embedded(), 100).await })
}

/// A webhook payload (a LearnWorlds user's name, email, tags) is kept for the
/// retention period and then emptied by the recompute, which runs as the
/// runtime role; the delivery's record stays, and so does a younger payload.
#[sqlx::test(migrations = false)]
async fn the_recompute_empties_webhook_payloads_past_their_retention(pool: PgPool) {
    let app = TestApp::new(pool).await;
    for (body, age) in [("old", "40 days"), ("recent", "2 days")] {
        sqlx::query(
            "insert into shared.webhook_events (body_sha256, event_type, lms_user_id, outcome, payload, received_at)
             values (sha256($1::text::bytea), 'userUpdated', 'lms-1', 'synced', jsonb_build_object('email', 'ana@example.test'),
                     now() - $2::interval)",
        )
        .bind(body)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let report = recompute::run_with(
        &app.app.context.pool,
        Registry::embedded(),
        100,
        recompute::Housekeeping {
            webhook_payload_days: 30,
            audit_days: 730,
        },
        recompute::Scope::Changed,
    )
    .await
    .unwrap();
    assert_eq!(report.webhook_payloads_expired, 1);
    let kept: Vec<(String, bool)> = sqlx::query_as(
        "select event_type::text, payload is not null from shared.webhook_events order by received_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        kept,
        [
            ("userUpdated".to_owned(), false),
            ("userUpdated".to_owned(), true)
        ]
    );
}

/// The users marked as changed (migration 0021), with their marks.
async fn marks(app: &TestApp) -> Vec<(uuid::Uuid, i64)> {
    sqlx::query_as("select user_id, mark from shared.recompute_dirty order by user_id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn is_marked(app: &TestApp, user: &crate::TestUser) -> bool {
    marks(app).await.iter().any(|(id, _)| *id == user.id)
}

/// A full sweep, after which nobody is marked.
async fn swept(app: &TestApp) -> recompute::Report {
    let report = recompute::run_full(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(report.full, "{report:?}");
    assert_eq!(marks(app).await, [], "{report:?}");
    report
}

#[sqlx::test(migrations = false)]
async fn a_change_that_can_unlock_marks_its_user_in_its_own_transaction_and_others_do_not(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    // A new user's locked rows mark them.
    assert!(is_marked(&app, &ana).await && is_marked(&app, &ben).await);
    swept(&app).await;

    // A tool locked again marks, in the change's transaction: rolled back,
    // no mark is left; committed, it is there.
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query(
        "update shared.user_progress set status = 'locked' where user_id = $1 and tool_slug = 'woop'",
    )
    .bind(ana.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    let inside: i64 =
        sqlx::query_scalar("select count(*) from shared.recompute_dirty where user_id = $1")
            .bind(ana.id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(inside, 1);
    tx.rollback().await.unwrap();
    assert_eq!(marks(&app).await, []);

    // A draft (unlocked to in progress) and an unlock can give no unlock:
    // they do not mark.
    let saved = app
        .save(&ana, "woop", serde_json::json!({"wish": "w"}), "draft")
        .await;
    assert!((200..300).contains(&saved.status), "{:?}", saved.body);
    sqlx::query("update shared.user_progress set status = 'unlocked' where user_id = $1 and tool_slug = 'dream'")
        .bind(ben.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(marks(&app).await, []);

    // A submit completes a tool and adds its outputs: it marks.
    let submitted = app.submit_complete(&ana, "woop").await;
    assert!(
        (200..300).contains(&submitted.status),
        "{:?}",
        submitted.body
    );
    assert_eq!(marks(&app).await.len(), 1);
    assert!(is_marked(&app, &ana).await);

    // An output added to a completed tool (its progress row untouched)
    // marks the submission's user, through the tool schema's trigger.
    swept(&app).await;
    sqlx::query(
        "insert into sprint_00_woop.field_outputs (submission_id, field_id, field_value)
         select id, 'intro.woop.extra', '\"x\"' from sprint_00_woop.submissions where user_id = $1",
    )
    .bind(ana.id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert!(is_marked(&app, &ana).await);
    assert!(!is_marked(&app, &ben).await);
}

#[sqlx::test(migrations = false)]
async fn a_scheduled_run_recomputes_the_changed_users_only_and_a_full_sweep_repairs_everyone(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    app.submit_complete(&ben, "woop").await;
    swept(&app).await;
    // Ana's know-thyself locked again, as a change would (marked); ben's
    // lost behind the triggers' back (no mark), as only a registry change or
    // an operator's hand could.
    app.relock(&ana, "know-thyself").await;
    sqlx::query("alter table shared.user_progress disable trigger user_progress_mark_update")
        .execute(&app.pool)
        .await
        .unwrap();
    app.relock(&ben, "know-thyself").await;
    sqlx::query("alter table shared.user_progress enable trigger user_progress_mark_update")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(marks(&app).await.len(), 1);

    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(!report.full, "{report:?}");
    assert_eq!((report.users, report.marks_cleared), (1, 1), "{report:?}");
    assert_eq!(report.unlocked.get("know-thyself"), Some(&1), "{report:?}");
    assert_eq!(app.status_of(&ana, "know-thyself").await, "unlocked");
    assert_eq!(app.status_of(&ben, "know-thyself").await, "locked");
    assert_eq!(marks(&app).await, []);

    // Nothing changed since: the next scheduled run recomputes nobody.
    let idle = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert_eq!((idle.users, idle.full), (0, false), "{idle:?}");
    assert_eq!(app.status_of(&ben, "know-thyself").await, "locked");

    // A full sweep looks at everyone.
    let full = swept(&app).await;
    assert_eq!(full.users, 2, "{full:?}");
    assert_eq!(full.unlocked.get("know-thyself"), Some(&1), "{full:?}");
    assert_eq!(app.status_of(&ben, "know-thyself").await, "unlocked");
}

#[sqlx::test(migrations = false)]
async fn a_mark_renewed_while_a_batch_runs_stays_for_the_next_run(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    app.submit_complete(&ana, "know-thyself").await;
    swept(&app).await;
    app.relock(&ana, "dream").await;
    let [(_, read)] = marks(&app).await[..] else {
        panic!("ana is marked once")
    };

    // Ana's dream row is held, so the batch (which has read her mark) waits
    // in its unlock; meanwhile the holder locks her energy again, which
    // renews the mark, and commits.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query(
        "select 1 from shared.user_progress where user_id = $1 and tool_slug = 'dream' for update",
    )
    .bind(ana.id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let run = spawn_recompute(&app);
    crate::blocked_on_a_lock(&app.pool, "with tools as").await;
    sqlx::query(
        "update shared.user_progress set status = 'locked' where user_id = $1 and tool_slug = 'energy'",
    )
    .bind(ana.id)
    .execute(&mut *holder)
    .await
    .unwrap();
    holder.commit().await.unwrap();

    let report = run.await.unwrap().unwrap();
    assert!(!report.full, "{report:?}");
    assert_eq!(report.users, 1, "{report:?}");
    assert_eq!(report.unlocked.get("dream"), Some(&1), "{report:?}");
    // The batch's statements could not see energy locked again, and the mark
    // that says so is not the one the batch read: it stays.
    assert_eq!(report.marks_cleared, 0, "{report:?}");
    assert_eq!(app.status_of(&ana, "energy").await, "locked");
    let [(_, renewed)] = marks(&app).await[..] else {
        panic!("ana's mark stays")
    };
    assert!(renewed > read);

    let next = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert_eq!((next.users, next.marks_cleared), (1, 1), "{next:?}");
    assert_eq!(next.unlocked.get("energy"), Some(&1), "{next:?}");
    assert_eq!(app.status_of(&ana, "energy").await, "unlocked");
    assert_eq!(marks(&app).await, []);
}

#[sqlx::test(migrations = false)]
async fn a_registry_unlike_the_last_full_sweeps_makes_the_scheduled_run_sweep_everyone(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.user("ben", None, "user").await;
    swept(&app).await;
    let recorded: Option<String> =
        sqlx::query_scalar("select registry_fingerprint from shared.recompute_state")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        recorded.as_deref(),
        Some(recompute::registry_fingerprint(Registry::embedded()).as_str())
    );
    // As after a deploy that added a tool: rows are missing, nobody marked.
    sqlx::query("delete from shared.user_progress where tool_slug = 'program-overview'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("update shared.recompute_state set registry_fingerprint = 'an older registry'")
        .execute(&app.pool)
        .await
        .unwrap();

    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 1)
        .await
        .unwrap();
    assert!(report.full && report.registry_changed, "{report:?}");
    assert_eq!((report.users, report.rows_created), (2, 2), "{report:?}");
    assert_eq!(app.status_of(&ana, "program-overview").await, "locked");
    // The run's own rows need no mark, and it recorded the registry.
    assert_eq!(marks(&app).await, []);
    let next = recompute::run(&app.app.context.pool, Registry::embedded(), 1)
        .await
        .unwrap();
    assert!(!next.full && !next.registry_changed, "{next:?}");
}

#[sqlx::test(migrations = false)]
async fn a_scheduled_run_compacts_the_funnels_deltas_into_exact_counts(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.user("ben", None, "user").await;
    swept(&app).await;
    let deltas = async || -> i64 {
        sqlx::query_scalar("select count(*) from shared.funnel_counts where delta")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(deltas().await, 0);
    app.submit_complete(&ana, "woop").await;
    assert!(deltas().await > 0);

    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    assert!(!report.full, "{report:?}");
    assert!(report.funnel_deltas_compacted > 0, "{report:?}");
    assert_eq!(deltas().await, 0);
    // One row per (organization, tool, status), each the true count.
    let (rows, keys, wrong): (i64, i64, i64) = sqlx::query_as(
        "with kept as (
             select organization_id, tool_slug, status, sum(n) as n, count(*) as rows
             from shared.funnel_counts group by 1, 2, 3
         ), counted as (
             select u.organization_id, p.tool_slug, p.status, count(*) as n
             from shared.user_progress p join shared.users u on u.id = p.user_id
             group by 1, 2, 3
         )
         select (select sum(rows) from kept)::bigint, (select count(*) from kept),
                (select count(*) from kept k full join counted c
                   on k.organization_id is not distinct from c.organization_id
                  and k.tool_slug = c.tool_slug and k.status = c.status
                 where k.n is distinct from c.n)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, keys, "one row per key");
    assert_eq!(wrong, 0);
}

#[sqlx::test(migrations = false)]
async fn an_erased_persons_mark_goes_with_them(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    assert!(is_marked(&app, &ana).await);
    sqlx::query("delete from shared.users where id = $1")
        .bind(ana.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(!is_marked(&app, &ana).await);
    assert!(is_marked(&app, &ben).await);
}

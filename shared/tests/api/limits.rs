//! What one participant can make the service store and do: a bounded replay
//! record per Idempotency-Key, a bounded number of live keys, and a save budget
//! that refuses a flood with 429 while everyone else saves as usual.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{TestApp, complete_data, settings};

/// The bound docs/security.md gives for one user's Idempotency-Keys: at most
/// 100 live keys (`LIVE_IDEMPOTENCY_KEYS`), each row at most 2 KiB (the key,
/// its fingerprint and an answer without the data).
const KEY_BYTES_BOUND: i64 = 100 * 2048;

async fn key_rows_and_bytes(pool: &PgPool, user: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "select count(*), coalesce(sum(pg_column_size(k.*)), 0)::bigint
         from shared.idempotency_keys k where user_id = $1",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn saves_with_fresh_keys_keep_a_users_stored_keys_bounded_and_leave_others_alone(
    pool: PgPool,
) {
    // A budget too large to matter here: this is about what is stored.
    let app = TestApp::with_settings(
        pool.clone(),
        settings(&[
            ("SAVE_BURST", "100000"),
            ("SAVE_REFILL_PER_MINUTE", "1000000"),
        ]),
    )
    .await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    let bens = app
        .put(
            "/tools/woop/submission",
            &ben.token,
            &json!({"data": complete_data("woop"), "status": "submitted"}),
            &[("idempotency-key", "ben-1")],
        )
        .await;
    assert_eq!(bens.status, 201);

    // 64 KiB of text in every draft, each sent under a new key, over the
    // first save's submission (`If-Match: *`).
    let big = "x".repeat(64 * 1024);
    assert_eq!(
        app.save(&ana, "woop", json!({"wish": "first"}), "draft")
            .await
            .status,
        201
    );
    for i in 0..130 {
        let key = format!("flood-{i}");
        let saved = app
            .put(
                "/tools/woop/submission",
                &ana.token,
                &json!({"data": {"wish": big, "n": i}, "status": "draft"}),
                &[("idempotency-key", &key), ("if-match", "*")],
            )
            .await;
        assert!(matches!(saved.status, 200 | 201), "{:?}", saved.body);
    }
    let (rows, bytes) = key_rows_and_bytes(&pool, ana.id).await;
    assert!(rows <= 100, "{rows} live keys");
    assert!(bytes <= KEY_BYTES_BOUND, "{bytes} bytes in {rows} keys");

    // The newest keys still replay, with the data they were sent with.
    let last = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &json!({"data": {"wish": big, "n": 129}, "status": "draft"}),
            &[("idempotency-key", "flood-129"), ("if-match", "*")],
        )
        .await;
    assert_eq!(last.header("idempotent-replayed"), Some("true"));
    assert_eq!(last.body["submission"]["data"]["n"], 129);
    assert_eq!(
        last.body["submission"]["data"]["wish"].as_str(),
        Some(big.as_str())
    );

    // Ben's key is his, untouched, and still replays.
    assert_eq!(key_rows_and_bytes(&pool, ben.id).await.0, 1);
    let again = app
        .put(
            "/tools/woop/submission",
            &ben.token,
            &json!({"data": complete_data("woop"), "status": "submitted"}),
            &[("idempotency-key", "ben-1")],
        )
        .await;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (201, Some("true"))
    );
    assert_eq!(again.body, bens.body);
}

#[sqlx::test(migrations = false)]
async fn a_replayed_draft_answers_with_the_submitted_data_it_was_saved_beside(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    assert_eq!(app.submit_complete(&ana, "woop").await.status, 201);
    let draft = json!({"data": {"wish": "a second thought"}, "status": "draft"});
    let first = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &draft,
            &[("idempotency-key", "d-1"), ("if-match", "*")],
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body["submission"]["submitted_data"],
        complete_data("woop")
    );
    let retry = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &draft,
            &[("idempotency-key", "d-1"), ("if-match", "*")],
        )
        .await;
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);

    // A submit since: the first answer's submitted data is gone, so the retry
    // says so instead of answering with something else.
    let mut resubmitted = complete_data("woop");
    resubmitted["wish"] = json!("a new wish");
    assert_eq!(
        app.save(&ana, "woop", resubmitted, "submitted")
            .await
            .status,
        200
    );
    let late = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &draft,
            &[("idempotency-key", "d-1"), ("if-match", "*")],
        )
        .await;
    assert_eq!(
        (late.status, late.code()),
        (409, "idempotency_key_superseded"),
        "{:?}",
        late.body
    );
}

/// Sends drafts until one is refused; returns how many were accepted and the
/// refusal. The first creates the submission, the others go over it.
async fn drafts_until_refused(
    app: &TestApp,
    user: &crate::TestUser,
    body: &serde_json::Value,
) -> (usize, crate::TestResponse) {
    let mut headers: &[(&str, &str)] = &[];
    for accepted in 0..500 {
        let saved = app
            .put("/tools/woop/submission", &user.token, body, headers)
            .await;
        if saved.status == 429 {
            return (accepted, saved);
        }
        assert!(matches!(saved.status, 200 | 201), "{:?}", saved.body);
        headers = &[("if-match", "*")];
    }
    panic!("500 saves in a row were accepted");
}

#[sqlx::test(migrations = false)]
async fn saves_past_a_users_budget_are_429_with_retry_after_and_write_nothing(pool: PgPool) {
    let app = TestApp::with_settings(
        pool.clone(),
        settings(&[("SAVE_BURST", "20"), ("SAVE_REFILL_PER_MINUTE", "6")]),
    )
    .await;
    let ana = app.user("ana", None, "user").await;
    let ben = app.user("ben", None, "user").await;
    let small = json!({"data": {"wish": "tiny"}, "status": "draft"});
    let (accepted, refused) = drafts_until_refused(&app, &ana, &small).await;
    // The burst, and at most what refills meanwhile (6 a minute).
    assert!((20..=22).contains(&accepted), "{accepted} saves accepted");
    assert_eq!(refused.code(), "too_many_requests", "{:?}", refused.body);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=10).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(refused.body["error"]["details"]["retry_after"], retry_after);

    let before = app.snapshot().await;
    assert_eq!(
        app.put("/tools/woop/submission", &ana.token, &small, &[])
            .await
            .status,
        429
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused save writes nothing"
    );

    // Another participant saves as usual.
    assert_eq!(
        app.save(&ben, "woop", json!({"wish": "mine"}), "draft")
            .await
            .status,
        201
    );
}

#[sqlx::test(migrations = false)]
async fn a_large_body_costs_more_of_the_budget_than_a_small_one(pool: PgPool) {
    let app = TestApp::with_settings(
        pool.clone(),
        settings(&[("SAVE_BURST", "60"), ("SAVE_REFILL_PER_MINUTE", "1")]),
    )
    .await;
    let ana = app.user("ana", None, "user").await;
    // About 100 KiB: 1 + 100 KiB / 8 KiB = 13 tokens a save, 4 from 60.
    let large = json!({"data": {"wish": "y".repeat(100 * 1024)}, "status": "draft"});
    let (accepted, refused) = drafts_until_refused(&app, &ana, &large).await;
    assert_eq!(accepted, 4);
    assert_eq!(refused.status, 429);
}

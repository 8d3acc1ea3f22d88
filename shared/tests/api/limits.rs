//! What one participant can make the service store and do: a bounded replay
//! record per Idempotency-Key, a bounded number of live keys, and a save budget
//! that refuses a flood with 429 while everyone else saves as usual.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{TestApp, complete_data, settings};

/// The bound docs/security.md gives for what one user stores for one tool:
/// its data, its last submitted data and its outputs, each at most
/// `MAX_BODY_BYTES` (256 KiB) stored, plus the row headers; and at most 100
/// live Idempotency-Keys (`LIVE_IDEMPOTENCY_KEYS`), each row at most 2 KiB.
const TOOL_BYTES_BOUND: i64 = 3 * 256 * 1024 + 4096;
const KEY_BYTES_BOUND: i64 = 100 * 2048;

/// `len` characters of random text (6 random bits a character), which
/// neither jsonb nor TOAST's compression can make smaller: what is measured
/// is what is stored.
fn random_text(len: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        for byte in Uuid::new_v4().as_bytes() {
            text.push(ALPHABET[usize::from(*byte) % 64] as char);
        }
    }
    text.truncate(len);
    text
}

/// What `user` stores: (live keys, their bytes, the bytes of their woop
/// submission and its outputs), each row measured as PostgreSQL stores it
/// (`pg_column_size`, after any compression).
async fn stored_bytes(pool: &PgPool, user: Uuid) -> (i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from shared.idempotency_keys where user_id = $1),
                (select coalesce(sum(pg_column_size(k.*)), 0)::bigint
                 from shared.idempotency_keys k where user_id = $1),
                (select coalesce(sum(pg_column_size(s.*)), 0)::bigint
                 from sprint_00_woop.submissions s where user_id = $1)
              + (select coalesce(sum(pg_column_size(o.*)), 0)::bigint
                 from sprint_00_woop.field_outputs o
                 join sprint_00_woop.submissions s on s.id = o.submission_id
                 where s.user_id = $1)",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn saves_with_fresh_keys_keep_a_users_stored_bytes_under_the_documented_bound_and_leave_others_alone(
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
    let (_, _, ben_before) = stored_bytes(&pool, ben.id).await;

    // 120 saves of some 120 KiB of random text, each under a new key, drafts
    // and submits in turn (a submit stores the data three times: as data, as
    // submitted data, and in the `wish` output).
    let mut data = complete_data("woop");
    for i in 0..120 {
        data["wish"] = json!(random_text(120 * 1024));
        let key = format!("flood-{i}");
        let status = if i % 2 == 0 { "submitted" } else { "draft" };
        let mut headers = vec![("idempotency-key", key.as_str())];
        if i > 0 {
            headers.push(("if-match", "*"));
        }
        let saved = app
            .put(
                "/tools/woop/submission",
                &ana.token,
                &json!({"data": data, "status": status}),
                &headers,
            )
            .await;
        assert!(matches!(saved.status, 200 | 201), "{i}: {:?}", saved.body);
    }
    let (keys, key_bytes, tool_bytes) = stored_bytes(&pool, ana.id).await;
    assert!(keys <= 100, "{keys} live keys");
    assert!(
        key_bytes <= KEY_BYTES_BOUND,
        "{key_bytes} bytes in {keys} keys"
    );
    assert!(
        tool_bytes <= TOOL_BYTES_BOUND,
        "{tool_bytes} bytes in the submission and its outputs"
    );
    // Nothing was compressed away: the data, the submitted data and the
    // output are each stored at about their full size.
    assert!(tool_bytes > 2 * 120 * 1024, "{tool_bytes} bytes");

    // The newest key still replays, with the data it was sent with.
    let last = app
        .put(
            "/tools/woop/submission",
            &ana.token,
            &json!({"data": data, "status": "draft"}),
            &[("idempotency-key", "flood-119"), ("if-match", "*")],
        )
        .await;
    assert_eq!(last.header("idempotent-replayed"), Some("true"));
    assert_eq!(last.body["submission"]["data"], data);

    // Ben's key is his, untouched, and still replays; he saves as usual, and
    // stores what he stored before plus his own save.
    assert_eq!(stored_bytes(&pool, ben.id).await.0, 1);
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
    assert_eq!(stored_bytes(&pool, ben.id).await.2, ben_before);
    let bens_next = app
        .save(&ben, "woop", json!({"wish": "mine"}), "draft")
        .await;
    assert_eq!(bens_next.status, 200, "{:?}", bens_next.body);
}

/// jsonb can take several times the room of the JSON text it came from (an
/// array of zeros: 2 bytes an element sent, 12 stored). The service's
/// estimate of the stored size is never below PostgreSQL's, whatever the
/// shape.
#[sqlx::test(migrations = false)]
async fn the_stored_size_estimate_is_never_below_what_postgresql_stores(pool: PgPool) {
    use shared::submissions::request::stored_json_bytes;
    let zeros = vec![json!(0); 20_000];
    let numbers: Vec<serde_json::Value> = (0..5_000)
        .map(|i| json!(i * 7919 % 100_003 - 50_000))
        .collect();
    let floats: Vec<serde_json::Value> = (0..3_000)
        .map(|i| json!(f64::from(i) * 1.234_567_e-7))
        .collect();
    let keys: serde_json::Map<String, serde_json::Value> =
        (0..5_000).map(|i| (format!("k{i}"), json!(null))).collect();
    let samples = [
        json!({"zeros": zeros}),
        json!({"numbers": numbers, "floats": floats}),
        json!({"empty": vec![json!([]); 10_000], "objects": vec![json!({}); 10_000]}),
        json!({"keys": keys}),
        json!({"deep": [[[[[[[[{"a": [1, true, null, "x"]}]]]]]]]]}),
        json!({"text": "Zoë Ñúñez 李 \u{1F600}", "big": 1e300, "small": -1e-300, "max": u64::MAX, "min": i64::MIN}),
        json!({}),
        json!(12345.678),
        json!("a string"),
        json!([true, false, null]),
    ];
    for sample in samples {
        let stored: i32 = sqlx::query_scalar("select pg_column_size($1::jsonb)")
            .bind(&sample)
            .fetch_one(&pool)
            .await
            .unwrap();
        let estimate = stored_json_bytes(&sample);
        let text = sample.to_string();
        assert!(
            estimate >= stored as usize,
            "estimated {estimate} < stored {stored} for {}",
            &text[..text.len().min(80)]
        );
    }
}

/// A save whose data would take more than `MAX_BODY_BYTES` stored is refused,
/// however small its text: 422 `invalid_data`, nothing written. Random text
/// of almost the limit is accepted.
#[sqlx::test(migrations = false)]
async fn data_that_would_take_more_than_the_limit_stored_is_422_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    // 100,000 zeros: some 200 KB sent, 1.2 MB stored.
    let zeros = json!({"data": {"wish": "w", "grid": vec![0; 100_000]}, "status": "draft"});
    assert!(zeros.to_string().len() < 256 * 1024);
    let before = app.snapshot().await;
    let refused = app
        .put("/tools/woop/submission", &ana.token, &zeros, &[])
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "invalid_data"),
        "{:?}",
        refused.body
    );
    assert_eq!(app.snapshot().await, before);

    let text = json!({"data": {"wish": random_text(250 * 1024)}, "status": "draft"});
    let saved = app
        .put("/tools/woop/submission", &ana.token, &text, &[])
        .await;
    assert_eq!(saved.status, 201, "{:?}", saved.body["error"]);
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

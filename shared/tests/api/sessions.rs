//! `POST /sessions`: a signed launch from LearnWorlds becomes a bearer token.

use http::Method;
use serde_json::{Value, json};
use shared::foundation::config::Secret;
use shared::sessions::launch::sign_launch;
use sqlx::PgPool;

use crate::{LAUNCH_SECRET, TestApp, TestResponse};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn launch(lms_user_id: &str, email: &str, name: &str, timestamp: i64, secret: &str) -> Value {
    let signature = sign_launch(
        &Secret::new(secret),
        lms_user_id,
        email,
        name,
        timestamp,
        None,
    );
    json!({"lms_user_id": lms_user_id, "email": email, "name": name, "timestamp": timestamp, "signature": signature})
}

/// A launch of the demo participant at `timestamp` with `nonce`, signed.
fn launch_with_nonce(timestamp: i64, nonce: &str) -> Value {
    let (id, email, name) = ("64a0f0000000000000000007", "g@example.test", "G");
    let signature = sign_launch(
        &Secret::new(LAUNCH_SECRET),
        id,
        email,
        name,
        timestamp,
        Some(nonce),
    );
    json!({"lms_user_id": id, "email": email, "name": name, "timestamp": timestamp,
           "nonce": nonce, "signature": signature})
}

async fn post(app: &TestApp, body: &Value) -> TestResponse {
    app.request(
        Method::POST,
        "/sessions",
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn a_signed_launch_creates_the_user_and_returns_a_working_token(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = now();
    let response = post(
        &app,
        &launch(
            "64a0f0000000000000000001",
            "Ana@Example.test",
            "Ana Lopes",
            now(),
            LAUNCH_SECRET,
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["user"]["email"], "Ana@Example.test");
    assert_eq!(response.body["user"]["role"], "user");
    assert_eq!(
        response.body["progress"]["total"],
        app.registry().tools().len()
    );
    assert_eq!(response.body["progress"]["unlocked"], 1);
    assert_eq!(response.body["progress"]["current_tool"], "woop");
    let expires_at = response.body["expires_at"].as_i64().unwrap();
    assert!(
        (before + 900..=now() + 900).contains(&expires_at),
        "{expires_at}"
    );

    let token = response.body["token"].as_str().unwrap();
    let progress = app.get("/progress", token).await;
    assert_eq!(progress.status, 200);
    assert_eq!(progress.body["user_id"], response.body["user"]["id"]);
    let last_login: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "select last_login from shared.users where lms_user_id = '64a0f0000000000000000001'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(last_login.is_some());
}

#[sqlx::test(migrations = false)]
async fn a_launch_whose_answer_fails_is_not_used_up_and_its_retry_succeeds(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let id = "64a0f0000000000000000009";
    let first = launch(id, "retry@example.test", "Retry", now() - 1, LAUNCH_SECRET);
    assert_eq!(post(&app, &first).await.status, 200);
    // The answer's progress read fails after the launch was claimed and the
    // user synced: for a moment the service may read every progress column
    // but the completion time, which only the answer reads.
    for sql in [
        "revoke select on shared.user_progress from fasttrack_runtime",
        "grant select (id, user_id, tool_slug, status, progress_percentage, unlocked_at, started_at)
             on shared.user_progress to fasttrack_runtime",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    let second = launch(id, "retry@example.test", "Retry", now(), LAUNCH_SECRET);
    let failed = post(&app, &second).await;
    assert_eq!(failed.status, 500, "{:?}", failed.body);
    let used: i64 = sqlx::query_scalar("select count(*) from shared.session_launches")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(used, 1, "only the first launch is used up");
    sqlx::query("grant select on shared.user_progress to fasttrack_runtime")
        .execute(&app.pool)
        .await
        .unwrap();
    let retried = post(&app, &second).await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(
        retried.body["progress"]["total"],
        app.registry().tools().len()
    );
    assert_eq!(post(&app, &second).await.status, 401, "and then it is used");
}

#[sqlx::test(migrations = false)]
async fn the_token_lifetime_is_configurable(pool: PgPool) {
    let app = TestApp::with_settings(pool, crate::settings(&[("TOKEN_TTL_SECONDS", "600")])).await;
    let before = now();
    let response = post(
        &app,
        &launch(
            "64a0f0000000000000000002",
            "b@example.test",
            "B",
            now(),
            LAUNCH_SECRET,
        ),
    )
    .await;
    let expires_at = response.body["expires_at"].as_i64().unwrap();
    assert!(
        (before + 600..=now() + 600).contains(&expires_at),
        "{expires_at}"
    );
}

#[sqlx::test(migrations = false)]
async fn stale_forged_and_replayed_launches_get_401_and_write_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let id = "64a0f0000000000000000003";
    let mut tampered = launch(id, "c@example.test", "C", now(), LAUNCH_SECRET);
    tampered["email"] = json!("attacker@example.test");
    let cases = [
        (
            "stale",
            launch(id, "c@example.test", "C", now() - 330, LAUNCH_SECRET),
        ),
        (
            "from the future",
            launch(id, "c@example.test", "C", now() + 330, LAUNCH_SECRET),
        ),
        (
            "wrong secret",
            launch(id, "c@example.test", "C", now(), "some-other-launch-secret"),
        ),
        ("tampered", tampered),
    ];
    let before = app.snapshot().await;
    for (name, body) in cases {
        let response = post(&app, &body).await;
        assert_eq!(response.status, 401, "{name}: {:?}", response.body);
        assert_eq!(app.snapshot().await, before, "{name} wrote something");
    }

    let good = launch(id, "c@example.test", "C", now(), LAUNCH_SECRET);
    assert_eq!(post(&app, &good).await.status, 200);
    let after_first = app.snapshot().await;
    let replay = post(&app, &good).await;
    assert_eq!(replay.status, 401);
    assert!(
        replay.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(app.snapshot().await, after_first);
}

/// A double click, or the tool opened in a second tab: two launches of one
/// user signed in the same second. Each has its own nonce, so each opens a
/// session, and each is still good once only.
#[sqlx::test(migrations = false)]
async fn two_launches_signed_in_the_same_second_each_open_a_session_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = now();
    let (first, second) = (
        launch_with_nonce(at, "tab-1"),
        launch_with_nonce(at, "tab-2"),
    );
    let opened = [post(&app, &first).await, post(&app, &second).await];
    for response in &opened {
        assert_eq!(response.status, 200, "{:?}", response.body);
    }
    assert_eq!(opened[0].body["user"]["id"], opened[1].body["user"]["id"]);
    // A launch without a nonce (a sender that has none) in that second too.
    let plain = launch(
        "64a0f0000000000000000007",
        "g@example.test",
        "G",
        at,
        LAUNCH_SECRET,
    );
    assert_eq!(post(&app, &plain).await.status, 200);

    let after = app.snapshot().await;
    let mut nonce_moved = second.clone();
    nonce_moved["nonce"] = json!("tab-1");
    let mut nonce_dropped = first.clone();
    nonce_dropped.as_object_mut().unwrap().remove("nonce");
    let mut nonce_added = plain.clone();
    nonce_added["nonce"] = json!("tab-3");
    for (name, body, message) in [
        ("the first again", &first, "already used"),
        ("the second again", &second, "already used"),
        ("the plain one again", &plain, "already used"),
        (
            "another launch's nonce",
            &nonce_moved,
            "signature is invalid",
        ),
        ("its nonce dropped", &nonce_dropped, "signature is invalid"),
        ("a nonce added", &nonce_added, "signature is invalid"),
    ] {
        let response = post(&app, body).await;
        assert_eq!(response.status, 401, "{name}: {:?}", response.body);
        let said = response.body["error"]["message"].as_str().unwrap();
        assert!(said.contains(message), "{name}: {said}");
    }
    assert_eq!(app.snapshot().await, after);
}

#[sqlx::test(migrations = false)]
async fn launches_are_refused_when_no_launch_secret_is_configured(pool: PgPool) {
    let mut settings = crate::settings(&[]);
    settings.launch_secret = None;
    let app = TestApp::with_settings(pool, settings).await;
    let response = post(
        &app,
        &launch(
            "64a0f0000000000000000004",
            "d@example.test",
            "D",
            now(),
            LAUNCH_SECRET,
        ),
    )
    .await;
    assert_eq!(response.status, 401);
}

#[sqlx::test(migrations = false)]
async fn an_email_held_by_another_learnworlds_id_is_409_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.user("owner", None, "user").await; // owner@example.test
    let before = app.snapshot().await;
    let response = post(
        &app,
        &launch(
            "64a0f0000000000000000005",
            "OWNER@example.TEST",
            "Impostor",
            now(),
            LAUNCH_SECRET,
        ),
    )
    .await;
    assert_eq!(response.status, 409, "{:?}", response.body);
    assert_eq!(response.code(), "email_conflict");
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn a_launch_with_missing_or_extra_fields_is_422(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = app.snapshot().await;
    let mut extra = launch(
        "64a0f0000000000000000006",
        "e@example.test",
        "E",
        now(),
        LAUNCH_SECRET,
    );
    extra["role"] = json!("admin");
    let mut bad_nonces = Vec::new();
    for nonce in [json!("a\nb"), json!(""), json!("x".repeat(65)), json!(null)] {
        let mut body = launch_with_nonce(now(), "n");
        body["nonce"] = nonce;
        bad_nonces.push(body);
    }
    for body in [
        json!({"email": "e@example.test"}),
        extra,
        json!({"lms_user_id": 5}),
    ]
    .into_iter()
    .chain(bad_nonces)
    {
        let response = post(&app, &body).await;
        assert_eq!(response.status, 422, "{body}: {:?}", response.body);
    }
    assert_eq!(app.snapshot().await, before);
}

/// Only sync-user, which serves `POST /sessions`, holds the key that signs
/// tokens: every other function verifies them with the public key alone, and
/// cannot make one even when it is configured with the key.
#[sqlx::test(migrations = false)]
async fn only_the_function_that_creates_sessions_can_make_tokens(pool: PgPool) {
    use shared::app::App;
    use shared::http::routes::Function;
    use shared::registry::Registry;

    let sync_user = TestApp::serving(pool, crate::settings(&[]), Some(Function::SyncUser)).await;
    let response = post(
        &sync_user,
        &launch(
            "64a0f0000000000000000021",
            "k@example.test",
            "K",
            now(),
            LAUNCH_SECRET,
        ),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let token = response.body["token"].as_str().unwrap();

    let pool = || sync_user.app.context.pool.clone();
    for function in Function::ALL {
        // Given the signing key too, as `cargo lambda watch` gives every function.
        let app = App::new(
            pool(),
            Registry::embedded(),
            crate::settings(&[]),
            Some(function),
        )
        .unwrap();
        let made = app.issue_token(uuid::Uuid::new_v4());
        assert_eq!(made.is_ok(), function == Function::SyncUser, "{function:?}");
    }
    let public_only = || {
        shared::foundation::config::ApiSettings::from_source(&std::collections::HashMap::from([(
            "JWT_PUBLIC_KEYS",
            crate::JWT_PUBLIC_KEY,
        )]))
        .unwrap()
    };
    let get_progress = App::new(
        pool(),
        Registry::embedded(),
        public_only(),
        Some(Function::GetProgress),
    )
    .unwrap();
    let request = http::Request::get("/progress")
        .header("authorization", format!("Bearer {token}"))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let answer = get_progress.handle(request).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.body());
    // sync-user cannot start without it.
    let error = App::new(
        pool(),
        Registry::embedded(),
        public_only(),
        Some(Function::SyncUser),
    )
    .err()
    .unwrap();
    assert_eq!(
        error.to_string(),
        "configuration: JWT_SIGNING_KEY is not set"
    );
}

//! Sessions that outlast a long form: `POST /sessions/refresh` rotates the
//! refresh token a launch gave, `POST /sessions/logout` ends the session, and
//! reuse, lapses, role changes and erasure requests end it too.

use http::Method;
use serde_json::json;
use shared::foundation::config::Secret;
use shared::sessions::launch::sign_launch;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{LAUNCH_SECRET, TestApp, TestResponse, settings};

/// A session as a launch (or a refresh) answers it.
#[derive(Debug, Clone)]
struct Session {
    user_id: Uuid,
    token: String,
    refresh_token: String,
}

async fn launch(app: &TestApp, lms_user_id: &str) -> Session {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let nonce = Uuid::new_v4().to_string();
    let (email, name) = (format!("{lms_user_id}@example.test"), "Rita Refresh");
    let signature = sign_launch(
        &Secret::new(LAUNCH_SECRET),
        lms_user_id,
        &email,
        name,
        now,
        Some(&nonce),
    );
    let body = json!({"lms_user_id": lms_user_id, "email": email, "name": name,
                      "timestamp": now, "nonce": nonce, "signature": signature});
    let answer = app
        .request(
            Method::POST,
            "/sessions",
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    Session {
        user_id: answer.body["user"]["id"].as_str().unwrap().parse().unwrap(),
        token: answer.body["token"].as_str().unwrap().to_owned(),
        refresh_token: answer.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn send(app: &TestApp, path: &str, body: &[u8]) -> TestResponse {
    app.request(
        Method::POST,
        path,
        &[("content-type", "application/json")],
        Some(body),
    )
    .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> TestResponse {
    let body = json!({ "refresh_token": refresh_token }).to_string();
    send(app, "/sessions/refresh", body.as_bytes()).await
}

async fn logout(app: &TestApp, refresh_token: &str) -> TestResponse {
    let body = json!({ "refresh_token": refresh_token }).to_string();
    send(app, "/sessions/logout", body.as_bytes()).await
}

/// The session a successful refresh answered.
fn refreshed(user_id: Uuid, answer: &TestResponse) -> Session {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    Session {
        user_id,
        token: answer.body["token"].as_str().unwrap().to_owned(),
        refresh_token: answer.body["refresh_token"].as_str().unwrap().to_owned(),
    }
}

fn assert_refused(answer: &TestResponse, says: &str) {
    assert_eq!(answer.status, 401, "{:?}", answer.body);
    assert_eq!(answer.code(), "invalid_refresh_token");
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message}");
    assert!(answer.header("www-authenticate").is_some());
}

/// Why the user's sessions were revoked, oldest first (`None`: live).
async fn revocations(app: &TestApp, user_id: Uuid) -> Vec<Option<String>> {
    sqlx::query_scalar(
        "select revoked_reason::text from shared.refresh_families where user_id = $1 order by created_at",
    )
    .bind(user_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_launch_gives_a_refresh_token_whose_refresh_answers_a_working_token_and_the_next_refresh_token(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let before = jsonwebtoken::get_current_timestamp() as i64;
    let session = launch(&app, "64f0a0000000000000000001").await;
    assert_eq!(session.refresh_token.len(), 43);
    // Only the token's SHA-256 is stored.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select token_sha256 from shared.refresh_tokens")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    use sha2::Digest;
    assert_eq!(
        stored,
        [sha2::Sha256::digest(session.refresh_token.as_bytes()).to_vec()]
    );

    let answer = refresh(&app, &session.refresh_token).await;
    let next = refreshed(session.user_id, &answer);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_ne!(next.refresh_token, session.refresh_token);
    let expires_at = answer.body["expires_at"].as_i64().unwrap();
    assert!(
        (before + 900..=before + 960).contains(&expires_at),
        "{expires_at}"
    );
    // The session's absolute end stays where the launch put it (30 days).
    let ends = answer.body["refresh_token_expires_at"].as_i64().unwrap();
    assert!(
        (before + 30 * 86400..=before + 30 * 86400 + 60).contains(&ends),
        "{ends}"
    );
    let progress = app.get("/progress", &next.token).await;
    assert_eq!(progress.status, 200, "{:?}", progress.body);
    assert_eq!(progress.body["user_id"], session.user_id.to_string());
    // And the next refresh works in turn.
    let third = refreshed(session.user_id, &refresh(&app, &next.refresh_token).await);
    assert_eq!(app.get("/me", &third.token).await.status, 200);
    assert_eq!(revocations(&app, session.user_id).await, [None]);
}

#[sqlx::test(migrations = false)]
async fn a_used_refresh_token_used_again_is_refused_and_ends_the_whole_session(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a0000000000000000002").await;
    let other = launch(&app, "64f0a0000000000000000003").await;
    let next = refreshed(
        session.user_id,
        &refresh(&app, &session.refresh_token).await,
    );
    // The first token again: someone else holds a copy of it.
    assert_refused(&refresh(&app, &session.refresh_token).await, "already used");
    // The newer token, which the replay did not know, is refused as well.
    assert_refused(&refresh(&app, &next.refresh_token).await, "ended");
    assert_eq!(
        revocations(&app, session.user_id).await,
        [Some("reuse".to_owned())]
    );
    // Another person's session is untouched; a new launch starts a new one.
    refreshed(other.user_id, &refresh(&app, &other.refresh_token).await);
    let again = launch(&app, "64f0a0000000000000000002").await;
    refreshed(again.user_id, &refresh(&app, &again.refresh_token).await);
}

#[sqlx::test(migrations = false)]
async fn two_refreshes_racing_with_one_token_are_served_one_after_the_other_and_only_one_succeeds(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a0000000000000000004").await;
    let (a, b) = tokio::join!(
        refresh(&app, &session.refresh_token),
        refresh(&app, &session.refresh_token)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{:?} {:?}", a.body, b.body);
    assert_eq!(
        revocations(&app, session.user_id).await,
        [Some("reuse".to_owned())]
    );
}

#[sqlx::test(migrations = false)]
async fn a_session_past_its_absolute_or_idle_lifetime_is_refused(pool: PgPool) {
    let app = TestApp::with_settings(
        pool,
        settings(&[
            ("REFRESH_TOKEN_TTL_SECONDS", "86400"),
            ("REFRESH_TOKEN_IDLE_SECONDS", "3600"),
        ]),
    )
    .await;
    let old = launch(&app, "64f0a0000000000000000005").await;
    let idle = launch(&app, "64f0a0000000000000000006").await;
    let fresh = launch(&app, "64f0a0000000000000000007").await;
    let ends: i64 = sqlx::query_scalar(
        "select extract(epoch from expires_at - created_at)::bigint from shared.refresh_families where user_id = $1",
    )
    .bind(old.user_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ends, 86400, "REFRESH_TOKEN_TTL_SECONDS sets the end");
    // Time passes: the first session reached its end though it was used
    // recently; the second was last used over an hour ago.
    sqlx::query(
        "update shared.refresh_families set expires_at = now() - interval '1 second'
         where user_id = $1",
    )
    .bind(old.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "update shared.refresh_families set last_used_at = now() - interval '3601 seconds'
         where user_id = $1",
    )
    .bind(idle.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_refused(&refresh(&app, &old.refresh_token).await, "longest lifetime");
    assert_refused(&refresh(&app, &idle.refresh_token).await, "unused too long");
    assert_eq!(
        revocations(&app, old.user_id).await,
        [Some("expired".to_owned())]
    );
    assert_eq!(
        revocations(&app, idle.user_id).await,
        [Some("idle".to_owned())]
    );
    // Used within the hour, a session lives on.
    sqlx::query(
        "update shared.refresh_families set last_used_at = now() - interval '3500 seconds'
         where user_id = $1",
    )
    .bind(fresh.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    refreshed(fresh.user_id, &refresh(&app, &fresh.refresh_token).await);
}

#[sqlx::test(migrations = false)]
async fn a_logout_ends_the_session_and_tells_nothing_about_a_token(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a0000000000000000008").await;
    let second_tab = launch(&app, "64f0a0000000000000000008").await;
    let next = refreshed(
        session.user_id,
        &refresh(&app, &session.refresh_token).await,
    );
    let out = logout(&app, &next.refresh_token).await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    assert_refused(&refresh(&app, &next.refresh_token).await, "ended");
    // Only that session: the one another launch began lives on.
    refreshed(
        second_tab.user_id,
        &refresh(&app, &second_tab.refresh_token).await,
    );
    assert_eq!(
        revocations(&app, session.user_id).await,
        [Some("logout".to_owned()), None]
    );
    // Again, or with a token nobody was given: the same 204.
    assert_eq!(logout(&app, &next.refresh_token).await.status, 204);
    assert_eq!(logout(&app, &"A".repeat(43)).await.status, 204);
}

#[sqlx::test(migrations = false)]
async fn a_role_or_organization_change_ends_the_persons_sessions(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.user("ada", None, "admin").await;
    let promoted = launch(&app, "64f0a0000000000000000009").await;
    let moved = launch(&app, "64f0a000000000000000000a").await;
    let bystander = launch(&app, "64f0a000000000000000000b").await;
    let auth = format!("Bearer {}", admin.token);
    let changed = app
        .request(
            Method::PATCH,
            &format!("/users/{}", promoted.user_id),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("if-match", "*"),
                ("idempotency-key", "promote-rita"),
            ],
            Some(
                json!({"role": "guru", "reason": "Coaches the spring cohort"})
                    .to_string()
                    .as_bytes(),
            ),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_refused(&refresh(&app, &promoted.refresh_token).await, "ended");
    assert_eq!(
        revocations(&app, promoted.user_id).await,
        [Some("role_changed".to_owned())]
    );
    // A LearnWorlds tag sync moving someone to an organization (as the
    // runtime role writes it).
    let org: Uuid = sqlx::query_scalar(
        "insert into shared.organizations (name, slug) values ('Refresh Co', 'refresh-co') returning id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let runtime = PgPool::connect_with(crate::runtime_role::runtime_options(&app.pool))
        .await
        .unwrap();
    sqlx::query("update shared.users set organization_id = $1 where id = $2")
        .bind(org)
        .bind(moved.user_id)
        .execute(&runtime)
        .await
        .unwrap();
    assert_refused(&refresh(&app, &moved.refresh_token).await, "ended");
    refreshed(
        bystander.user_id,
        &refresh(&app, &bystander.refresh_token).await,
    );
}

#[sqlx::test(migrations = false)]
async fn a_session_begun_before_a_change_the_trigger_did_not_see_is_refused_by_its_version(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a000000000000000000c").await;
    // The change committed while the launch's transaction was still open: the
    // family was not there to revoke, and holds the version it read.
    sqlx::query(
        "update shared.refresh_families set user_version = user_version - 1 where user_id = $1",
    )
    .bind(session.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_refused(
        &refresh(&app, &session.refresh_token).await,
        "role or organization changed",
    );
}

#[sqlx::test(migrations = false)]
async fn an_erasure_request_ends_the_persons_sessions_through_the_cool_off(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a000000000000000000d").await;
    let auth = format!("Bearer {}", session.token);
    let requested = app
        .request(
            Method::POST,
            "/me/erasure",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(b"{}"),
        )
        .await;
    assert_eq!(requested.status, 202, "{:?}", requested.body);
    assert_refused(&refresh(&app, &session.refresh_token).await, "ended");
    assert_eq!(
        revocations(&app, session.user_id).await,
        [Some("account_closed".to_owned())]
    );
    // A family the trigger did not see (begun beside the request) is refused
    // by the closed account itself.
    sqlx::query(
        "update shared.refresh_families set revoked_at = null, revoked_reason = null where user_id = $1",
    )
    .bind(session.user_id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_refused(&refresh(&app, &session.refresh_token).await, "closed");
}

#[sqlx::test(migrations = false)]
async fn bad_refresh_and_logout_bodies_are_clear_4xx_and_change_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let session = launch(&app, "64f0a000000000000000000e").await;
    let before: Vec<(Vec<u8>, Option<String>)> =
        sqlx::query_as("select token_sha256, used_at::text from shared.refresh_tokens order by 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for path in ["/sessions/refresh", "/sessions/logout"] {
        let as_list = format!("[\"{}\"]", session.refresh_token);
        let cases: [(&[u8], u16, &str); 9] = [
            (b"{", 400, "malformed_json"),
            (b"{}", 422, "invalid_body"),
            (b"[]", 422, "invalid_body"),
            (as_list.as_bytes(), 422, "invalid_body"),
            (b"{\"refresh_token\": null}", 422, "invalid_body"),
            (b"{\"refresh_token\": 7}", 422, "invalid_body"),
            (b"{\"refresh_token\": \"short\"}", 422, "invalid_body"),
            (
                b"{\"refresh_token\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}",
                422,
                "invalid_body",
            ),
            (b"{\"token\": \"x\"}", 422, "invalid_body"),
        ];
        for (body, status, code) in cases {
            let answer = send(&app, path, body).await;
            assert_eq!(
                (answer.status, answer.code()),
                (status, code),
                "{path} {}",
                String::from_utf8_lossy(body)
            );
        }
        let with_unknown = json!({"refresh_token": session.refresh_token, "extra": true});
        let answer = send(&app, path, with_unknown.to_string().as_bytes()).await;
        assert_eq!(answer.status, 422, "{:?}", answer.body);
        let text = app
            .request(
                Method::POST,
                path,
                &[("content-type", "text/plain")],
                Some(b"x"),
            )
            .await;
        assert_eq!(text.status, 415);
        let query = format!("{path}?x=1");
        let body = json!({ "refresh_token": session.refresh_token }).to_string();
        assert_eq!(send(&app, &query, body.as_bytes()).await.status, 400);
    }
    // A well-formed token nobody was given: 401.
    assert_refused(&refresh(&app, &"A".repeat(43)).await, "invalid");
    let after: Vec<(Vec<u8>, Option<String>)> =
        sqlx::query_as("select token_sha256, used_at::text from shared.refresh_tokens order by 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert_eq!(revocations(&app, session.user_id).await, [None]);
    // The session is still good.
    refreshed(
        session.user_id,
        &refresh(&app, &session.refresh_token).await,
    );
}

#[sqlx::test(migrations = false)]
async fn the_recompute_deletes_sessions_past_their_end_or_revoked_over_a_day_ago(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ended = launch(&app, "64f0a000000000000000000f").await;
    let logged_out = launch(&app, "64f0a0000000000000000010").await;
    let live = launch(&app, "64f0a0000000000000000011").await;
    sqlx::query("update shared.refresh_families set expires_at = now() - interval '1 minute' where user_id = $1")
        .bind(ended.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(logout(&app, &logged_out.refresh_token).await.status, 204);
    sqlx::query("update shared.refresh_families set revoked_at = now() - interval '25 hours' where user_id = $1")
        .bind(logged_out.user_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let report = shared::unlocks::recompute::run(
        &app.app.context.pool,
        shared::registry::Registry::embedded(),
        1,
    )
    .await
    .unwrap();
    assert!(report.expired_deleted >= 2, "{}", report.expired_deleted);
    let left: Vec<Uuid> = sqlx::query_scalar("select user_id from shared.refresh_families")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, [live.user_id]);
    let tokens: i64 = sqlx::query_scalar("select count(*) from shared.refresh_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 1, "a session's tokens go with it");
}

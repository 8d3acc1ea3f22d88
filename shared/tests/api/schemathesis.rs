//! Regressions from Schemathesis runs against openapi.yaml (scripts/schemathesis.sh):
//! each request here once got an answer the spec did not allow.

use http::Method;
use serde_json::json;
use shared::foundation::config::Secret;
use shared::sessions::launch::sign_launch;
use sqlx::PgPool;

use crate::{LAUNCH_SECRET, TestApp, WEBHOOK_SECRET};

async fn webhook(app: &TestApp, body: &str) -> crate::TestResponse {
    let signature = format!("v1={WEBHOOK_SECRET}");
    app.request(
        Method::POST,
        "/webhooks/learnworlds",
        &[
            ("content-type", "application/json"),
            ("learnworlds-webhook-signature", &signature),
        ],
        Some(body.as_bytes()),
    )
    .await
}

#[sqlx::test(migrations = false)]
async fn a_launch_timestamp_written_as_an_integral_float_is_an_integer(pool: PgPool) {
    // JSON Schema's integer includes 1700000000.0; it was a 422.
    let app = TestApp::new(pool).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (id, email, name) = ("64a0f0000000000000000009", "flo@example.test", "Flo");
    let signature = sign_launch(&Secret::new(LAUNCH_SECRET), id, email, name, now, None);
    let body = format!(
        r#"{{"lms_user_id": "{id}", "email": "{email}", "name": "{name}", "timestamp": {now}.0, "signature": "{signature}"}}"#
    );
    let response = app
        .request(
            Method::POST,
            "/sessions",
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    // Past i64, or with a fraction, it is not a timestamp at all.
    for timestamp in ["2277762602312197622585224069120", "1700000000.5"] {
        let body = format!(
            r#"{{"lms_user_id": "{id}", "email": "{email}", "name": "{name}", "timestamp": {timestamp}, "signature": "{signature}"}}"#
        );
        let response = app
            .request(
                Method::POST,
                "/sessions",
                &[("content-type", "application/json")],
                Some(body.as_bytes()),
            )
            .await;
        assert_eq!(response.status, 422, "{timestamp}: {:?}", response.body);
    }
}

#[sqlx::test(migrations = false)]
async fn a_webhook_envelope_field_of_the_wrong_type_is_422_and_records_nothing(pool: PgPool) {
    // `"type": {}` was recorded as an ignored event with a 200.
    let app = TestApp::new(pool).await;
    let before = app.snapshot().await;
    for body in [
        r#"{"version": 0, "type": {}, "trigger": "user_updated", "school_id": "", "data": {}}"#,
        r#"{"type": "leadCreated", "trigger": 5}"#,
        r#"{"type": "leadCreated", "school_id": []}"#,
        r#"{"type": "leadCreated", "version": "2"}"#,
        r#"{"type": "leadCreated", "version": 2.5}"#,
        r#"{"type": "leadCreated", "data": "x"}"#,
        r#"{"type": "userUpdated", "data": {"user": {"id": "64a0f0000000000000000001", "email": "a@b.test", "first_name": 7}}}"#,
        r#"{"type": "userUpdated", "data": {"user": {"id": true, "email": "a@b.test"}}}"#,
        r#"{"type": "userUpdated", "data": {"user": {"id": "64a0f0000000000000000001", "email": " a@b.test"}}}"#,
        r#"{"type": "userUpdated", "data": {"user": {"id": "64a0 0001", "email": "a@b.test"}}}"#,
        r#"{"type": "userUpdated", "data": {"user": {"id": "x", "email": "a\u3000@b.test"}}}"#,
    ] {
        let response = webhook(&app, body).await;
        assert_eq!(response.status, 422, "{body}: {:?}", response.body);
    }
    assert_eq!(app.snapshot().await, before);
    // Absent and null known fields are still fine, and so is a numeric id.
    let response = webhook(
        &app,
        r#"{"version": null, "type": "userUpdated", "trigger": null, "data": {"user": {"id": 7, "email": "seven@example.test", "last_name": null}}}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["outcome"], "synced");
}

#[sqlx::test(migrations = false)]
async fn a_long_webhook_name_is_cut_to_the_column_not_refused(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let long = "N".repeat(200);
    let body = json!({"type": "userUpdated", "data": {"user": {
        "id": "64a0f0000000000000000003", "email": "long@example.test",
        "first_name": long, "last_name": long,
    }}});
    let response = webhook(&app, &body.to_string()).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let name: String = sqlx::query_scalar(
        "select full_name::text from shared.users where lms_user_id = '64a0f0000000000000000003'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(name.chars().count(), 255);
}

#[sqlx::test(migrations = false)]
async fn if_match_outside_the_specs_pattern_is_400_and_writes_nothing(pool: PgPool) {
    // An empty If-Match matched the spec's plain string but was a 400.
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let before = app.snapshot().await;
    for value in ["", "\"\"", "\"3", "03", "\"+3\"", "1234567890", "W/\"1\""] {
        let response = app
            .put(
                "/tools/woop/submission",
                &ana.token,
                &json!({"data": {}, "status": "draft"}),
                &[("if-match", value)],
            )
            .await;
        assert_eq!(
            response.status, 400,
            "If-Match {value:?}: {:?}",
            response.body
        );
    }
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn a_query_parameter_echoed_in_an_error_message_is_escaped(pool: PgPool) {
    // `?%00x=1` was echoed with its U+0000, which Error.message's schema
    // (like every string of the spec) does not admit.
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    for path in ["/progress?%00x=1", "/tools/woop/submission?a%01%00=1"] {
        let response = app.get(path, &ana.token).await;
        assert_eq!(response.status, 400, "{path}: {:?}", response.body);
        assert_eq!(response.body["error"]["code"], "unknown_parameter");
        let message = response.body["error"]["message"].as_str().unwrap();
        assert!(!message.contains(char::is_control), "{message:?}");
        assert!(message.contains(r"\0"), "{message:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_tombstone_lift_counts_characters_and_rusts_whitespace_as_the_spec_does(pool: PgPool) {
    // 255 characters of two bytes each were a 422 ("at most 255 bytes"),
    // though LiftTombstone's maxLength (and the users' columns) count characters.
    let app = TestApp::new(pool).await;
    let admin = app.user("adm", None, "admin").await;
    let lift = |id: String| json!({"lms_user_id": id, "reason": "rejoined"});
    for (id, status) in [
        ("é".repeat(255), 404),
        ("é".repeat(256), 422),
        // Blank to Rust's trim() and to the spec's pattern alike.
        ("\u{85}\u{3000}".to_owned(), 422),
        // Not whitespace to either (though it is to ECMAScript's \s).
        ("\u{feff}".to_owned(), 404),
    ] {
        let auth = format!("Bearer {}", admin.token);
        let body = lift(id.clone()).to_string();
        let response = app
            .request(
                Method::POST,
                "/tombstones/lift",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                Some(body.as_bytes()),
            )
            .await;
        assert_eq!(response.status, status, "{id:?}: {:?}", response.body);
    }
}

#[sqlx::test(migrations = false)]
async fn an_if_none_match_that_matches_nothing_is_answered_in_full_whatever_it_holds(pool: PgPool) {
    // An empty If-None-Match was a 200 the spec's minLength called invalid:
    // an empty list matches nothing (RFC 9110, 5.6.1 and 13.1.2).
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let auth = format!("Bearer {}", ana.token);
    let long = format!("\"{}\"", "x".repeat(2000));
    for value in ["", " ", "\"nope\"", long.as_str()] {
        for path in ["/tools", "/tools/woop"] {
            let response = app
                .request(
                    Method::GET,
                    path,
                    &[("authorization", &auth), ("if-none-match", value)],
                    None,
                )
                .await;
            assert_eq!(response.status, 200, "{path} If-None-Match {value:?}");
        }
    }
}

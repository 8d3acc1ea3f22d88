//! Names and emails cannot disguise one participant as another: invisible
//! formatting characters (bidirectional overrides, zero-width characters) are
//! dropped from names as they are synced, and refused in ids and emails.

use shared::identity::users::{LmsUser, Membership, sync};
use sqlx::PgPool;

use crate::TestApp;

fn participant(name: &str, email: &str) -> LmsUser {
    LmsUser {
        lms_user_id: "64a0f00000000000000000aa".into(),
        email: email.into(),
        full_name: name.into(),
        organization: Membership::Unchanged,
    }
}

#[sqlx::test(migrations = false)]
async fn a_synced_name_loses_its_invisible_formatting_and_an_email_with_any_is_refused(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    let mut conn = pool.acquire().await.unwrap();
    // Shown in a roster, this reads "Ana Lopes" beside a real Ana Lopes, or
    // reverses what follows it.
    let synced = sync(
        &mut conn,
        app.registry(),
        &participant("Ana\u{200B} Lopes\u{202E}", "ana@example.test"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(synced.full_name, "Ana Lopes");
    let stored: String =
        sqlx::query_scalar("select full_name::text from shared.users where id = $1")
            .bind(synced.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, "Ana Lopes");

    for email in ["ana\u{200D}@example.test", "ana@exa\u{202E}mple.test"] {
        let refused = sync(&mut conn, app.registry(), &participant("Ana", email), false)
            .await
            .unwrap_err();
        assert_eq!(
            (refused.status().as_u16(), refused.code()),
            (422, "invalid_user"),
            "{email:?}"
        );
    }
}

/// An id longer than its column is refused before the delivery is recorded:
/// the record holds the id too (a 500 from the database otherwise).
#[sqlx::test(migrations = false)]
async fn a_webhook_whose_user_id_is_too_long_is_422_and_records_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = app.snapshot().await;
    let payload = serde_json::json!({
        "type": "userTagAdded",
        "data": {"id": "a".repeat(256), "email": "ana@example.test", "tags": ["org:acme"]}
    });
    let signature = format!("v1={}", crate::WEBHOOK_SECRET);
    let response = app
        .request(
            http::Method::POST,
            "/webhooks/learnworlds",
            &[
                ("content-type", "application/json"),
                ("learnworlds-webhook-signature", &signature),
            ],
            Some(payload.to_string().as_bytes()),
        )
        .await;
    assert_eq!(
        (response.status, response.code()),
        (422, "invalid_user"),
        "{:?}",
        response.body
    );
    assert_eq!(app.snapshot().await, before);
}

//! Names and emails cannot disguise one participant as another: invisible
//! formatting characters (bidirectional overrides, zero-width characters) are
//! dropped from names as they are synced, and refused in ids and emails.

use serde_json::{Value, json};
use shared::identity::users::{LmsUser, Membership, sync};
use sqlx::PgPool;
use uuid::Uuid;

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

/// Whether `text` holds a character that would disguise a name in a view.
fn disguised(text: &str) -> bool {
    text.chars()
        .any(shared::identity::users::is_invisible_format)
}

async fn send(
    app: &TestApp,
    method: http::Method,
    path: &str,
    token: &str,
    body: &Value,
) -> crate::TestResponse {
    let auth = format!("Bearer {token}");
    app.request(
        method,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
    .await
}

/// Names and emails stored before sync dropped or refused invisible
/// formatting (written here straight into the table, as an old row holds
/// them) are shown without it in every view staff and participants read of
/// them: comments, `/me/activity`, the roster (JSON and CSV), the admins'
/// user search, a staff profile and the audit log.
#[sqlx::test(migrations = false)]
async fn every_staff_view_shows_names_and_emails_stored_before_the_fix_without_invisible_formatting(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    let ana = app.user("ana", Some("acme"), "user").await;
    let guru = app.user("guru", Some("acme"), "guru").await;
    let admin = app.user("admin", None, "admin").await;
    app.submit_complete(&ana, "woop").await;
    // "Ana Lopes" with a zero-width space and a right-to-left override; an
    // email with a zero-width joiner; a guru whose name reverses what follows.
    let (ana_name, ana_email) = ("Ana\u{200B} Lo\u{202E}pes", "ana\u{200D}@example.test");
    let guru_name = "Gus\u{202E} Guru\u{2066}";
    for (id, name, email) in [
        (ana.id, ana_name, Some(ana_email)),
        (guru.id, guru_name, None),
    ] {
        sqlx::query(
            "update shared.users set full_name = $2, email = coalesce($3, email) where id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(email)
        .execute(&pool)
        .await
        .unwrap();
    }
    let organization: Uuid =
        sqlx::query_scalar("select id from shared.organizations where slug = 'acme'")
            .fetch_one(&pool)
            .await
            .unwrap();

    // A comment signed now, an unlock, and a comment signed before the fix.
    let comments = format!("/users/{}/tools/woop/comments", ana.id);
    let posted = send(
        &app,
        http::Method::POST,
        &comments,
        &guru.token,
        &json!({"body": "Good."}),
    )
    .await;
    assert_eq!(posted.status, 201, "{:?}", posted.body);
    assert_eq!(posted.body["author_name"], "Gus Guru");
    let unlock = format!("/users/{}/tools/dream/unlock", ana.id);
    let unlocked = send(
        &app,
        http::Method::POST,
        &unlock,
        &guru.token,
        &json!({"reason": "On paper"}),
    )
    .await;
    assert_eq!(unlocked.status, 201, "{:?}", unlocked.body);
    send(
        &app,
        http::Method::POST,
        &comments,
        &guru.token,
        &json!({"body": "Old."}),
    )
    .await;
    sqlx::query("update shared.comments set author_name = $1 where body = 'Old.'")
        .bind(guru_name)
        .execute(&pool)
        .await
        .unwrap();

    let staff_comments = app.get(&comments, &guru.token).await;
    let own_comments = app.get("/tools/woop/comments", &ana.token).await;
    for list in [&staff_comments, &own_comments] {
        assert_eq!(list.status, 200, "{:?}", list.body);
        let names: Vec<&str> = list.body["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["author_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Gus Guru", "Gus Guru"]);
    }
    let activity = app.get("/me/activity", &ana.token).await;
    assert_eq!(activity.status, 200, "{:?}", activity.body);
    let actors: Vec<&str> = activity.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["actor_name"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["Gus Guru", "Gus Guru", "Gus Guru"]);

    let member_of = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == ana.id.to_string())
            .cloned()
            .unwrap()
    };
    let roster = app
        .get(
            &format!("/organizations/{organization}/members"),
            &guru.token,
        )
        .await;
    assert_eq!(roster.status, 200, "{:?}", roster.body);
    let shown = member_of(&roster.body);
    assert_eq!(
        (&shown["name"], &shown["email"]),
        (&json!("Ana Lopes"), &json!("ana@example.test"))
    );
    let search = app.get("/users?q=ana", &admin.token).await;
    assert_eq!(search.status, 200, "{:?}", search.body);
    let found = member_of(&search.body);
    assert_eq!(
        (&found["name"], &found["email"]),
        (&json!("Ana Lopes"), &json!("ana@example.test"))
    );
    let profile = app.get(&format!("/users/{}", ana.id), &guru.token).await;
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    assert_eq!(
        (&profile.body["name"], &profile.body["email"]),
        (&json!("Ana Lopes"), &json!("ana@example.test"))
    );
    let guru_profile = app.get(&format!("/users/{}", guru.id), &admin.token).await;
    assert_eq!(guru_profile.body["name"], "Gus Guru");

    let csv = app
        .app
        .handle(
            http::Request::builder()
                .uri(format!("/organizations/{organization}/members"))
                .header("authorization", format!("Bearer {}", guru.token))
                .header("accept", "text/csv")
                .body(lambda_http::Body::Empty)
                .unwrap(),
        )
        .await;
    assert_eq!(csv.status(), 200);
    let csv = String::from_utf8(csv.body().to_vec()).unwrap();
    assert!(csv.contains("Ana Lopes,ana@example.test"), "{csv}");

    let audit = app.get("/audit", &admin.token).await;
    assert_eq!(audit.status, 200, "{:?}", audit.body);
    for (view, text) in [
        ("staff comments", staff_comments.body.to_string()),
        ("own comments", own_comments.body.to_string()),
        ("activity", activity.body.to_string()),
        ("roster", roster.body.to_string()),
        ("roster CSV", csv),
        ("user search", search.body.to_string()),
        ("profile", profile.body.to_string()),
        ("guru's profile", guru_profile.body.to_string()),
        ("audit log", audit.body.to_string()),
    ] {
        assert!(!disguised(&text), "{view}: {text:?}");
    }
}

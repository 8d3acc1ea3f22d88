//! LearnWorlds' own documented webhook examples (`tests/fixtures/learnworlds/`,
//! copied verbatim from the "Webhooks" page of LearnWorlds' API reference; see
//! the README there), sent byte for byte and correctly signed to
//! `POST /webhooks/learnworlds`: with LearnWorlds' API (a local stand-in
//! answering the documented user object for the id) and without it. Then what
//! such a delivery may carry in fields never read (`\u0000`, a key given
//! twice) and the Content-Type it may come with.

use http::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::stand_in::StandIn;
use crate::{TestApp, TestResponse, WEBHOOK_SECRET};

/// What a documented example does: sync its user, or be acknowledged.
enum Expect {
    /// (LearnWorlds id, email, full name, the event's documented time in Unix
    /// milliseconds if its type has one).
    Synced(&'static str, &'static str, &'static str, Option<i64>),
    /// Documented as carrying no user to act on.
    Ignored,
}

use Expect::{Ignored, Synced};

/// Every documented example, and what it must do. The full name is
/// `first_name` and `last_name` with blank parts dropped (`"" + "john"` is
/// `john`).
const DOCUMENTED: [(&str, Expect); 16] = [
    (
        "user-updated.json",
        Synced("6130afb278d2c94eeb228d12", "john@doe.com", "john", None),
    ),
    (
        "product-bought.json",
        Synced(
            "618e6db9cfb2226fe229d927",
            "john@doe.com",
            "johndoe",
            Some(1_637_235_626_566),
        ),
    ),
    (
        "enrolled-free-course.json",
        Synced(
            "618e6db9cfb2226fe229d927",
            "john@doe.com",
            "johndoe",
            Some(1_638_190_255_000),
        ),
    ),
    // A lead has no LearnWorlds id: not a user.
    ("lead-created.json", Ignored),
    (
        "awarded-certificate.json",
        Synced(
            "618e6db9cfb2226fe229d927",
            "john@doe.com",
            "JohnDoe",
            Some(1_637_220_543_671),
        ),
    ),
    (
        "course-completed.json",
        Synced(
            "618a740f8d07051ab200e5f4",
            "john@doe.com",
            "johndoe",
            Some(1_637_232_384_736),
        ),
    ),
    (
        "learning-program-completed.json",
        Synced(
            "618a740f8d07051ab200e5f4",
            "john@doe.com",
            "johndoe",
            Some(1_753_702_464_760),
        ),
    ),
    (
        "subscription-payment-plan-bought.json",
        Synced(
            "618133ab0d754108b05bad07",
            "john@doe.com",
            "Learner Plus test",
            Some(1_638_189_386_506),
        ),
    ),
    (
        "subscription-payment-plan-canceled.json",
        Synced(
            "618133ab0d754108b05bad07",
            "john@doe.com",
            "Learner Plus test",
            Some(1_638_189_860_000),
        ),
    ),
    (
        "subscription-trial-started.json",
        Synced(
            "618133ab0d754108b05bad07",
            "john@doe.com",
            "Learner Plus test",
            Some(1_638_190_255_000),
        ),
    ),
    (
        "subscription-trial-will-end.json",
        Synced(
            "61a890d07348c573f04a8126",
            "adope@getlearnworlds.com",
            "adope",
            Some(1_638_439_700_000),
        ),
    ),
    (
        "previewed-free.json",
        Synced("618e2a13b1085d69803d4804", "john@doe.com", "johndoe", None),
    ),
    // "2021-12-02T12:11:45+02:00"; this user object has no `username` and a
    // `full_name`, which is not read.
    (
        "subscription-updated.json",
        Synced(
            "61a890d07348c573f04a8126",
            "adope@getlearnworlds.com",
            "adope",
            Some(1_638_439_905_000),
        ),
    ),
    (
        "user-unenrolled-from-product.json",
        Synced("61653fd30711fe28fb773fc2", "john@doe.com", "johndoe", None),
    ),
    (
        "user-tag-added.json",
        Synced("549d7ee2e4b4c8b511000000", "john@doe.com", "john", None),
    ),
    (
        "user-tag-deleted.json",
        Synced(
            "549d7ee2e4b4c8b511000000",
            "john@doe.com",
            "Tech Support",
            None,
        ),
    ),
];

fn fixture(file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/learnworlds/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The user object of a documented example, where its type carries it.
fn documented_user(payload: &Value) -> Value {
    let data = &payload["data"];
    match payload["type"].as_str().unwrap() {
        "subscriptionPaymentPlanBought" => data["user"]["user"].clone(),
        "userTagAdded" | "userTagDeleted" => data.clone(),
        _ => data["user"].clone(),
    }
}

/// `body` as LearnWorlds would send it, signed; `content_type` as given.
async fn deliver(app: &TestApp, body: &[u8], content_type: Option<&str>) -> TestResponse {
    let signature = format!("v1={WEBHOOK_SECRET}");
    let mut headers = vec![("learnworlds-webhook-signature", signature.as_str())];
    if let Some(content_type) = content_type {
        headers.push(("content-type", content_type));
    }
    app.request(Method::POST, "/webhooks/learnworlds", &headers, Some(body))
        .await
}

/// Each example is about john@doe.com under another id: each starts afresh.
async fn forget_everyone(app: &TestApp) {
    sqlx::raw_sql(
        "delete from shared.webhook_last_deliveries; delete from shared.webhook_events;
         delete from shared.users; delete from shared.organizations;",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// (email, full name, organization slug, lms_state_at in Unix milliseconds)
/// of the user with this LearnWorlds id.
async fn user_row(
    app: &TestApp,
    lms_user_id: &str,
) -> Option<(String, String, Option<String>, Option<i64>)> {
    sqlx::query_as(
        "select u.email::text, u.full_name::text, o.slug::text,
                (extract(epoch from u.lms_state_at) * 1000)::bigint
         from shared.users u left join shared.organizations o on o.id = u.organization_id
         where u.lms_user_id = $1",
    )
    .bind(lms_user_id)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

/// The payload recorded for this body, if any.
async fn recorded(app: &TestApp, body: &[u8]) -> Option<Value> {
    sqlx::query_scalar("select payload from shared.webhook_events where body_sha256 = sha256($1)")
        .bind(body)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

/// Sends every documented example; `lms` is LearnWorlds' API when configured.
async fn deliver_every_documented_example(app: &TestApp, lms: Option<&StandIn>) {
    for (file, expect) in &DOCUMENTED {
        forget_everyone(app).await;
        let body = fixture(file);
        let payload: Value = serde_json::from_slice(&body).unwrap();
        if let (Some(lms), Synced(id, ..)) = (lms, expect) {
            // LearnWorlds' API answers the documented user object. The
            // examples' tags name no organization; one `org:` tag more shows
            // that the organization is the API's.
            let mut user = documented_user(&payload);
            user["tags"]
                .as_array_mut()
                .unwrap_or_else(|| panic!("{file}: the user has no tags"))
                .push(json!("org:documented"));
            lms.set_user_object(id, user);
        }
        let response = deliver(app, &body, Some("application/json")).await;
        assert!(
            response.status < 500,
            "{file}: {} {:?}",
            response.status,
            response.body
        );
        assert_eq!(response.status, 200, "{file}: {:?}", response.body);
        assert_eq!(
            recorded(app, &body).await.as_ref(),
            Some(&payload),
            "{file}: the payload recorded is not the one sent"
        );
        match expect {
            Ignored => {
                assert_eq!(response.body["outcome"], "ignored", "{file}");
                assert_eq!(response.body["user_id"], Value::Null, "{file}");
                let users: i64 = sqlx::query_scalar("select count(*) from shared.users")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
                assert_eq!(users, 0, "{file} created a user");
            }
            Synced(id, email, name, occurred_at) => {
                assert_eq!(
                    response.body["outcome"], "synced",
                    "{file}: {:?}",
                    response.body
                );
                let membership = if lms.is_some() {
                    "confirmed"
                } else {
                    "unconfirmed"
                };
                assert_eq!(response.body["membership"], membership, "{file}");
                let (got_email, got_name, org, state_at) = user_row(app, id)
                    .await
                    .unwrap_or_else(|| panic!("{file}: no user {id}"));
                assert_eq!(
                    (got_email.as_str(), got_name.as_str()),
                    (*email, *name),
                    "{file}"
                );
                if lms.is_some() {
                    assert_eq!(org.as_deref(), Some("documented"), "{file}");
                } else {
                    // A body's tags are never believed.
                    assert_eq!(org, None, "{file}");
                    // The event's documented time, or none: never the user's
                    // own `created` or `last_login`.
                    assert_eq!(state_at, *occurred_at, "{file}: the event's time");
                }
            }
        }
    }
}

#[sqlx::test(migrations = false)]
async fn every_documented_example_is_synced_or_ignored_as_documented_without_the_api(pool: PgPool) {
    let app = TestApp::new(pool).await;
    deliver_every_documented_example(&app, None).await;
}

#[sqlx::test(migrations = false)]
async fn every_documented_example_is_synced_as_learnworlds_api_answers_or_ignored(pool: PgPool) {
    let lms = StandIn::start().await;
    let app = TestApp::confirming_with(pool, &lms).await;
    deliver_every_documented_example(&app, Some(&lms)).await;
    // Each example with a user asked about it once; the lead asked nothing.
    assert_eq!(lms.requests(), (1, DOCUMENTED.len() - 1));
}

/// user-updated.json with `member` inserted first in its `fields` object.
fn user_updated_with_field(member: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("user-updated.json")).unwrap();
    let fields = "\"fields\": {";
    assert!(text.contains(fields));
    text.replacen(fields, &format!("{fields}\n        {member},"), 1)
        .into_bytes()
}

#[sqlx::test(migrations = false)]
async fn a_nul_in_a_field_never_read_is_accepted_and_stored_as_a_replacement_character(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let body = user_updated_with_field(r#""cf_note": "before\u0000after""#);
    let response = deliver(&app, &body, Some("application/json")).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["outcome"], "synced");
    let stored = recorded(&app, &body).await.unwrap();
    assert_eq!(
        stored["data"]["user"]["fields"]["cf_note"],
        "before\u{FFFD}after"
    );
    // So in `bio` (a sign-up field) and in `billing_info`.
    let text = String::from_utf8(fixture("user-updated.json")).unwrap();
    let body = text
        .replace(r#""my story 2""#, r#""my\u0000story""#)
        .replace(r#""Baker Street 221B""#, r#""Baker\u0000Street""#);
    let response = deliver(&app, body.as_bytes(), Some("application/json")).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["outcome"], "synced");
    let stored = recorded(&app, body.as_bytes()).await.unwrap();
    assert_eq!(stored["data"]["user"]["fields"]["bio"], "my\u{FFFD}story");
    assert_eq!(
        stored["data"]["user"]["billing_info"]["bf_address"],
        "Baker\u{FFFD}Street"
    );
}

#[sqlx::test(migrations = false)]
async fn a_key_given_twice_in_a_custom_field_is_accepted_and_the_last_value_kept(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let body = user_updated_with_field(r#""cf_skill": "Word", "cf_skill": "Excel""#);
    let response = deliver(&app, &body, Some("application/json")).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.body["outcome"], "synced");
    let stored = recorded(&app, &body).await.unwrap();
    // The fixture's own `"cf_skill": "Excel"` comes later still.
    assert_eq!(stored["data"]["user"]["fields"]["cf_skill"], "Excel");
    let body = user_updated_with_field(r#""cf_size": 1, "cf_size": 2"#);
    assert_eq!(
        deliver(&app, &body, Some("application/json")).await.status,
        200
    );
    let stored = recorded(&app, &body).await.unwrap();
    assert_eq!(stored["data"]["user"]["fields"]["cf_size"], 2);
}

#[sqlx::test(migrations = false)]
async fn a_nul_or_a_key_given_twice_in_a_field_that_is_stored_is_still_refused(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = app.snapshot().await;
    let text = String::from_utf8(fixture("user-updated.json")).unwrap();
    let user = "\"user\": {";
    let cases = [
        (
            "\\u0000 in email",
            text.replace(r#""john@doe.com""#, r#""john\u0000@doe.com""#),
        ),
        (
            "\\u0000 in the id",
            text.replace(
                r#""6130afb278d2c94eeb228d12""#,
                r#""6130afb278d2c94e\u0000eb228d12""#,
            ),
        ),
        (
            "\\u0000 in last_name",
            text.replace(r#""last_name": "john""#, r#""last_name": "jo\u0000hn""#),
        ),
        (
            "\\u0000 in type",
            text.replace(r#""userUpdated""#, r#""user\u0000Updated""#),
        ),
        (
            "email given twice",
            text.replacen(
                user,
                &format!("{user} \"email\": \"evil@example.test\","),
                1,
            ),
        ),
        (
            "id given twice",
            text.replacen(
                user,
                &format!("{user} \"id\": \"64a0f0000000000000000666\","),
                1,
            ),
        ),
        (
            "type given twice",
            text.replacen("{", "{\"type\": \"leadCreated\",", 1),
        ),
        (
            "the user object given twice",
            text.replacen("\"data\": {", "\"data\": {\"user\": {},", 1),
        ),
    ];
    for (name, body) in cases {
        assert_ne!(body, text, "{name}: the case changed nothing");
        let response = deliver(&app, body.as_bytes(), Some("application/json")).await;
        assert_eq!(response.status, 422, "{name}: {:?}", response.body);
        assert_eq!(app.snapshot().await, before, "{name} wrote something");
    }
}

#[sqlx::test(migrations = false)]
async fn a_delivery_is_accepted_with_any_content_type_or_none(pool: PgPool) {
    // LearnWorlds documents none: "Triggers a POST json request".
    let app = TestApp::new(pool).await;
    let body = fixture("user-updated.json");
    let mut first = true;
    for content_type in [
        None,
        Some("application/json"),
        Some("application/json; charset=UTF-8"),
        Some("text/plain"),
        Some("text/plain;charset=utf-8"),
        Some("application/octet-stream"),
        Some("application/x-www-form-urlencoded"),
        Some(""),
    ] {
        let response = deliver(&app, &body, content_type).await;
        assert_eq!(
            response.status, 200,
            "{content_type:?}: {:?}",
            response.body
        );
        let outcome = if first { "synced" } else { "duplicate" };
        assert_eq!(response.body["outcome"], outcome, "{content_type:?}");
        first = false;
    }
    // What is not JSON is still refused, whatever it is called.
    let response = deliver(&app, b"email=john%40doe.com", Some("text/plain")).await;
    assert_eq!(response.status, 400, "{:?}", response.body);
    // Every other route is as strict as before.
    let response = app
        .request(
            Method::POST,
            "/sessions",
            &[("content-type", "text/plain")],
            Some(b"{}"),
        )
        .await;
    assert_eq!(response.status, 415, "{:?}", response.body);
}

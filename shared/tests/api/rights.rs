//! Data rights: a person's whole record on request, and an erasure that is
//! complete, resumable, races cleanly and stays erased.

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::foundation::config::Secret;
use shared::identity::tombstones::ErasureKeys;
use shared::registry::Registry;
use shared::rights::eraser;
use shared::sessions::launch::sign_launch;
use sqlx::PgPool;
use uuid::Uuid;

use crate::chain::WALK;
use crate::runtime_role::eraser_url;
use crate::{
    ERASURE_HASH_KEY_SECRET, LAUNCH_SECRET, RoundTripCounter, TestApp, TestResponse, TestUser,
    WEBHOOK_SECRET, database_settings, settings,
};

fn keys() -> ErasureKeys {
    ErasureKeys::new(Secret::new(ERASURE_HASH_KEY_SECRET))
}

/// The app with erasures due at once (no cool-off).
async fn app_without_cool_off(pool: PgPool) -> TestApp {
    TestApp::with_settings(pool, settings(&[("ERASURE_COOL_OFF_DAYS", "0")])).await
}

/// A pool that logs in as the eraser, as the erase-users function does.
async fn eraser_pool(owner: &PgPool) -> shared::foundation::db::Pool {
    shared::foundation::db::Pool::new(&database_settings(eraser_url(owner).await, 2)).unwrap()
}

/// Who a LearnWorlds person is, everywhere they may be written down.
struct Person {
    lms_user_id: String,
    email: String,
    name: String,
}

impl Person {
    fn new(tag: &str) -> Self {
        Self {
            lms_user_id: format!("64e0{tag}0000000000000000"),
            email: format!("{tag}.zebulon@erasable.example"),
            name: format!("Zebulon {tag} Quixote"),
        }
    }
}

fn user_updated(person: &Person) -> Value {
    json!({
        "version": 2, "type": "userUpdated", "trigger": "user_updated", "school_id": "school-1",
        "data": {"user": {
            "id": person.lms_user_id, "email": person.email, "username": person.name,
            "first_name": person.name, "last_name": "", "tags": [], "fields": {},
        }}
    })
}

async fn webhook(app: &TestApp, payload: &Value) -> TestResponse {
    let signature = format!("v1={WEBHOOK_SECRET}");
    app.request(
        Method::POST,
        "/webhooks/learnworlds",
        &[
            ("content-type", "application/json"),
            ("learnworlds-webhook-signature", &signature),
        ],
        Some(payload.to_string().as_bytes()),
    )
    .await
}

async fn launch(app: &TestApp, person: &Person) -> TestResponse {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let nonce = Uuid::new_v4().to_string();
    let signature = sign_launch(
        &Secret::new(LAUNCH_SECRET),
        &person.lms_user_id,
        &person.email,
        &person.name,
        now,
        Some(&nonce),
    );
    let body = json!({"lms_user_id": person.lms_user_id, "email": person.email, "name": person.name,
                      "timestamp": now, "nonce": nonce, "signature": signature});
    app.request(
        Method::POST,
        "/sessions",
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .await
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> TestResponse {
    let auth = format!("Bearer {token}");
    app.request(
        Method::POST,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
    .await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> TestResponse {
    let auth = format!("Bearer {token}");
    app.request(Method::DELETE, path, &[("authorization", &auth)], None)
        .await
}

/// A person who did everything a participant does: synced by a webhook,
/// launched, every tool of the curriculum submitted (one save with an
/// idempotency key), commented on, overridden, read and exported by staff,
/// and who also wrote as staff (a comment, a read) before their erasure.
async fn fully_active(app: &TestApp, person: &Person, admin: &TestUser) -> TestUser {
    assert_eq!(webhook(app, &user_updated(person)).await.status, 200);
    let session = launch(app, person).await;
    assert_eq!(session.status, 200, "{:?}", session.body);
    let id: Uuid = session.body["user"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let user = TestUser {
        id,
        token: session.body["token"].as_str().unwrap().to_owned(),
        lms_user_id: person.lms_user_id.clone(),
    };
    for (slug, _) in WALK {
        let saved = app.submit_complete(&user, slug).await;
        assert!(saved.status < 300, "{slug}: {:?}", saved.body);
    }
    let keyed = app
        .put(
            "/tools/woop/submission",
            &user.token,
            &json!({"data": crate::complete_data("woop"), "status": "draft"}),
            &[("if-match", "*"), ("idempotency-key", "erase-me-1")],
        )
        .await;
    assert_eq!(keyed.status, 200, "{:?}", keyed.body);
    // Staff reading their data, and an admin exporting it: audited.
    assert_eq!(
        app.get(&format!("/users/{id}/progress"), &admin.token)
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/users/{id}/export"), &admin.token)
            .await
            .status,
        200
    );
    // What the staff features write about them, and what they wrote as staff
    // about someone else (written here as those features write it).
    let other = app
        .user(
            &format!("colleague-{}", Uuid::new_v4().simple()),
            None,
            "user",
        )
        .await;
    sqlx::query(
        "insert into shared.comments (user_id, tool_slug, author_id, author_role, author_name, body)
         values ($1, 'woop', $2, 'admin', 'Admin', 'Good start, ' || $4),
                ($3, 'woop', $1, 'guru', $4, 'Signed ' || $5)",
    )
    .bind(id)
    .bind(admin.id)
    .bind(other.id)
    .bind(&person.name)
    .bind(&person.email)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.comment_reads (user_id, tool_slug, read_at) values ($1, 'woop', now());
         ",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.overrides (user_id, tool_slug, kind, actor_id, actor_role, reason)
         values ($1, 'fit', 'unlock', $2, 'admin', 'asked by ' || $3)",
    )
    .bind(id)
    .bind(admin.id)
    .bind(&person.name)
    .execute(&app.pool)
    .await
    .unwrap();
    // As staff, they unlocked someone else's tool; an admin changed them
    // (a staff change's Idempotency-Key and its stored answer name them).
    sqlx::query(
        "insert into shared.overrides (user_id, tool_slug, kind, actor_id, actor_role, reason)
         values ($1, 'fit', 'unlock', $2, 'guru', 'unlocked, ask ' || $3)",
    )
    .bind(other.id)
    .bind(id)
    .bind(&person.email)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.staff_idempotency_keys (actor_id, key, subject, request_sha256, response)
         values ($1, 'change-' || $2::text, $2, '\\x00', jsonb_build_object('body', jsonb_build_object('email', $3::text)))",
    )
    .bind(admin.id)
    .bind(id)
    .bind(&person.email)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.submission_history (user_id, tool_slug, version, data, submitted_at)
         values ($1, 'dream', 1, jsonb_build_object('by', $2::text), now())",
    )
    .bind(id)
    .bind(&person.name)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.audit_log (actor_id, actor_role, action, subjects, reason, before, after)
         values ($1, 'guru', 'read.progress', array[$2::uuid], null, null, null),
                ($3, 'admin', 'change.role', array[$1::uuid], 'for ' || $4, '{\"role\": \"user\"}', jsonb_build_object('email', $5::text))",
    )
    .bind(id)
    .bind(other.id)
    .bind(admin.id)
    .bind(&person.name)
    .bind(&person.email)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("update shared.users set role_set_by = $1 where id = $2")
        .bind(id)
        .bind(other.id)
        .execute(&app.pool)
        .await
        .unwrap();
    user
}

/// Every column of every table in `shared` and the tool schemas whose text
/// holds one of `needles` (case-insensitively), as `schema.table.column`.
async fn columns_holding(pool: &PgPool, needles: &[String]) -> Vec<String> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "select c.table_schema::text, c.table_name::text, c.column_name::text
         from information_schema.columns c
         join information_schema.tables t
           on t.table_schema = c.table_schema and t.table_name = c.table_name
         where t.table_type = 'BASE TABLE'
           and (c.table_schema = 'shared' or c.table_schema like 'sprint\\_%')
         order by 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(columns.len() > 300, "only {} columns", columns.len());
    let mut found = Vec::new();
    for (schema, table, column) in columns {
        let sql = format!(
            "select count(*) from \"{schema}\".\"{table}\" t
             where exists (select 1 from unnest($1::text[]) as needle(v)
                           where strpos(lower(t.\"{column}\"::text), lower(needle.v)) > 0)"
        );
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(needles)
            .fetch_one(pool)
            .await
            .unwrap();
        if count > 0 {
            found.push(format!("{schema}.{table}.{column} ({count})"));
        }
    }
    found
}

fn needles(person: &Person, id: Uuid) -> Vec<String> {
    vec![
        id.to_string(),
        person.lms_user_id.clone(),
        person.email.clone(),
        person.name.clone(),
    ]
}

#[sqlx::test(migrations = false)]
async fn a_participant_exports_everything_stored_about_them_and_only_an_admin_exports_others(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let admin = app.user("ada", None, "admin").await;
    let guru = app.user("gus", Some("acme"), "guru").await;
    let person = Person::new("a1");
    let user = fully_active(&app, &person, &admin).await;
    sqlx::query("update shared.users set organization_id = (select organization_id from shared.users where id = $1) where id = $2")
        .bind(guru.id)
        .bind(user.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let export = app.get("/me/export", &user.token).await;
    assert_eq!(export.status, 200, "{:?}", export.body);
    let record = &export.body;
    assert_eq!(record["format"], "fasttrack.export");
    assert_eq!(record["version"], 1);
    assert_eq!(record["user"]["id"], user.id.to_string());
    assert_eq!(record["user"]["email"], person.email);
    let tools = Registry::embedded().tools().len();
    assert_eq!(record["progress"].as_array().unwrap().len(), tools);
    let submissions = record["submissions"].as_array().unwrap();
    assert_eq!(submissions.len(), tools);
    for submission in submissions {
        let slug = submission["tool_slug"].as_str().unwrap();
        let outputs = submission["field_outputs"].as_array().unwrap();
        let expected = Registry::embedded().tool(slug).unwrap().outputs.len();
        assert_eq!(outputs.len(), expected, "{slug}");
        assert_eq!(submission["data"], crate::complete_data(slug), "{slug}");
    }
    for (section, at_least) in [
        ("submission_history", 1),
        ("comments_about_them", 1),
        ("comments_they_wrote", 1),
        ("comment_reads", 1),
        ("overrides", 1),
        ("overrides_they_made", 1),
        ("staff_idempotency_keys", 1),
        ("idempotency_keys", 1),
        ("webhook_deliveries", 1),
        ("session_launches", 1),
        ("sessions", 1),
        ("audit_log", 3),
    ] {
        let rows = record[section].as_array().unwrap().len();
        assert!(rows >= at_least, "{section}: {rows}");
    }
    // Their sessions, with when each refresh token was issued and used, but
    // never a token's hash.
    let session = &record["sessions"][0];
    assert_eq!(session["user_id"], user.id.to_string());
    assert_eq!(session["refresh_tokens"].as_array().unwrap().len(), 1);
    assert!(!record["sessions"].to_string().contains("sha256"));
    // Who read their data is part of their record (CJEU C-579/21).
    let actions: Vec<&str> = record["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"read.progress") && actions.contains(&"export"),
        "{actions:?}"
    );

    // A guru of their organization may read their progress, never export it.
    let path = format!("/users/{}/export", user.id);
    assert_eq!(app.get(&path, &guru.token).await.status, 403);
    assert_eq!(app.get(&path, &user.token).await.status, 200);
    let other = app.user("olga", None, "user").await;
    assert_eq!(app.get(&path, &other.token).await.status, 403);
    assert_eq!(
        app.get(&format!("/users/{}/export", Uuid::new_v4()), &admin.token)
            .await
            .status,
        404
    );
    // An admin's export is audited; a person's own is not.
    let exports = |subject: Uuid| {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from shared.audit_log where action = 'export' and subjects = array[$1::uuid]",
        )
        .bind(subject)
        .fetch_one(&app.pool)
    };
    assert_eq!(exports(user.id).await.unwrap(), 1);
    assert_eq!(app.get(&path, &admin.token).await.status, 200);
    assert_eq!(exports(user.id).await.unwrap(), 2);
}

#[sqlx::test(migrations = false)]
async fn an_export_reads_every_tool_schema_in_one_statement(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.user("ada", None, "admin").await;
    let person = Person::new("b2");
    let user = fully_active(&app, &person, &admin).await;
    let counter = RoundTripCounter::new(&pool).await;
    let token = user.token.clone();
    let (trips, response) = counter
        .of_second(|| {
            http::Request::builder()
                .uri("/me/export")
                .header("authorization", format!("Bearer {token}"))
                .body(lambda_http::Body::Empty)
                .unwrap()
        })
        .await;
    assert_eq!(response.status(), 200);
    // The one statement, its own transaction and snapshot: the same whatever
    // the number of tool schemas. Behind a transaction pooler the statement
    // is unnamed, and so also described first.
    let budget = if crate::behind_pooler() { 2 } else { 1 };
    assert_eq!(trips, budget);
}

#[sqlx::test(migrations = false)]
async fn a_request_closes_the_account_at_once_and_an_admin_may_cancel_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let admin = app.user("ada", None, "admin").await;
    let person = Person::new("c3");
    let user = fully_active(&app, &person, &admin).await;
    let other = app.user("olga", None, "user").await;
    // Everything but the users' rows, whose `updated_at` the request and its
    // cancel move.
    let data_of = async || -> Vec<String> {
        app.snapshot()
            .await
            .split(',')
            .filter(|part| !part.starts_with("shared.users:"))
            .map(str::to_owned)
            .collect()
    };
    let snapshot = data_of().await;

    let requested = post(&app, "/me/erasure", &user.token, &json!({})).await;
    assert_eq!(requested.status, 202, "{:?}", requested.body);
    assert_eq!(requested.body["status"], "pending");
    assert_eq!(requested.body["subject"], user.id.to_string());
    let after: chrono::DateTime<chrono::Utc> = requested.body["erase_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let days = (after - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((13.9..=14.0).contains(&days), "{days}");

    // Their token, a launch and a webhook are refused; nothing of theirs changes.
    assert_eq!(app.get("/progress", &user.token).await.status, 401);
    assert_eq!(app.submit_complete(&user, "woop").await.status, 401);
    assert_eq!(launch(&app, &person).await.status, 403);
    let mut renamed = user_updated(&person);
    renamed["data"]["user"]["first_name"] = json!("Someone Else");
    let delivery = webhook(&app, &renamed).await;
    assert_eq!(delivery.status, 200);
    assert_eq!(delivery.body["outcome"], "erasure_pending");
    // A second request is refused; only an admin cancels.
    let again = post(
        &app,
        &format!("/users/{}/erasure", user.id),
        &admin.token,
        &json!({"reason": "twice"}),
    )
    .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "erasure_already_requested")
    );
    let path = format!("/users/{}/erasure", user.id);
    assert_eq!(delete(&app, &path, &other.token).await.status, 403);
    let cancelled = delete(
        &app,
        &format!("{path}?reason=asked%20to%20stay"),
        &admin.token,
    )
    .await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(delete(&app, &path, &admin.token).await.status, 404);

    // Open again, with the data as it was.
    assert_eq!(data_of().await, snapshot);
    assert_eq!(app.get("/progress", &user.token).await.status, 200);
    let actions: Vec<String> = sqlx::query_scalar(
        "select action::text from shared.audit_log where subjects = array[$1::uuid] and action like 'erasure.%' order by id",
    )
    .bind(user.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(actions, ["erasure.requested", "erasure.cancelled"]);
}

#[sqlx::test(migrations = false)]
async fn only_an_admin_requests_someone_elses_erasure_with_a_reason_and_admins_are_not_erased(
    pool: PgPool,
) {
    let app = TestApp::new(pool).await;
    let admin = app.user("ada", None, "admin").await;
    let guru = app.user("gus", Some("acme"), "guru").await;
    let member = app.user("mia", Some("acme"), "user").await;
    let path = format!("/users/{}/erasure", member.id);
    let reason = json!({"reason": "asked by email"});
    assert_eq!(post(&app, &path, &guru.token, &reason).await.status, 403);
    assert_eq!(
        post(&app, &path, &admin.token, &json!({})).await.status,
        422
    );
    let with_other = post(&app, &path, &admin.token, &json!({"reason": "x", "why": 1})).await;
    assert_eq!(
        (with_other.status, with_other.code()),
        (422, "unknown_field")
    );
    let blank = post(&app, &path, &admin.token, &json!({"reason": "   "})).await;
    assert_eq!(blank.status, 422);
    let made = post(&app, &path, &admin.token, &reason).await;
    assert_eq!(made.status, 202, "{:?}", made.body);
    assert_eq!(made.body["requested_by"], admin.id.to_string());
    assert_eq!(made.body["reason"], "asked by email");
    let missing = post(
        &app,
        &format!("/users/{}/erasure", Uuid::new_v4()),
        &admin.token,
        &reason,
    )
    .await;
    assert_eq!(missing.status, 404);
    let of_admin = post(&app, "/me/erasure", &admin.token, &json!({})).await;
    assert_eq!(
        (of_admin.status, of_admin.code()),
        (409, "admin_not_erasable")
    );
    let rows: i64 = sqlx::query_scalar("select count(*) from shared.erasure_requests")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrations = false)]
async fn the_erasure_of_a_fully_active_user_leaves_nothing_but_keyed_hashes(pool: PgPool) {
    let app = app_without_cool_off(pool.clone()).await;
    let admin = app.user("ada", None, "admin").await;
    let person = Person::new("d4");
    let user = fully_active(&app, &person, &admin).await;
    let bystander = Person::new("e5");
    let kept = fully_active(&app, &bystander, &admin).await;
    let kept_before: i64 =
        sqlx::query_scalar("select count(*) from sprint_00_woop.submissions where user_id = $1")
            .bind(kept.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let reason = json!({"reason": format!("{} <{}> asked by email", person.name, person.email)});
    let requested = post(
        &app,
        &format!("/users/{}/erasure", user.id),
        &admin.token,
        &reason,
    )
    .await;
    assert_eq!(requested.status, 202, "{:?}", requested.body);
    assert!(
        !columns_holding(&pool, &needles(&person, user.id))
            .await
            .is_empty()
    );

    let report = eraser::run(&eraser_pool(&pool).await, &keys(), 10)
        .await
        .unwrap();
    assert_eq!(report.erased, 1);

    let found = columns_holding(&pool, &needles(&person, user.id)).await;
    assert!(found.is_empty(), "the erased person is still in {found:#?}");
    // What stays: the tombstone's keyed hashes, the audit rows (their id now
    // the pseudonym), the comment they wrote, signed with a pseudonym.
    let pseudonym = keys().pseudonym(user.id);
    let (tombstones,): (i64,) = sqlx::query_as(
        "select count(*) from shared.tombstones where lms_hash = $1 and email_hash = $2 and lifted_at is null",
    )
    .bind(keys().lms_hash(&person.lms_user_id))
    .bind(keys().email_hash(&person.email))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tombstones, 1);
    let audit: Vec<String> = sqlx::query_scalar(
        "select action::text from shared.audit_log where subjects @> array[$1::uuid] or actor_id = $1 order by id",
    )
    .bind(pseudonym)
    .fetch_all(&pool)
    .await
    .unwrap();
    for action in [
        "read.progress",
        "export",
        "change.role",
        "erasure.requested",
        "erasure.completed",
    ] {
        assert!(audit.iter().any(|a| a == action), "{action} in {audit:?}");
    }
    let signed: Vec<String> =
        sqlx::query_scalar("select author_name::text from shared.comments where author_id is null")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        signed,
        [format!("erased {}", &pseudonym.simple().to_string()[..8])]
    );
    let status: String =
        sqlx::query_scalar("select status::text from shared.erasure_requests where subject = $1")
            .bind(pseudonym)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "erased");
    // The bystander keeps everything.
    assert!(
        columns_holding(&pool, &needles(&bystander, kept.id))
            .await
            .len()
            > 10
    );
    let kept_after: i64 =
        sqlx::query_scalar("select count(*) from sprint_00_woop.submissions where user_id = $1")
            .bind(kept.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept_after, kept_before);
    // A second run finds nothing to do.
    let again = eraser::run(&eraser_pool(&pool).await, &keys(), 10)
        .await
        .unwrap();
    assert_eq!(again, eraser::Report::default());
}

#[sqlx::test(migrations = false)]
async fn an_erased_person_stays_erased_until_an_admin_lifts_their_tombstone(pool: PgPool) {
    let app = app_without_cool_off(pool.clone()).await;
    let admin = app.user("ada", None, "admin").await;
    let person = Person::new("f6");
    let user = fully_active(&app, &person, &admin).await;
    assert_eq!(
        post(&app, "/me/erasure", &user.token, &json!({}))
            .await
            .status,
        202
    );
    eraser::run(&eraser_pool(&pool).await, &keys(), 10)
        .await
        .unwrap();
    let events_before: i64 = sqlx::query_scalar("select count(*) from shared.webhook_events")
        .fetch_one(&pool)
        .await
        .unwrap();

    // LearnWorlds keeps sending them: answered 200 (no retries), not recorded,
    // not re-created; a launch is refused. Their old token is dead.
    let delivery = webhook(&app, &user_updated(&person)).await;
    assert_eq!(
        (delivery.status, delivery.body["outcome"].as_str()),
        (200, Some("erased"))
    );
    // Under another LearnWorlds id, the same email is still the erased person.
    let mut renumbered = user_updated(&person);
    renumbered["data"]["user"]["id"] = json!("64e0ffff0000000000000000");
    assert_eq!(webhook(&app, &renumbered).await.body["outcome"], "erased");
    assert_eq!(launch(&app, &person).await.status, 403);
    assert_eq!(app.get("/progress", &user.token).await.status, 401);
    let (users, events): (i64, i64) = sqlx::query_as(
        "select (select count(*) from shared.users where lms_user_id = $1 or email = $2),
                (select count(*) from shared.webhook_events)",
    )
    .bind(&person.lms_user_id)
    .bind(&person.email)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((users, events), (0, events_before));

    // Only an admin lifts it, with a reason, by LearnWorlds id or email.
    let lift = json!({"lms_user_id": person.lms_user_id, "reason": "rejoined the program"});
    assert_eq!(
        post(
            &app,
            "/tombstones/lift",
            &admin.token,
            &json!({"reason": "x"})
        )
        .await
        .status,
        422
    );
    let other = app.user("olga", None, "user").await;
    assert_eq!(
        post(&app, "/tombstones/lift", &other.token, &lift)
            .await
            .status,
        403
    );
    let lifted = post(&app, "/tombstones/lift", &admin.token, &lift).await;
    assert_eq!((lifted.status, &lifted.body), (200, &json!({"lifted": 1})));
    assert_eq!(
        post(&app, "/tombstones/lift", &admin.token, &lift)
            .await
            .status,
        404
    );
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from shared.audit_log where action = 'tombstone.lifted' and actor_id = $1",
    )
    .bind(admin.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Created afresh, with nothing of before.
    let session = launch(&app, &person).await;
    assert_eq!(session.status, 200, "{:?}", session.body);
    assert_ne!(session.body["user"]["id"], user.id.to_string());
    let progress = app
        .get("/progress", session.body["token"].as_str().unwrap())
        .await;
    assert_eq!(
        progress.body["summary"]["completed"], 0,
        "{:?}",
        progress.body
    );
}

#[sqlx::test(migrations = false)]
async fn an_erasure_cut_off_part_way_leaves_the_person_whole_for_the_next_run(pool: PgPool) {
    let app = app_without_cool_off(pool.clone()).await;
    let admin = app.user("ada", None, "admin").await;
    let person = Person::new("a7");
    let user = fully_active(&app, &person, &admin).await;
    assert_eq!(
        post(&app, "/me/erasure", &user.token, &json!({}))
            .await
            .status,
        202
    );
    let before = columns_holding(&pool, &needles(&person, user.id)).await;

    // A row of theirs half-way through the tool schemas is held: the run's
    // deletes reach it and wait, and the run is cut off there.
    let middle = &Registry::embedded().tools()[15].schema;
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "select 1 from {} where user_id = $1 for update",
        middle.quoted() + ".submissions"
    )))
    .bind(user.id)
    .execute(&mut *holder)
    .await
    .unwrap();
    let eraser = eraser_pool(&pool).await;
    let run = tokio::spawn({
        let eraser = eraser.clone();
        async move { eraser::run(&eraser, &keys(), 10).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    if run.is_finished() {
        panic!("the run did not wait: {:?}", run.await.unwrap());
    }
    // (pg_stat_activity keeps the first 1 kB of a statement's text.)
    let pid = crate::blocked_on_a_lock(&pool, "with tombstone as").await;
    sqlx::query("select pg_terminate_backend($1)")
        .bind(pid)
        .execute(&pool)
        .await
        .unwrap();
    assert!(run.await.unwrap().is_err());
    holder.rollback().await.unwrap();

    // Nothing was erased: the person is whole, their request still pending.
    assert_eq!(
        columns_holding(&pool, &needles(&person, user.id)).await,
        before
    );
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from shared.erasure_requests where subject = $1 and status = 'pending'",
    )
    .bind(user.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pending, 1);
    // The next run finishes it.
    let report = eraser::run(&eraser_pool(&pool).await, &keys(), 10)
        .await
        .unwrap();
    assert_eq!(report.erased, 1);
    assert!(
        columns_holding(&pool, &needles(&person, user.id))
            .await
            .is_empty()
    );
}

#[sqlx::test(migrations = false)]
async fn saves_and_webhooks_racing_an_erasure_finish_before_it_or_are_refused(pool: PgPool) {
    let app = std::sync::Arc::new(app_without_cool_off(pool.clone()).await);
    let admin = app.user("ada", None, "admin").await;
    let person = std::sync::Arc::new(Person::new("b8"));
    let user = fully_active(&app, &person, &admin).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (app, person, stop) = (app.clone(), person.clone(), stop.clone());
        let (id, token) = (user.id, user.token.clone());
        writers.push(tokio::spawn(async move {
            let user = TestUser {
                id,
                token,
                lms_user_id: person.lms_user_id.clone(),
            };
            let mut statuses = Vec::new();
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                round += 1;
                let status = if writer % 2 == 0 {
                    let slug = WALK[round % WALK.len()].0;
                    app.put(
                        &format!("/tools/{slug}/submission"),
                        &user.token,
                        &json!({"data": crate::complete_data(slug), "status": "draft"}),
                        &[("if-match", "*")],
                    )
                    .await
                    .status
                } else {
                    let mut event = user_updated(&person);
                    event["data"]["user"]["first_name"] = json!(format!("{} {round}", person.name));
                    webhook(&app, &event).await.status
                };
                statuses.push(status);
            }
            statuses
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let requested = post(
        &app,
        &format!("/users/{}/erasure", user.id),
        &admin.token,
        &json!({"reason": "racing"}),
    )
    .await;
    assert_eq!(requested.status, 202);
    let report = eraser::run(&eraser_pool(&pool).await, &keys(), 10)
        .await
        .unwrap();
    assert_eq!(report.erased, 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut all = Vec::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    // Every write either went through before the erasure or was refused with
    // a 4xx; none failed on the server.
    assert!(all.iter().all(|s| *s < 500), "{all:?}");
    assert!(all.iter().any(|s| *s < 300), "{all:?}");
    assert!(all.iter().any(|s| (400..500).contains(s)), "{all:?}");
    // And no row about them was left behind, nor were they re-created.
    let found = columns_holding(&pool, &needles(&person, user.id)).await;
    assert!(found.is_empty(), "{found:#?}");
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_cannot_erase_and_the_eraser_cannot_read_the_tools(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let user = app.user("una", None, "user").await;
    let runtime = &app.app.context.pool;
    let mut conn = runtime.acquire().await.unwrap();
    let denied = sqlx::query("delete from shared.users where id = $1")
        .bind(user.id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    conn.release();
    let eraser = eraser_pool(&pool).await;
    let mut conn = eraser.acquire().await.unwrap();
    for sql in [
        "select 1 from sprint_00_woop.submissions",
        "update shared.users set email = 'x@y.z'",
        "delete from shared.audit_log",
    ] {
        let denied = sqlx::query(sql).execute(&mut *conn).await.unwrap_err();
        assert!(
            denied.to_string().contains("permission denied"),
            "{sql}: {denied}"
        );
    }
    conn.release();
}

#[sqlx::test(migrations = false)]
async fn audit_rows_past_their_retention_are_purged_and_never_younger_than_thirty_days(
    pool: PgPool,
) {
    let app = TestApp::new(pool.clone()).await;
    sqlx::query(
        "insert into shared.audit_log (at, actor_role, action) values
            (now() - interval '800 days', 'admin', 'read.progress'),
            (now() - interval '100 days', 'admin', 'read.progress'),
            (now() - interval '10 days', 'admin', 'read.progress')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let run = |audit_days| {
        shared::unlocks::recompute::run_with(
            &app.app.context.pool,
            Registry::embedded(),
            100,
            shared::unlocks::recompute::Housekeeping {
                webhook_payload_days: 30,
                audit_days,
            },
            shared::unlocks::recompute::Scope::Changed,
        )
    };
    assert_eq!(run(730).await.unwrap().audit_rows_expired, 1);
    // Asked for a day, the log still keeps 30.
    assert_eq!(run(1).await.unwrap().audit_rows_expired, 1);
    let left: i64 = sqlx::query_scalar("select count(*) from shared.audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
}

/// A pool that logs in as the owner (DATABASE_URL's login, on the test's
/// database), as `fasttrack erasures reapply` does.
async fn owner_pool(owner: &PgPool) -> shared::foundation::db::Pool {
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(owner)
        .await
        .unwrap();
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let server = server.split('?').next().unwrap();
    let (server, _) = server.rsplit_once('/').expect("a URL with a database");
    shared::foundation::db::Pool::new(&database_settings(format!("{server}/{database}"), 2))
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_restore_of_an_older_backup_erases_again_whoever_a_newer_tombstone_names(pool: PgPool) {
    use shared::rights::reapply::{self, Tombstone};
    let app = app_without_cool_off(pool.clone()).await;
    let admin = app.user("ada", None, "admin").await;
    // As a dump taken before their erasures holds them: whole, no tombstone.
    let erased = Person::new("f6");
    let brought_back = fully_active(&app, &erased, &admin).await;
    let lifted = Person::new("a7");
    let kept = fully_active(&app, &lifted, &admin).await;
    let owner = owner_pool(&pool).await;
    let nothing = reapply::reapply(&owner, &keys()).await.unwrap();
    assert_eq!(nothing, reapply::Reapplied::default());

    // The newer database's tombstones: one standing, one lifted since.
    let now = chrono::Utc::now();
    let tombstone = |person: &Person, lifted: bool| Tombstone {
        lms_hash: keys().lms_hash(&person.lms_user_id),
        email_hash: keys().email_hash(&person.email),
        erased_at: now - chrono::Duration::days(2),
        lifted_at: lifted.then_some(now - chrono::Duration::days(1)),
        lifted_by: None,
    };
    let newer = [tombstone(&erased, false), tombstone(&lifted, true)];
    assert_eq!(reapply::import(&owner, &newer).await.unwrap(), 2);
    // An older state of the same tombstones changes nothing.
    let older = [Tombstone {
        erased_at: now - chrono::Duration::days(30),
        lifted_at: None,
        ..tombstone(&lifted, false)
    }];
    assert_eq!(reapply::import(&owner, &older).await.unwrap(), 0);

    let report = reapply::reapply(&owner, &keys()).await.unwrap();
    assert_eq!(
        report,
        reapply::Reapplied {
            matched: 1,
            erased: 1
        }
    );
    let found = columns_holding(&pool, &needles(&erased, brought_back.id)).await;
    assert!(
        found.is_empty(),
        "the restored person is still in {found:#?}"
    );
    // The request the restore made is in the log, as about the pseudonym
    // (its reason emptied with the rest of the rows about them).
    let made: Vec<Option<String>> = sqlx::query_scalar(
        "select reason from shared.audit_log
         where action = 'erasure.requested' and actor_role = 'system' and subjects = array[$1::uuid]",
    )
    .bind(keys().pseudonym(brought_back.id))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(made, [None]);
    let request: String = sqlx::query_scalar(
        "select reason from shared.erasure_requests where subject = $1 and status = 'erased'",
    )
    .bind(keys().pseudonym(brought_back.id))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(request.contains("restore"), "{request}");
    // The lifted one is nobody's business: all theirs stays.
    assert!(
        columns_holding(&pool, &needles(&lifted, kept.id))
            .await
            .len()
            > 10
    );
    // Run again: nothing left to do.
    let again = reapply::reapply(&owner, &keys()).await.unwrap();
    assert_eq!(again, reapply::Reapplied::default());
}

/// A record too large for an API Gateway answer: `GET /me/export` refuses it
/// with 422 `export_too_large`, and the downloads route sends all of it,
/// streamed in chunks, a document that parses whole.
#[sqlx::test(migrations = false)]
async fn a_record_too_large_for_the_api_is_downloaded_whole_in_chunks(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let ada = app.user("ada", Some("acme"), "user").await;
    let wish = "w".repeat(3_000_000);
    sqlx::query(
        "insert into sprint_00_woop.submissions (user_id, data, status)
         values ($1, jsonb_build_object('wish', $2::text), 'draft')",
    )
    .bind(ada.id)
    .bind(&wish)
    .execute(&pool)
    .await
    .unwrap();
    let refused = app.get("/me/export", &ada.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "export_too_large"),
        "{:?}",
        refused.body
    );

    let request = http::Request::builder()
        .uri("/downloads/me/export")
        .header("authorization", format!("Bearer {}", ada.token))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let answer = app.app.handle_streaming(request).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-disposition"],
        format!("attachment; filename=\"fasttrack-export-{}.json\"", ada.id).as_str()
    );
    let mut body = answer.into_body();
    let (mut chunks, mut bytes) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() <= 3 * shared::http::stream::CHUNK_BYTES + wish.len());
        chunks += 1;
        bytes.extend_from_slice(&data);
    }
    assert!(chunks > 1, "{chunks} chunk(s)");
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(document["format"], "fasttrack.export");
    assert_eq!(document["user"]["id"], ada.id.to_string());
    let woop = document["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tool_slug"] == "woop")
        .unwrap();
    assert_eq!(
        woop["data"]["wish"].as_str().map(str::len),
        Some(wish.len())
    );
}

/// A download refused before its first byte is a JSON error, as any route's;
/// an admin's download of someone else is audited as an export.
#[sqlx::test(migrations = false)]
async fn a_download_is_refused_as_the_export_is_and_an_admins_is_audited(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = app.user("adm", None, "admin").await;
    let guru = app.user("gus", Some("acme"), "guru").await;
    let ada = app.user("ada", Some("acme"), "user").await;
    let path = format!("/downloads/users/{}/export", ada.id);
    let refused = app.get(&path, &guru.token).await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let unknown = app
        .get(
            &format!("/downloads/users/{}/export", Uuid::new_v4()),
            &admin.token,
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "user_not_found"));
    let anonymous = app.get("/downloads/me/export", "").await;
    assert_eq!(anonymous.status, 401);
    let exports = || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from shared.audit_log where action = 'export' and subjects = array[$1::uuid]",
        )
        .bind(ada.id)
        .fetch_one(&pool)
    };
    assert_eq!(exports().await.unwrap(), 0);
    let downloaded = app.get(&path, &admin.token).await;
    assert_eq!(downloaded.status, 200, "{:?}", downloaded.body);
    assert_eq!(downloaded.body["user"]["id"], ada.id.to_string());
    assert_eq!(exports().await.unwrap(), 1);
}

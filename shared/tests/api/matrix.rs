//! Who may read and write whose data, on every route. The answer for someone
//! else's data is the same 404 as for a user who does not exist.

use http::Method;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{TestApp, TestUser};

struct Cast {
    ana: TestUser,
    ben: TestUser,
    guru: TestUser,
    outside_guru: TestUser,
    admin: TestUser,
    lone_guru: TestUser,
    loner: TestUser,
}

async fn cast(app: &TestApp) -> Cast {
    let cast = Cast {
        ana: app.user("ana", Some("acme"), "user").await,
        ben: app.user("ben", Some("acme"), "user").await,
        guru: app.user("guru", Some("acme"), "guru").await,
        outside_guru: app.user("outside", Some("globex"), "guru").await,
        admin: app.user("admin", Some("globex"), "admin").await,
        lone_guru: app.user("lone-guru", None, "guru").await,
        loner: app.user("loner", None, "user").await,
    };
    app.submit_complete(&cast.ana, "woop").await;
    cast
}

/// The three ways to read a given user's data.
fn reads_of(user: Uuid) -> [String; 3] {
    [
        format!("/users/{user}/progress"),
        format!("/tools/know-thyself/dependencies?user_id={user}"),
        format!("/tools/woop/submission?user_id={user}"),
    ]
}

#[sqlx::test(migrations = false)]
async fn users_read_only_their_own_data(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for path in reads_of(c.ana.id) {
        let own = app.get(&path, &c.ana.token).await;
        assert_eq!(own.status, 200, "{path}");
        assert_eq!(own.body["user_id"], c.ana.id.to_string(), "{path}");

        let other = app.get(&path, &c.ben.token).await;
        let nobody = app
            .get(
                &path.replace(&c.ana.id.to_string(), &Uuid::new_v4().to_string()),
                &c.ben.token,
            )
            .await;
        assert_eq!(
            (other.status, other.code()),
            (404, "user_not_found"),
            "{path}"
        );
        assert_eq!(
            (nobody.status, nobody.code()),
            (404, "user_not_found"),
            "{path}"
        );
        assert_eq!(
            other.body["error"]["message"],
            nobody.body["error"]["message"]
        );
    }
    // The self routes without a user id.
    for path in [
        "/progress",
        "/tools/know-thyself/dependencies",
        "/tools/woop/submission",
    ] {
        let response = app.get(path, &c.ana.token).await;
        assert_eq!(
            (response.status, &response.body["user_id"]),
            (200, &json!(c.ana.id.to_string())),
            "{path}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn a_guru_reads_users_of_their_own_organization_only(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for path in reads_of(c.ana.id) {
        let inside = app.get(&path, &c.guru.token).await;
        assert_eq!(inside.status, 200, "{path}");
        assert_eq!(inside.body["user_id"], c.ana.id.to_string());
        assert_eq!(
            app.get(&path, &c.outside_guru.token).await.status,
            404,
            "{path}"
        );
        assert_eq!(
            app.get(&path, &c.lone_guru.token).await.status,
            404,
            "{path}"
        );
    }
    // No organization is not the same organization.
    for path in reads_of(c.loner.id) {
        assert_eq!(
            app.get(&path, &c.lone_guru.token).await.status,
            404,
            "{path}"
        );
    }
    let submission = app
        .get(
            &format!("/tools/woop/submission?user_id={}", c.ana.id),
            &c.guru.token,
        )
        .await;
    assert_eq!(submission.body["submission"]["status"], "submitted");
}

#[sqlx::test(migrations = false)]
async fn an_admin_reads_anyone(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for user in [c.ana.id, c.loner.id, c.guru.id] {
        for path in reads_of(user) {
            let response = app.get(&path, &c.admin.token).await;
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(response.body["user_id"], user.to_string());
        }
    }
}

#[sqlx::test(migrations = false)]
async fn nobody_writes_someone_elses_submission(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = app.snapshot().await;
    let body = json!({"data": {"wish": "hijacked"}, "status": "draft"});
    for writer in [&c.guru, &c.admin, &c.ben] {
        let path = format!("/tools/woop/submission?user_id={}", c.ana.id);
        let response = app.put(&path, &writer.token, &body, &[]).await;
        assert_eq!(response.status, 400, "{:?}", response.body);
    }
    assert_eq!(app.snapshot().await, before);
    // A guru's PUT saves the guru's own work, never the user's.
    let own = app
        .put("/tools/woop/submission", &c.guru.token, &body, &[])
        .await;
    assert_eq!(own.status, 201);
    let ana_data: serde_json::Value =
        sqlx::query_scalar("select data from sprint_00_woop.submissions where user_id = $1")
            .bind(c.ana.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(ana_data, crate::complete_data("woop"));
}

#[sqlx::test(migrations = false)]
async fn every_route_but_health_requires_a_valid_token(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = app.snapshot().await;
    let body = json!({"data": {}, "status": "draft"}).to_string();
    // Every route of the table that takes a bearer token: all but the two
    // that LearnWorlds signs.
    let routes: Vec<(Method, String)> = shared::http::routes::ROUTES
        .iter()
        .filter(|r| {
            !matches!(
                r.path,
                "/webhooks/learnworlds" | "/sessions" | "/sessions/refresh" | "/sessions/logout"
            )
        })
        .map(|r| (r.method.clone(), concrete(r.path, &c)))
        .collect();
    assert!(routes.len() >= 7, "{routes:?}");
    let expired = {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"sub": c.ana.id.to_string(), "iss": "fasttrack", "aud": "fasttrack-api", "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600});
        let key = crate::signing_key();
        crate::forge_token(&crate::token_header(&key), &claims, &key)
    };
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer".to_owned()),
            Some("Basic YWRtaW46YWRtaW4=".to_owned()),
            Some(format!("Bearer {expired}")),
        ] {
            let mut headers = vec![("content-type", "application/json")];
            if let Some(auth) = &auth {
                headers.push(("authorization", auth));
            }
            let response = app
                .request(method.clone(), path, &headers, Some(body.as_bytes()))
                .await;
            assert_eq!(response.status, 401, "{method} {path} with {auth:?}");
        }
    }
    assert_eq!(app.snapshot().await, before);
    assert_eq!(
        app.request(Method::GET, "/health", &[], None).await.status,
        200
    );
}

#[sqlx::test(migrations = false)]
async fn a_token_for_a_deleted_user_is_401(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    sqlx::query("delete from shared.users where id = $1")
        .bind(c.ben.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/progress", &c.ben.token).await.status, 401);
    assert_eq!(
        app.get("/tools/woop/dependencies", &c.ben.token)
            .await
            .status,
        401
    );
    assert_eq!(
        app.get("/tools/woop/submission", &c.ben.token).await.status,
        401
    );
    assert_eq!(
        app.save(&c.ben, "woop", json!({}), "draft").await.status,
        401
    );
}

/// A route's path with its parameters filled in for `c`'s members.
fn concrete(path: &str, c: &Cast) -> String {
    path.replace("{user_id}", &c.ana.id.to_string())
        .replace("{slug}", "woop")
}

/// Each staff route, for each identity: no token, a participant, a guru of
/// another organization, a guru of the member's organization, an admin. A
/// guru of another organization never gets the member's data.
#[sqlx::test(migrations = false)]
async fn each_route_answers_each_identity_as_its_role_allows(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let ana = c.ana.id;
    let acme: Uuid = sqlx::query_scalar("select id from shared.organizations where slug = 'acme'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // (path, [user (ben), other guru, member's guru, admin])
    let table: Vec<(String, [u16; 4])> = vec![
        ("/me".to_owned(), [200, 200, 200, 200]),
        (format!("/users/{ana}/progress"), [404, 404, 200, 200]),
        ("/audit".to_owned(), [403, 403, 403, 200]),
        (format!("/audit?subject={ana}"), [403, 403, 403, 200]),
        // A person's whole record: only an admin exports someone else's.
        (format!("/users/{ana}/export"), [403, 403, 403, 200]),
        ("/me/export".to_owned(), [200, 200, 200, 200]),
        // The same, streamed by the downloads function (the roster's CSV download:
        // reports.rs, the_roster_download_streams_the_rosters_csv_in_chunks).
        (
            format!("/downloads/users/{ana}/export"),
            [403, 403, 403, 200],
        ),
        ("/downloads/me/export".to_owned(), [200, 200, 200, 200]),
        // What staff do (staff-actions): a profile, a tool's comments, and
        // the participant's own views.
        (format!("/users/{ana}"), [404, 404, 200, 200]),
        (
            format!("/users/{ana}/tools/woop/comments"),
            [404, 404, 200, 200],
        ),
        ("/tools/woop/comments".to_owned(), [200, 200, 200, 200]),
        ("/me/activity".to_owned(), [200, 200, 200, 200]),
        // Staff reports: an organization's to its gurus and admins; the
        // rest to admins (a guru lists their own organization).
        (
            format!("/organizations/{acme}/members"),
            [404, 404, 200, 200],
        ),
        (
            format!("/organizations/{acme}/funnel"),
            [404, 404, 200, 200],
        ),
        ("/organizations".to_owned(), [403, 200, 200, 200]),
        ("/funnel".to_owned(), [403, 403, 403, 200]),
        ("/users?q=a".to_owned(), [403, 403, 403, 200]),
        // The tools described as data: the same for everyone signed in.
        ("/tools".to_owned(), [200, 200, 200, 200]),
        ("/tools/know-thyself".to_owned(), [200, 200, 200, 200]),
    ];
    for (path, expected) in &table {
        assert_eq!(
            app.get(path, "").await.status,
            401,
            "{path} without a token"
        );
        let who = [&c.ben, &c.outside_guru, &c.guru, &c.admin];
        for (user, status) in who.iter().zip(expected) {
            let response = app.get(path, &user.token).await;
            assert_eq!(
                response.status, *status,
                "{path} as {}: {:?}",
                user.lms_user_id, response.body
            );
        }
    }
}

/// The staff writes, for each identity: no token, a participant, a guru of
/// another organization, a guru of the member's organization, an admin. Only
/// an admin changes a role; a guru of the member's organization and an admin
/// override and comment; a guru of another organization gets 404.
#[sqlx::test(migrations = false)]
async fn each_staff_write_answers_each_identity_as_its_role_allows(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let ana = c.ana.id;
    // (method, path, body, [user (ben), other guru, member's guru, admin])
    let table: Vec<(Method, String, serde_json::Value, [u16; 4])> = vec![
        (
            Method::PATCH,
            format!("/users/{ana}"),
            json!({"organization_source": "learnworlds", "reason": "matrix"}),
            [403, 403, 403, 200],
        ),
        (
            Method::POST,
            format!("/users/{ana}/tools/woop/comments"),
            json!({"body": "matrix"}),
            [404, 404, 201, 201],
        ),
        (
            Method::POST,
            format!("/users/{ana}/tools/dream/unlock"),
            json!({"reason": "matrix"}),
            // The admin finds it unlocked by the guru: a conflict.
            [404, 404, 201, 409],
        ),
        (
            Method::POST,
            format!("/users/{ana}/tools/woop/reopen"),
            json!({"reason": "matrix", "comment": "matrix"}),
            // The admin finds it reopened by the guru: not submitted.
            [404, 404, 201, 409],
        ),
    ];
    for (method, path, body, expected) in &table {
        let bytes = body.to_string();
        let headers = |auth: &str| -> Vec<(&'static str, String)> {
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                ("if-match", "*".to_owned()),
                ("idempotency-key", format!("matrix-{}", Uuid::new_v4())),
            ];
            if !auth.is_empty() {
                headers.push(("authorization", format!("Bearer {auth}")));
            }
            headers
        };
        let send = async |auth: &str| {
            let owned = headers(auth);
            let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.request(method.clone(), path, &headers, Some(bytes.as_bytes()))
                .await
        };
        assert_eq!(
            send("").await.status,
            401,
            "{method} {path} without a token"
        );
        let who = [&c.ben, &c.outside_guru, &c.guru, &c.admin];
        for (user, status) in who.iter().zip(expected) {
            let response = send(&user.token).await;
            assert_eq!(
                response.status, *status,
                "{method} {path} as {}: {:?}",
                user.lms_user_id, response.body
            );
        }
    }
}

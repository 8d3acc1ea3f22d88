//! Bad input gets its own 4xx and a JSON error body, and writes nothing.

use std::time::Duration;

use http::Method;
use serde_json::json;
use shared::app::App;
use shared::registry::Registry;
use sqlx::PgPool;

use crate::{TestApp, settings};

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
}

fn put(name: &'static str, body: impl Into<Vec<u8>>, status: u16) -> Case {
    Case {
        name,
        method: Method::PUT,
        path: "/tools/woop/submission".into(),
        content_type: Some("application/json"),
        body: body.into(),
        headers: vec![],
        status,
    }
}

fn get(name: &'static str, path: &str, status: u16) -> Case {
    Case {
        name,
        method: Method::GET,
        path: path.into(),
        content_type: None,
        body: vec![],
        headers: vec![],
        status,
    }
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"data\": {}{}, \"status\": \"draft\"}}",
        "{\"a\": ".repeat(depth - 1) + "{}",
        "}".repeat(depth - 1)
    )
}

#[sqlx::test(migrations = false)]
async fn each_kind_of_bad_input_gets_its_status_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    app.submit_complete(&ana, "woop").await;
    let big = format!(
        "{{\"data\": {{\"wish\": \"{}\"}}, \"status\": \"draft\"}}",
        "x".repeat(256 * 1024)
    );
    let cases = vec![
        put("malformed JSON", "{\"data\": {", 400),
        put(
            "trailing garbage",
            "{\"data\": {}, \"status\": \"draft\"} x",
            400,
        ),
        put(
            "invalid UTF-8",
            b"{\"data\": {\"wish\": \"\xff\xfe\"}, \"status\": \"draft\"}".to_vec(),
            400,
        ),
        put("empty body", "", 400),
        Case {
            content_type: Some("text/plain"),
            ..put(
                "text/plain body",
                "{\"data\": {}, \"status\": \"draft\"}",
                415,
            )
        },
        Case {
            content_type: None,
            ..put(
                "no Content-Type",
                "{\"data\": {}, \"status\": \"draft\"}",
                415,
            )
        },
        put("body over 256 KiB", big, 413),
        put(
            "data is an array",
            "{\"data\": [], \"status\": \"draft\"}",
            422,
        ),
        put(
            "data is a string",
            "{\"data\": \"x\", \"status\": \"draft\"}",
            422,
        ),
        put("data missing", "{\"status\": \"draft\"}", 422),
        put("body is not an object", "[1, 2]", 422),
        put("nesting of 33 levels", nested(32), 422),
        put(
            "\\u0000 in a value",
            "{\"data\": {\"wish\": \"a\\u0000b\"}, \"status\": \"draft\"}",
            422,
        ),
        put(
            "\\u0000 in a key",
            "{\"data\": {\"wi\\u0000sh\": \"a\"}, \"status\": \"draft\"}",
            422,
        ),
        put(
            "unknown status",
            "{\"data\": {}, \"status\": \"published\"}",
            422,
        ),
        put("status missing", "{\"data\": {}}", 422),
        put(
            "duplicate keys",
            "{\"data\": {\"wish\": 1, \"wish\": 2}, \"status\": \"draft\"}",
            422,
        ),
        put(
            "unknown top-level field",
            "{\"data\": {}, \"status\": \"draft\", \"version\": 9}",
            422,
        ),
        Case {
            headers: vec![("if-match", "yesterday".into())],
            ..put("bad If-Match", "{\"data\": {}, \"status\": \"draft\"}", 400)
        },
        Case {
            headers: vec![("idempotency-key", "k".repeat(300))],
            ..put(
                "overlong Idempotency-Key",
                "{\"data\": {}, \"status\": \"draft\"}",
                400,
            )
        },
        Case {
            headers: vec![
                ("idempotency-key", "retry-1".into()),
                ("idempotency-key", "retry-1".into()),
            ],
            ..put(
                "Idempotency-Key sent twice",
                "{\"data\": {}, \"status\": \"draft\"}",
                400,
            )
        },
        Case {
            headers: vec![("idempotency-key", "retry-1,retry-1".into())],
            ..put(
                "Idempotency-Key as API Gateway joins two",
                "{\"data\": {}, \"status\": \"draft\"}",
                400,
            )
        },
        Case {
            headers: vec![("if-match", "\"1\"".into()), ("if-match", "\"2\"".into())],
            ..put(
                "If-Match sent twice",
                "{\"data\": {}, \"status\": \"draft\"}",
                400,
            )
        },
        Case {
            headers: vec![("if-match", "W/\"1\"".into())],
            ..put(
                "weak If-Match",
                "{\"data\": {}, \"status\": \"draft\"}",
                400,
            )
        },
        Case {
            path: "/tools/no-such-tool/submission".into(),
            ..put("unknown slug", "{\"data\": {}, \"status\": \"draft\"}", 404)
        },
        Case {
            path: "/tools/woop'%3B%20drop%20schema%20shared%3B--/submission".into(),
            ..put(
                "SQL in the slug",
                "{\"data\": {}, \"status\": \"draft\"}",
                404,
            )
        },
        Case {
            path: "/tools/..%2F..%2Fshared/submission".into(),
            ..put(
                "path traversal in the slug",
                "{\"data\": {}, \"status\": \"draft\"}",
                404,
            )
        },
        Case {
            path: "/tools/sprint_00_woop/submission".into(),
            ..put(
                "schema name as slug",
                "{\"data\": {}, \"status\": \"draft\"}",
                404,
            )
        },
        Case {
            method: Method::DELETE,
            ..put("DELETE a submission", "", 405)
        },
        Case {
            method: Method::POST,
            ..put(
                "POST a submission",
                "{\"data\": {}, \"status\": \"draft\"}",
                405,
            )
        },
        Case {
            path: "/tools/woop/submission?user_id=x".into(),
            ..put("query on PUT", "{\"data\": {}, \"status\": \"draft\"}", 400)
        },
        get(
            "invalid UUID in the path",
            "/users/not-a-uuid/progress",
            400,
        ),
        get(
            "invalid UUID in the query",
            "/tools/woop/dependencies?user_id=123",
            400,
        ),
        get("unknown query parameter", "/progress?page=2", 400),
        get(
            "user_id twice",
            "/tools/woop/submission?user_id=a&user_id=b",
            400,
        ),
        get(
            "malformed query escape",
            "/tools/woop/dependencies?user_id=%zz",
            400,
        ),
        get("unknown slug on read", "/tools/nope/dependencies", 404),
        get("unknown route", "/admin", 404),
        Case {
            method: Method::POST,
            ..get("POST /progress", "/progress", 405)
        },
    ];
    let before = app.snapshot().await;
    let auth = format!("Bearer {}", ana.token);
    for case in cases {
        let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
        if let Some(content_type) = case.content_type {
            headers.push(("content-type", content_type));
        }
        for (name, value) in &case.headers {
            headers.push((name, value));
        }
        let response = app
            .request(case.method.clone(), &case.path, &headers, Some(&case.body))
            .await;
        assert_eq!(
            response.status, case.status,
            "{}: {:?}",
            case.name, response.body
        );
        let error = &response.body["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{}: {:?}",
            case.name,
            response.body
        );
        assert_eq!(
            error["request_id"].as_str(),
            response.header("x-request-id"),
            "{}",
            case.name
        );
        assert_eq!(
            app.snapshot().await,
            before,
            "{} wrote something",
            case.name
        );
        if case.status == 405 {
            assert!(response.header("allow").is_some(), "{}", case.name);
        }
    }
}

#[sqlx::test(migrations = false)]
async fn nesting_of_exactly_32_levels_is_accepted(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let auth = format!("Bearer {}", ana.token);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let ok = app
        .request(
            Method::PUT,
            "/tools/woop/submission",
            &headers,
            Some(nested(31).as_bytes()),
        )
        .await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
}

#[sqlx::test(migrations = false)]
async fn the_body_limit_is_configurable(pool: PgPool) {
    let app = TestApp::with_settings(pool, settings(&[("MAX_BODY_BYTES", "2048")])).await;
    let ana = app.user("ana", None, "user").await;
    let response = app
        .save(&ana, "woop", json!({"wish": "x".repeat(3000)}), "draft")
        .await;
    assert_eq!(response.status, 413);
}

#[tokio::test]
async fn a_lost_database_is_a_503_with_retry_after_and_no_leak() {
    // Nothing listens on port 1: every connection attempt fails at once.
    let mut database = crate::database_settings(
        "postgres://fasttrack:hunter2-password@127.0.0.1:1/fasttrack".into(),
        1,
    );
    // sqlx retries a refused connection until the acquire timeout: that is the bound.
    database.acquire_timeout = Duration::from_secs(2);
    let pool = shared::foundation::db::Pool::new(&database).unwrap();
    let app = App::new(pool, Registry::embedded(), settings(&[]), None).unwrap();
    let (token, _) = app.issue_token(uuid::Uuid::new_v4()).unwrap();
    // It answers once the acquire timeout is spent, rather than waiting on.
    let request = app.handle(
        http::Request::get("/progress")
            .header("authorization", format!("Bearer {token}"))
            .body(lambda_http::Body::Empty)
            .unwrap(),
    );
    let response = tokio::time::timeout(Duration::from_secs(60), request)
        .await
        .expect("an answer, not a hang");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let body = String::from_utf8(response.body().to_vec()).unwrap();
    assert!(body.contains("service_unavailable"));
    for leak in [
        "hunter2",
        "127.0.0.1",
        "Connection refused",
        "io error",
        "fasttrack:",
    ] {
        assert!(!body.contains(leak), "the body leaks {leak}: {body}");
    }
}

#[tokio::test]
async fn health_needs_no_database_and_no_token() {
    let database = crate::database_settings("postgres://x@127.0.0.1:1/x".into(), 1);
    let app = App::new(
        shared::foundation::db::Pool::new(&database).unwrap(),
        Registry::embedded(),
        settings(&[]),
        None,
    )
    .unwrap();
    let response = app
        .handle(
            http::Request::get("/health")
                .body(lambda_http::Body::Empty)
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn non_ascii_write_headers_are_rejected_not_ignored(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let before = app.snapshot().await;
    for header in ["if-match", "idempotency-key"] {
        let request = http::Request::put("/tools/woop/submission")
            .header("authorization", format!("Bearer {}", ana.token))
            .header("content-type", "application/json")
            .header(
                header,
                http::HeaderValue::from_bytes("schl\u{fc}ssel".as_bytes()).unwrap(),
            )
            .body(lambda_http::Body::Text(
                r#"{"data": {}, "status": "draft"}"#.into(),
            ))
            .unwrap();
        let response = app.app.handle(request).await;
        assert_eq!(response.status(), 400, "{header}");
    }
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrations = false)]
async fn the_statement_timeout_reaches_the_server_and_a_timeout_is_a_503(pool: PgPool) {
    if crate::behind_pooler() {
        return; // Behind a transaction pooler the timeout is the role's, not ours.
    }
    let url = {
        let database: String = sqlx::query_scalar("select current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        let options = pool.connect_options();
        format!(
            "postgres://{}@{}:{}/{database}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        )
    };
    let mut database = crate::database_settings(url, 1);
    database.statement_timeout = Duration::from_millis(300);
    let app_pool = shared::foundation::db::Pool::new(&database).unwrap();
    let mut conn = app_pool.acquire().await.unwrap();
    let shown: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(shown, "300ms");
    let err = sqlx::query("select pg_sleep(2)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    let error = shared::foundation::error::ApiError::from(err);
    assert_eq!(error.status().as_u16(), 503);
}

#[sqlx::test(migrations = false)]
async fn the_function_behind_the_gateways_catch_all_answers_as_the_local_server_does(pool: PgPool) {
    let function = shared::http::routes::UNMATCHED;
    let app = TestApp::serving(pool, settings(&[]), Some(function)).await;
    let local = TestApp::new(app.pool.clone()).await;
    // What API Gateway's `$default` route hands it: nothing a route matched.
    for (method, path, status, code, allow) in [
        (
            Method::DELETE,
            "/tools/woop/submission",
            405,
            "method_not_allowed",
            Some("GET, PUT"),
        ),
        (
            Method::HEAD,
            "/progress",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (
            Method::POST,
            "/users/x/progress",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (Method::GET, "/nope", 404, "route_not_found", None),
        (Method::GET, "/progress/", 404, "route_not_found", None),
        (
            Method::GET,
            "/tools/woop/outputs",
            404,
            "route_not_found",
            None,
        ),
        (
            Method::POST,
            "/tools/woop",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
    ] {
        for (who, app) in [("function", &app), ("local server", &local)] {
            let response = app.request(method.clone(), path, &[], None).await;
            assert_eq!(response.status, status, "{who}: {method} {path}");
            assert_eq!(response.code(), code, "{who}: {method} {path}");
            assert_eq!(response.header("allow"), allow, "{who}: {method} {path}");
            assert_eq!(
                response.header("x-request-id"),
                response.body["error"]["request_id"].as_str(),
                "{who}: {method} {path}"
            );
        }
    }
    // A browser's preflight reaches it too: an empty 204, to which API Gateway
    // adds the CORS headers it is configured with.
    let preflight = app
        .request(
            Method::OPTIONS,
            "/tools/woop/submission",
            &[
                ("origin", "https://app.example.test"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
            None,
        )
        .await;
    assert_eq!(preflight.status, 204, "{:?}", preflight.body);
    // Another function's route never reaches it, and is not served if it does.
    let other = app
        .request(Method::GET, "/tools/woop/dependencies", &[], None)
        .await;
    assert_eq!(other.status, 404);
    // Health is the local server's, for GET only.
    assert_eq!(
        app.request(Method::GET, "/health", &[], None).await.status,
        404
    );
    assert_eq!(
        local
            .request(Method::GET, "/health", &[], None)
            .await
            .status,
        200
    );
    let posted = local.request(Method::POST, "/health", &[], None).await;
    assert_eq!((posted.status, posted.header("allow")), (405, Some("GET")));
}

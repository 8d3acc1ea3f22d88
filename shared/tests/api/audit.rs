//! The audit log: every staff read of another person's data is recorded by
//! the statement that reads it; admins page through the log; the runtime role
//! can add to it and read it, never change it.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{TestApp, TestUser};

/// (action, actor, subjects, tool) of every audit row, oldest first.
async fn log(app: &TestApp) -> Vec<(String, Option<Uuid>, Vec<Uuid>, Option<String>)> {
    sqlx::query_as(
        "select action::text, actor_id, subjects, tool_slug::text from shared.audit_log order by id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

struct Cast {
    ana: TestUser,
    guru: TestUser,
    outsider: TestUser,
    admin: TestUser,
}

async fn cast(app: &TestApp) -> Cast {
    let cast = Cast {
        ana: app.user("ana", Some("acme"), "user").await,
        guru: app.user("guru", Some("acme"), "guru").await,
        outsider: app.user("outsider", Some("globex"), "guru").await,
        admin: app.user("admin", None, "admin").await,
    };
    app.submit_complete(&cast.ana, "woop").await;
    cast
}

#[sqlx::test(migrations = false)]
async fn a_staff_read_of_a_members_data_is_audited_by_the_read_itself(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let reads = [
        (
            format!("/users/{}/progress", c.ana.id),
            "read.progress",
            None,
        ),
        (
            format!("/tools/woop/submission?user_id={}", c.ana.id),
            "read.submission",
            Some("woop"),
        ),
        (
            format!("/tools/know-thyself/dependencies?user_id={}", c.ana.id),
            "read.dependencies",
            Some("know-thyself"),
        ),
    ];
    for (path, action, tool) in &reads {
        let response = app.get(path, &c.guru.token).await;
        assert_eq!(response.status, 200, "{path}: {:?}", response.body);
        let request_id = response.header("x-request-id").unwrap().to_owned();
        let last = log(&app).await.pop().expect("an audit row");
        assert_eq!(
            last,
            (
                action.to_string(),
                Some(c.guru.id),
                vec![c.ana.id],
                tool.map(str::to_owned)
            ),
            "{path}"
        );
        let recorded: String = sqlx::query_scalar(
            "select request_id::text from shared.audit_log order by id desc limit 1",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(recorded, request_id);
    }
    let audited = log(&app).await.len();

    // A user reading their own data, and a read the access rule refuses, write nothing.
    for path in [
        "/progress".to_owned(),
        format!("/tools/woop/submission?user_id={}", c.ana.id),
    ] {
        assert_eq!(app.get(&path, &c.ana.token).await.status, 200);
    }
    let refused = app
        .get(&format!("/users/{}/progress", c.ana.id), &c.outsider.token)
        .await;
    assert_eq!(refused.status, 404);
    assert_eq!(log(&app).await.len(), audited);
}

#[sqlx::test(migrations = false)]
async fn admins_page_through_the_log_filtered_and_nobody_else_reads_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for _ in 0..3 {
        app.get(&format!("/users/{}/progress", c.ana.id), &c.guru.token)
            .await;
    }
    app.get(&format!("/users/{}/progress", c.guru.id), &c.admin.token)
        .await;

    let first = app
        .get(
            &format!("/audit?subject={}&limit=2", c.ana.id),
            &c.admin.token,
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|e| e["subjects"][0] == c.ana.id.to_string())
    );
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first"
    );
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app
        .get(
            &format!("/audit?subject={}&limit=2&cursor={cursor}", c.ana.id),
            &c.admin.token,
        )
        .await;
    let rest = second.body["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);

    let by_admin = app
        .get(
            &format!("/audit?actor={}&action=read.progress", c.admin.id),
            &c.admin.token,
        )
        .await;
    assert_eq!(by_admin.body["items"].as_array().unwrap().len(), 1);

    for (who, status) in [(&c.guru, 403), (&c.ana, 403)] {
        let refused = app.get("/audit", &who.token).await;
        assert_eq!((refused.status, refused.code()), (status, "forbidden"));
    }
    for bad in [
        "/audit?action=read.everything",
        "/audit?limit=0",
        "/audit?cursor=x",
        "/audit?since=yesterday",
    ] {
        assert_eq!(app.get(bad, &c.admin.token).await.status, 400, "{bad}");
    }
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_can_add_to_the_log_but_never_change_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    app.get(&format!("/users/{}/progress", c.ana.id), &c.guru.token)
        .await;
    let mut conn = app.app.context.pool.acquire().await.unwrap();
    for statement in [
        "update shared.audit_log set actor_id = null",
        "delete from shared.audit_log",
        "truncate shared.audit_log",
    ] {
        let refused = sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert_eq!(
            refused
                .as_database_error()
                .and_then(|e| e.code())
                .as_deref(),
            Some("42501"),
            "{statement}"
        );
    }
    drop(conn);
    assert_eq!(log(&app).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn me_says_who_the_caller_is(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let me = app.get("/me", &c.guru.token).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["id"], c.guru.id.to_string());
    assert_eq!(me.body["name"], "guru");
    assert_eq!(me.body["email"], "guru@example.test");
    assert_eq!(me.body["role"], "guru");
    assert_eq!(me.body["organization"]["slug"], "acme");
    let admin = app.get("/me", &c.admin.token).await;
    assert_eq!(admin.body["organization"], Value::Null);
    assert_eq!(app.get("/me", "not-a-token").await.status, 401);
}

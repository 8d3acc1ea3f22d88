//! The service's pool in these tests is the runtime role's (migration 0004), as
//! on Lambda: every route the suite exercises works without DDL rights.

use sqlx::PgPool;

use crate::TestApp;

#[sqlx::test(migrations = false)]
async fn the_service_under_test_logs_in_as_the_runtime_role_without_ddl(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (user, creates_anywhere): (String, bool) = sqlx::query_as(
        "select current_user::text,
                exists (select from pg_namespace where has_schema_privilege(oid, 'CREATE'))
                or has_database_privilege(current_database(), 'CREATE, TEMPORARY')",
    )
    .fetch_one(&mut *app.app.context.pool.acquire().await.unwrap())
    .await
    .unwrap();
    assert_eq!(user, crate::runtime_role::RUNTIME_LOGIN);
    assert!(!creates_anywhere);
    let ana = app.user("ana", None, "user").await;
    let saved = app.submit_complete(&ana, "woop").await;
    assert_eq!(saved.status, 201, "{:?}", saved.body);
    assert_eq!(app.get("/progress", &ana.token).await.status, 200);
}

//! Database tests: each runs against its own fresh PostgreSQL database, created
//! by `#[sqlx::test]` on the server in DATABASE_URL, and migrated the way
//! `make migrate` does it.

mod catalog;
mod migrate;
mod pool;
mod privileges;
mod query_patterns;
#[path = "../support/runtime_role.rs"]
mod runtime_role;

use shared::{Registry, migrate::MigrationReport};
use sqlx::PgPool;

pub async fn migrated(pool: &PgPool) -> MigrationReport {
    shared::migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .expect("migrations apply to an empty database")
}

/// DATABASE_URL pointed at the test's own database, for tools run as processes.
pub async fn url_of(pool: &PgPool) -> String {
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for database tests");
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url.to_owned(), format!("?{query}")),
        None => (base.clone(), String::new()),
    };
    let (server, _) = without_query
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{server}/{database}{query}")
}

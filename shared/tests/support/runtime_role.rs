//! A login role in `fasttrack_runtime`, the group role migration 0004 grants the
//! service's DML to: what a Lambda connects as in production. Roles belong to the
//! cluster, so one login role serves every test database.

// Each test binary uses part of this module.
#![allow(dead_code)]

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

pub const RUNTIME_LOGIN: &str = "fasttrack_test_runtime";
/// Used where the server asks for a password (trust auth ignores it).
pub const RUNTIME_PASSWORD: &str = "runtime-test-password-not-deployed";

/// Creates the login role if it is missing (the pool's role needs CREATEROLE),
/// once the database is migrated.
pub async fn ensure_runtime_login(owner: &PgPool) {
    ensure_login(owner, RUNTIME_LOGIN, RUNTIME_PASSWORD, "fasttrack_runtime").await;
}

/// Creates `login` with `password` in the group role `group`, unless it exists.
async fn ensure_login(owner: &PgPool, login: &str, password: &str, group: &str) {
    let sql = format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}') THEN
                 CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE {group};
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$"
    );
    // The statement carries the password: sqlx would log it at debug.
    let options = owner
        .connect_options()
        .as_ref()
        .clone()
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("connecting as the owner");
    conn.execute(sqlx::AssertSqlSafe(sql))
        .await
        .unwrap_or_else(|e| panic!("creating the login role {login}: {e}"));
}

/// The owner pool's connection options, logging in as the runtime role instead.
pub fn runtime_options(owner: &PgPool) -> PgConnectOptions {
    owner
        .connect_options()
        .as_ref()
        .clone()
        .username(RUNTIME_LOGIN)
        .password(RUNTIME_PASSWORD)
}

/// The same database as a URL for the runtime role, through `host:port`.
pub async fn runtime_url(owner: &PgPool, host: &str, port: u16) -> String {
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(owner)
        .await
        .unwrap();
    format!("postgres://{RUNTIME_LOGIN}:{RUNTIME_PASSWORD}@{host}:{port}/{database}")
}

pub const ERASER_LOGIN: &str = "fasttrack_test_eraser";
pub const ERASER_PASSWORD: &str = "eraser-test-password-not-deployed";

/// A login in `fasttrack_eraser` (migration 0016), what the erase-users
/// function connects as, and its URL for the owner pool's database.
pub async fn eraser_url(owner: &PgPool) -> String {
    ensure_login(owner, ERASER_LOGIN, ERASER_PASSWORD, "fasttrack_eraser").await;
    let options = owner.connect_options();
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(owner)
        .await
        .unwrap();
    format!(
        "postgres://{ERASER_LOGIN}:{ERASER_PASSWORD}@{}:{}/{database}",
        options.get_host(),
        options.get_port()
    )
}

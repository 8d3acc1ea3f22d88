//! The harness's connections to PostgreSQL, and the names of its databases.

use anyhow::{Context, Result};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use shared::Registry;
use shared::foundation::db;
use shared::migrate;

/// The harness's own pool (sqlx's: it bulk-loads with COPY and runs ad hoc
/// statements), failing at once if the database cannot be reached.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool> {
    let options = database_url.parse().context("the database URL")?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(db::without_pooler_refused_parameters(options))
        .await
        .context("connecting to the database")
}

/// How long [`autovacuum_idle`] waits at most.
const AUTOVACUUM_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits, at most [`AUTOVACUUM_WAIT`], until no autovacuum worker runs anywhere on the
/// server: after the load's writes, autovacuum's passes over the large
/// database take one of the two cores for seconds at a time, and a side-by-
/// side measure at c=1 (or a cold start) that meets one says more about it
/// than about what it compares. Returns how many were still running.
pub async fn autovacuum_idle(pool: &PgPool) -> Result<i64> {
    let deadline = std::time::Instant::now() + AUTOVACUUM_WAIT;
    loop {
        let running: i64 = db::query_scalar(
            "select count(*) from pg_stat_activity where backend_type = 'autovacuum worker'",
        )
        .fetch_one(pool)
        .await?;
        if running == 0 || std::time::Instant::now() >= deadline {
            return Ok(running);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The service's migrations and tool schemas, applied through `pool`.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    migrate::run(&mut conn, Registry::embedded()).await?;
    Ok(())
}

/// The login the function binaries run as: a member of `fasttrack_runtime`,
/// as in production, since a route function refuses the schemas' owner. The
/// API tests' (shared/tests/support/runtime_role.rs), which the test PgBouncer
/// also knows (scripts/pgbouncer.sh).
const RUNTIME_LOGIN: &str = "fasttrack_test_runtime";
const RUNTIME_PASSWORD: &str = "runtime-test-password-not-deployed";

/// `owner_url` logging in as the runtime login instead, which the migrate
/// step makes (through `owner`, a pool on a migrated database) if need be.
pub async fn runtime_url(owner: &PgPool, owner_url: &str) -> Result<String> {
    let url = with_login(owner_url, RUNTIME_LOGIN, RUNTIME_PASSWORD);
    let mut conn = owner.acquire().await?;
    migrate::ensure_runtime_login(&mut conn, &url)
        .await
        .context("making the runtime login")?;
    Ok(url)
}

/// `url` logging in as the runtime login, made earlier on its server by
/// [`runtime_url`] (roles belong to the cluster): a pooler's URL, say.
pub fn as_runtime_login(url: &str) -> String {
    with_login(url, RUNTIME_LOGIN, RUNTIME_PASSWORD)
}

/// `url` with its user and password replaced.
fn with_login(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let place = rest.split_once('@').map_or(rest, |(_, place)| place);
    format!("{scheme}://{user}:{password}@{place}")
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_is_replaced_and_the_place_kept() {
        assert_eq!(
            with_login("postgres://owner:pw@h:5432/app?sslmode=require", "rt", "p"),
            "postgres://rt:p@h:5432/app?sslmode=require"
        );
        assert_eq!(
            with_login("postgres://h/app", "rt", "p"),
            "postgres://rt:p@h/app"
        );
    }

    #[test]
    fn the_database_name_is_replaced_and_options_are_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/app?sslmode=require", "bench"),
            "postgres://u@h:5432/bench?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "bench"),
            "postgres://u@h:5432/bench"
        );
    }
}

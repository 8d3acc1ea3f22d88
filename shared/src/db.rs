//! Connection pools. Lambda runs one request at a time per container, so pools
//! are small and built once per cold start, never per request.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::{ConfigError, DatabaseSettings};

const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(30);

/// A pool whose connections open on first use, so a cold start neither waits for
/// nor fails on the database; requests made while it is down get a 503.
pub fn connect_lazy(settings: &DatabaseSettings) -> Result<PgPool, ConfigError> {
    // The parse error is not shown: it could echo the password.
    let mut options =
        PgConnectOptions::from_str(settings.url.expose()).map_err(|_| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: "not a valid PostgreSQL connection URL".into(),
        })?;
    if !settings.statement_cache {
        options = options.statement_cache_capacity(0);
    }
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx's default pings every connection before handing it out: a round
        // trip per request. Only a connection idle long enough to have been
        // dropped (a frozen Lambda, a pooler's idle timeout) is checked first.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options))
}

/// A pool for tools (CLI, migrations) that want to fail at once if the database is down.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
}

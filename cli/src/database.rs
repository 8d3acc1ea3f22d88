//! Reaching the database a command works on.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};

use crate::args::Database;
use shared::app::App;
use shared::foundation::config::DatabaseSettings;
use shared::foundation::config::Environment;
use shared::foundation::config::Layered;
use shared::foundation::config::PoolerMode;
use shared::foundation::config::Source;
use shared::foundation::db;

/// What a command connects for: its statement limit is the one its function
/// has in template.yaml.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Reads and writes as the routes make them (DATABASE_STATEMENT_TIMEOUT_MS,
    /// 7 s by default).
    Service,
    /// The recompute: long set-based statements (60 s unless
    /// DATABASE_STATEMENT_TIMEOUT_MS says otherwise).
    Recompute,
    /// Migrations: a session of their own and no statement limit.
    Migrate,
}

/// A pool on the command's database, with the other `DATABASE_*` settings read
/// from the environment as the functions read them. It fails at once if the
/// database cannot be reached.
pub async fn connect(database: &Database, use_: Use) -> Result<db::Pool> {
    let mut values = HashMap::from([
        ("DATABASE_URL", database.database_url.clone()),
        ("DATABASE_POOLER_MODE", database.pooler_mode.clone()),
    ]);
    if use_ == Use::Recompute && Environment.get("DATABASE_STATEMENT_TIMEOUT_MS").is_none() {
        values.insert("DATABASE_STATEMENT_TIMEOUT_MS", "60000".into());
    }
    let mut settings = DatabaseSettings::from_source(&Layered {
        values,
        fallback: &Environment,
    })?;
    // The recompute needs two connections (one holds its lock).
    settings.max_connections = settings.max_connections.max(2);
    // By hand, right after a database starts, waiting a little longer is right.
    settings.acquire_timeout = settings.acquire_timeout.max(db::TOOL_ACQUIRE_TIMEOUT);
    if use_ == Use::Migrate {
        if settings.pooler_mode == PoolerMode::Transaction {
            bail!(
                "migrate takes session-level locks: point --database-url at PostgreSQL itself \
                 (or a session-mode pooler) with --pooler-mode session"
            );
        }
        settings.statement_timeout = std::time::Duration::ZERO;
    }
    let pool = db::Pool::new(&settings)?;
    pool.acquire().await?.release();
    Ok(pool)
}

pub async fn user_by_email(app: &App, email: &str) -> Result<uuid::Uuid> {
    let id: Option<uuid::Uuid> = app
        .context
        .pool
        .read(async |conn| {
            db::query_scalar("select id from shared.users where lower(email) = lower($1)")
                .bind(email)
                .fetch_optional(conn)
                .await
        })
        .await?;
    id.with_context(|| format!("no user has the email {email}"))
}

/// Whether the database is on this machine (a loopback address, `localhost`
/// or a Unix socket): demo data and printed tokens are for such a database.
pub fn on_this_machine(database_url: &str) -> bool {
    let Ok(options) = database_url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return false;
    };
    let host = options.get_host();
    host == "localhost"
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

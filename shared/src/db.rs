//! Connection pools and how statements are sent.
//!
//! Lambda runs one request at a time per container, so pools are small and built
//! once per cold start, never per request.
//!
//! Every statement goes through [`query`], [`query_as`] or [`query_scalar`], which
//! apply the pooler mode (`DATABASE_POOLER_MODE`):
//!
//! - `session` (a direct connection, or a session-mode pooler): named prepared
//!   statements, cached per connection; a read is one round trip.
//! - `transaction` (PgBouncer, RDS Proxy or Supabase's pooler in transaction
//!   mode): unnamed statements, and even a single-statement read runs inside an
//!   explicit transaction, because sqlx prepares and executes in two exchanges and
//!   the pooler may hand the client another server between them. A read then
//!   costs four round trips (BEGIN, prepare, execute, COMMIT).
//!
//! No session state is ever set: names are schema-qualified, never `search_path`.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Connection, FromRow, PgConnection, PgPool, Postgres, SqlSafeStr, Transaction};

use crate::config::{ConfigError, DatabaseSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerMode {
    Session,
    Transaction,
}

impl FromStr for PoolerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!("`{other}`: expected session or transaction")),
        }
    }
}

/// One process talks to one database, so the mode is process-wide: set once
/// when the pool is built at cold start.
static TRANSACTION_POOLER: AtomicBool = AtomicBool::new(false);

fn behind_transaction_pooler() -> bool {
    TRANSACTION_POOLER.load(Ordering::Relaxed)
}

pub fn query<'q>(sql: impl SqlSafeStr) -> Query<'q, Postgres, PgArguments> {
    sqlx::query(sql).persistent(!behind_transaction_pooler())
}

pub fn query_as<'q, O>(sql: impl SqlSafeStr) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(!behind_transaction_pooler())
}

pub fn query_scalar<'q, O>(sql: impl SqlSafeStr) -> QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(!behind_transaction_pooler())
}

/// The connection one request reads through: a pooled connection, or behind a
/// transaction pooler an explicit transaction that pins one server.
pub enum Session {
    Direct(PoolConnection<Postgres>),
    Pinned(Transaction<'static, Postgres>),
}

impl Session {
    pub async fn begin(pool: &PgPool) -> Result<Self, sqlx::Error> {
        if behind_transaction_pooler() {
            Ok(Self::Pinned(pool.begin().await?))
        } else {
            Ok(Self::Direct(pool.acquire().await?))
        }
    }

    /// Ends the read (commits the pinning transaction, which wrote nothing).
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Direct(_) => Ok(()),
            Self::Pinned(tx) => tx.commit().await,
        }
    }
}

impl Deref for Session {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Self::Direct(conn) => conn,
            Self::Pinned(tx) => tx,
        }
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Direct(conn) => conn,
            Self::Pinned(tx) => tx,
        }
    }
}

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
    let transaction_pooler = settings.pooler_mode == PoolerMode::Transaction;
    TRANSACTION_POOLER.store(transaction_pooler, Ordering::Relaxed);
    if transaction_pooler {
        // Poolers drop or refuse startup options: set the timeouts on the role.
        options = options.statement_cache_capacity(0);
    } else if let Some(timeout) = settings.statement_timeout {
        let ms = timeout.as_millis().to_string();
        options = options.options([
            ("statement_timeout", ms.as_str()),
            ("lock_timeout", ms.as_str()),
        ]);
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

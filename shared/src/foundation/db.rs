//! The connection pool and how statements are sent.
//!
//! Lambda runs one request at a time per container, so pools are small and built
//! once per cold start, never per request.
//!
//! Every statement goes through [`query`], [`query_as`] or [`query_scalar`], which
//! apply the pooler mode (`DATABASE_POOLER_MODE`):
//!
//! - `session` (a direct connection, or a session-mode pooler): named prepared
//!   statements, cached per connection; a read is one round trip. (The
//!   recompute's survey and unlock opt out with `.persistent(false)`: a named
//!   statement's generic plan guesses a batch's size badly.)
//! - `transaction` (PgBouncer, RDS Proxy or Supabase's pooler in transaction
//!   mode): unnamed statements, and even a single-statement read runs inside an
//!   explicit transaction, because sqlx prepares and executes in two exchanges and
//!   the pooler may hand the client another server between them. A read then
//!   costs four round trips (BEGIN, prepare, execute, COMMIT).
//!
//! No session state is ever set: names are schema-qualified, never `search_path`.
//!
//! # Why not sqlx's pool
//!
//! sqlx's pool pings every connection it takes back, so each request made a
//! second round trip after its answer, and that ping has no time limit: on a
//! connection whose peer vanished (a Lambda thawed after its NAT mapping
//! expired) it waits forever and keeps the pool slot (sqlx issue 4349). Here
//! [`Pool`] is deadpool's pool around sqlx connections, and a [`Conn`] goes back
//! in one of two ways:
//!
//! - [`Conn::release`]: its exchanges are over (the transaction committed, the
//!   read's rows all read); it is reused as it is, with no round trip.
//! - dropped without it (an error, a request timeout): it is flushed first
//!   (within [`FLUSH_TIMEOUT`]), so a transaction the error abandoned rolls back
//!   and a half-read answer is drained; a statement still running after
//!   [`CANCEL_AFTER`] is cancelled first, from a connection of its own. If that
//!   fails, the connection is closed rather than reused. A request awaits its
//!   abandoned connections ([`Pool::quiesce`]) before its answer goes out, so
//!   no lock outlives the request that took it.
//!
//! A connection idle for [`PING_WHEN_IDLE_FOR`] is pinged before it is handed
//! out again, so one a pooler or the network dropped in the meantime is
//! replaced instead of failing the request.

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, RecycleResult};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow, PgSslMode};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Connection, FromRow, PgConnection, Postgres, Row, SqlSafeStr};
use tokio::task::JoinHandle;

use crate::foundation::config::{ConfigError, DatabaseSettings, PoolerMode};

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

/// [`query_as`] with its arguments already encoded.
pub fn query_as_with<'q, O>(
    sql: impl SqlSafeStr,
    arguments: PgArguments,
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as_with(sql, arguments).persistent(!behind_transaction_pooler())
}

/// [`query_scalar`] with its arguments already encoded.
pub fn query_scalar_with<'q, O>(
    sql: impl SqlSafeStr,
    arguments: PgArguments,
) -> QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar_with(sql, arguments).persistent(!behind_transaction_pooler())
}

/// A connection idle this long is pinged before it is handed out again.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(30);

/// How long a connection given back mid-exchange may take to flush before it is
/// closed instead. Longer than the default statement timeout, so a statement
/// still running when its request gave up normally finishes first.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection, its `application_name` (how [`Manager::cancel`] finds
/// its server process), and when it was last given back.
pub struct Pooled {
    conn: PgConnection,
    name: String,
    idle_since: Instant,
}

/// Reads the database URL again (the secret's current value), for credentials
/// rotated since the cold start; `None` when it cannot be read.
pub type ReadUrl = Arc<dyn Fn() -> BoxFuture<Option<String>> + Send + Sync>;

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// How often, at most, a refused login makes the pool read its URL again.
pub const REREAD_URL_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Opens connections for the pool and checks idle ones before reuse.
pub struct Manager {
    options: Mutex<PgConnectOptions>,
    reread: Option<Reread>,
    login: Login,
    /// Connections given back mid-exchange, being brought to rest.
    abandoned: Mutex<Vec<JoinHandle<()>>>,
}

/// What a pool needs to follow rotated credentials: the settings its options
/// were built from, and where the URL is read again.
struct Reread {
    settings: DatabaseSettings,
    read_url: ReadUrl,
    last: Mutex<Option<Instant>>,
}

impl Manager {
    /// A warm function keeps the URL it read at its cold start. When the
    /// database refuses those credentials (a password rotated, a role replaced
    /// by alternating-users rotation), the secret is read again, at most every
    /// [`REREAD_URL_AT_MOST_EVERY`], and the new options kept for every later
    /// connection. `None` when there is nothing new to try.
    async fn reread_url(&self) -> Option<PgConnectOptions> {
        let reread = self.reread.as_ref()?;
        {
            let mut last = reread.last.lock().expect("not poisoned");
            if last.is_some_and(|at| at.elapsed() < REREAD_URL_AT_MOST_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        tracing::warn!("the database refused the credentials; reading the database secret again");
        let url = (reread.read_url)().await?;
        let options = connect_options(&url, &reread.settings).ok()?;
        *self.options.lock().expect("not poisoned") = options.clone();
        Some(options)
    }
}

impl Manager {
    fn new(options: PgConnectOptions, reread: Option<Reread>, login: Login) -> Self {
        Self {
            options: Mutex::new(options),
            reread,
            login,
            abandoned: Mutex::default(),
        }
    }

    /// Cancels the statement the connection named `name` is running, from a
    /// connection of its own (the pool's may all be taken). PostgreSQL lets a
    /// role cancel its own sessions' statements.
    async fn cancel(&self, name: &str) {
        let options = self
            .options
            .lock()
            .expect("not poisoned")
            .clone()
            .application_name("fasttrack-cancel");
        let cancelled = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            // The cancel in the target list, which is computed only for the
            // rows the WHERE clause keeps: beside the name in the WHERE
            // clause, the planner could call it for every session.
            let found: i64 = sqlx::query_scalar(
                "select count(*) filter (where pg_cancel_backend(pid)) from pg_stat_activity
                 where application_name = $1",
            )
            .bind(name)
            .persistent(false)
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(found)
        };
        match cancelled.await {
            Ok(found) => tracing::debug!(found, "cancelled an abandoned statement"),
            Err(error) => tracing::warn!(%error, "cancelling an abandoned statement failed"),
        }
    }
}

impl managed::Manager for Manager {
    type Type = Pooled;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Pooled, sqlx::Error> {
        let mut options = self.options.lock().expect("not poisoned").clone();
        // Each connection a name of its own, so that a statement a request
        // gave up on can be cancelled from another connection. PgBouncer
        // passes application_name on to the server connection that runs our
        // transaction, so this holds behind a transaction pooler too.
        let name = format!("fasttrack-{}", uuid::Uuid::new_v4().simple());
        options = options.application_name(&name);
        let conn = match PgConnection::connect_with(&options).await {
            Err(error) if credentials_refused(&error) => match self.reread_url().await {
                Some(options) => PgConnection::connect_with(&options).await?,
                None => return Err(error),
            },
            connected => connected?,
        };
        let mut conn = conn;
        if self.login == Login::Runtime && owns_the_schemas(&mut conn).await? {
            let _ = conn.close().await;
            return Err(sqlx::Error::Configuration(Box::new(OwnerLogin)));
        }
        Ok(Pooled {
            conn,
            name,
            idle_since: Instant::now(),
        })
    }

    async fn recycle(&self, pooled: &mut Pooled, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if pooled.idle_since.elapsed() >= PING_WHEN_IDLE_FOR {
            pooled.conn.ping().await?;
        }
        Ok(())
    }
}

/// Who a pool may log in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Anyone: the jobs and the tools (migrations need the schemas' owner).
    Any,
    /// A role without the schemas' privileges: the route functions and the
    /// eraser. A login
    /// that owns the schemas (or is a member of their owner) or is a superuser
    /// is refused at connect time: its every statement could drop or rewrite
    /// anything, and the least-privilege grants would mean nothing.
    Runtime,
}

/// A route function's connection logs in as the schemas' owner.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database login owns the schemas or is a superuser: the route functions need a login in \
     fasttrack_runtime, the eraser one in fasttrack_eraser (the migrate function makes them from \
     RUNTIME_DATABASE_SECRET_ARN and ERASER_DATABASE_SECRET_ARN; see the README, Deploying)"
)]
pub struct OwnerLogin;

impl OwnerLogin {
    /// Whether `error` is this refusal.
    pub fn is(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Configuration(e) if e.is::<OwnerLogin>())
    }
}

/// Whether the connection's login may act as the owner of `shared` (a
/// database not yet migrated has no owner to compare with).
async fn owns_the_schemas(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let owner: Option<bool> = sqlx::query_scalar(
        "select r.rolsuper or pg_has_role(r.oid, n.nspowner, 'USAGE')
         from pg_roles r, pg_namespace n
         where r.rolname = current_user and n.nspname = 'shared'",
    )
    .persistent(false)
    .fetch_optional(conn)
    .await?;
    Ok(owner.unwrap_or(false))
}

/// The acquire timeout of the pools tools and tests make.
pub const TOOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type Early = JoinHandle<Result<Object<Manager>, sqlx::Error>>;

/// The service's connection pool: see the module documentation.
#[derive(Clone)]
pub struct Pool {
    inner: managed::Pool<Manager>,
    acquire_timeout: Duration,
    /// The connections [`Pool::connect_early`] is opening, for the first acquires.
    early: Arc<Mutex<Vec<Early>>>,
}

impl Pool {
    /// The service's pool, from its settings. Nothing connects yet: connections
    /// open on first use, or from [`Pool::connect_early`].
    pub fn new(settings: &DatabaseSettings) -> Result<Self, ConfigError> {
        Self::following(settings, None, Login::Any)
    }

    /// [`Pool::new`], reading the URL again with `read_url` when the database
    /// refuses the credentials (see `Manager::reread_url`).
    pub fn following(
        settings: &DatabaseSettings,
        read_url: Option<ReadUrl>,
        login: Login,
    ) -> Result<Self, ConfigError> {
        let options = connect_options(settings.url.expose(), settings)?;
        TRANSACTION_POOLER.store(
            settings.pooler_mode == PoolerMode::Transaction,
            Ordering::Relaxed,
        );
        let manager = Manager::new(
            options,
            read_url.map(|read_url| Reread {
                settings: settings.clone(),
                read_url,
                last: Mutex::new(None),
            }),
            login,
        );
        Ok(Self::with_manager(
            manager,
            settings.max_connections as usize,
            settings.acquire_timeout,
        ))
    }

    /// A pool on `options` as they are (tools and tests), in session mode.
    pub fn with_options(
        options: PgConnectOptions,
        max_connections: usize,
        acquire_timeout: Duration,
    ) -> Self {
        Self::with_login(options, max_connections, acquire_timeout, Login::Any)
    }

    /// [`Pool::with_options`], allowing only `login`.
    pub fn with_login(
        options: PgConnectOptions,
        max_connections: usize,
        acquire_timeout: Duration,
        login: Login,
    ) -> Self {
        let manager = Manager::new(options, None, login);
        Self::with_manager(manager, max_connections, acquire_timeout)
    }

    fn with_manager(manager: Manager, max_connections: usize, acquire_timeout: Duration) -> Self {
        let inner = managed::Pool::builder(manager)
            .max_size(max_connections.max(1))
            // The most recently used connection first: the others idle out and
            // are checked, rather than every connection staying barely warm.
            .queue_mode(managed::QueueMode::Lifo)
            .build()
            .expect("a pool without timeouts needs no runtime");
        Self {
            inner,
            acquire_timeout,
            early: Arc::default(),
        }
    }

    /// A pool on the database and role of a sqlx pool (a `#[sqlx::test]` pool).
    pub fn on_same_database(pool: &sqlx::PgPool, max_connections: usize) -> Self {
        Self::with_options(
            (*pool.connect_options()).clone(),
            max_connections,
            TOOL_ACQUIRE_TIMEOUT,
        )
    }

    /// A pool for tools (the CLI, the bench) that fails at once if the database
    /// cannot be reached.
    pub async fn connect(database_url: &str, max_connections: usize) -> Result<Self, sqlx::Error> {
        let options = without_pooler_refused_parameters(database_url.parse()?);
        let pool = Self::with_options(options, max_connections, TOOL_ACQUIRE_TIMEOUT);
        pool.acquire().await?.release();
        Ok(pool)
    }

    /// Starts opening `count` connections now (at most the pool's size), in the
    /// background and side by side, while the rest of a cold start runs: a
    /// route function needs one. [`Pool::finish_connecting`] waits for them
    /// and puts them in the pool, and an acquire made before that takes one.
    /// It yields once, so that on a current-thread runtime (the functions')
    /// the name lookups and TCP handshakes are under way while the caller
    /// goes on.
    pub async fn connect_early(&self, count: usize) {
        let opening = (0..count.min(self.max_size())).map(|_| {
            let pool = self.clone();
            tokio::spawn(async move { pool.open().await })
        });
        self.early.lock().expect("not poisoned").extend(opening);
        tokio::task::yield_now().await;
    }

    /// Waits for the connections [`Pool::connect_early`] is opening and puts
    /// them in the pool (a route function runs it beside its first poll, see
    /// `startup::cold_start_pool`). A login the pool refuses (the schemas'
    /// owner, for [`Login::Runtime`]) is a configuration error. Any other
    /// failure is only logged: the first request tries again and answers 503
    /// if it fails too.
    pub async fn finish_connecting(&self) -> Result<(), ConfigError> {
        let early = std::mem::take(&mut *self.early.lock().expect("not poisoned"));
        for opening in early {
            match opening.await {
                Ok(Ok(object)) => Conn::new(object).release(),
                Ok(Err(error)) if OwnerLogin::is(&error) => {
                    return Err(ConfigError::Invalid {
                        name: "DATABASE_URL",
                        reason: OwnerLogin.to_string(),
                    });
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the database could not be reached at cold start");
                }
                Err(error) => tracing::warn!(%error, "opening a connection early failed"),
            }
        }
        Ok(())
    }

    pub fn max_size(&self) -> usize {
        self.inner.status().max_size
    }

    /// Connections open now, idle or in use.
    pub fn size(&self) -> usize {
        self.inner.status().size
    }

    /// Connections idle in the pool now, ready to be handed out.
    pub fn idle(&self) -> usize {
        self.inner.status().available
    }

    /// A connection, within the acquire timeout (`PoolTimedOut` after it).
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        let early = self.early.lock().expect("not poisoned").pop();
        if let Some(opening) = early
            && let Ok(Ok(object)) = opening.await
        {
            return Ok(Conn::new(object));
        }
        // None opening, or it failed: this acquire tries (again) itself.
        self.open().await.map(Conn::new)
    }

    /// A connection from the pool, or a new one. A server that refuses
    /// connections for a moment (restarting, failing over, at its connection
    /// limit) is tried again, backing off, until the acquire timeout: a request
    /// then waits out a short outage instead of failing.
    async fn open(&self) -> Result<Object<Manager>, sqlx::Error> {
        let deadline = Instant::now() + self.acquire_timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let error = match tokio::time::timeout(left, self.inner.get()).await {
                Ok(Ok(object)) => return Ok(object),
                Ok(Err(managed::PoolError::Backend(error))) => error,
                Ok(Err(managed::PoolError::Closed)) => return Err(sqlx::Error::PoolClosed),
                Ok(Err(_)) | Err(_) => return Err(sqlx::Error::PoolTimedOut),
            };
            if !refused_for_now(&error) {
                return Err(error);
            }
            if Instant::now() + backoff >= deadline {
                // The refusal itself, not a bare timeout: the log (and the
                // CLI's message) then says why, as "connection refused" or
                // "too many clients" (both still a 503).
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.acquire_timeout / 5);
        }
    }

    /// Runs `f` in a transaction on one connection: committed when `f` returns
    /// `Ok`, rolled back when it returns `Err`, before either result is
    /// returned. (Left to the connection's flush on drop, the rollback would run
    /// in a background task: on Lambda, which freezes the environment once the
    /// answer is out, the transaction's row locks could outlive the request.)
    pub async fn transaction<T, E>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut conn = self.acquire().await?;
        let mut tx = Connection::begin(&mut *conn).await?;
        match f(&mut *tx).await {
            Ok(value) => {
                tx.commit().await?;
                conn.release();
                Ok(value)
            }
            Err(error) => {
                // If the rollback fails, the connection is dropped and flushed
                // or closed; the caller gets the error it caused.
                if tx.rollback().await.is_ok() {
                    conn.release();
                }
                Err(error)
            }
        }
    }

    /// Runs `f` on a plain connection, also behind a transaction pooler, for
    /// `f` that sends exactly one statement: one statement is a transaction of its
    /// own, and every part of it (each `union all` branch, each CTE, a
    /// data-modifying one included) reads the one snapshot taken when it
    /// starts (PostgreSQL's documentation, 13.2.1 and 7.8.4). So it is as
    /// consistent as a REPEATABLE READ transaction around it, without the
    /// round trips of its BEGIN and COMMIT.
    pub async fn one_statement<T, E>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        self.plain(f).await
    }

    /// Runs one request's reads: on a plain connection, or behind a transaction
    /// pooler inside a transaction that pins one server (it writes nothing).
    pub async fn read<T, E>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        if behind_transaction_pooler() {
            return self.transaction(f).await;
        }
        self.plain(f).await
    }

    /// Runs `f` on a connection outside any transaction of ours.
    async fn plain<T, E>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut conn = self.acquire().await?;
        let value = f(&mut *conn).await?;
        conn.release();
        Ok(value)
    }

    /// Waits until every connection given back mid-exchange (a request that
    /// timed out, an error mid-read) is at rest: its abandoned statement
    /// cancelled, its transaction rolled back, its locks released. Called
    /// before a request's answer goes out, since Lambda may freeze the
    /// environment right after, and a background task would then never run.
    pub async fn quiesce(&self) {
        let abandoned =
            std::mem::take(&mut *self.inner.manager().abandoned.lock().expect("not poisoned"));
        for flushing in abandoned {
            let _ = flushing.await;
        }
    }

    /// Closes the idle connections politely and refuses new acquires.
    pub async fn close(&self) {
        self.inner.close();
        let idle = self.inner.retain(|_, _| false);
        for pooled in idle.removed {
            let _ = pooled.conn.close().await;
        }
    }
}

/// The options of `url` for the service: the settings' pooler mode and
/// timeouts applied.
fn connect_options(
    url: &str,
    settings: &DatabaseSettings,
) -> Result<PgConnectOptions, ConfigError> {
    // The parse error is not shown: it could echo the password.
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: "not a valid PostgreSQL connection URL".into(),
        })
        .map(without_pooler_refused_parameters)?;
    let options = verified_tls(options, url)?;
    Ok(if settings.pooler_mode == PoolerMode::Transaction {
        // Poolers drop or refuse startup options: set the timeouts on the role.
        options.statement_cache_capacity(0)
    } else {
        // Zero too, so that "none" overrides a limit set on the role.
        let ms = settings.statement_timeout.as_millis().to_string();
        options.options([
            ("statement_timeout", ms.as_str()),
            ("lock_timeout", ms.as_str()),
            ("idle_in_transaction_session_timeout", ms.as_str()),
        ])
    })
}

/// The certificate authorities of Amazon RDS and RDS Proxy
/// (`config/rds-ca-bundle.pem`, made by `scripts/rds-ca-bundle.sh`): what a
/// database certificate is checked against unless the URL names its own.
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("../../../config/rds-ca-bundle.pem");

/// TLS as the service requires it: a database on another machine is reached
/// with `sslmode=verify-full` (the certificate signed by a known authority and
/// naming the host), against [`RDS_CA_BUNDLE`] unless the URL gives an
/// `sslrootcert`. A URL without `sslmode` gets that; one asking for less
/// (`disable`, `allow`, `prefer`, `require`) is refused. A server on this
/// machine (a loopback address, `localhost` or a Unix socket: `make run`, a
/// sidecar pooler) keeps what its URL says, sqlx's `prefer` by default.
fn verified_tls(options: PgConnectOptions, url: &str) -> Result<PgConnectOptions, ConfigError> {
    let query = url.split_once('?').map_or("", |(_, query)| query);
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    };
    if on_this_machine(options.get_host()) {
        return Ok(options);
    }
    let options = match param("sslmode").as_deref() {
        None | Some("verify-full") => options.ssl_mode(PgSslMode::VerifyFull),
        Some("verify-ca") => options,
        Some(other) => {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: format!(
                    "sslmode={other} leaves the server unverified: a database on another machine \
                     needs verify-full (the RDS CA bundle is built in; sslrootcert names another), \
                     and weaker modes are for a server on this machine only"
                ),
            });
        }
    };
    Ok(if param("sslrootcert").is_some() {
        options
    } else {
        options.ssl_root_cert_from_pem(RDS_CA_BUNDLE.to_vec())
    })
}

/// A loopback address, `localhost`, or a Unix socket's directory.
fn on_this_machine(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `options` without the startup parameter that sqlx adds on its own,
/// `extra_float_digits`, which PgBouncer refuses ("unsupported startup
/// parameter") unless its `ignore_startup_parameters` lists it. PostgreSQL 12
/// and later already send floats exactly at the default, and floats go in
/// binary anyway.
pub fn without_pooler_refused_parameters(options: PgConnectOptions) -> PgConnectOptions {
    options.extra_float_digits(None)
}

/// The database refused the login itself: a wrong password (28P01), or a role
/// that does not exist or may not log in (28000).
fn credentials_refused(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")))
}

/// A new connection was refused in a way that passes: nothing listening yet
/// (a restart), the server starting up or shutting down, or at its connection
/// limit. The same conditions sqlx's own pool retries.
fn refused_for_now(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// A connection out of the [`Pool`]; it goes back when dropped. See the module
/// documentation for [`Conn::release`].
pub struct Conn {
    object: Option<Object<Manager>>,
    in_sync: bool,
}

impl Conn {
    fn new(object: Object<Manager>) -> Self {
        Self {
            object: Some(object),
            in_sync: false,
        }
    }

    /// Gives the connection back as it is. Call it only when every exchange on
    /// it has finished: a transaction committed or rolled back, a read's rows all
    /// read. Otherwise drop it, and it is flushed before anyone reuses it.
    pub fn release(mut self) {
        self.in_sync = true;
    }

    fn pooled(&self) -> &Pooled {
        self.object.as_ref().expect("present until dropped")
    }

    fn pooled_mut(&mut self) -> &mut Pooled {
        self.object.as_mut().expect("present until dropped")
    }
}

impl Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.pooled().conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.pooled_mut().conn
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(mut object) = self.object.take() else {
            return;
        };
        object.idle_since = Instant::now();
        if self.in_sync {
            return; // back in the pool as it is
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let pool = Object::pool(&object);
                let flushing = runtime.spawn(flush(object));
                if let Some(pool) = pool {
                    pool.manager()
                        .abandoned
                        .lock()
                        .expect("not poisoned")
                        .push(flushing);
                }
            }
            // No runtime left to flush on: close it rather than reuse it.
            Err(_) => drop(Object::take(object)),
        }
    }
}

/// How long a connection given back mid-exchange may stay busy before the
/// statement it is still running is cancelled.
pub const CANCEL_AFTER: Duration = Duration::from_millis(50);

/// Sends what the connection still owes the server (a queued ROLLBACK) and
/// reads what it still owes us, ends a transaction a given-up request left
/// open, then gives it back; closes it if that fails. A statement still
/// running after [`CANCEL_AFTER`] (one waiting on a lock, say) is cancelled
/// first, so that its transaction ends now rather than when it would have.
async fn flush(mut object: Object<Manager>) {
    let settled = match tokio::time::timeout(CANCEL_AFTER, settle(&mut object.conn)).await {
        Ok(settled) => settled,
        Err(_) => {
            if let Some(pool) = Object::pool(&object) {
                pool.manager().cancel(&object.name).await;
            }
            tokio::time::timeout(FLUSH_TIMEOUT, settle(&mut object.conn))
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        }
    };
    if let Err(error) = settled {
        tracing::debug!(%error, "closing a connection that failed to flush");
        drop(Object::take(object));
    }
}

/// Brings a connection given back mid-exchange to rest outside any
/// transaction. Running a statement first sends what sqlx queued (a
/// transaction's ROLLBACK) and reads what is left of an answer. sqlx queues
/// no ROLLBACK for a `begin()` given up after its BEGIN went out, so the
/// statement also asks whether it runs inside an older transaction (only a
/// transaction's first statement sees its start as `now()`) and, if so, ends
/// it; in a transaction a failed statement aborted, it fails, and the
/// transaction is rolled back all the same. One round trip, two for those
/// rare cases; the simple protocol, so it suits a transaction pooler too.
async fn settle(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let inside = match sqlx::raw_sql("select now() <> statement_timestamp()")
        .fetch_one(&mut *conn)
        .await
    {
        Ok(row) => row.try_get(0)?,
        // in_failed_sql_transaction
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("25P02") => true,
        Err(error) => return Err(error),
    };
    if inside {
        sqlx::raw_sql("rollback").execute(&mut *conn).await?;
    }
    Ok(())
}

/// Stores an enum in a text column (one with a CHECK constraint on its
/// values) as its `as_str()`, read back with its `parse()`: bound and decoded
/// as `text`, so a status is the enum from the row to the answer.
macro_rules! text_column {
    ($type:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $type {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $type {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $type {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $type {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Self::parse(text)
                    .ok_or_else(|| format!("`{text}` is not a {}", stringify!($type)).into())
            }
        }
    };
}
pub(crate) use text_column;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> DatabaseSettings {
        DatabaseSettings {
            url: crate::foundation::config::Secret::new(""),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
            pooler_mode: PoolerMode::Session,
            statement_timeout: Duration::from_secs(7),
        }
    }

    fn mode(url: &str) -> Result<PgSslMode, String> {
        connect_options(url, &settings())
            .map(|options| options.get_ssl_mode())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn a_remote_database_is_verified_and_only_this_machines_may_go_without() {
        let remote = "postgres://u:p@db.cluster.eu-west-1.rds.amazonaws.com:5432/app";
        assert!(matches!(mode(remote), Ok(PgSslMode::VerifyFull)));
        assert!(matches!(
            mode(&format!("{remote}?sslmode=verify-full")),
            Ok(PgSslMode::VerifyFull)
        ));
        assert!(matches!(
            mode(&format!("{remote}?sslmode=verify-ca")),
            Ok(PgSslMode::VerifyCa)
        ));
        for weak in ["disable", "allow", "prefer", "require"] {
            let error = mode(&format!("{remote}?sslmode={weak}")).unwrap_err();
            assert!(
                error.contains("DATABASE_URL") && error.contains("verify-full"),
                "{weak}: {error}"
            );
        }
        for local in [
            "postgres://u@127.0.0.1:54329/app",
            "postgres://u@localhost/app",
            "postgres://u@[::1]:6432/app",
            "postgres://u@127.0.0.1/app?sslmode=disable",
        ] {
            assert!(mode(local).is_ok(), "{local}");
        }
        assert!(matches!(
            mode("postgres://u@127.0.0.1/app"),
            Ok(PgSslMode::Prefer)
        ));
    }

    #[test]
    fn the_built_in_bundle_holds_the_rds_and_rds_proxy_authorities() {
        let text = std::str::from_utf8(RDS_CA_BUNDLE).unwrap();
        let certificates = text.matches("-----BEGIN CERTIFICATE-----").count();
        assert_eq!(
            certificates,
            text.matches("-----END CERTIFICATE-----").count()
        );
        assert!(certificates >= 20, "{certificates} certificates");
        for authority in [
            "Amazon RDS eu-west-1 Root CA RSA2048 G1",
            "Amazon RDS us-east-1 Root CA ECC384 G1",
            "Amazon Root CA 1",
        ] {
            assert!(text.contains(authority), "{authority} is missing");
        }
    }
}

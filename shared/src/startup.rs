//! Cold start: what a function builds once, before its first event. Settings
//! come from the environment and Secrets Manager; the pool opens the
//! connections its first invocation needs while the registry is built. The
//! route functions (through `App::from_env`) and the jobs both start here.

use crate::foundation::config::{ApiSettings, ConfigError, DatabaseSettings, Environment};
use crate::foundation::{db, secrets};
use crate::registry::Registry;

/// A route function's settings, what `prepare` makes of them (its token
/// keys), and its pool. Every configuration error comes before any connection
/// is opened; a database that cannot be reached does not fail the cold start:
/// requests answer 503 until it can.
pub async fn api_from_env<T>(
    prepare: impl FnOnce(&mut ApiSettings) -> Result<T, ConfigError>,
) -> Result<(ApiSettings, T, db::Pool), ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    let database = DatabaseSettings::from_source(&source)?;
    let mut settings = ApiSettings::from_source(&source)?;
    let prepared = prepare(&mut settings)?;
    // A request uses one connection.
    let pool = cold_start_pool(&database, 1).await?;
    Ok((settings, prepared, pool))
}

/// A job's pool, with the `connections` a run uses open.
pub async fn pool_from_env(connections: usize) -> Result<db::Pool, ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    cold_start_pool(&DatabaseSettings::from_source(&source)?, connections).await
}

/// The pool, with the connections its first invocation needs opened while the
/// registry is built, and open (or logged as unreachable) at the end.
async fn cold_start_pool(
    database: &DatabaseSettings,
    connections: usize,
) -> Result<db::Pool, ConfigError> {
    // On Lambda the URL comes from a secret, which a rotation may change
    // while this container is warm: the pool reads it again if refused.
    let pool = db::Pool::following(database, secrets::database_url_reader(&Environment))?;
    pool.connect_early(connections).await;
    Registry::embedded();
    pool.finish_connecting().await;
    Ok(pool)
}

/// For binaries: logs a configuration error as one line and exits.
pub fn exit_on_config_error<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|error| {
        tracing::error!("{error}");
        std::process::exit(1)
    })
}

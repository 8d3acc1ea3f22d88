//! Cold start: what a function builds once, before its first event. Settings
//! come from the environment and Secrets Manager. A route function's pool
//! starts opening the connection its first request needs, which goes on
//! while the function polls for that request; a job's pool connects when the
//! job is invoked (see [`job_pool`]). The
//! route functions (through `App::from_env`) and the jobs both start here.

use crate::foundation::config::{
    self, ApiSettings, ConfigError, DatabaseSettings, Environment, Secret, Source,
};
use crate::foundation::db::{self, Login};
use crate::foundation::{hygiene, secrets};
use crate::identity::tombstones::ErasureKeys;
use crate::registry::Registry;

/// A route function's settings, what `prepare` makes of them (its token
/// keys), and its pool. Every configuration error comes before any connection
/// is opened; a database that cannot be reached does not fail the cold start:
/// requests answer 503 until it can. With [`Login::Runtime`], a login that
/// owns the schemas stops the function (see [`cold_start_pool`]).
pub async fn api_from_env<T>(
    login: Login,
    prepare: impl FnOnce(&mut ApiSettings) -> Result<T, ConfigError>,
) -> Result<(ApiSettings, T, db::Pool), ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    let database = DatabaseSettings::from_source(&source)?;
    let mut settings = ApiSettings::from_source(&source)?;
    statements_end_before_requests(&database, &settings)?;
    let prepared = prepare(&mut settings)?;
    // A request uses one connection.
    let pool = cold_start_pool(&database, 1, login).await?;
    Ok((settings, prepared, pool))
}

/// A request's statements must end before the request does: PostgreSQL then
/// aborts a statement (or a lock wait, or an idle transaction) that a request
/// which gave up left behind, whatever happens to the client.
fn statements_end_before_requests(
    database: &DatabaseSettings,
    settings: &ApiSettings,
) -> Result<(), ConfigError> {
    let limit = database.statement_timeout;
    if limit.is_zero() || limit >= settings.request_timeout {
        return Err(ConfigError::Invalid {
            name: "DATABASE_STATEMENT_TIMEOUT_MS",
            reason: format!(
                "must be above 0 and below REQUEST_TIMEOUT_MS ({} ms) for the route functions",
                settings.request_timeout.as_millis()
            ),
        });
    }
    Ok(())
}

/// The login the recompute job connects as: the route functions' own
/// (`fasttrack_runtime`, from the same `DATABASE_SECRET_ARN`). Everything it
/// does is granted to that role (the unlocks, the expired keys, and the
/// retention purges through migration 0011's and 0016's functions), so it
/// needs no owner's rights, and a login that owns the schemas or is a
/// superuser fails its first connection, and so its invocation.
pub const JOB_LOGIN: Login = Login::Runtime;

/// The recompute job's pool, logging in as [`JOB_LOGIN`]; it connects when
/// invoked ([`job_pool`]).
pub async fn pool_from_env() -> Result<db::Pool, ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    job_pool(&DatabaseSettings::from_source(&source)?, JOB_LOGIN)
}

/// A job's pool, built with nothing connected: the job connects when invoked.
/// A job's first invocation follows its init at once (EventBridge and
/// `aws lambda invoke` wait for it), so a connection opened during init would
/// save it nothing; it would only make init wait, for migrate and erase-users
/// (which reach the instance directly) a new PostgreSQL backend's start,
/// several times the whole init of a hello-world. The configuration is still
/// checked here, before the first poll; a refused login fails the first
/// invocation, with the reason.
pub fn job_pool(database: &DatabaseSettings, login: Login) -> Result<db::Pool, ConfigError> {
    let pool = db::Pool::following(database, secrets::database_url_reader(&Environment), login)?;
    Registry::embedded();
    Ok(pool)
}

/// The erase-users job's pool, which logs in as the eraser (never as the
/// schemas' owner), and the key of the hashes an erased person leaves.
pub async fn eraser_from_env() -> Result<(db::Pool, ErasureKeys), ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    let key = config::erasure_hash_key(&source)?.ok_or(ConfigError::Missing("ERASURE_HASH_KEY"))?;
    if source.get("DEPLOYMENT_STAGE").is_some()
        && hygiene::development_value("ERASURE_HASH_KEY") == Some(key.expose().trim())
    {
        return Err(ConfigError::Invalid {
            name: "ERASURE_HASH_KEY",
            reason: "is the public development value from scripts/local-env.sh: a deployed stage needs a secret of its own".into(),
        });
    }
    let pool = job_pool(&DatabaseSettings::from_source(&source)?, Login::Runtime)?;
    Ok((pool, ErasureKeys::new(key)))
}

/// The logins the migrate function makes: the route functions'
/// (`RUNTIME_DATABASE_URL`, or the secret `RUNTIME_DATABASE_SECRET_ARN`
/// names) and the eraser's (`ERASER_DATABASE_URL` or
/// `ERASER_DATABASE_SECRET_ARN`).
pub struct Logins {
    pub runtime: Option<Secret>,
    pub eraser: Option<Secret>,
}

/// The migrate function's pool (the schemas' owner), and the logins it makes.
pub async fn migrator_from_env() -> Result<(db::Pool, Logins), ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    let pool = job_pool(&DatabaseSettings::from_source(&source)?, Login::Any)?;
    let logins = Logins {
        runtime: source.get("RUNTIME_DATABASE_URL").map(Secret::new),
        eraser: source.get("ERASER_DATABASE_URL").map(Secret::new),
    };
    Ok((pool, logins))
}

/// The pool, with the connections its first invocation needs already
/// opening. Init does not wait for them: they open while the function makes
/// its first poll of the Runtime API (on-demand, the invocation that caused
/// the cold start is waiting there), so a cold start's init is a hello-world's
/// plus reading the settings. A login that owns the schemas still stops the
/// function before it serves anything: the task that finishes the connections
/// exits the process with the configuration error, as init would have.
async fn cold_start_pool(
    database: &DatabaseSettings,
    connections: usize,
    login: Login,
) -> Result<db::Pool, ConfigError> {
    // On Lambda the URL comes from a secret, which a rotation may change
    // while this container is warm: the pool reads it again if refused.
    let pool = db::Pool::following(database, secrets::database_url_reader(&Environment), login)?;
    pool.connect_early(connections).await;
    Registry::embedded();
    let connecting = pool.clone();
    tokio::spawn(async move { exit_on_config_error(connecting.finish_connecting().await) });
    Ok(pool)
}

/// For binaries: logs a configuration error as one line and exits.
pub fn exit_on_config_error<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|error| {
        tracing::error!("{error}");
        std::process::exit(1)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(statement_ms: &str, request_ms: &str) -> (DatabaseSettings, ApiSettings) {
        let source = HashMap::from([
            ("DATABASE_URL", "postgres://x@h/db"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", statement_ms),
            ("REQUEST_TIMEOUT_MS", request_ms),
            (
                "JWT_PUBLIC_KEYS",
                "MCowBQYDK2VwAyEAL0C2kjfEUhnxdYYEHdVNDfs7pHUtIUW20E/4tROSIpk=",
            ),
        ]);
        (
            DatabaseSettings::from_source(&source).unwrap(),
            ApiSettings::from_source(&source).unwrap(),
        )
    }

    #[test]
    fn a_route_functions_statements_must_end_before_its_requests() {
        let (database, api) = settings("7000", "8000");
        assert!(statements_end_before_requests(&database, &api).is_ok());
        for (statement, request) in [("8000", "8000"), ("9000", "8000"), ("0", "8000")] {
            let (database, api) = settings(statement, request);
            let error = statements_end_before_requests(&database, &api).unwrap_err();
            assert!(
                error.to_string().contains("DATABASE_STATEMENT_TIMEOUT_MS"),
                "{statement} ms against {request} ms: {error}"
            );
        }
    }
}

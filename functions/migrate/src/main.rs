//! Applies the migrations and tool schemas, as `make migrate` does; invoked once
//! after each deploy. Drift fails the invocation with the drift report.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};
use shared::startup::{exit_on_config_error, migrator_from_env};
use shared::{Registry, migrate};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::foundation::logging::init_lambda();
    let (pool, logins) = exit_on_config_error(migrator_from_env().await);
    let (pool, logins) = (&pool, &logins);
    run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let mut conn = pool.acquire().await?;
        let report = migrate::run(&mut conn, Registry::embedded()).await?;
        let runtime_login = match &logins.runtime {
            Some(url) => Some(migrate::ensure_runtime_login(&mut conn, url.expose()).await?),
            None => None,
        };
        let eraser_login = match &logins.eraser {
            Some(url) => Some(migrate::ensure_eraser_login(&mut conn, url.expose()).await?),
            None => None,
        };
        conn.release();
        tracing::info!(applied = ?report.applied_migrations, created = ?report.created_schemas, runtime_login, eraser_login, "migrate finished");
        Ok::<_, Error>(json!({
            "applied_migrations": report.applied_migrations,
            "created_schemas": report.created_schemas,
            "runtime_login": runtime_login,
            "eraser_login": eraser_login,
        }))
    }))
    .await
}

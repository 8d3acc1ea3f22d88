//! Applies the migrations and tool schemas, as `make migrate` does; invoked once
//! after each deploy. Drift fails the invocation with the drift report.

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::{Value, json};
use shared::app::exit_on_config_error;
use shared::config::{DatabaseSettings, Environment};
use shared::{Registry, db, migrate};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = exit_on_config_error(DatabaseSettings::from_source(&Environment));
    let pool = exit_on_config_error(db::connect_lazy(&settings));
    let pool = &pool;
    run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let report = migrate::run(pool, Registry::embedded()).await?;
        tracing::info!(applied = ?report.applied_migrations, created = ?report.created_schemas, "migrate finished");
        Ok::<_, Error>(json!({
            "applied_migrations": report.applied_migrations,
            "created_schemas": report.created_schemas,
        }))
    }))
    .await
}

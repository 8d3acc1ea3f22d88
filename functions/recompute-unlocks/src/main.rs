//! The scheduled unlock recompute, invoked by EventBridge. A schedule's own
//! event recomputes the users whose inputs changed since the last run (every
//! user when the registry changed); `{"full": true}` sweeps every user.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::Registry;
use shared::foundation::config::Environment;
use shared::startup::{exit_on_config_error, pool_from_env};
use shared::unlocks::recompute;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::foundation::logging::init_lambda();
    let housekeeping = exit_on_config_error(recompute::Housekeeping::from_source(&Environment));
    let pool = exit_on_config_error(pool_from_env().await);
    let pool = &pool;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let scope = recompute::Scope::from_event(&event.payload)?;
        let report = recompute::run_with(
            pool,
            Registry::embedded(),
            recompute::DEFAULT_BATCH_SIZE,
            housekeeping,
            scope,
        )
        .await?;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}

//! The scheduled unlock recompute, invoked by EventBridge. The event's content
//! does not matter: every invocation is one full, idempotent pass.

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
    run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let report = recompute::run_with(
            pool,
            Registry::embedded(),
            recompute::DEFAULT_BATCH_SIZE,
            housekeeping,
        )
        .await?;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}

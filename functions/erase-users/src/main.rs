//! The scheduled erasure, invoked by EventBridge: erases every person whose
//! erasure request's cool-off is over (`shared::rights::eraser`). It logs in
//! with its own database role, `fasttrack_eraser`, the only one that may
//! delete a person. The event's content does not matter.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::rights::eraser;
use shared::startup::{eraser_from_env, exit_on_config_error};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::foundation::logging::init_lambda();
    let (pool, keys) = exit_on_config_error(eraser_from_env().await);
    let (pool, keys) = (&pool, &keys);
    run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let report = eraser::run(pool, keys, eraser::DEFAULT_BATCH).await?;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(serde_json::json!({ "status": "not implemented yet" }))
    }))
    .await
}

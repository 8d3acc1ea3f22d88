//! The hello-world of public Rust Lambda cold-start benchmarks: the runtime,
//! one handler that echoes, nothing else. `fasttrack-bench run` measures each
//! function's cold start against it.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

pub async fn serve() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "hello": "world", "request_id": event.context.request_id }))
    }))
    .await
}

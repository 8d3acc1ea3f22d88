//! The `downloads` Lambda: a person's record of any size, streamed through
//! the function's URL (`InvokeMode: RESPONSE_STREAM`), which API Gateway
//! cannot do; its routes are listed in `shared::http::routes`.

// The streaming adapter nests the whole request future in its own: more
// layout depth than the compiler allows by default.
#![recursion_limit = "256"]

use lambda_http::{Error, run_with_streaming_response, service_fn};
use shared::app::App;
use shared::http::routes::Function;
use shared::startup::exit_on_config_error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::foundation::logging::init_lambda();
    let app = exit_on_config_error(App::from_env(Some(Function::Downloads)).await);
    let app = &app;
    run_with_streaming_response(service_fn(move |request| {
        app.handle_lambda_streaming(request)
    }))
    .await
}

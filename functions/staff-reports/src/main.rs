//! The `staff-reports` Lambda: its routes are listed in `shared::http::routes`.

use lambda_http::{Error, run, service_fn};
use shared::app::App;
use shared::http::routes::Function;
use shared::startup::exit_on_config_error;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::foundation::logging::init_lambda();
    let app = exit_on_config_error(App::from_env(Some(Function::StaffReports)).await);
    let app = &app;
    run(service_fn(move |request| app.handle_lambda(request))).await
}

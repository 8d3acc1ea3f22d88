//! `fasttrack token`: a bearer token for an existing user.

use anyhow::Result;

use crate::database::user_by_email;
use shared::app::App;

pub async fn run(email: &str) -> Result<()> {
    let app = App::from_env(None).await?;
    let id = user_by_email(&app, email).await?;
    println!("{}", app.issue_token(id)?.0);
    Ok(())
}

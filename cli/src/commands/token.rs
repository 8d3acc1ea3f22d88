//! `fasttrack token`: a bearer token for an existing user.

use anyhow::Result;

use crate::database::user_by_email;
use crate::out;
use shared::app::App;
use shared::foundation::config::{ApiSettings, Environment};
use shared::sessions::TokenKeys;
use shared::sessions::handler::unix_now;

/// How long before now an `--expired` token was issued, beyond its lifetime:
/// far past the verifier's clock leeway.
const EXPIRED_FOR_SECONDS: u64 = 3600;

pub async fn run(email: &str, expired: bool) -> Result<()> {
    let app = App::from_env(None).await?;
    let id = user_by_email(&app, email).await?;
    let token = if expired {
        let settings = ApiSettings::from_source(&Environment)?;
        let keys = TokenKeys::minting(&settings)?;
        let issued = unix_now() - settings.token_ttl.as_secs() - EXPIRED_FOR_SECONDS;
        keys.issue(id, issued)?.0
    } else {
        app.issue_token(id)?.0
    };
    out::println(token)?;
    Ok(())
}

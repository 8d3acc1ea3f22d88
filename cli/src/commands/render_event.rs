//! `fasttrack render-event`: an example event from events/ filled with local
//! values (a token and id for a user, the local secrets), for `cargo lambda invoke`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::commands::launch;
use crate::database::user_by_email;
use crate::out;
use shared::app::App;
use shared::foundation::config::ApiSettings;
use shared::foundation::config::SignatureMode;
use shared::http::events::Placeholders;
use shared::http::events::render;
use shared::identity::signature::sign_webhook;

pub async fn run(file: &Path, email: &str) -> Result<()> {
    let event = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
    let app = App::from_env(None).await?;
    let user = user_by_email(&app, email).await?;
    let launch = app.context.settings.launch_secret.as_ref().map(|secret| {
        let (id, mail, name) = (
            "64b000000000000000000003",
            "invoked@example.com",
            "Invoked Locally",
        );
        launch::signed_body(secret, id, mail, name, Some(&launch::fresh_nonce())).to_string()
    });
    // A session of the user's, only for an event that names its refresh token.
    let refresh_token = match event.contains("${REFRESH_TOKEN}") {
        true => {
            let ttl = app.context.settings.refresh_ttl;
            let (token, _) = app
                .context
                .pool
                .transaction(async |tx| shared::sessions::refresh::start(tx, user, ttl).await)
                .await?;
            Some(token)
        }
        false => None,
    };
    let values = Placeholders {
        token: Some(app.issue_token(user)?.0),
        user_id: Some(user.to_string()),
        webhook_secret: app
            .context
            .settings
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_owned()),
        launch_body: launch,
        refresh_token,
    };
    let rendered = render(&event, &values);
    out::print(sign_rendered_webhook(&app.context.settings, rendered)?)?;
    Ok(())
}

/// A rendered webhook event in `hmac-sha256` mode carries the HMAC of its body,
/// not the secret; any other event is returned as it is.
fn sign_rendered_webhook(settings: &ApiSettings, rendered: String) -> Result<String> {
    const HEADER: &str = "learnworlds-webhook-signature";
    let (SignatureMode::HmacSha256, Some(secret)) =
        (settings.webhook_signature_mode, &settings.webhook_secret)
    else {
        return Ok(rendered);
    };
    let mut event: serde_json::Value =
        serde_json::from_str(&rendered).context("the event is not JSON")?;
    let Some(body) = event["body"].as_str().map(str::to_owned) else {
        return Ok(rendered);
    };
    if let Some(header) = event["headers"].get_mut(HEADER) {
        *header = format!("v1={}", sign_webhook(secret, body.as_bytes())).into();
        return Ok(serde_json::to_string_pretty(&event)?);
    }
    Ok(rendered)
}

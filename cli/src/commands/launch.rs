//! `fasttrack launch`: a signed body for `POST /sessions`, for what that route
//! would accept only.

use anyhow::{Context, Result, bail};

use crate::out;

use shared::foundation::config::Environment;
use shared::foundation::config::Secret;
use shared::foundation::config::Source;
use shared::identity::users::LmsUser;
use shared::identity::users::Membership;
use shared::sessions::launch::{NONCE_MAX_LEN, launch_fields_signable, sign_launch, valid_nonce};

/// Which nonce the launch is signed with.
pub enum Nonce {
    /// A fresh random one, as LearnWorlds' side signs each launch.
    Fresh,
    Given(String),
    /// None: the launch as a sender without nonces signs it.
    Without,
}

pub fn run(lms_user_id: &str, email: &str, name: &str, nonce: Nonce) -> Result<()> {
    let secret = Secret::new(
        Environment
            .get("LEARNWORLDS_LAUNCH_SECRET")
            .context("LEARNWORLDS_LAUNCH_SECRET is not set")?,
    );
    // What `POST /sessions` would refuse is refused here, not signed.
    LmsUser {
        lms_user_id: lms_user_id.to_owned(),
        email: email.to_owned(),
        full_name: name.to_owned(),
        organization: Membership::Unchanged,
    }
    .validate()?;
    if !launch_fields_signable([lms_user_id, email, name]) {
        bail!("a launch field may not contain a newline");
    }
    let nonce = match nonce {
        Nonce::Fresh => Some(fresh_nonce()),
        Nonce::Given(nonce) if valid_nonce(&nonce) => Some(nonce),
        Nonce::Given(_) => {
            bail!("a nonce is 1 to {NONCE_MAX_LEN} ASCII letters, digits, `-` or `_`")
        }
        Nonce::Without => None,
    };
    let body = signed_body(&secret, lms_user_id, email, name, nonce.as_deref());
    out::println(body)?;
    Ok(())
}

/// A launch body signed with `secret`, timestamped now, with `nonce` if any.
pub fn signed_body(
    secret: &Secret,
    lms_user_id: &str,
    email: &str,
    name: &str,
    nonce: Option<&str>,
) -> serde_json::Value {
    let timestamp = unix_now();
    let signature = sign_launch(secret, lms_user_id, email, name, timestamp, nonce);
    let mut body = serde_json::json!({
        "lms_user_id": lms_user_id, "email": email, "name": name,
        "timestamp": timestamp, "signature": signature,
    });
    if let Some(nonce) = nonce {
        body["nonce"] = nonce.into();
    }
    body
}

/// A random nonce (32 hex digits), so that two launches signed in one second
/// differ.
pub fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

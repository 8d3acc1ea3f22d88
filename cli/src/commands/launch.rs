//! `fasttrack launch`: a signed body for `POST /sessions`, for what that route
//! would accept only.

use anyhow::{Context, Result, bail};

use shared::foundation::config::Environment;
use shared::foundation::config::Secret;
use shared::foundation::config::Source;
use shared::identity::users::LmsUser;
use shared::identity::users::Membership;
use shared::sessions::launch::{launch_fields_signable, sign_launch};

pub fn run(lms_user_id: &str, email: &str, name: &str) -> Result<()> {
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
    println!("{}", signed_body(&secret, lms_user_id, email, name));
    Ok(())
}

/// A launch body signed with `secret`, timestamped now.
pub fn signed_body(
    secret: &Secret,
    lms_user_id: &str,
    email: &str,
    name: &str,
) -> serde_json::Value {
    let timestamp = unix_now();
    let signature = sign_launch(secret, lms_user_id, email, name, timestamp);
    serde_json::json!({
        "lms_user_id": lms_user_id, "email": email, "name": name,
        "timestamp": timestamp, "signature": signature,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

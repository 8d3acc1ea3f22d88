//! Signed session launches: LearnWorlds' side signs who is opening a tool, and
//! `POST /sessions` checks that signature, its age, and that it is used once.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::foundation::config::Secret;
use crate::foundation::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// A signed launch from LearnWorlds, the body of `POST /sessions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launch {
    pub lms_user_id: String,
    pub email: String,
    pub name: String,
    /// Unix seconds when LearnWorlds' side signed the launch. A JSON integer,
    /// which may be written `1700000000.0` (JSON Schema's integer).
    #[serde(deserialize_with = "integer")]
    pub timestamp: i64,
    /// Lowercase hex HMAC-SHA256 of [`launch_message`], keyed by the launch secret.
    pub signature: String,
}

/// An `i64` from any JSON number without a fractional part.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        // i64::MIN is exactly -2^63; 2^63 is one past i64::MAX.
        Some(f)
            if f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
        {
            Ok(f as i64)
        }
        _ => Err(D::Error::custom(format!(
            "{number} is not a 64-bit integer"
        ))),
    }
}

impl Launch {
    /// The launch in a parsed `POST /sessions` body: exactly the five fields.
    pub fn from_json(body: serde_json::Value) -> Result<Self, ApiError> {
        serde_json::from_value(body).map_err(|e| {
            ApiError::unprocessable("invalid_launch", format!("the launch is not valid: {e}"))
        })
    }
}

/// Whether launch fields can be signed: joined by newlines, none may hold one
/// (or two launches could sign the same text).
pub fn launch_fields_signable(fields: [&str; 3]) -> bool {
    !fields.iter().any(|f| f.contains('\n'))
}

/// The signed text: the four fields joined by newlines (fields may not contain one).
pub fn launch_message(lms_user_id: &str, email: &str, name: &str, timestamp: i64) -> String {
    format!("{lms_user_id}\n{email}\n{name}\n{timestamp}")
}

pub fn sign_launch(
    secret: &Secret,
    lms_user_id: &str,
    email: &str,
    name: &str,
    timestamp: i64,
) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(launch_message(lms_user_id, email, name, timestamp).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a launch's signature (in constant time) and its age.
pub fn verify_launch(
    secret: Option<&Secret>,
    launch: &Launch,
    now: i64,
    max_age: Duration,
) -> Result<(), ApiError> {
    let secret = secret.ok_or(ApiError::Unauthorized(
        "session launches are not configured",
    ))?;
    if !launch_fields_signable([&launch.lms_user_id, &launch.email, &launch.name]) {
        return Err(ApiError::Unauthorized("the launch signature is invalid"));
    }
    let signature = hex::decode(&launch.signature)
        .map_err(|_| ApiError::Unauthorized("the launch signature is invalid"))?;
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(
        launch_message(
            &launch.lms_user_id,
            &launch.email,
            &launch.name,
            launch.timestamp,
        )
        .as_bytes(),
    );
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::Unauthorized("the launch signature is invalid"))?;
    if now.abs_diff(launch.timestamp) > max_age.as_secs() {
        return Err(ApiError::Unauthorized(
            "the launch has expired; open the tool from LearnWorlds again",
        ));
    }
    Ok(())
}

/// Records a session launch's first use; no row when it was used before.
/// Binds: $1 the launch's signature (lowercase hex), $2 LearnWorlds id.
pub const CLAIM_LAUNCH_SQL: &str =
    "insert into shared.session_launches (signature_sha256, lms_user_id)
     values (sha256(convert_to($1, 'UTF8')), $2)
     on conflict (signature_sha256) do nothing
     returning true";

#[cfg(test)]
mod tests {
    use super::*;

    // A signature computed outside this code, by OpenSSL, so that a change to
    // the message or its encoding fails here instead of at LearnWorlds:
    //   printf '64a0f0000000000000000001\nana@example.test\nAna Lopes\n1795537333' \
    //     | openssl dgst -sha256 -hmac known-answer-launch-secret
    const KNOWN_LAUNCH_SIGNATURE: &str =
        "6f1b7ef76202836fc6e27bd0c606ed455352f2ab8e5dd5c8f11ad9e9845f8cbe";

    #[test]
    fn a_launch_signed_by_openssl_is_accepted_and_ours_matches_it() {
        let launch_secret = Secret::new("known-answer-launch-secret");
        let launch = Launch {
            lms_user_id: "64a0f0000000000000000001".into(),
            email: "ana@example.test".into(),
            name: "Ana Lopes".into(),
            timestamp: 1_795_537_333,
            signature: KNOWN_LAUNCH_SIGNATURE.into(),
        };
        verify_launch(
            Some(&launch_secret),
            &launch,
            1_795_537_333,
            Duration::from_secs(300),
        )
        .unwrap();
        assert_eq!(
            sign_launch(
                &launch_secret,
                &launch.lms_user_id,
                &launch.email,
                &launch.name,
                launch.timestamp
            ),
            KNOWN_LAUNCH_SIGNATURE
        );
    }

    #[test]
    fn a_launch_field_holding_a_newline_is_refused_even_when_correctly_signed() {
        // "a\nb" as the id and "c" as the email sign the same message as "a"
        // and "b\nc": without the check, one signature would serve two users.
        let secret = Secret::new("known-answer-launch-secret");
        let signature = sign_launch(&secret, "a\nb", "c@example.test", "N", 1_795_537_333);
        let launch = Launch {
            lms_user_id: "a\nb".into(),
            email: "c@example.test".into(),
            name: "N".into(),
            timestamp: 1_795_537_333,
            signature,
        };
        let refused = verify_launch(
            Some(&secret),
            &launch,
            1_795_537_333,
            Duration::from_secs(300),
        );
        assert_eq!(refused.unwrap_err().status().as_u16(), 401);
    }

    fn launch(secret: &Secret, timestamp: i64) -> Launch {
        Launch {
            lms_user_id: "64a0f0000000000000000001".into(),
            email: "ana@example.test".into(),
            name: "Ana".into(),
            timestamp,
            signature: sign_launch(
                secret,
                "64a0f0000000000000000001",
                "ana@example.test",
                "Ana",
                timestamp,
            ),
        }
    }

    #[test]
    fn a_fresh_correctly_signed_launch_is_accepted() {
        let secret = Secret::new("launch-secret-0123456789");
        let now = 1_800_000_000;
        assert!(
            verify_launch(
                Some(&secret),
                &launch(&secret, now - 299),
                now,
                Duration::from_secs(300)
            )
            .is_ok()
        );
    }

    #[test]
    fn stale_forged_or_unconfigured_launches_are_rejected() {
        let secret = Secret::new("launch-secret-0123456789");
        let now = 1_800_000_000;
        let max = Duration::from_secs(300);
        assert!(verify_launch(Some(&secret), &launch(&secret, now - 301), now, max).is_err());
        assert!(verify_launch(Some(&secret), &launch(&secret, now + 301), now, max).is_err());
        assert!(verify_launch(None, &launch(&secret, now), now, max).is_err());
        let mut other_user = launch(&secret, now);
        other_user.lms_user_id = "64a0f0000000000000000002".into();
        assert!(verify_launch(Some(&secret), &other_user, now, max).is_err());
        let wrong_key = launch(&Secret::new("another-launch-secret-xx"), now);
        assert!(verify_launch(Some(&secret), &wrong_key, now, max).is_err());
        let mut not_hex = launch(&secret, now);
        not_hex.signature = "zz".into();
        assert!(verify_launch(Some(&secret), &not_hex, now, max).is_err());
    }
}

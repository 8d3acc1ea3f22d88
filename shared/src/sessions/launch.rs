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
    /// Tells apart launches signed in the same second (a double click, a second
    /// tab), which would otherwise sign the same message and the second be
    /// refused as a replay. Signed with the rest; optional, so a sender that
    /// has none signs the message as before. See [`valid_nonce`].
    #[serde(default, deserialize_with = "nonce")]
    pub nonce: Option<String>,
    /// Lowercase hex HMAC-SHA256 of [`launch_message`], keyed by the launch secret.
    pub signature: String,
}

/// The longest nonce: room for a UUID, 32 random bytes in hex or base64url.
pub const NONCE_MAX_LEN: usize = 64;

/// A nonce is 1 to [`NONCE_MAX_LEN`] ASCII letters, digits, `-` or `_`: no
/// newline (it is a line of the signed message), nothing to escape.
pub fn valid_nonce(nonce: &str) -> bool {
    (1..=NONCE_MAX_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A present nonce is a valid one; `null` is not a nonce.
fn nonce<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let nonce = String::deserialize(deserializer)?;
    if !valid_nonce(&nonce) {
        return Err(D::Error::custom(format!(
            "the nonce must be 1 to {NONCE_MAX_LEN} ASCII letters, digits, `-` or `_`"
        )));
    }
    Ok(Some(nonce))
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
    /// The launch in a parsed `POST /sessions` body: exactly the five fields,
    /// and the nonce if there is one.
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

/// The signed text: `lms_user_id`, `email`, `name` and `timestamp` (decimal)
/// joined by newlines, and with a nonce a fifth line, the nonce:
/// `lms_user_id\nemail\nname\ntimestamp[\nnonce]`. No field holds a newline,
/// so the two forms never sign the same text, and a nonce can be neither
/// added to nor removed from a signed launch.
pub fn launch_message(
    lms_user_id: &str,
    email: &str,
    name: &str,
    timestamp: i64,
    nonce: Option<&str>,
) -> String {
    match nonce {
        Some(nonce) => format!("{lms_user_id}\n{email}\n{name}\n{timestamp}\n{nonce}"),
        None => format!("{lms_user_id}\n{email}\n{name}\n{timestamp}"),
    }
}

pub fn sign_launch(
    secret: &Secret,
    lms_user_id: &str,
    email: &str,
    name: &str,
    timestamp: i64,
    nonce: Option<&str>,
) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(launch_message(lms_user_id, email, name, timestamp, nonce).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a launch's signature (in constant time) and its age.
pub fn verify_launch(
    secret: Option<&Secret>,
    launch: &Launch,
    now: i64,
    max_age: Duration,
) -> Result<(), ApiError> {
    let secret = secret.ok_or(ApiError::InvalidSignature(
        "session launches are not configured",
    ))?;
    if !launch_fields_signable([&launch.lms_user_id, &launch.email, &launch.name])
        || launch.nonce.as_deref().is_some_and(|n| !valid_nonce(n))
    {
        return Err(ApiError::InvalidSignature(
            "the launch signature is invalid",
        ));
    }
    let signature = hex::decode(&launch.signature)
        .map_err(|_| ApiError::InvalidSignature("the launch signature is invalid"))?;
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(
        launch_message(
            &launch.lms_user_id,
            &launch.email,
            &launch.name,
            launch.timestamp,
            launch.nonce.as_deref(),
        )
        .as_bytes(),
    );
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::InvalidSignature("the launch signature is invalid"))?;
    if now.abs_diff(launch.timestamp) > max_age.as_secs() {
        return Err(ApiError::InvalidSignature(
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
    // The same launch with a nonce, its fifth line:
    //   printf '64a0f0000000000000000001\nana@example.test\nAna Lopes\n1795537333\n7c1e4b2a-9d3f-4e8a-b5c6-0f2d8a9e1b47' \
    //     | openssl dgst -sha256 -hmac known-answer-launch-secret
    const KNOWN_NONCE: &str = "7c1e4b2a-9d3f-4e8a-b5c6-0f2d8a9e1b47";
    const KNOWN_NONCE_LAUNCH_SIGNATURE: &str =
        "8804f25aa4fef6ea815538c50c39298df2cf4d3ecd67e038bb78c5e8d111a0f1";

    fn known_launch(nonce: Option<&str>, signature: &str) -> Launch {
        Launch {
            lms_user_id: "64a0f0000000000000000001".into(),
            email: "ana@example.test".into(),
            name: "Ana Lopes".into(),
            timestamp: 1_795_537_333,
            nonce: nonce.map(str::to_owned),
            signature: signature.into(),
        }
    }

    #[test]
    fn a_launch_signed_by_openssl_is_accepted_and_ours_matches_it() {
        let launch_secret = Secret::new("known-answer-launch-secret");
        for (nonce, signature) in [
            (None, KNOWN_LAUNCH_SIGNATURE),
            (Some(KNOWN_NONCE), KNOWN_NONCE_LAUNCH_SIGNATURE),
        ] {
            let launch = known_launch(nonce, signature);
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
                    launch.timestamp,
                    nonce,
                ),
                signature
            );
        }
    }

    #[test]
    fn a_nonce_can_be_neither_added_to_nor_removed_from_nor_changed_in_a_signed_launch() {
        let secret = Secret::new("known-answer-launch-secret");
        let refused = |nonce: Option<&str>, signature: &str| {
            verify_launch(
                Some(&secret),
                &known_launch(nonce, signature),
                1_795_537_333,
                Duration::from_secs(300),
            )
            .map_err(|e| e.status().as_u16())
        };
        assert_eq!(refused(Some("x"), KNOWN_LAUNCH_SIGNATURE), Err(401));
        assert_eq!(refused(None, KNOWN_NONCE_LAUNCH_SIGNATURE), Err(401));
        assert_eq!(
            refused(Some("7c1e4b2a"), KNOWN_NONCE_LAUNCH_SIGNATURE),
            Err(401)
        );
    }

    #[test]
    fn a_nonce_is_1_to_64_letters_digits_dashes_or_underscores_and_never_null() {
        let body = |nonce: serde_json::Value| {
            serde_json::json!({"lms_user_id": "x", "email": "e@example.test", "name": "N",
                               "timestamp": 1, "nonce": nonce, "signature": "00"})
        };
        for good in ["a", KNOWN_NONCE, "AZaz09-_", &"n".repeat(64)] {
            let launch = Launch::from_json(body(good.into())).unwrap();
            assert_eq!(launch.nonce.as_deref(), Some(good));
        }
        for bad in [
            serde_json::json!(""),
            serde_json::json!("n".repeat(65)),
            serde_json::json!("a\nb"),
            serde_json::json!("a b"),
            serde_json::json!("a.b"),
            serde_json::json!("\u{e9}"),
            serde_json::json!(null),
            serde_json::json!(7),
        ] {
            let refused = Launch::from_json(body(bad.clone())).unwrap_err();
            assert_eq!(
                (refused.status().as_u16(), refused.code()),
                (422, "invalid_launch"),
                "{bad}"
            );
        }
        let mut without = body(serde_json::Value::Null);
        without.as_object_mut().unwrap().remove("nonce");
        assert_eq!(Launch::from_json(without).unwrap().nonce, None);
    }

    #[test]
    fn a_launch_field_holding_a_newline_is_refused_even_when_correctly_signed() {
        // "a\nb" as the id and "c" as the email sign the same message as "a"
        // and "b\nc": without the check, one signature would serve two users.
        let secret = Secret::new("known-answer-launch-secret");
        let signature = sign_launch(&secret, "a\nb", "c@example.test", "N", 1_795_537_333, None);
        let launch = Launch {
            lms_user_id: "a\nb".into(),
            email: "c@example.test".into(),
            name: "N".into(),
            timestamp: 1_795_537_333,
            nonce: None,
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
            nonce: None,
            signature: sign_launch(
                secret,
                "64a0f0000000000000000001",
                "ana@example.test",
                "Ana",
                timestamp,
                None,
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

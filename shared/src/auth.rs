//! Who is calling: bearer tokens (HS256 JWTs), signed session launches from
//! LearnWorlds, and LearnWorlds webhook signatures. Everything fails closed.
//!
//! Tokens only say *who* the caller is. What they may see (role, organization)
//! is read from the database inside the statement that reads the data.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::{ApiSettings, Secret, SignatureMode};
use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(settings: &ApiSettings) -> Self {
        let secret = settings.jwt_secret.expose().as_bytes();
        // The algorithm is pinned: a token claiming any other `alg` (none, HS512,
        // RS256 with our secret as a "public key") is rejected before verification.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.token_ttl,
        }
    }

    /// A token for `user_id`, valid from `now` (Unix seconds) for the configured TTL.
    pub fn issue(&self, user_id: Uuid, now: u64) -> Result<(String, u64), ApiError> {
        let exp = now + self.ttl.as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
        Ok((token, exp))
    }

    /// The user a token was issued to.
    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized("the token is invalid or expired"))?;
        Uuid::parse_str(&data.claims.sub)
            .map_err(|_| ApiError::Unauthorized("the token is invalid or expired"))
    }
}

/// The token from `Authorization: Bearer <token>`.
pub fn bearer(authorization: Option<&str>) -> Result<&str, ApiError> {
    let value = authorization.ok_or(ApiError::Unauthorized(
        "missing Authorization: Bearer token",
    ))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized(
        "missing Authorization: Bearer token",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "missing Authorization: Bearer token",
        ));
    }
    Ok(token.trim())
}

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

/// Checks `Learnworlds-Webhook-Signature: v1=<value>` against the raw body.
pub fn verify_webhook(
    secret: Option<&Secret>,
    mode: SignatureMode,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), ApiError> {
    let invalid = ApiError::Unauthorized("the webhook signature is missing or invalid");
    let secret = secret.ok_or(ApiError::Unauthorized("webhooks are not configured"))?;
    let value = header
        .and_then(|h| h.trim().strip_prefix("v1="))
        .ok_or(invalid)?;
    let ok = match mode {
        SignatureMode::SharedSecret => {
            bool::from(value.as_bytes().ct_eq(secret.expose().as_bytes()))
        }
        SignatureMode::HmacSha256 => {
            let Ok(expected) = hex::decode(value) else {
                return Err(ApiError::Unauthorized(
                    "the webhook signature is missing or invalid",
                ));
            };
            let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes any key size");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the webhook signature is missing or invalid",
        ))
    }
}

/// Hex HMAC-SHA256 of a webhook body, as a sender in `hmac-sha256` mode computes it.
pub fn sign_webhook(secret: &Secret, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "test-jwt-secret-of-at-least-32-bytes!!";

    // Signatures computed outside this code, by OpenSSL, so that a change to
    // the message or its encoding fails here instead of at LearnWorlds:
    //   printf '%s' "$BODY" | openssl dgst -sha256 -hmac known-answer-webhook-secret
    //   printf '64a0f0000000000000000001\nana@example.test\nAna Lopes\n1795537333' \
    //     | openssl dgst -sha256 -hmac known-answer-launch-secret
    const KNOWN_WEBHOOK_BODY: &str = r#"{"type":"userUpdated","data":{"user":{"id":"64a0f0000000000000000001","email":"ana@example.test"}}}"#;
    const KNOWN_WEBHOOK_SIGNATURE: &str =
        "00ab3c6998875d0d7b90af0f3290745e6da4b6472d37bc45b65fb5250de076d4";
    const KNOWN_LAUNCH_SIGNATURE: &str =
        "6f1b7ef76202836fc6e27bd0c606ed455352f2ab8e5dd5c8f11ad9e9845f8cbe";

    #[test]
    fn signatures_made_by_openssl_are_accepted_and_ours_match_them() {
        let webhook_secret = Secret::new("known-answer-webhook-secret");
        let header = format!("v1={KNOWN_WEBHOOK_SIGNATURE}");
        verify_webhook(
            Some(&webhook_secret),
            SignatureMode::HmacSha256,
            Some(&header),
            KNOWN_WEBHOOK_BODY.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            sign_webhook(&webhook_secret, KNOWN_WEBHOOK_BODY.as_bytes()),
            KNOWN_WEBHOOK_SIGNATURE
        );

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

    fn settings() -> ApiSettings {
        ApiSettings::from_source(&HashMap::from([("JWT_SECRET", SECRET)])).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn b64(value: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn forge(
        header: serde_json::Value,
        claims: serde_json::Value,
        key: &[u8],
        alg: Algorithm,
    ) -> String {
        let mut h = Header::new(alg);
        if let Some(typ) = header.get("typ") {
            h.typ = typ.as_str().map(str::to_owned);
        }
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn claims(user: Uuid) -> serde_json::Value {
        let now = now();
        json!({"sub": user.to_string(), "iss": "fasttrack", "aud": "fasttrack-api", "iat": now, "nbf": now, "exp": now + 600})
    }

    #[test]
    fn an_issued_token_decodes_to_its_user_with_every_claim() {
        let keys = TokenKeys::new(&settings());
        let user = Uuid::new_v4();
        let (token, exp) = keys.issue(user, now()).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), user);
        // Decode the real token independently and check the claims it carries.
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["iss"], "fasttrack");
        assert_eq!(claims["aud"], "fasttrack-api");
        assert_eq!(claims["exp"], exp);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "HS256");
    }

    #[test]
    fn expired_tampered_and_wrongly_signed_tokens_are_rejected() {
        let keys = TokenKeys::new(&settings());
        let user = Uuid::new_v4();
        let mut expired = claims(user);
        expired["exp"] = json!(now() - 120);
        expired["iat"] = json!(now() - 4000);
        expired["nbf"] = json!(now() - 4000);
        let mut future = claims(user);
        future["nbf"] = json!(now() + 600);
        let mut wrong_aud = claims(user);
        wrong_aud["aud"] = json!("someone-else");
        let mut wrong_iss = claims(user);
        wrong_iss["iss"] = json!("evil");
        let mut not_uuid = claims(user);
        not_uuid["sub"] = json!("admin");
        let good = forge(json!({}), claims(user), SECRET.as_bytes(), Algorithm::HS256);
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut other = claims(Uuid::new_v4());
        other["sub"] = json!(Uuid::new_v4().to_string());
        let tampered = format!("{head}.{}.{sig}", b64(&other));
        let cases = [
            (
                "expired",
                forge(json!({}), expired, SECRET.as_bytes(), Algorithm::HS256),
            ),
            (
                "future nbf",
                forge(json!({}), future, SECRET.as_bytes(), Algorithm::HS256),
            ),
            (
                "wrong audience",
                forge(json!({}), wrong_aud, SECRET.as_bytes(), Algorithm::HS256),
            ),
            (
                "wrong issuer",
                forge(json!({}), wrong_iss, SECRET.as_bytes(), Algorithm::HS256),
            ),
            (
                "sub not a uuid",
                forge(json!({}), not_uuid, SECRET.as_bytes(), Algorithm::HS256),
            ),
            (
                "wrong key",
                forge(
                    json!({}),
                    claims(user),
                    b"another-secret-another-secret-xx",
                    Algorithm::HS256,
                ),
            ),
            (
                "HS512",
                forge(json!({}), claims(user), SECRET.as_bytes(), Algorithm::HS512),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT"})),
                    b64(&claims(user))
                ),
            ),
            ("tampered payload", tampered),
            ("garbage", "not.a.token".to_owned()),
        ];
        for (name, token) in cases {
            assert!(keys.verify(&token).is_err(), "{name} token was accepted");
        }
    }

    #[test]
    fn tokens_missing_a_required_claim_are_rejected() {
        let keys = TokenKeys::new(&settings());
        for claim in ["exp", "nbf", "iat", "iss", "aud", "sub"] {
            let mut c = claims(Uuid::new_v4());
            c.as_object_mut().unwrap().remove(claim);
            let token = forge(json!({}), c, SECRET.as_bytes(), Algorithm::HS256);
            assert!(
                keys.verify(&token).is_err(),
                "token without {claim} was accepted"
            );
        }
    }

    #[test]
    fn bearer_requires_the_scheme_and_a_token() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer abc")).unwrap(), "abc");
        for bad in [
            None,
            Some("abc"),
            Some("Basic abc"),
            Some("Bearer "),
            Some(""),
        ] {
            assert!(bearer(bad).is_err(), "{bad:?}");
        }
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

    #[test]
    fn webhook_signatures_are_checked_in_both_modes_and_fail_closed() {
        let secret = Secret::new("webhook-secret-0123456789");
        let body = br#"{"type":"userUpdated"}"#;
        let shared = format!("v1={}", secret.expose());
        let hmac = format!("v1={}", sign_webhook(&secret, body));
        assert!(
            verify_webhook(
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(&shared),
                body
            )
            .is_ok()
        );
        assert!(
            verify_webhook(Some(&secret), SignatureMode::HmacSha256, Some(&hmac), body).is_ok()
        );

        let failures = [
            (Some(&secret), SignatureMode::SharedSecret, None),
            (Some(&secret), SignatureMode::SharedSecret, Some("v1=wrong")),
            (
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(secret.expose()),
            ),
            (
                Some(&secret),
                SignatureMode::SharedSecret,
                Some(hmac.as_str()),
            ),
            (
                Some(&secret),
                SignatureMode::HmacSha256,
                Some(shared.as_str()),
            ),
            (Some(&secret), SignatureMode::HmacSha256, Some("v1=00")),
            (None, SignatureMode::SharedSecret, Some(shared.as_str())),
        ];
        for (secret, mode, header) in failures {
            assert!(
                verify_webhook(secret, mode, header, body).is_err(),
                "{mode:?} {header:?}"
            );
        }
        let tampered = br#"{"type":"userUpdated","x":1}"#;
        assert!(
            verify_webhook(
                Some(&secret),
                SignatureMode::HmacSha256,
                Some(&hmac),
                tampered
            )
            .is_err()
        );
    }
}

//! Bearer tokens: the session's proof of who the caller is. HS256 JWTs with a
//! pinned algorithm and every registered claim required. A token says only
//! who the caller is ([`Caller`]); what they may see is decided in SQL
//! ([`crate::access`]).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Caller;
use crate::foundation::config::ApiSettings;
use crate::foundation::error::ApiError;
use crate::http::Request;

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

/// The caller of a request that needs a bearer token: the user the token in
/// `Authorization` was issued to, recorded in the request's log line.
pub fn authenticate(keys: &TokenKeys, request: &Request<'_>) -> Result<Caller, ApiError> {
    let token = bearer(request.header(http::header::AUTHORIZATION))?;
    let user = keys.verify(token)?;
    request.log().user_id(Some(user));
    Ok(Caller(user))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "test-jwt-secret-of-at-least-32-bytes!!";

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
}

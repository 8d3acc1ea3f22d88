//! Bearer tokens: the session's proof of who the caller is. EdDSA (Ed25519)
//! JWTs with a pinned algorithm, every registered claim required, and a `kid`
//! naming the key that signed them. Only the function that creates sessions
//! holds the signing key; every other one holds public keys and can verify a
//! token but never make one. A token says only who the caller is ([`Caller`]);
//! what they may see is decided in SQL ([`crate::access`]).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Caller;
use crate::foundation::config::{ApiSettings, ConfigError, Deployment};
use crate::foundation::error::ApiError;
use crate::http::Request;

use super::verified::{Verified, VerifiedTokens};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

/// How far a token's `exp` and `nbf` may be off, for clocks that disagree.
pub const LEEWAY_SECONDS: u64 = 30;

const INVALID: ApiError = ApiError::InvalidToken("the token is invalid");
const EXPIRED: ApiError =
    ApiError::InvalidToken("the token has expired: refresh the session (POST /sessions/refresh)");

pub struct TokenKeys {
    /// The signing key and its `kid`; `None` in a function that only verifies.
    signer: Option<(String, EncodingKey)>,
    /// Every key a token may be signed with, by `kid`.
    verifiers: Vec<(String, DecodingKey)>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// The tokens verified so far, checked once each ([`VerifiedTokens`]).
    verified: VerifiedTokens,
}

impl TokenKeys {
    /// The keys of a function that only verifies tokens: the public keys. A
    /// signing key given to it anyway is left unused, and refused in a
    /// deployed stage, where it can only be a template's mistake.
    pub fn verifying(settings: &ApiSettings) -> Result<Self, ConfigError> {
        if settings.jwt_signing_key.is_some() && settings.deployment != Deployment::Local {
            return Err(ConfigError::Invalid {
                name: "JWT_SIGNING_KEY",
                reason: "is given to a function that only verifies tokens: only the one that creates sessions (sync-user) may hold it".into(),
            });
        }
        Ok(Self::new(settings, None))
    }

    /// The keys of the function that creates sessions: `JWT_SIGNING_KEY` too.
    pub fn minting(settings: &ApiSettings) -> Result<Self, ConfigError> {
        let key = settings
            .jwt_signing_key
            .as_ref()
            .ok_or(ConfigError::Missing("JWT_SIGNING_KEY"))?;
        let signer = (
            key.public_key().kid(),
            EncodingKey::from_ed_der(key.pkcs8_der()),
        );
        Ok(Self::new(settings, Some(signer)))
    }

    fn new(settings: &ApiSettings, signer: Option<(String, EncodingKey)>) -> Self {
        super::crypto::install();
        // The algorithm is pinned: a token claiming any other `alg` (none, HS256
        // with a public key as its secret) is refused before any signature check.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            signer,
            verifiers: settings
                .jwt_public_keys
                .iter()
                .map(|key| (key.kid(), DecodingKey::from_ed_der(key.bytes())))
                .collect(),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.token_ttl,
            verified: VerifiedTokens::default(),
        }
    }

    /// A token for `user_id`, valid from `now` (Unix seconds) for the configured TTL.
    pub fn issue(&self, user_id: Uuid, now: u64) -> Result<(String, u64), ApiError> {
        let (kid, key) = self.signer.as_ref().ok_or_else(|| {
            ApiError::Internal("this function verifies tokens and holds no key to sign them".into())
        })?;
        let exp = now + self.ttl.as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| ApiError::Internal(format!("signing a token: {e}")))?;
        Ok((token, exp))
    }

    /// The user a token was issued to.
    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`Self::verify`], with the clock of a token verified before at `now`
    /// (Unix seconds). A token seen for the first time is checked whole by
    /// [`Self::check`], against the system clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Uuid, ApiError> {
        let key = VerifiedTokens::key(token);
        if let Some(known) = self.verified.get(&key) {
            if known.expired(now) {
                self.verified.remove(&key);
                return Err(EXPIRED);
            }
            return Ok(known.user);
        }
        let claims = self.check(token)?;
        let user = Uuid::parse_str(&claims.sub).map_err(|_| INVALID)?;
        let verified = Verified {
            user,
            exp: claims.exp,
        };
        self.verified.insert(key, verified, now);
        Ok(user)
    }

    /// A token's signature, algorithm, key and claims, checked.
    fn check(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        // The key is the one its `kid` names among those configured: a token
        // naming none, or a key that is not (or no longer) trusted, is refused.
        // Nothing else in the header (`jwk`, `jku`, `x5u`) chooses a key.
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifiers.iter().find(|(known, _)| known == kid))
            .map(|(_, key)| key)
            .ok_or(INVALID)?;
        // Extensions a verifier must understand: none is.
        if header.crit.is_some() {
            return Err(INVALID);
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            // Told apart only once the signature verified: a forged token
            // learns nothing about its claims.
            match e.kind() {
                ErrorKind::ExpiredSignature => EXPIRED,
                ErrorKind::ImmatureSignature => {
                    ApiError::InvalidToken("the token is not valid yet")
                }
                _ => INVALID,
            }
        })?;
        Ok(data.claims)
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, KeyInit, Mac};
    use serde_json::{Value, json};
    use sha2::{Sha256, Sha512};

    use super::*;
    use crate::foundation::keys::SigningKey;
    use crate::sessions::verified::CAPACITY;

    // `openssl genpkey -algorithm ed25519`, and the base64 of `openssl pkey -pubout`.
    const CURRENT_PRIVATE_KEY: &str =
        "MC4CAQAwBQYDK2VwBCIEILvJS1Uob/X2DsUZV8YrWhRtu7Lk6RXw11h5zSItEJev";
    const CURRENT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAL0C2kjfEUhnxdYYEHdVNDfs7pHUtIUW20E/4tROSIpk=";

    fn current() -> SigningKey {
        SigningKey::parse(CURRENT_PRIVATE_KEY).unwrap()
    }

    /// Settings signing with `signer` (if any) and trusting `trusted`.
    fn settings(signer: Option<&SigningKey>, trusted: &[&SigningKey]) -> ApiSettings {
        let signing = signer.map(SigningKey::to_base64);
        let public = trusted
            .iter()
            .map(|key| key.public_key().to_base64())
            .collect::<Vec<_>>()
            .join(",");
        let mut vars = HashMap::from([("JWT_PUBLIC_KEYS", public.as_str())]);
        if let Some(signing) = &signing {
            vars.insert("JWT_SIGNING_KEY", signing);
        }
        ApiSettings::from_source(&vars).unwrap()
    }

    fn minting(signer: &SigningKey, trusted: &[&SigningKey]) -> TokenKeys {
        TokenKeys::minting(&settings(Some(signer), trusted)).unwrap()
    }

    fn verifying(trusted: &[&SigningKey]) -> TokenKeys {
        TokenKeys::verifying(&settings(None, trusted)).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn decoded(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// A token with exactly this header and these claims, signed with `key`
    /// by Ed25519, as anyone holding that key could make it.
    fn forge(header: Value, claims: Value, key: &SigningKey) -> String {
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let pair =
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.pkcs8_der()).unwrap();
        let signature = URL_SAFE_NO_PAD.encode(pair.sign(message.as_bytes()));
        format!("{message}.{signature}")
    }

    /// A token MACed with `secret`: what an attacker makes of a public key.
    fn hmac_forge(alg: &str, kid: &str, claims: Value, secret: &[u8]) -> String {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let tag = match alg {
            "HS256" => Hmac::<Sha256>::new_from_slice(secret)
                .unwrap()
                .chain_update(message.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec(),
            _ => Hmac::<Sha512>::new_from_slice(secret)
                .unwrap()
                .chain_update(message.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec(),
        };
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    fn header(key: &SigningKey) -> Value {
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key.public_key().kid()})
    }

    fn claims(user: Uuid) -> Value {
        let now = now();
        json!({"sub": user.to_string(), "iss": "fasttrack", "aud": "fasttrack-api", "iat": now, "nbf": now, "exp": now + 600})
    }

    #[test]
    fn an_issued_token_is_eddsa_names_its_key_and_decodes_to_its_user() {
        let key = current();
        let keys = minting(&key, &[&key]);
        let user = Uuid::new_v4();
        let (token, exp) = keys.issue(user, now()).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), user);
        // A function holding only the public key verifies it too.
        assert_eq!(verifying(&[&key]).verify(&token).unwrap(), user);
        let parts: Vec<&str> = token.split('.').collect();
        let header = decoded(parts[0]);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], key.public_key().kid());
        let claims = decoded(parts[1]);
        assert_eq!(claims["sub"], user.to_string());
        assert_eq!(claims["iss"], "fasttrack");
        assert_eq!(claims["aud"], "fasttrack-api");
        assert_eq!(claims["exp"], exp);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            900
        );
        // The Ed25519 signature checks against the configured public key alone.
        let public = crate::foundation::keys::PublicKey::parse(CURRENT_PUBLIC_KEY).unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public.bytes())
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
    }

    #[test]
    fn a_function_that_only_verifies_tokens_cannot_make_one() {
        let key = current();
        let with_the_key = settings(Some(&key), &[&key]);
        // Locally (`cargo lambda watch` gives every function the same
        // settings) the key is there, and left unused.
        let verifier = TokenKeys::verifying(&with_the_key).unwrap();
        let error = verifier.issue(Uuid::new_v4(), now()).unwrap_err();
        assert!(matches!(error, ApiError::Internal(_)), "{error:?}");
        // Deployed, a verifying function given the key refuses to start.
        let mut deployed = with_the_key;
        deployed.deployment = Deployment::Stage("prod".into());
        let error = TokenKeys::verifying(&deployed).err().unwrap().to_string();
        assert!(
            error.contains(
                "JWT_SIGNING_KEY is invalid: is given to a function that only verifies tokens"
            ),
            "{error}"
        );
        // The function that creates sessions cannot start without it.
        let error = TokenKeys::minting(&settings(None, &[&key])).err().unwrap();
        assert_eq!(error, ConfigError::Missing("JWT_SIGNING_KEY"));
    }

    #[test]
    fn expired_tampered_and_wrongly_signed_tokens_are_rejected() {
        let key = current();
        let keys = verifying(&[&key]);
        let attacker = SigningKey::generate();
        let user = Uuid::new_v4();
        let at = |changes: &[(&str, Value)]| {
            let mut c = claims(user);
            for (name, value) in changes {
                c[*name] = value.clone();
            }
            forge(header(&key), c, &key)
        };
        let good = at(&[]);
        assert_eq!(keys.verify(&good).unwrap(), user);
        let (head, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let tampered = format!("{head}.{}.{sig}", b64(&claims(Uuid::new_v4())));
        let public = key.public_key();
        let kid = public.kid();
        let with_header = |extra: Value, signer: &SigningKey| {
            let mut h = header(&key);
            for (name, value) in extra.as_object().unwrap() {
                h[name] = value.clone();
            }
            forge(h, claims(user), signer)
        };
        let cases = [
            (
                "expired past the leeway",
                at(&[
                    ("exp", json!(now() - LEEWAY_SECONDS - 5)),
                    ("iat", json!(now() - 4000)),
                    ("nbf", json!(now() - 4000)),
                ]),
            ),
            ("future nbf", at(&[("nbf", json!(now() + 600))])),
            ("wrong audience", at(&[("aud", json!("someone-else"))])),
            ("wrong issuer", at(&[("iss", json!("evil"))])),
            ("sub not a uuid", at(&[("sub", json!("admin"))])),
            (
                "another key under the trusted kid",
                forge(header(&key), claims(user), &attacker),
            ),
            (
                "another key under its own kid",
                forge(header(&attacker), claims(user), &attacker),
            ),
            (
                "another key embedded as a jwk",
                with_header(
                    json!({"kid": null, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(attacker.public_key().bytes())}}),
                    &attacker,
                ),
            ),
            ("no kid", with_header(json!({"kid": null}), &key)),
            ("an unknown kid", with_header(json!({"kid": "k1"}), &key)),
            (
                "a critical extension",
                with_header(json!({"crit": ["exp"]}), &key),
            ),
            (
                "HS256 with the public key's base64 as secret",
                hmac_forge("HS256", &kid, claims(user), CURRENT_PUBLIC_KEY.as_bytes()),
            ),
            (
                "HS256 with the public key's bytes as secret",
                hmac_forge("HS256", &kid, claims(user), public.bytes()),
            ),
            (
                "HS512 with the public key's base64 as secret",
                hmac_forge("HS512", &kid, claims(user), CURRENT_PUBLIC_KEY.as_bytes()),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                    b64(&claims(user))
                ),
            ),
            (
                "alg none with the real signature",
                format!(
                    "{}.{}.{sig}",
                    b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
                    b64(&claims(user))
                ),
            ),
            ("tampered payload", tampered),
            (
                "signature cut off",
                good.rsplit_once('.').unwrap().0.to_owned() + ".",
            ),
            ("garbage", "not.a.token".to_owned()),
        ];
        for (name, token) in cases {
            assert!(keys.verify(&token).is_err(), "{name} token was accepted");
        }
        // Within the leeway, a token just past its `exp` still passes.
        let just_expired = at(&[("exp", json!(now() - LEEWAY_SECONDS + 10))]);
        assert_eq!(keys.verify(&just_expired).unwrap(), user);
    }

    #[test]
    fn a_token_signature_is_checked_once_and_a_refused_token_is_never_kept() {
        let key = current();
        let keys = verifying(&[&key]);
        let user = Uuid::new_v4();
        let good = forge(header(&key), claims(user), &key);
        assert_eq!(keys.verify(&good).unwrap(), user);
        assert_eq!(keys.verified.len(), 1);
        assert_eq!(keys.verify(&good).unwrap(), user);
        assert_eq!(keys.verified.len(), 1);
        let forged = forge(header(&key), claims(user), &SigningKey::generate());
        assert!(keys.verify(&forged).is_err());
        assert!(keys.verify(&forged).is_err());
        assert_eq!(keys.verified.len(), 1);
    }

    #[test]
    fn a_token_verified_before_still_expires_at_its_exp() {
        let key = current();
        let keys = verifying(&[&key]);
        let user = Uuid::new_v4();
        let exp = now() + 60;
        let mut c = claims(user);
        c["exp"] = json!(exp);
        let token = forge(header(&key), c, &key);
        assert_eq!(keys.verify_at(&token, now()).unwrap(), user);
        // Within the leeway it still passes, from the cache.
        assert_eq!(keys.verify_at(&token, exp + LEEWAY_SECONDS).unwrap(), user);
        let error = keys
            .verify_at(&token, exp + LEEWAY_SECONDS + 1)
            .unwrap_err();
        assert!(
            matches!(error, ApiError::InvalidToken(message) if message.contains("expired")),
            "{error:?}"
        );
        assert_eq!(keys.verified.len(), 0, "an expired token is dropped");
    }

    #[test]
    fn the_verified_tokens_kept_stay_within_their_bound() {
        let key = current();
        let keys = minting(&key, &[&key]);
        let users: Vec<Uuid> = (0..CAPACITY + 10).map(|_| Uuid::new_v4()).collect();
        for &user in &users {
            let (token, _) = keys.issue(user, now()).unwrap();
            assert_eq!(keys.verify(&token).unwrap(), user);
            assert!(keys.verified.len() <= CAPACITY);
        }
        assert!(keys.verified.len() >= 1);
    }

    #[test]
    fn tokens_missing_a_required_claim_are_rejected() {
        let key = current();
        let keys = verifying(&[&key]);
        for claim in ["exp", "nbf", "iat", "iss", "aud", "sub"] {
            let mut c = claims(Uuid::new_v4());
            c.as_object_mut().unwrap().remove(claim);
            let token = forge(header(&key), c, &key);
            assert!(
                keys.verify(&token).is_err(),
                "token without {claim} was accepted"
            );
        }
    }

    /// README, "Rotating the token key": publish the new public key to the
    /// verifiers, switch the signer, remove the old key once every token it
    /// signed has expired.
    #[test]
    fn a_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() {
        let (old, new) = (current(), SigningKey::generate());
        let user = Uuid::new_v4();
        let old_token = minting(&old, &[&old]).issue(user, now()).unwrap().0;

        // 1. The verifiers trust both keys; the signer still signs with the old.
        let overlap = verifying(&[&old, &new]);
        assert_eq!(overlap.verify(&old_token).unwrap(), user);
        // 2. The signer switches to the new key.
        let new_token = minting(&new, &[&old, &new]).issue(user, now()).unwrap().0;
        assert_ne!(kid_of(&new_token), kid_of(&old_token));
        assert_eq!(overlap.verify(&new_token).unwrap(), user);
        assert_eq!(overlap.verify(&old_token).unwrap(), user);
        // (A verifier that had not been given the new key would refuse its
        // tokens: hence step 1 first.)
        assert!(verifying(&[&old]).verify(&new_token).is_err());
        // 3. The old key is removed: its tokens, even unexpired, are refused.
        let after = verifying(&[&new]);
        assert_eq!(after.verify(&new_token).unwrap(), user);
        assert!(after.verify(&old_token).is_err());

        // A signer whose key the verifiers are not given would make tokens
        // nobody accepts: it refuses to start.
        let error = ApiSettings::from_source(&HashMap::from([
            ("JWT_SIGNING_KEY", new.to_base64().as_str()),
            ("JWT_PUBLIC_KEYS", old.public_key().to_base64().as_str()),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("JWT_SIGNING_KEY is invalid: its public key is not in JWT_PUBLIC_KEYS"),
            "{error}"
        );
    }

    fn kid_of(token: &str) -> Value {
        decoded(token.split('.').next().unwrap())["kid"].clone()
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

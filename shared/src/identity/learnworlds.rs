//! LearnWorlds' REST API (v2), asked for a user as LearnWorlds holds them now.
//!
//! A webhook's signature proves little: in `shared-secret` mode (LearnWorlds'
//! documented scheme) the header is a constant that binds no body, and even an
//! HMAC binds no time, so an old delivery can be sent again. A delivery is
//! therefore only a notice that something about a user changed; what the
//! webhook applies (tags, and so the organization; email and name) is what
//! this API answers, asked after the delivery arrived.
//!
//! The two requests, as LearnWorlds documents them:
//!
//! - `POST {base}/oauth2/access_token` with `Lw-Client: <client id>` and
//!   `{"client_id", "client_secret", "grant_type": "client_credentials"}` as a
//!   JSON body answers `{"tokenData": {"access_token", "token_type": "Bearer",
//!   "expires_in": <seconds>}, "errors": [], "success": true}`. The token is
//!   kept until a minute before it expires, so a warm Lambda asks once.
//! - `GET {base}/v2/users/{id}` with `Authorization: Bearer <token>` and
//!   `Lw-Client` answers the user object the webhooks carry (`id`, `email`,
//!   `username`, `first_name`, `last_name`, `tags`, `fields`, ...).
//!
//! Where the documentation is silent, this code assumes the least and says so:
//! the user object is read at the top level or under `data`; a user without
//! `tags` has none; an unknown id answers 404; a token refused with 401 before
//! its time is asked for again once. Every other answer (a 429, a 5xx, a body
//! that is not what is documented) and every network failure or timeout is an
//! [`ApiError::Upstream`], a 503, before anything is written.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{Value, json};

use super::users::{LmsUser, Membership};
use super::webhooks;
use crate::foundation::config::{LearnWorldsApiSettings, Secret};
use crate::foundation::error::ApiError;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One request and its answer, connection included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(4);
/// A user object is a few KiB; anything near this is not one.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// A token is used until this long before LearnWorlds says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// How long an idle connection to LearnWorlds is kept for the next request.
const IDLE_CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// How long a token whose answer gives no `expires_in` is used.
const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The client of one school's API; `None` settings: not configured.
pub struct LearnWorldsApi {
    settings: Option<LearnWorldsApiSettings>,
    /// Built on first use, so a cold start that serves no webhook pays nothing.
    client: OnceLock<HttpClient>,
    /// The access token, shared by the requests of this process. Held across a
    /// token request, so concurrent requests wait for one token, not ask for many.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

struct AccessToken {
    value: Secret,
    fresh_until: Instant,
}

/// A user as LearnWorlds' API described them.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// With the organization their whole tag list names (or none).
    pub user: LmsUser,
    /// When the question was sent: the answer is LearnWorlds' state at that
    /// moment or later, which orders it against other answers.
    pub asked_at: DateTime<Utc>,
}

impl LearnWorldsApi {
    pub fn new(settings: Option<LearnWorldsApiSettings>) -> Self {
        Self {
            settings,
            client: OnceLock::new(),
            token: tokio::sync::Mutex::new(None),
        }
    }

    pub fn is_configured(&self) -> bool {
        self.settings.is_some()
    }

    /// The user with this LearnWorlds id as LearnWorlds holds them now; `None`
    /// when LearnWorlds has no such user. Never called inside a transaction.
    pub async fn current_user(&self, lms_user_id: &str) -> Result<Option<CurrentUser>, ApiError> {
        let settings = self
            .settings
            .as_ref()
            .ok_or_else(|| ApiError::Internal("LearnWorlds' API is not configured".into()))?;
        // LearnWorlds' ids are hex; no user has an id that is not a plain word.
        if lms_user_id.is_empty()
            || !lms_user_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        let url = format!(
            "{}/v2/users/{}",
            settings.base_url,
            encode_path_segment(lms_user_id)
        );
        // A second attempt only after a 401, with a new token.
        for attempt in 0..2 {
            let token = self.token(settings).await?;
            let request = Request::get(&url)
                .header(header::AUTHORIZATION, bearer(&token)?)
                .header("lw-client", &settings.client_id)
                .header(header::ACCEPT, "application/json")
                .body(Full::default())
                .map_err(|e| ApiError::Internal(format!("building the user request: {e}")))?;
            let asked_at = Utc::now();
            let (status, body) = self.exchange(request, "the user request").await?;
            match status {
                StatusCode::OK => {
                    let user = read_current_user(&body, lms_user_id)
                        .map_err(|reason| upstream(format!("the user answer: {reason}")))?;
                    return Ok(Some(CurrentUser { user, asked_at }));
                }
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if attempt == 0 => self.forget(&token).await,
                other => return Err(upstream(format!("the user request answered {other}"))),
            }
        }
        Err(upstream(
            "the user request was refused with a new token".into(),
        ))
    }

    /// The cached access token, or a new one.
    async fn token(&self, settings: &LearnWorldsApiSettings) -> Result<Secret, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.fresh_until
        {
            return Ok(token.value.clone());
        }
        let body = json!({
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.expose(),
            "grant_type": "client_credentials",
        });
        let request = Request::post(format!("{}/oauth2/access_token", settings.base_url))
            .header("lw-client", &settings.client_id)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ApiError::Internal(format!("building the token request: {e}")))?;
        let asked = Instant::now();
        let (status, answer) = self.exchange(request, "the token request").await?;
        if status != StatusCode::OK {
            return Err(upstream(format!("the token request answered {status}")));
        }
        let (value, lifetime) = read_token(&answer)
            .map_err(|reason| upstream(format!("the token answer: {reason}")))?;
        *cached = Some(AccessToken {
            value: value.clone(),
            fresh_until: asked + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2)),
        });
        Ok(value)
    }

    /// Drops the cached token if it is still `refused`.
    async fn forget(&self, refused: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == refused) {
            *cached = None;
        }
    }

    /// Sends `request` and reads the whole answer, within [`EXCHANGE_TIMEOUT`].
    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
        what: &str,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let client = self.client.get_or_init(build_client);
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| upstream(format!("{what} failed: {}", causes(&e))))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| upstream(format!("reading the answer to {what}: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(upstream(format!(
                    "{what} had no answer within {} s",
                    EXCHANGE_TIMEOUT.as_secs()
                )))
            })
    }
}

/// HTTPS over rustls with ring and Mozilla's roots compiled in (nothing read
/// from disk at start); plain HTTP is only ever configured for a local stand-in
/// (`LearnWorldsApiSettings` refuses it elsewhere).
fn build_client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .expect("ring supports rustls' default protocol versions")
        .https_or_http()
        .enable_http1()
        .build();
    // A frozen Lambda's idle connection may be closed by the time it thaws.
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_CONNECTION_LIFETIME)
        .build(https)
}

fn upstream(reason: String) -> ApiError {
    ApiError::Upstream(format!("LearnWorlds' API: {reason}"))
}

fn bearer(token: &Secret) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| upstream("the access token is not a header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// An error and its sources, as one line (no request data is in them).
fn causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Percent-encodes everything but letters, digits, `-`, `_` and `~`, so that
/// an id is one path segment whatever it holds.
fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => {
                encoded.push(byte as char);
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// The token answer: `tokenData.access_token` and `tokenData.expires_in`
/// (seconds). The fields at the top level, as a plain OAuth2 server answers,
/// are read too.
pub fn read_token(body: &[u8]) -> Result<(Secret, Duration), &'static str> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    if answer.get("success") == Some(&Value::Bool(false)) {
        return Err("success is false");
    }
    let data = answer
        .get("tokenData")
        .filter(|d| d.is_object())
        .unwrap_or(&answer);
    let token = data
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("no access_token")?;
    let lifetime = match data.get("expires_in") {
        None | Some(Value::Null) => TOKEN_DEFAULT_LIFETIME,
        Some(seconds) => seconds
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(366.0 * 86_400.0)))
            .ok_or("expires_in is not a positive number")?,
    };
    Ok((Secret::new(token), lifetime))
}

/// The user answer, which must be the user asked for: profile and the
/// organization their whole tag list names.
pub fn read_current_user(body: &[u8], lms_user_id: &str) -> Result<LmsUser, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let object = answer
        .as_object()
        .ok_or_else(|| "not a JSON object".to_owned())?;
    // The user itself, or wrapped in `data` as list answers are.
    let user = match object.get("data").and_then(Value::as_object) {
        Some(data) if !object.contains_key("id") => data,
        _ => object,
    };
    let read = webhooks::read_user(user).map_err(|e| e.to_string())?;
    if read.profile.lms_user_id != lms_user_id {
        return Err("it is another user".to_owned());
    }
    let tags = read.tags.unwrap_or_default();
    Ok(LmsUser {
        organization: Membership::from_tags(tags, read.company),
        ..read.profile
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::users::OrganizationTag;

    #[test]
    fn a_token_answer_is_read_as_documented_and_refused_otherwise() {
        let (token, lifetime) = read_token(
            br#"{"tokenData":{"access_token":"tZGB6EHKfz","token_type":"Bearer","expires_in":8000},"errors":[],"success":true}"#,
        )
        .unwrap();
        assert_eq!(
            (token.expose(), lifetime),
            ("tZGB6EHKfz", Duration::from_secs(8000))
        );
        let (_, lifetime) = read_token(br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(lifetime, TOKEN_DEFAULT_LIFETIME);
        for bad in [
            &br#"{"tokenData":{"access_token":"abc"},"success":false}"#[..],
            br#"{"tokenData":{"access_token":""}}"#,
            br#"{"tokenData":{"access_token":"a b"}}"#,
            br#"{"tokenData":{"access_token":"abc","expires_in":-1}}"#,
            br#"{"errors":[{"message":"denied"}]}"#,
            b"<html>",
        ] {
            assert!(read_token(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_user_answer_gives_the_organization_of_the_whole_tag_list() {
        let id = "64a0f0000000000000000001";
        let answer = |tags: &str| {
            format!(
                r#"{{"id":"{id}","email":"ana@example.test","first_name":"Ana","last_name":"Lopes",
                    "tags":{tags},"fields":{{"company":"Acme Ltd"}},"role":{{"level":"admin"}}}}"#
            )
        };
        let user = read_current_user(answer(r#"["vip","org:acme"]"#).as_bytes(), id).unwrap();
        assert_eq!(
            (user.email.as_str(), user.full_name.as_str()),
            ("ana@example.test", "Ana Lopes")
        );
        assert_eq!(
            user.organization,
            Membership::In(OrganizationTag {
                slug: "acme".into(),
                name: "Acme Ltd".into()
            })
        );
        for no_org in [r#"["vip"]"#, "[]", "null"] {
            let user = read_current_user(answer(no_org).as_bytes(), id).unwrap();
            assert_eq!(user.organization, Membership::NoOrganization, "{no_org}");
        }
        let wrapped = format!(r#"{{"data":{}}}"#, answer(r#"["org:acme"]"#));
        assert!(matches!(
            read_current_user(wrapped.as_bytes(), id)
                .unwrap()
                .organization,
            Membership::In(_)
        ));
        // Another user's answer, or none, is never taken for this one.
        assert!(read_current_user(answer("[]").as_bytes(), "64a0f0000000000000000002").is_err());
        assert!(read_current_user(b"[]", id).is_err());
        assert!(read_current_user(br#"{"email":"a@b.test"}"#, id).is_err());
    }

    #[test]
    fn an_id_is_one_path_segment_whatever_it_holds() {
        assert_eq!(
            encode_path_segment("64a0f0000000000000000001"),
            "64a0f0000000000000000001"
        );
        assert_eq!(
            encode_path_segment("../oauth2?x=1#"),
            "%2E%2E%2Foauth2%3Fx%3D1%23"
        );
    }
}

//! Typed settings, read once at cold start. A missing or malformed setting is
//! one error naming the variable; secrets are wrapped so they never print.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::keys::{self, PublicKey, SigningKey};

/// A secret value: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0} is not set")]
    Missing(&'static str),
    #[error("configuration: {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct Environment;

/// Some settings in front of another source: what `values` holds wins.
pub struct Layered<'a> {
    pub values: std::collections::HashMap<&'static str, String>,
    pub fallback: &'a dyn Source,
}

impl Source for Layered<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| self.fallback.get(name))
    }
}

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Source for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

fn required(source: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    source.get(name).ok_or(ConfigError::Missing(name))
}

fn parsed<T: FromStr>(source: &dyn Source, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match source.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// A number that must lie in `allowed`: past the ends it is a named error at
/// cold start, not a panic or a timeout on every request later.
pub fn bounded<T>(
    source: &dyn Source,
    name: &'static str,
    default: T,
    allowed: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display,
    T::Err: fmt::Display,
{
    let value = parsed(source, name, default)?;
    if !allowed.contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be from {} to {}", allowed.start(), allowed.end()),
        });
    }
    Ok(value)
}

/// PostgreSQL's limit for `statement_timeout`, in milliseconds.
const POSTGRES_TIMEOUT_LIMIT_MS: u64 = i32::MAX as u64;

/// A Lambda function runs for at most 15 minutes.
const LAMBDA_TIMEOUT_LIMIT_MS: u64 = 15 * 60 * 1000;

/// API Gateway passes a Lambda function at most 6 MB.
const BODY_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// The longest `LAUNCH_MAX_AGE_SECONDS`. A launch is accepted this far either
/// side of its timestamp, and a used one is remembered for a day (the
/// recompute deletes older records): any longer and a used launch could be
/// replayed once its record is gone.
pub const LAUNCH_MAX_AGE_LIMIT: u64 = 12 * 3600;

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    /// Per Lambda container; one request runs at a time there, so 1–2 suffices.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `transaction` behind a transaction-mode pooler (PgBouncer, RDS Proxy,
    /// Supabase's pooler): see [`crate::foundation::db`].
    pub pooler_mode: PoolerMode,
    /// Server-side statement and lock timeout, so a request that gave up does not
    /// leave its statement waiting. Zero: no limit (migrations), sent as such so
    /// that no role or database setting imposes one.
    pub statement_timeout: Duration,
}

impl DatabaseSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let url = required(source, "DATABASE_URL")?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "must start with postgres:// or postgresql://".into(),
            });
        }
        Ok(Self {
            url: Secret::new(url),
            max_connections: bounded(source, "DATABASE_MAX_CONNECTIONS", 2, 1..=1000)?,
            acquire_timeout: bounded(source, "DATABASE_ACQUIRE_TIMEOUT_SECONDS", 3, 1..=300)
                .map(Duration::from_secs)?,
            pooler_mode: parsed(source, "DATABASE_POOLER_MODE", PoolerMode::Session)?,
            statement_timeout: bounded(
                source,
                "DATABASE_STATEMENT_TIMEOUT_MS",
                7000,
                0..=POSTGRES_TIMEOUT_LIMIT_MS,
            )
            .map(Duration::from_millis)?,
        })
    }
}

/// How the service reaches PostgreSQL: directly (or through a session-mode
/// pooler), or through a transaction-mode pooler. See [`crate::foundation::db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerMode {
    Session,
    Transaction,
}

impl FromStr for PoolerMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!("`{other}`: expected session or transaction")),
        }
    }
}

/// How `Learnworlds-Webhook-Signature: v1=<value>` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureMode {
    /// The value is the pre-shared secret itself (LearnWorlds' documented scheme).
    SharedSecret,
    /// The value is the hex HMAC-SHA256 of the raw body, keyed by the secret.
    HmacSha256,
}

impl FromStr for SignatureMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shared-secret" => Ok(Self::SharedSecret),
            "hmac-sha256" => Ok(Self::HmacSha256),
            other => Err(format!("`{other}`: expected shared-secret or hmac-sha256")),
        }
    }
}

/// Where the service runs: `DEPLOYMENT_STAGE`, which the SAM template sets to
/// the stage, and nothing sets locally (`make run`, tests, `cargo lambda watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    Local,
    /// A deployed stage: the public development secrets and a secret reused
    /// for two purposes fail its cold start ([`super::hygiene`]).
    Stage(String),
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The Ed25519 key tokens are signed with. Only the function that creates
    /// sessions holds it (`sessions::TokenKeys`); the others verify with
    /// `jwt_public_keys` alone.
    pub jwt_signing_key: Option<SigningKey>,
    /// The keys tokens are verified with, chosen by their `kid`: the current
    /// one, and during a rotation the next or the previous one too.
    pub jwt_public_keys: Vec<PublicKey>,
    pub deployment: Deployment,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// A bearer token's lifetime: short, since a refresh renews it.
    pub token_ttl: Duration,
    /// A session's absolute lifetime: its refresh tokens are refused this long
    /// after the launch that began it, however often it was refreshed.
    pub refresh_ttl: Duration,
    /// A session unused (never refreshed) this long ends.
    pub refresh_idle: Duration,
    /// Absent: every webhook is refused (fail closed).
    pub webhook_secret: Option<Secret>,
    pub webhook_signature_mode: SignatureMode,
    /// Absent: every session launch is refused (fail closed).
    pub launch_secret: Option<Secret>,
    pub launch_max_age: Duration,
    pub max_body_bytes: usize,
    /// Upper bound on one request's database work; past it the answer is a 503.
    pub request_timeout: Duration,
    /// Each user's save budget: at most this many tokens in hand (a save costs
    /// one, plus one per 8 KiB of body).
    pub save_burst: u32,
    /// Tokens a user's save budget regains per minute.
    pub save_refill_per_minute: u32,
    /// Absent: webhooks never change a user's organization (see
    /// [`LearnWorldsApiSettings`]).
    pub learnworlds_api: Option<LearnWorldsApiSettings>,
    /// The key of the keyed hashes an erased person leaves behind (their
    /// tombstone, their pseudonym in the audit log). The functions that sync
    /// users, serve data rights and erase need it; the others do not get it.
    pub erasure_hash_key: Option<Secret>,
    /// How long an erasure request waits before the person is erased.
    pub erasure_cool_off: Duration,
}

/// LearnWorlds' REST API, which the webhook asks for a user's current tags
/// and profile instead of trusting what a delivery says. The three settings
/// come together or not at all.
#[derive(Debug, Clone)]
pub struct LearnWorldsApiSettings {
    /// The school's API URL as Settings > Developers > API shows it
    /// (`https://<school>/admin/api`), without a trailing slash.
    pub base_url: String,
    /// Sent as `Lw-Client` and in the token request.
    pub client_id: String,
    pub client_secret: Secret,
}

impl LearnWorldsApiSettings {
    const NAMES: [&str; 3] = [
        "LEARNWORLDS_API_BASE_URL",
        "LEARNWORLDS_API_CLIENT_ID",
        "LEARNWORLDS_API_CLIENT_SECRET",
    ];

    pub fn from_source(source: &dyn Source) -> Result<Option<Self>, ConfigError> {
        let values = Self::NAMES.map(|name| source.get(name));
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let [Some(base_url), Some(client_id), Some(client_secret)] = values else {
            let missing = values.iter().position(Option::is_none).unwrap_or(0);
            return Err(ConfigError::Missing(Self::NAMES[missing]));
        };
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.into(),
        };
        let base_url = base_url.trim().trim_end_matches('/');
        if !api_base_url_allowed(base_url) {
            return Err(invalid(
                "LEARNWORLDS_API_BASE_URL",
                "expected https://<school>/admin/api (http:// only to localhost), without a query",
            ));
        }
        let client_id = client_id.trim();
        if client_id.is_empty() || !client_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "LEARNWORLDS_API_CLIENT_ID",
                "expected visible ASCII characters",
            ));
        }
        Ok(Some(Self {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret.trim()),
        }))
    }
}

/// An https:// URL with a host, or http:// to this machine (a local stand-in
/// for LearnWorlds); no user info, query or fragment.
fn api_base_url_allowed(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    let local = matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]");
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => local,
        _ => false,
    };
    scheme_ok
        && !authority.host().is_empty()
        && !authority.as_str().contains('@')
        && uri.query().is_none()
        && !url.contains('#')
}

impl ApiSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let (jwt_signing_key, jwt_public_keys) = token_keys(source)?;
        let optional_secret = |name: &'static str| -> Result<Option<Secret>, ConfigError> {
            match source.get(name) {
                Some(s) if s.len() < 16 => Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 16 bytes".into(),
                }),
                other => Ok(other.map(Secret::new)),
            }
        };
        let settings = Self {
            jwt_signing_key,
            jwt_public_keys,
            deployment: match source.get("DEPLOYMENT_STAGE") {
                Some(stage) => Deployment::Stage(stage.trim().to_owned()),
                None => Deployment::Local,
            },
            jwt_issuer: source
                .get("JWT_ISSUER")
                .unwrap_or_else(|| "fasttrack".into()),
            jwt_audience: source
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| "fasttrack-api".into()),
            token_ttl: bounded(source, "TOKEN_TTL_SECONDS", 900, 60..=30 * 24 * 3600)
                .map(Duration::from_secs)?,
            refresh_ttl: bounded(
                source,
                "REFRESH_TOKEN_TTL_SECONDS",
                30 * 24 * 3600,
                300..=365 * 24 * 3600,
            )
            .map(Duration::from_secs)?,
            refresh_idle: bounded(
                source,
                "REFRESH_TOKEN_IDLE_SECONDS",
                7 * 24 * 3600,
                300..=365 * 24 * 3600,
            )
            .map(Duration::from_secs)?,
            webhook_secret: optional_secret("LEARNWORLDS_WEBHOOK_SECRET")?,
            webhook_signature_mode: parsed(
                source,
                "LEARNWORLDS_WEBHOOK_SIGNATURE_MODE",
                SignatureMode::SharedSecret,
            )?,
            launch_secret: optional_secret("LEARNWORLDS_LAUNCH_SECRET")?,
            launch_max_age: bounded(
                source,
                "LAUNCH_MAX_AGE_SECONDS",
                300,
                1..=LAUNCH_MAX_AGE_LIMIT,
            )
            .map(Duration::from_secs)?,
            max_body_bytes: bounded(
                source,
                "MAX_BODY_BYTES",
                256 * 1024,
                1024..=BODY_LIMIT_BYTES,
            )?,
            request_timeout: bounded(
                source,
                "REQUEST_TIMEOUT_MS",
                8000,
                100..=LAMBDA_TIMEOUT_LIMIT_MS,
            )
            .map(Duration::from_millis)?,
            save_burst: bounded(source, "SAVE_BURST", 60, 1..=100_000)?,
            save_refill_per_minute: bounded(source, "SAVE_REFILL_PER_MINUTE", 60, 1..=1_000_000)?,
            learnworlds_api: LearnWorldsApiSettings::from_source(source)?,
            erasure_hash_key: erasure_hash_key(source)?,
            erasure_cool_off: bounded(source, "ERASURE_COOL_OFF_DAYS", 14, 0..=365)
                .map(|days| Duration::from_secs(days * 24 * 3600))?,
        };
        super::hygiene::check(&settings)?;
        Ok(settings)
    }
}

/// `ERASURE_HASH_KEY`, where it is given: at least 32 bytes.
pub fn erasure_hash_key(source: &dyn Source) -> Result<Option<Secret>, ConfigError> {
    match source.get("ERASURE_HASH_KEY") {
        Some(key) if key.len() < 32 => Err(ConfigError::Invalid {
            name: "ERASURE_HASH_KEY",
            reason: "must be at least 32 bytes".into(),
        }),
        key => Ok(key.map(Secret::new)),
    }
}

/// `JWT_SIGNING_KEY` (where it is given) and `JWT_PUBLIC_KEYS`; the signing
/// key's own public key must be among them, or its tokens would be refused.
fn token_keys(source: &dyn Source) -> Result<(Option<SigningKey>, Vec<PublicKey>), ConfigError> {
    let invalid = |name: &'static str| move |reason: String| ConfigError::Invalid { name, reason };
    let public_keys = keys::public_keys(&required(source, "JWT_PUBLIC_KEYS")?)
        .map_err(invalid("JWT_PUBLIC_KEYS"))?;
    let signing_key = source
        .get("JWT_SIGNING_KEY")
        .map(|text| SigningKey::parse(&text))
        .transpose()
        .map_err(invalid("JWT_SIGNING_KEY"))?;
    if let Some(key) = &signing_key
        && !public_keys.contains(&key.public_key())
    {
        return Err(invalid("JWT_SIGNING_KEY")(
            "its public key is not in JWT_PUBLIC_KEYS: publish it there first (README, rotating the token key)".into(),
        ));
    }
    Ok((signing_key, public_keys))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    // The base64 of `openssl pkey -pubout`'s Ed25519 key, and its private key.
    const PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAL0C2kjfEUhnxdYYEHdVNDfs7pHUtIUW20E/4tROSIpk=";
    const SIGNING_PRIVATE_KEY: &str =
        "MC4CAQAwBQYDK2VwBCIEILvJS1Uob/X2DsUZV8YrWhRtu7Lk6RXw11h5zSItEJev";

    #[test]
    fn defaults_apply_when_only_the_required_settings_are_set() {
        let api =
            ApiSettings::from_source(&HashMap::from([("JWT_PUBLIC_KEYS", PUBLIC_KEY)])).unwrap();
        assert_eq!(api.token_ttl, Duration::from_secs(900));
        assert_eq!(api.refresh_ttl, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(api.refresh_idle, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(api.max_body_bytes, 262_144);
        assert_eq!(api.webhook_signature_mode, SignatureMode::SharedSecret);
        assert!(api.webhook_secret.is_none());
        assert!(api.jwt_signing_key.is_none());
        assert_eq!(api.deployment, Deployment::Local);
        let db =
            DatabaseSettings::from_source(&HashMap::from([("DATABASE_URL", "postgres://x@h/db")]))
                .unwrap();
        assert_eq!(db.max_connections, 2);
        assert_eq!(db.pooler_mode, PoolerMode::Session);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[], "JWT_PUBLIC_KEYS is not set"),
            (
                &[("JWT_PUBLIC_KEYS", "short")],
                "JWT_PUBLIC_KEYS is invalid: key 1: expected an Ed25519 public key",
            ),
            (
                &[
                    ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                    ("JWT_SIGNING_KEY", PUBLIC_KEY),
                ],
                "JWT_SIGNING_KEY is invalid: expected an Ed25519 private key",
            ),
            (
                &[
                    ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                    ("TOKEN_TTL_SECONDS", "soon"),
                ],
                "TOKEN_TTL_SECONDS is invalid",
            ),
            (
                &[
                    ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                    ("LEARNWORLDS_WEBHOOK_SIGNATURE_MODE", "md5"),
                ],
                "LEARNWORLDS_WEBHOOK_SIGNATURE_MODE is invalid",
            ),
            (
                &[
                    ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                    ("LEARNWORLDS_LAUNCH_SECRET", "tiny"),
                ],
                "LEARNWORLDS_LAUNCH_SECRET is invalid",
            ),
            (
                &[("JWT_PUBLIC_KEYS", PUBLIC_KEY), ("MAX_BODY_BYTES", "-1")],
                "MAX_BODY_BYTES is invalid",
            ),
            (
                &[("JWT_SIGNING_KEY", SIGNING_PRIVATE_KEY)],
                "JWT_PUBLIC_KEYS is not set",
            ),
        ];
        for (vars, expected) in cases {
            let err = ApiSettings::from_source(&vars.iter().copied().collect::<HashMap<_, _>>())
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
        }
        let err = DatabaseSettings::from_source(&HashMap::from([("DATABASE_URL", "mysql://x")]))
            .unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL is invalid"));
        let err = DatabaseSettings::from_source(&HashMap::from([
            ("DATABASE_URL", "postgres://x@h/db"),
            ("DATABASE_POOLER_MODE", "statement"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("DATABASE_POOLER_MODE is invalid"));
        let err = DatabaseSettings::from_source(&HashMap::new()).unwrap_err();
        assert_eq!(err.to_string(), "configuration: DATABASE_URL is not set");
    }

    #[test]
    fn a_launch_max_age_longer_than_used_launches_are_remembered_is_refused() {
        let settings = |age: &str| {
            ApiSettings::from_source(&HashMap::from([
                ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                ("LAUNCH_MAX_AGE_SECONDS", age),
            ]))
        };
        assert_eq!(
            settings("43200").unwrap().launch_max_age,
            Duration::from_secs(43200)
        );
        for age in ["43201", "86400", "0"] {
            let err = settings(age).unwrap_err().to_string();
            assert!(
                err.contains("LAUNCH_MAX_AGE_SECONDS is invalid: must be from 1 to 43200"),
                "{age}: {err}"
            );
        }
    }

    #[test]
    fn numbers_past_what_the_service_can_use_are_refused_at_start_up() {
        let api = |name: &str, value: &str| {
            ApiSettings::from_source(&HashMap::from([
                ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
                (name, value),
            ]))
            .map(|_| ())
        };
        let db = |name: &str, value: &str| {
            DatabaseSettings::from_source(&HashMap::from([
                ("DATABASE_URL", "postgres://x@h/db"),
                (name, value),
            ]))
        };
        let check = |name: &str, value: &str| match name.starts_with("DATABASE_") {
            true => db(name, value).map(|_| ()),
            false => api(name, value),
        };
        // Each of these once passed, and then panicked or failed every request.
        for (name, value) in [
            ("TOKEN_TTL_SECONDS", "18446744073709551615"),
            ("MAX_BODY_BYTES", "18446744073709551615"),
            ("REQUEST_TIMEOUT_MS", "0"),
            ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "10000000000000000000"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "3000000000"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
        ] {
            let err = check(name, value).expect_err(value).to_string();
            assert!(
                err.contains(&format!("{name} is invalid: must be from ")),
                "{err}"
            );
        }
        // The ends themselves are accepted; a statement timeout of 0 is "none".
        assert!(api("MAX_BODY_BYTES", "6291456").is_ok());
        assert!(api("TOKEN_TTL_SECONDS", "2592000").is_ok());
        let unlimited = db("DATABASE_STATEMENT_TIMEOUT_MS", "0").unwrap();
        assert_eq!(unlimited.statement_timeout, Duration::ZERO);
        let longest = db("DATABASE_STATEMENT_TIMEOUT_MS", "2147483647").unwrap();
        assert_eq!(
            longest.statement_timeout,
            Duration::from_millis(2_147_483_647)
        );
    }

    #[test]
    fn learnworlds_api_settings_come_together_and_only_over_https() {
        let api = |vars: &[(&'static str, &'static str)]| {
            let mut all = HashMap::from([("JWT_PUBLIC_KEYS", PUBLIC_KEY)]);
            all.extend(vars.iter().copied());
            ApiSettings::from_source(&all).map(|s| s.learnworlds_api)
        };
        assert!(api(&[]).unwrap().is_none());
        let full = [
            (
                "LEARNWORLDS_API_BASE_URL",
                " https://school.example/admin/api/ ",
            ),
            ("LEARNWORLDS_API_CLIENT_ID", "client-id"),
            ("LEARNWORLDS_API_CLIENT_SECRET", "client-secret-value"),
        ];
        let settings = api(&full).unwrap().unwrap();
        assert_eq!(settings.base_url, "https://school.example/admin/api");
        assert_eq!(settings.client_id, "client-id");
        assert!(!format!("{settings:?}").contains("client-secret-value"));
        let local = api(&[
            full[1],
            full[2],
            ("LEARNWORLDS_API_BASE_URL", "http://127.0.0.1:9/admin/api"),
        ]);
        assert!(local.unwrap().is_some());
        for (vars, expected) in [
            (&full[..1], "LEARNWORLDS_API_CLIENT_ID is not set"),
            (&full[1..], "LEARNWORLDS_API_BASE_URL is not set"),
            (&full[..2], "LEARNWORLDS_API_CLIENT_SECRET is not set"),
        ] {
            let err = api(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        for url in [
            "http://school.example/admin/api",
            "school.example/admin/api",
            "https://user:pw@school.example/admin/api",
            "https://school.example/admin/api?x=1",
            "ftp://school.example",
        ] {
            let err = api(&[full[1], full[2], ("LEARNWORLDS_API_BASE_URL", url)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("LEARNWORLDS_API_BASE_URL is invalid"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let api = ApiSettings::from_source(&HashMap::from([
            ("JWT_PUBLIC_KEYS", PUBLIC_KEY),
            ("JWT_SIGNING_KEY", SIGNING_PRIVATE_KEY),
            ("LEARNWORLDS_WEBHOOK_SECRET", "webhook-secret-value"),
        ]))
        .unwrap();
        let printed = format!("{api:?}");
        assert!(!printed.contains(&SIGNING_PRIVATE_KEY[20..]));
        assert!(!printed.contains("webhook-secret-value"));
        assert!(printed.contains("[redacted]"));
    }
}

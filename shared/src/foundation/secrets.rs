//! Secrets on AWS. Each `*_SECRET_ARN` variable names a Secrets Manager secret
//! that supplies one setting; every such secret is read once per cold start,
//! concurrently, and nothing is asked of AWS when none is set (local use).
//!
//! A secret's value is its plain `SecretString`. The database secret may also be
//! RDS's JSON (`host`, `port`, `username`, `password`, `dbname`), whose place
//! `DATABASE_HOST` and `DATABASE_NAME` may give instead (see [`Endpoint`]).

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_smithy_http_client::tls;
use serde_json::Value;

use crate::foundation::config::{ConfigError, Layered, Source};

/// (variable naming the secret, setting it supplies)
pub const SECRET_SETTINGS: [(&str, &str); 8] = [
    ("DATABASE_SECRET_ARN", "DATABASE_URL"),
    // The migrate function only: the route functions' login, which it makes.
    ("RUNTIME_DATABASE_SECRET_ARN", "RUNTIME_DATABASE_URL"),
    ("JWT_SIGNING_KEY_SECRET_ARN", "JWT_SIGNING_KEY"),
    ("ERASURE_HASH_KEY_SECRET_ARN", "ERASURE_HASH_KEY"),
    // The migrate function only: the erasure function's login, which it makes.
    ("ERASER_DATABASE_SECRET_ARN", "ERASER_DATABASE_URL"),
    (
        "LEARNWORLDS_WEBHOOK_SECRET_ARN",
        "LEARNWORLDS_WEBHOOK_SECRET",
    ),
    ("LEARNWORLDS_LAUNCH_SECRET_ARN", "LEARNWORLDS_LAUNCH_SECRET"),
    (
        "LEARNWORLDS_API_CLIENT_SECRET_ARN",
        "LEARNWORLDS_API_CLIENT_SECRET",
    ),
];

/// `env`, with the settings its `*_SECRET_ARN` variables name read from
/// Secrets Manager in front of it.
pub async fn resolve(env: &dyn Source) -> Result<Layered<'_>, ConfigError> {
    let wanted: Vec<(&'static str, &'static str, String)> = SECRET_SETTINGS
        .iter()
        .filter_map(|&(arn_var, setting)| env.get(arn_var).map(|arn| (arn_var, setting, arn)))
        .collect();
    let mut secrets = HashMap::new();
    if wanted.is_empty() {
        return Ok(Layered {
            values: secrets,
            fallback: env,
        });
    }
    let endpoint = Endpoint::from_env(env)?;
    let client = client().await;
    let mut reads = tokio::task::JoinSet::new();
    for (arn_var, setting, arn) in wanted {
        let client = client.clone();
        reads.spawn(async move {
            let result = client.get_secret_value().secret_id(&arn).send().await;
            (arn_var, setting, result)
        });
    }
    while let Some(joined) = reads.join_next().await {
        let (arn_var, setting, result) = joined.map_err(|e| ConfigError::Invalid {
            name: "secrets",
            reason: e.to_string(),
        })?;
        let output = result.map_err(|e| ConfigError::Invalid {
            name: arn_var,
            reason: format!(
                "could not be read from Secrets Manager: {}",
                DisplayErrorContext(&e)
            ),
        })?;
        let value = output.secret_string().ok_or(ConfigError::Invalid {
            name: arn_var,
            reason: "the secret has no SecretString".into(),
        })?;
        let value = if setting == "DATABASE_URL" {
            database_url(value, &endpoint).map_err(|reason| ConfigError::Invalid {
                name: arn_var,
                reason: reason.into(),
            })?
        } else if setting == "RUNTIME_DATABASE_URL" || setting == "ERASER_DATABASE_URL" {
            // Only its login matters here, not where it connects.
            database_url(value, &Endpoint::default()).map_err(|reason| ConfigError::Invalid {
                name: arn_var,
                reason: reason.into(),
            })?
        } else {
            // A secret stored from a file (`--secret-string file://key.txt`)
            // usually ends in a newline that LearnWorlds' key does not have.
            value.trim().to_owned()
        };
        secrets.insert(setting, value);
    }
    Ok(Layered {
        values: secrets,
        fallback: env,
    })
}

/// Where the connection of an RDS JSON secret goes when the environment says
/// so, for a secret whose host is not where the functions connect:
/// - `DATABASE_HOST` (`host` or `host:port`) instead of the secret's host and
///   port: RDS Proxy's endpoint, while the functions read the very secret the
///   proxy logs in with and a rotation keeps current;
/// - `DATABASE_NAME` instead of its `dbname` (RDS's managed master-user secret
///   holds only a username and a password).
#[derive(Debug, Clone, Default)]
struct Endpoint {
    /// The host as a URL writes it (an IPv6 address in brackets) and its port.
    host: Option<(String, u16)>,
    name: Option<String>,
}

impl Endpoint {
    fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let invalid = |name: &'static str, reason: &str| ConfigError::Invalid {
            name,
            reason: reason.into(),
        };
        let host = env
            .get("DATABASE_HOST")
            .map(|place| {
                host_and_port(place.trim()).ok_or_else(|| {
                    invalid(
                        "DATABASE_HOST",
                        "expected a host name or address, with an optional :port",
                    )
                })
            })
            .transpose()?;
        let name = env.get("DATABASE_NAME").map(|n| n.trim().to_owned());
        if name.as_deref().is_some_and(|n| n.is_empty()) {
            return Err(invalid("DATABASE_NAME", "is blank"));
        }
        Ok(Self { host, name })
    }
}

/// `host`, `host:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address, as a
/// URL's host (brackets around IPv6) and port (5432 unless given).
fn host_and_port(place: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = place.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        address.parse::<std::net::Ipv6Addr>().ok()?;
        (format!("[{address}]"), port)
    } else if place.parse::<std::net::Ipv6Addr>().is_ok() {
        (format!("[{place}]"), None)
    } else {
        let (host, port) = match place.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (place, None),
        };
        let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.is_empty() || !host.chars().all(name_like) {
            return None;
        }
        (host.to_owned(), port)
    };
    let port = match port {
        Some(port) => port.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => 5432,
    };
    Some((host, port))
}

const NOT_A_DATABASE_SECRET: &str =
    "expected a postgres:// URL or RDS's JSON (host, port, username, password, dbname)";

/// A postgres:// URL as is, or one built from RDS's secret JSON and `endpoint`.
fn database_url(secret: &str, endpoint: &Endpoint) -> Result<String, &'static str> {
    let secret = secret.trim();
    if secret.starts_with("postgres://") || secret.starts_with("postgresql://") {
        if endpoint.host.is_some() || endpoint.name.is_some() {
            return Err(
                "DATABASE_HOST and DATABASE_NAME apply to RDS's JSON secrets; this one is a URL: put the place in it",
            );
        }
        return Ok(secret.to_owned());
    }
    let json: Value = serde_json::from_str(secret).map_err(|_| NOT_A_DATABASE_SECRET)?;
    let text = |key: &str| json.get(key).and_then(Value::as_str);
    let secret_port = match json.get("port") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "5432".to_owned(),
    };
    let (host, port) = match &endpoint.host {
        Some((host, port)) => (host.as_str(), port.to_string()),
        None => (text("host").ok_or(NOT_A_DATABASE_SECRET)?, secret_port),
    };
    let name = endpoint
        .name
        .as_deref()
        .or(text("dbname"))
        .unwrap_or("postgres");
    Ok(format!(
        "postgres://{}:{}@{}:{}/{}",
        encode(text("username").ok_or(NOT_A_DATABASE_SECRET)?),
        encode(text("password").ok_or(NOT_A_DATABASE_SECRET)?),
        host,
        port,
        encode(name),
    ))
}

/// The user and password of a postgres:// URL, percent-decoded; `None` for a
/// URL without a user.
pub fn login(url: &str) -> Option<(String, Option<String>)> {
    use crate::foundation::percent::{self, Part};
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (userinfo, _) = rest.split_once('@')?;
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = percent::decode(user, Part::Path).filter(|u| !u.is_empty())?;
    let password = match password {
        Some(password) => Some(percent::decode(password, Part::Path)?),
        None => None,
    };
    Some((user, password))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Secrets Manager client on the SDK's default configuration.
async fn client() -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(sdk_http_client())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// Reads the database URL that `DATABASE_SECRET_ARN` names again, for a pool
/// whose credentials were refused since the cold start (`db::Pool::following`);
/// a read that fails is logged and gives `None`. No reader when the variable
/// is unset (local use: the URL comes from `DATABASE_URL`).
pub fn database_url_reader(env: &dyn Source) -> Option<crate::foundation::db::ReadUrl> {
    let arn = env.get("DATABASE_SECRET_ARN")?;
    // An invalid place already failed the cold start (`resolve`).
    let endpoint = Endpoint::from_env(env).ok()?;
    Some(std::sync::Arc::new(move || {
        let (arn, endpoint) = (arn.clone(), endpoint.clone());
        Box::pin(async move {
            match client()
                .await
                .get_secret_value()
                .secret_id(&arn)
                .send()
                .await
            {
                Ok(output) => output
                    .secret_string()
                    .and_then(|secret| database_url(secret, &endpoint).ok()),
                Err(error) => {
                    tracing::error!(error = %DisplayErrorContext(&error), "reading DATABASE_SECRET_ARN again failed");
                    None
                }
            }
        })
    }))
}

/// The AWS SDK's HTTPS client: rustls with ring, the crypto sqlx already links
/// (the SDK's default client would add aws-lc-rs; see Cargo.toml).
pub fn sdk_http_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_login_is_read_decoded() {
        assert_eq!(
            login("postgres://fasttrack_lambda:p%40ss%3Aword@db:5432/app"),
            Some(("fasttrack_lambda".into(), Some("p@ss:word".into())))
        );
        assert_eq!(
            login("postgresql://runner@127.0.0.1/app"),
            Some(("runner".into(), None))
        );
        assert_eq!(login("postgres://db:5432/app"), None);
        assert_eq!(login("mysql://u:p@db/app"), None);
    }

    #[test]
    fn rds_json_becomes_a_url_with_the_password_encoded() {
        let secret = r#"{"engine": "postgres", "host": "db.example.internal", "port": 5432,
                         "username": "fasttrack_app", "password": "p@ss:w/rd?#", "dbname": "fasttrack"}"#;
        let none = Endpoint::default();
        assert_eq!(
            database_url(secret, &none).unwrap(),
            "postgres://fasttrack_app:p%40ss%3Aw%2Frd%3F%23@db.example.internal:5432/fasttrack"
        );
        assert_eq!(
            database_url(" postgres://u@h/d ", &none).unwrap(),
            "postgres://u@h/d"
        );
        assert!(database_url(r#"{"host": "h"}"#, &none).is_err());
        assert!(database_url("not a url", &none).is_err());
    }

    #[test]
    fn the_environment_places_an_rds_secret_that_names_another_host_or_none() {
        // The secret RDS Proxy logs in with names the instance: the functions
        // connect to the proxy instead.
        let proxied = r#"{"engine": "postgres", "host": "db.internal", "port": 5432,
                          "username": "fasttrack_lambda", "password": "pw", "dbname": "fasttrack"}"#;
        let proxy = Endpoint {
            host: host_and_port("proxy.internal"),
            name: None,
        };
        assert_eq!(
            database_url(proxied, &proxy).unwrap(),
            "postgres://fasttrack_lambda:pw@proxy.internal:5432/fasttrack"
        );
        // RDS's managed master-user secret: a username and a password only.
        let managed = r#"{"username": "postgres", "password": "pw"}"#;
        assert!(database_url(managed, &Endpoint::default()).is_err());
        let instance = Endpoint {
            host: host_and_port("db.internal:6543"),
            name: Some("fasttrack".into()),
        };
        assert_eq!(
            database_url(managed, &instance).unwrap(),
            "postgres://postgres:pw@db.internal:6543/fasttrack"
        );
        // A URL is complete as it is: a place given beside it is a mistake.
        assert!(database_url("postgres://u@h/d", &proxy).is_err());
    }

    #[test]
    fn a_database_host_is_read_as_a_url_writes_it_or_refused_by_name() {
        let place = |p: &str| host_and_port(p).map(|(h, port)| format!("{h}:{port}"));
        assert_eq!(
            place("proxy.internal").as_deref(),
            Some("proxy.internal:5432")
        );
        assert_eq!(place("10.0.0.5:6432").as_deref(), Some("10.0.0.5:6432"));
        assert_eq!(place("fd00::1").as_deref(), Some("[fd00::1]:5432"));
        assert_eq!(place("::1").as_deref(), Some("[::1]:5432"));
        assert_eq!(place("[fd00::1]:6543").as_deref(), Some("[fd00::1]:6543"));
        assert_eq!(place("[::1]").as_deref(), Some("[::1]:5432"));
        for bad in [
            "",
            "a/b",
            "user@host",
            "host:",
            "host:0",
            "host:99999",
            "h?x",
            "[::1",
            "[x]",
        ] {
            assert_eq!(place(bad), None, "{bad}");
        }
        let env = std::collections::HashMap::from([("DATABASE_HOST", " proxy.internal:6432 \n")]);
        assert_eq!(
            Endpoint::from_env(&env).unwrap().host,
            Some(("proxy.internal".to_owned(), 6432))
        );
        let env = std::collections::HashMap::from([("DATABASE_HOST", "p@x")]);
        let error = Endpoint::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("DATABASE_HOST"), "{error}");
    }

    #[tokio::test]
    async fn without_secret_arns_nothing_is_asked_of_aws() {
        let env = std::collections::HashMap::from([("JWT_SIGNING_KEY", "x")]);
        let resolved = resolve(&env).await.unwrap();
        assert_eq!(resolved.get("JWT_SIGNING_KEY").as_deref(), Some("x"));
        assert!(resolved.values.is_empty());
    }
}

//! What a deployed stage (`DEPLOYMENT_STAGE` set) refuses to start with: the
//! development keys and secrets of `scripts/local-env.sh`, which anyone with
//! the repository can read, and one value serving as two of the token signing
//! key, the webhook secret and the launch secret (a leak of one would then
//! give the other away). Each is one configuration error naming the setting,
//! never the value. Locally nothing is checked: the development values are
//! what `make run` and the tests use.

use super::config::{ApiSettings, ConfigError, Deployment, Secret};
use super::keys::{self, PublicKey, SigningKey};

/// The script the development values live in, read at build time so that the
/// values refused here are the ones it hands out.
const LOCAL_ENV: &str = include_str!("../../../scripts/local-env.sh");

/// The value `scripts/local-env.sh` gives `name` (`: "${NAME:=value}"`).
pub fn development_value(name: &str) -> Option<&'static str> {
    LOCAL_ENV.lines().find_map(|line| {
        line.trim()
            .strip_prefix(": \"${")?
            .strip_prefix(name)?
            .strip_prefix(":=")?
            .strip_suffix("}\"")
    })
}

fn development_public_keys() -> Vec<PublicKey> {
    development_value("JWT_PUBLIC_KEYS")
        .and_then(|keys| keys::public_keys(keys).ok())
        .expect("scripts/local-env.sh sets JWT_PUBLIC_KEYS to valid keys")
}

fn refuse(name: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        name,
        reason: reason.into(),
    })
}

pub fn check(settings: &ApiSettings) -> Result<(), ConfigError> {
    if settings.deployment == Deployment::Local {
        return Ok(());
    }
    let development_keys = development_public_keys();
    if let Some(key) = &settings.jwt_signing_key
        && development_keys.contains(&key.public_key())
    {
        return refuse(
            "JWT_SIGNING_KEY",
            "is the public development key from scripts/local-env.sh: a deployed stage needs a key of its own",
        );
    }
    if settings
        .jwt_public_keys
        .iter()
        .any(|key| development_keys.contains(key))
    {
        return refuse(
            "JWT_PUBLIC_KEYS",
            "holds the development key from scripts/local-env.sh, whose private key is public: remove it",
        );
    }
    let secrets = [
        (
            "LEARNWORLDS_WEBHOOK_SECRET",
            settings.webhook_secret.as_ref(),
        ),
        ("LEARNWORLDS_LAUNCH_SECRET", settings.launch_secret.as_ref()),
        ("ERASURE_HASH_KEY", settings.erasure_hash_key.as_ref()),
    ];
    for (name, secret) in secrets {
        if let Some(secret) = secret
            && development_value(name) == Some(secret.expose().trim())
        {
            return refuse(
                name,
                "is the public development value from scripts/local-env.sh: a deployed stage needs a secret of its own",
            );
        }
    }
    for (n, (name, secret)) in secrets.iter().enumerate() {
        let Some(secret) = secret else { continue };
        let reused = match &settings.jwt_signing_key {
            Some(key) if is_key(secret, key) => Some("JWT_SIGNING_KEY"),
            _ => secrets[..n]
                .iter()
                .find(|(_, earlier)| {
                    earlier.is_some_and(|e| e.expose().trim() == secret.expose().trim())
                })
                .map(|(earlier, _)| *earlier),
        };
        if let Some(other) = reused {
            return refuse(
                name,
                format!("is the same value as {other}: each needs a secret of its own"),
            );
        }
    }
    Ok(())
}

/// Whether `secret` is `key`, in any of the forms `JWT_SIGNING_KEY` accepts.
fn is_key(secret: &Secret, key: &SigningKey) -> bool {
    SigningKey::parse(secret.expose()).is_ok_and(|parsed| parsed.public_key() == key.public_key())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    // Stage-only keys and secrets, none of them the development ones.
    const STAGE_PRIVATE_KEY: &str =
        "MC4CAQAwBQYDK2VwBCIEILvJS1Uob/X2DsUZV8YrWhRtu7Lk6RXw11h5zSItEJev";
    const STAGE_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAL0C2kjfEUhnxdYYEHdVNDfs7pHUtIUW20E/4tROSIpk=";
    const STAGE_WEBHOOK_SECRET: &str = "stage-webhook-secret-0123456789";
    const STAGE_LAUNCH_SECRET: &str = "stage-launch-secret-0123456789";

    fn dev(name: &str) -> &'static str {
        development_value(name).unwrap()
    }

    fn settings(
        stage: Option<&str>,
        changes: &[(&'static str, &str)],
    ) -> Result<ApiSettings, String> {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("JWT_SIGNING_KEY", STAGE_PRIVATE_KEY.to_owned()),
            ("JWT_PUBLIC_KEYS", STAGE_PUBLIC_KEY.to_owned()),
            (
                "LEARNWORLDS_WEBHOOK_SECRET",
                STAGE_WEBHOOK_SECRET.to_owned(),
            ),
            ("LEARNWORLDS_LAUNCH_SECRET", STAGE_LAUNCH_SECRET.to_owned()),
        ]);
        if let Some(stage) = stage {
            vars.insert("DEPLOYMENT_STAGE", stage.to_owned());
        }
        for (name, value) in changes {
            vars.insert(name, (*value).to_owned());
        }
        let vars: HashMap<&str, &str> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ApiSettings::from_source(&vars).map_err(|e| e.to_string())
    }

    #[test]
    fn the_development_values_are_the_ones_local_env_sets() {
        let key = SigningKey::parse(dev("JWT_SIGNING_KEY")).unwrap();
        assert_eq!(development_public_keys(), [key.public_key()]);
        assert!(dev("LEARNWORLDS_WEBHOOK_SECRET").starts_with("local-development-"));
        assert!(dev("LEARNWORLDS_LAUNCH_SECRET").starts_with("local-development-"));
    }

    #[test]
    fn a_deployed_stage_refuses_each_public_development_value_by_name() {
        let dev_keys = [
            ("JWT_SIGNING_KEY", dev("JWT_SIGNING_KEY")),
            ("JWT_PUBLIC_KEYS", dev("JWT_PUBLIC_KEYS")),
        ];
        let dev_public_key_too = format!("{STAGE_PUBLIC_KEY},{}", dev("JWT_PUBLIC_KEYS"));
        let cases: [(&[(&'static str, &str)], &str); 5] = [
            (
                &dev_keys,
                "JWT_SIGNING_KEY is invalid: is the public development key",
            ),
            (
                &[("JWT_PUBLIC_KEYS", &dev_public_key_too)],
                "JWT_PUBLIC_KEYS is invalid: holds the development key",
            ),
            // The same key as PEM is the same key.
            (
                &[
                    ("JWT_SIGNING_KEY", &pem(dev("JWT_SIGNING_KEY"))),
                    ("JWT_PUBLIC_KEYS", dev("JWT_PUBLIC_KEYS")),
                ],
                "JWT_SIGNING_KEY is invalid: is the public development key",
            ),
            (
                &[(
                    "LEARNWORLDS_WEBHOOK_SECRET",
                    dev("LEARNWORLDS_WEBHOOK_SECRET"),
                )],
                "LEARNWORLDS_WEBHOOK_SECRET is invalid: is the public development value",
            ),
            (
                &[(
                    "LEARNWORLDS_LAUNCH_SECRET",
                    dev("LEARNWORLDS_LAUNCH_SECRET"),
                )],
                "LEARNWORLDS_LAUNCH_SECRET is invalid: is the public development value",
            ),
        ];
        assert!(settings(Some("prod"), &[]).is_ok());
        for (changes, expected) in cases {
            let error = settings(Some("prod"), changes).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
            // Nothing secret in the one line it makes.
            for (_, value) in changes {
                let body = value.lines().find(|l| !l.starts_with("-----")).unwrap();
                assert!(!error.contains(&body[body.len() - 20..]), "{error}");
            }
            // `make run` and the tests use them.
            assert!(settings(None, changes).is_ok(), "{expected}");
        }
    }

    #[test]
    fn a_deployed_stage_refuses_one_secret_for_two_purposes() {
        let cases: [(&[(&'static str, &str)], &str); 3] = [
            (
                &[("LEARNWORLDS_LAUNCH_SECRET", STAGE_WEBHOOK_SECRET)],
                "LEARNWORLDS_LAUNCH_SECRET is invalid: is the same value as LEARNWORLDS_WEBHOOK_SECRET",
            ),
            (
                &[("LEARNWORLDS_WEBHOOK_SECRET", STAGE_PRIVATE_KEY)],
                "LEARNWORLDS_WEBHOOK_SECRET is invalid: is the same value as JWT_SIGNING_KEY",
            ),
            (
                &[("LEARNWORLDS_LAUNCH_SECRET", &pem(STAGE_PRIVATE_KEY))],
                "LEARNWORLDS_LAUNCH_SECRET is invalid: is the same value as JWT_SIGNING_KEY",
            ),
        ];
        for (changes, expected) in cases {
            let error = settings(Some("prod"), changes).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
            assert!(settings(None, changes).is_ok(), "{expected}");
        }
    }

    fn pem(base64: &str) -> String {
        format!("-----BEGIN PRIVATE KEY-----\n{base64}\n-----END PRIVATE KEY-----\n")
    }
}

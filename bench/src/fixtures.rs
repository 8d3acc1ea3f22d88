//! What the harness starts and calls the service with: its secrets and
//! settings, the environment of the service's processes, and requests signed
//! as the service checks them.

use std::collections::HashMap;

use crate::http;
use shared::foundation::config::ApiSettings;
use shared::foundation::config::Secret;
use shared::http::routes::{self, Function};
use shared::sessions::TokenKeys;
use shared::sessions::launch::sign_launch;

/// The harness's token key pair (`openssl genpkey -algorithm ed25519`).
const JWT_PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIDIW1Q/1vUMyxdzrgZXIKVVtD0wQIxmDBucLBCmaTGe/";
const JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEA0rw1pcAEahKzG0E0z7Kb4IanPMmYFQPEAxCaW1uVREs=";
pub const WEBHOOK_SECRET: &str = "bench-webhook-secret-0123456789";
const LAUNCH_SECRET: &str = "bench-launch-secret-0123456789";
const ERASURE_HASH_KEY_SECRET: &str = "bench-erasure-hash-key-0123456789abcdef";
/// Save budgets no load of the harness runs out of: it measures the save, not
/// the rate limit, whose cost (a statement's few lines) it measures all the same.
const SAVE_BURST: &str = "100000";
const SAVE_REFILL_PER_MINUTE: &str = "1000000";

/// The service's settings with the harness's secrets: its tokens are the
/// server's.
pub fn settings() -> ApiSettings {
    ApiSettings::from_source(&HashMap::from([
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ("LEARNWORLDS_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("LEARNWORLDS_LAUNCH_SECRET", LAUNCH_SECRET),
        ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET),
        ("SAVE_BURST", SAVE_BURST),
        ("SAVE_REFILL_PER_MINUTE", SAVE_REFILL_PER_MINUTE),
    ]))
    .expect("the bench's own settings are valid")
}

/// The harness's token minter: it signs as sync-user does.
pub fn token_keys() -> TokenKeys {
    TokenKeys::minting(&settings()).expect("the bench's settings hold the signing key")
}

/// The environment the local server and the function binaries run with.
pub fn service_env(database_url: &str, pool: usize) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url.to_owned()),
        ("DATABASE_MAX_CONNECTIONS", pool.to_string()),
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY.to_owned()),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY.to_owned()),
        ("LEARNWORLDS_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("LEARNWORLDS_LAUNCH_SECRET", LAUNCH_SECRET.to_owned()),
        ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET.to_owned()),
        ("SAVE_BURST", SAVE_BURST.to_owned()),
        ("SAVE_REFILL_PER_MINUTE", SAVE_REFILL_PER_MINUTE.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `env` as template.yaml gives it to the function binary `name`: the token
/// signing key and LearnWorlds' secrets only to a function that mints tokens
/// (sync-user), the erasure key only to one that hashes erased people (and to
/// the jobs, which read it or not). A key a function is given is parsed at
/// its start, so each cold start is timed with what its deployment holds:
/// shared's route table says which function that is.
pub fn as_deployed(name: &str, env: &[(String, String)]) -> Vec<(String, String)> {
    let Some(function) = Function::ALL.into_iter().find(|f| f.binary() == name) else {
        return env.to_vec();
    };
    let mints = routes::mints_tokens(Some(function));
    let hashes = routes::hashes_erased_people(Some(function));
    env.iter()
        .filter(|(key, _)| match key.as_str() {
            "JWT_SIGNING_KEY" | "LEARNWORLDS_WEBHOOK_SECRET" | "LEARNWORLDS_LAUNCH_SECRET" => mints,
            "ERASURE_HASH_KEY" => hashes,
            _ => true,
        })
        .cloned()
        .collect()
}

/// The webhook signature header the bench's server expects (its default,
/// shared-secret mode).
pub fn webhook_signature() -> (&'static str, String) {
    (
        "learnworlds-webhook-signature",
        format!("v1={WEBHOOK_SECRET}"),
    )
}

/// A LearnWorlds delivery of `body`, signed the way the bench's server expects.
pub fn webhook_request(body: String) -> http::Request {
    http::Request {
        method: "POST",
        path: "/webhooks/learnworlds".into(),
        headers: vec![
            ("content-type", "application/json".into()),
            webhook_signature(),
        ],
        body: Some(body),
    }
}

/// The body of `POST /sessions`: a launch signed with the bench's launch
/// secret, with its nonce if it has one.
pub fn launch_body(
    lms_user_id: &str,
    email: &str,
    name: &str,
    timestamp: i64,
    nonce: Option<&str>,
) -> String {
    let secret = Secret::new(LAUNCH_SECRET.to_owned());
    let signature = sign_launch(&secret, lms_user_id, email, name, timestamp, nonce);
    let mut body = serde_json::json!({"lms_user_id": lms_user_id, "email": email, "name": name,
        "timestamp": timestamp, "signature": signature});
    if let Some(nonce) = nonce {
        body["nonce"] = nonce.into();
    }
    body.to_string()
}

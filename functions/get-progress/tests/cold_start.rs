//! The real `get-progress` binary, booted as Lambda boots it: behind a Lambda
//! Runtime API (a small emulator here), reading its secrets from Secrets Manager
//! (moto's server mode, a real local AWS API, started by this test), and
//! answering an API Gateway v2 event from `events/`.
//!
//! moto comes from the project's tool environment (`scripts/tools.sh`), which
//! `make test` installs and passes in as FASTTRACK_MOTO_SERVER.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use shared::foundation::config::ApiSettings;
use shared::http::events::{Placeholders, render};
use shared::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;

#[path = "../../../shared/tests/support/lambda_host.rs"]
mod lambda_host;
#[path = "../../../shared/tests/support/runtime_role.rs"]
mod runtime_role;

use lambda_host::{Running, RuntimeApi};

/// The token key pair: get-progress is given the public key alone, as the
/// template gives it (`openssl genpkey -algorithm ed25519`).
const JWT_PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEINfq2LZPJaT2wWw0T3kottfEUayULB8cs36AWetTxGf2";
const JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAHskKiSXijs1xv+xJDH3X+CruyafvYo3ThT4vBq2a2B8=";

struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start() -> Option<Self> {
        let binary = std::env::var("FASTTRACK_MOTO_SERVER").expect(
            "FASTTRACK_MOTO_SERVER is not set: run `make test`, which installs moto (scripts/tools.sh) and sets it",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Owned by `Moto` at once, so that Drop stops it whatever happens next.
        let moto = Self {
            child: Command::new(binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts"),
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not start");
    }

    async fn store(&self, name: &str, value: &str) -> String {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(shared::foundation::secrets::sdk_http_client())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        let client = aws_sdk_secretsmanager::Client::new(&config);
        let created = client
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        created.arn().unwrap().to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The get-progress binary with only what Lambda would set.
fn function(runtime_api: &str, vars: &[(&str, &str)]) -> Command {
    lambda_host::function(
        env!("CARGO_BIN_EXE_get-progress"),
        "get-progress",
        runtime_api,
        vars,
    )
}

#[sqlx::test(migrations = false)]
async fn a_cold_start_reads_its_secrets_from_secrets_manager_and_answers_an_event(pool: PgPool) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    shared::migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap();
    let user = shared::identity::users::LmsUser {
        lms_user_id: "64c000000000000000000001".into(),
        email: "cold@example.test".into(),
        full_name: "Cold Start".into(),
        organization: shared::identity::users::Membership::Unchanged,
    };
    let mut conn = pool.acquire().await.unwrap();
    let user = shared::identity::users::sync(&mut conn, Registry::embedded(), &user, false)
        .await
        .unwrap();

    // The database secret in RDS's JSON shape, naming another host, as the
    // secret behind RDS Proxy names the instance: DATABASE_HOST gives the
    // place to connect to, here this test's server.
    let options = pool.connect_options();
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // A route function logs in as a member of fasttrack_runtime, never as
    // the schemas' owner (the next test).
    runtime_role::ensure_runtime_login(&pool).await;
    let database_secret = json!({
        "engine": "postgres", "host": "instance.invalid", "port": 5432,
        "username": runtime_role::RUNTIME_LOGIN, "password": runtime_role::RUNTIME_PASSWORD, "dbname": database,
    });
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let database_arn = moto
        .store("fasttrack/test/database", &database_secret.to_string())
        .await;

    // The token, made where sync-user makes them: only there is the private key.
    let settings = ApiSettings::from_source(&std::collections::HashMap::from([
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
    ]))
    .unwrap();
    let (token, _) = shared::sessions::TokenKeys::minting(&settings)
        .unwrap()
        .issue(user.id, jsonwebtoken::get_current_timestamp())
        .unwrap();
    let event = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/own-progress.json"
    ))
    .unwrap();
    let event = render(
        &event,
        &Placeholders {
            token: Some(token.clone()),
            ..Placeholders::default()
        },
    );

    let mut runtime = RuntimeApi::start(event).await;
    let running = Running::start(function(
        &runtime.address,
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("DATABASE_SECRET_ARN", database_arn.as_str()),
            ("DATABASE_HOST", place.as_str()),
            // As the template sets them: public keys are no secret.
            ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
            ("DEPLOYMENT_STAGE", "test"),
            // The most a deployment can log: nothing secret even then.
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        ],
    ));
    let result = tokio::time::timeout(Duration::from_secs(30), runtime.results.recv()).await;
    let logs = running.logs();
    let posted = result.expect("the function answered in time").unwrap();
    let (path, response) = (posted.path.clone(), posted.json());
    assert!(path.ends_with("/response"), "{path}: {response}\n{logs}");
    assert_eq!(response["statusCode"], 200, "{response}\n{logs}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["user_id"], user.id.to_string());
    assert_eq!(body["summary"]["total"], Registry::embedded().tools().len());
    for secret in [runtime_role::RUNTIME_PASSWORD, token.as_str()] {
        assert!(
            !logs.contains(secret),
            "a secret appeared in the logs:\n{logs}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn a_route_function_logging_in_as_the_schemas_owner_refuses_to_start(pool: PgPool) {
    shared::migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap();
    let options = pool.connect_options();
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let owner_url = format!(
        "postgres://{}@{}:{}/{database}",
        options.get_username(),
        options.get_host(),
        options.get_port()
    );
    let runtime = RuntimeApi::start(String::new()).await;
    let output = function(
        &runtime.address,
        &[
            ("DATABASE_URL", owner_url.as_str()),
            ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("DATABASE_URL is invalid: the database login owns the schemas"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_missing_setting_fails_the_cold_start_with_one_line_naming_it() {
    let runtime = RuntimeApi::start(String::new()).await;
    let output = function(
        &runtime.address,
        &[("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("JWT_PUBLIC_KEYS is not set"), "{logs}");
    assert!(!logs.contains("hunter2"));
}

#[tokio::test]
async fn an_unreadable_secret_fails_the_cold_start_naming_its_variable() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let runtime = RuntimeApi::start(String::new()).await;
    let output = function(
        &runtime.address,
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
            (
                "DATABASE_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf",
            ),
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        logs.contains("DATABASE_SECRET_ARN is invalid: could not be read from Secrets Manager"),
        "{logs}"
    );
}

/// The function binaries are position-independent executables (ELF type
/// ET_DYN), so the kernel loads their own image at a random address too.
#[test]
fn the_function_binary_is_a_position_independent_executable() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_get-progress")).unwrap();
    assert_eq!(&binary[..4], b"\x7fELF");
    let e_type = u16::from_le_bytes([binary[16], binary[17]]);
    assert_eq!(
        e_type, 3,
        "ET_DYN is 3; ET_EXEC (2) is a fixed-address executable"
    );
}

/// A deployed stage (the template sets DEPLOYMENT_STAGE) refuses to start
/// with what would let anyone make tokens or sign requests: the public
/// development keys and secrets, the signing key in a function that only
/// verifies, one secret for two purposes. One line, naming the setting and
/// never its value, as for any other configuration error.
#[tokio::test]
async fn a_deployed_stage_refuses_public_development_values_and_misplaced_keys() {
    use shared::foundation::hygiene::development_value;
    let dev = |name: &str| development_value(name).unwrap();
    let reused = "one-secret-for-two-purposes";
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("JWT_PUBLIC_KEYS", dev("JWT_PUBLIC_KEYS"))],
            "JWT_PUBLIC_KEYS is invalid: holds the development key",
        ),
        (
            &[("JWT_SIGNING_KEY", JWT_PRIVATE_KEY)],
            "JWT_SIGNING_KEY is invalid: is given to a function that only verifies tokens",
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
        (
            &[
                ("LEARNWORLDS_WEBHOOK_SECRET", reused),
                ("LEARNWORLDS_LAUNCH_SECRET", reused),
            ],
            "LEARNWORLDS_LAUNCH_SECRET is invalid: is the same value as LEARNWORLDS_WEBHOOK_SECRET",
        ),
    ];
    let runtime = RuntimeApi::start(String::new()).await;
    for (changes, expected) in cases {
        let mut vars = vec![
            ("DATABASE_URL", "postgres://u@127.0.0.1:1/db"),
            ("DEPLOYMENT_STAGE", "prod"),
            ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ];
        vars.retain(|(name, _)| !changes.iter().any(|(changed, _)| changed == name));
        vars.extend_from_slice(changes);
        let output = function(&runtime.address, &vars).output().unwrap();
        assert!(!output.status.success(), "{expected}: it started");
        let logs = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert!(lines[0].contains(expected), "{expected}: {logs}");
        for (_, value) in changes {
            assert!(
                !logs.contains(value),
                "a value appeared in the logs: {logs}"
            );
        }
        // The same settings, not deployed (`make run`, `cargo lambda watch`),
        // pass the cold start: the function asks for its first event.
        let local: Vec<_> = vars
            .iter()
            .filter(|(name, _)| *name != "DEPLOYMENT_STAGE")
            .copied()
            .collect();
        let mut local_runtime = RuntimeApi::start("{}".into()).await;
        let running = Running::start(function(&local_runtime.address, &local));
        let answered =
            tokio::time::timeout(Duration::from_secs(30), local_runtime.results.recv()).await;
        let logs = running.logs();
        assert!(answered.is_ok(), "{expected}, not deployed: {logs}");
    }
}

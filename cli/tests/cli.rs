//! The `fasttrack` binary as `make migrate` and `make graph` run it.

use std::process::{Command, Output};

use sqlx::PgPool;

fn fasttrack(args: &[&str], database_url: Option<&str>) -> Output {
    fasttrack_with(args, database_url, &[])
}

/// The commands' token key pair (`openssl genpkey -algorithm ed25519`).
const JWT_PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEICkOJheBduYbxD0xcZgx1LWVEMEOFtrvzDA3r1bWXpIJ";
const ERASURE_HASH_KEY_SECRET: &str = "cli-test-erasure-hash-key-0123456789abcdef";
const JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAnhoyy0AVKk11nfBU0jALRe8RVTxQovzYGz0GUobC3mc=";

/// The binary with only these database settings in its environment.
fn fasttrack_with(args: &[&str], database_url: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fasttrack"));
    command.args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DATABASE_")) {
        command.env_remove(name);
    }
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.envs(env.iter().copied());
    command.output().expect("the fasttrack binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// DATABASE_URL pointed at the test's own database.
async fn url_of(pool: &PgPool) -> String {
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for database tests");
    let (url, query) = base.split_once('?').unwrap_or((&base, ""));
    let (server, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{database}{query}")
}

#[sqlx::test(migrations = false)]
async fn migrate_creates_every_schema_then_is_a_no_op_then_fails_on_drift(pool: PgPool) {
    let url = url_of(&pool).await;

    let first = fasttrack(&["migrate"], Some(&url));
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains(&format!("created {} tool schema(s)", tools())),
        "{}",
        text(&first.stdout)
    );

    // The pooler mode given on the command line wins over the environment's.
    let second = fasttrack_with(
        &["migrate", "--pooler-mode", "session"],
        Some(&url),
        &[("DATABASE_POOLER_MODE", "transaction")],
    );
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        text(&second.stdout),
        format!("migrate: up to date ({} tool schemas)\n", tools())
    );

    sqlx::query("create schema sprint_77_leftover")
        .execute(&pool)
        .await
        .unwrap();
    let drifted = fasttrack(&["migrate"], Some(&url));
    assert_eq!(drifted.status.code(), Some(1));
    assert!(
        text(&drifted.stderr).contains(
            "schema `sprint_77_leftover` is in the database but no registry tool owns it"
        )
    );

    sqlx::query("drop schema sprint_77_leftover")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("drop index sprint_20_customer_service.idx_field_outputs_field_id")
        .execute(&pool)
        .await
        .unwrap();
    let drifted = fasttrack(&["migrate"], Some(&url));
    assert_eq!(drifted.status.code(), Some(1));
    assert!(text(&drifted.stderr).contains(
        "schema `sprint_20_customer_service` is missing index idx_field_outputs_field_id"
    ));
}

#[test]
fn migrate_refuses_a_transaction_pooler_before_connecting() {
    // Nothing listens on port 1: the refusal comes before any connection.
    let out = fasttrack_with(
        &["migrate"],
        Some("postgres://postgres@127.0.0.1:1/fasttrack"),
        &[("DATABASE_POOLER_MODE", "transaction")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("migrate takes session-level locks"),
        "{}",
        text(&out.stderr)
    );
}

/// `--database-url` and `--pooler-mode` go together: a URL on the command line
/// is not paired with a pooler mode the environment set for another server.
#[sqlx::test(migrations = false)]
async fn a_database_url_on_the_command_line_ignores_the_environments_pooler_mode(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = fasttrack_with(
        &["migrate", "--database-url", &url],
        None,
        &[("DATABASE_POOLER_MODE", "transaction")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Given with it, the mode is the command line's.
    let out = fasttrack_with(
        &[
            "migrate",
            "--database-url",
            &url,
            "--pooler-mode",
            "transaction",
        ],
        None,
        &[],
    );
    assert!(
        text(&out.stderr).contains("migrate takes session-level locks"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_data_goes_into_a_database_on_this_machine_only() {
    // Refused before any connection: nothing answers at that name.
    let out = fasttrack(
        &[
            "demo",
            "--database-url",
            "postgres://app@db.example.invalid/fasttrack",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the database is not on this machine"),
        "{}",
        text(&out.stderr)
    );
    // Told to, it tries (and here finds no server).
    let out = fasttrack(
        &[
            "demo",
            "--any-host",
            "--database-url",
            "postgres://app@db.example.invalid/fasttrack",
        ],
        None,
    );
    assert!(
        !text(&out.stderr).contains("not on this machine"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn launch_needs_only_its_secret_and_signs_only_what_sessions_would_accept() {
    let launch_with = |email: &str, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fasttrack"));
        command
            .env_clear()
            .env("LEARNWORLDS_LAUNCH_SECRET", "a-launch-secret-for-tests")
            .args(["launch", "--lms-user-id", "64f0", "--email", email])
            .args(["--name", "Ana Lopes"])
            .args(extra);
        command.output().unwrap()
    };
    let launch = |email: &str| launch_with(email, &[]);
    let verified = |out: &Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let launch = shared::sessions::launch::Launch::from_json(body).unwrap();
        let now = launch.timestamp;
        let secret = shared::foundation::config::Secret::new("a-launch-secret-for-tests");
        let max_age = std::time::Duration::from_secs(300);
        shared::sessions::launch::verify_launch(Some(&secret), &launch, now, max_age).unwrap();
        launch
    };
    let ok = launch("ana@example.test");
    let first = verified(&ok);
    assert_eq!(first.signature.len(), 64);
    // A fresh nonce each time, so two launches in one second differ.
    let second = verified(&launch("ana@example.test"));
    assert_eq!(first.nonce.as_deref().map(str::len), Some(32));
    assert_ne!(first.nonce, second.nonce);
    let given = verified(&launch_with("ana@example.test", &["--nonce", "tab-2"]));
    assert_eq!(given.nonce.as_deref(), Some("tab-2"));
    let without = verified(&launch_with("ana@example.test", &["--no-nonce"]));
    assert_eq!(without.nonce, None);
    for refused in [
        launch("not an email"),
        launch_with("ana@example.test", &["--nonce", "a b"]),
    ] {
        assert_eq!(refused.status.code(), Some(1));
        assert!(refused.stdout.is_empty(), "{}", text(&refused.stdout));
    }
}

#[sqlx::test(migrations = false)]
async fn a_rendered_webhook_event_is_signed_as_the_signature_mode_says(pool: PgPool) {
    let url = url_of(&pool).await;
    for step in [&["migrate"][..], &["demo"][..]] {
        let out = fasttrack(step, Some(&url));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let event = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/learnworlds-webhook.json"
    );
    let secret = "a-webhook-secret-for-tests";
    let render = |mode: &str| -> serde_json::Value {
        let out = fasttrack_with(
            &["render-event", event],
            Some(&url),
            &[
                ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
                ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
                ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET),
                ("LEARNWORLDS_WEBHOOK_SECRET", secret),
                ("LEARNWORLDS_WEBHOOK_SIGNATURE_MODE", mode),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let header = |event: &serde_json::Value| {
        event["headers"]["learnworlds-webhook-signature"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header(&render("shared-secret")), format!("v1={secret}"));
    let signed = render("hmac-sha256");
    let body = signed["body"].as_str().unwrap();
    let expected = shared::identity::signature::sign_webhook(
        &shared::foundation::config::Secret::new(secret),
        body.as_bytes(),
    );
    assert_eq!(header(&signed), format!("v1={expected}"));
}

/// Behind PgBouncer in transaction mode, `make test`'s second pass runs this
/// (`--ignored`, with FASTTRACK_TEST_POOLER_URL). The commands must send
/// unnamed statements there: a named one, prepared on one server by one run,
/// is in the way of the next run that lands on that server.
#[sqlx::test(migrations = false)]
#[ignore = "needs FASTTRACK_TEST_POOLER_URL, a transaction pooler: make test runs it"]
async fn demo_summary_token_and_recompute_run_again_and_again_behind_a_transaction_pooler(
    pool: PgPool,
) {
    let pooler = std::env::var("FASTTRACK_TEST_POOLER_URL")
        .expect("FASTTRACK_TEST_POOLER_URL names a transaction pooler in front of DATABASE_URL");
    let direct = url_of(&pool).await;
    let migrated = fasttrack(&["migrate"], Some(&direct));
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let through_pooler = format!("{}/{database}", pooler.trim_end_matches('/'));
    let run = |args: &[&str]| {
        let out = fasttrack_with(
            args,
            Some(&through_pooler),
            &[
                ("DATABASE_POOLER_MODE", "transaction"),
                ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
                ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
                ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET),
            ],
        );
        assert!(
            out.status.success(),
            "fasttrack {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    assert!(run(&["demo"]).contains("demo data loaded"));
    let users: i64 = sqlx::query_scalar("select count(*) from shared.users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(users > 0);
    for _ in 0..3 {
        assert!(run(&["summary"]).contains("tool schemas"));
        assert_eq!(
            run(&["token", "--email", "alice@demo.fasttrack.test"])
                .matches('.')
                .count(),
            2,
            "a JWT"
        );
        // A full sweep each time, so that each run covers every user; the
        // scheduled (incremental) run follows it, with nothing marked.
        let report: serde_json::Value =
            serde_json::from_str(&run(&["recompute", "--full"])).unwrap();
        assert_eq!(report["skipped"], false, "{report}");
        assert_eq!(report["users"], users, "{report}");
        let report: serde_json::Value = serde_json::from_str(&run(&["recompute"])).unwrap();
        assert_eq!(
            (&report["skipped"], &report["full"], &report["users"]),
            (&false.into(), &false.into(), &0.into()),
            "{report}"
        );
    }
}

#[test]
fn migrate_without_a_database_url_says_what_is_missing() {
    let out = fasttrack(&["migrate"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--database-url"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let mermaid = fasttrack(&["graph"], None);
    assert!(mermaid.status.success());
    let mermaid = text(&mermaid.stdout);
    assert!(mermaid.starts_with("flowchart LR"));
    assert!(mermaid.contains("digital_heart -->|\"tech.heart.blueprint\"| program_overview"));

    let dot = fasttrack(&["graph", "--format", "dot"], None);
    assert!(dot.status.success());
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph fasttrack {"));
    assert!(dot.contains("\"digital-heart\" -> \"program-overview\""));
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_command_quietly() {
    for args in [
        &["graph"][..],
        &["graph", "--format", "dot"],
        &["tool-schemas-sql"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        // Closed before the command writes: as `| head` after its lines.
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_fasttrack"))
            .args(args)
            .stdout(writer)
            .output()
            .expect("the fasttrack binary runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{args:?}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
    }
}

/// How many tools the registry has: the count is never written down.
fn tools() -> usize {
    shared::registry::Registry::embedded().tools().len()
}

#[test]
fn check_config_validates_the_files_on_disk() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let ok = fasttrack(
        &[
            "check-config",
            "--registry",
            &format!("{dir}/tool-registry.json"),
            "--dependencies",
            &format!("{dir}/dependencies.json"),
            "--forms",
            &format!("{dir}/tool-forms.json"),
        ],
        None,
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let registry = shared::registry::Registry::embedded();
    let count =
        |f: fn(&shared::registry::Tool) -> usize| -> usize { registry.tools().iter().map(f).sum() };
    assert_eq!(
        text(&ok.stdout),
        format!(
            "config is valid: {} tools, {} dependency fields, {} outputs, {} forms\n",
            tools(),
            count(|t| t.dependencies.len()),
            count(|t| t.outputs.len()),
            tools(),
        )
    );
    // A form that disagrees with the registry is named with its problem.
    let bad_forms =
        std::env::temp_dir().join(format!("fasttrack-forms-{}.json", std::process::id()));
    let forms = std::fs::read_to_string(format!("{dir}/tool-forms.json"))
        .unwrap()
        .replacen("\"key\": \"wish\"", "\"key\": \"wishes\"", 1);
    std::fs::write(&bad_forms, forms).unwrap();
    let refused = fasttrack(
        &[
            "check-config",
            "--registry",
            &format!("{dir}/tool-registry.json"),
            "--dependencies",
            &format!("{dir}/dependencies.json"),
            "--forms",
            bad_forms.to_str().unwrap(),
        ],
        None,
    );
    std::fs::remove_file(&bad_forms).ok();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("data key `wishes`"),
        "{}",
        text(&refused.stderr)
    );

    let broken = std::env::temp_dir().join(format!("fasttrack-deps-{}.json", std::process::id()));
    let deps = std::fs::read_to_string(format!("{dir}/dependencies.json"))
        .unwrap()
        .replace(
            "\"identity.dream.one_sentence\"\n",
            "\"identity.dream.one_sentance\"\n",
        );
    std::fs::write(&broken, deps).unwrap();
    let bad = fasttrack(
        &[
            "check-config",
            "--registry",
            &format!("{dir}/tool-registry.json"),
            "--dependencies",
            broken.to_str().unwrap(),
            "--forms",
            &format!("{dir}/tool-forms.json"),
        ],
        None,
    );
    std::fs::remove_file(&broken).ok();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("which no tool produces"),
        "{}",
        text(&bad.stderr)
    );
    // The message names the files that were checked.
    assert!(
        text(&bad.stderr).contains(broken.to_str().unwrap()),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn the_committed_dependency_graph_is_up_to_date() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/dependency-graph.md"
    ))
    .unwrap();
    let rendered = text(&fasttrack(&["graph"], None).stdout);
    assert!(
        doc.contains(&format!("```mermaid\n{rendered}```\n")),
        "docs/dependency-graph.md is stale: regenerate it as the README says"
    );
}

/// One HTTP/1.1 exchange with the local server: the status line and headers
/// (lowercased), and the body.
async fn exchange(port: u16, request: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = text(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

fn request(method: &str, path: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nhost: local\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[sqlx::test(migrations = false)]
async fn the_local_server_routes_and_authenticates_a_request_before_refusing_its_large_body(
    pool: PgPool,
) {
    let url = url_of(&pool).await;
    let secrets = [
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET),
        ("MAX_BODY_BYTES", "2048"),
    ];
    for args in [&["migrate"][..], &["demo"]] {
        let out = fasttrack_with(args, Some(&url), &secrets);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let token = fasttrack_with(
        &["token", "--email", "alice@demo.fasttrack.test"],
        Some(&url),
        &secrets,
    );
    let token = text(&token.stdout).trim().to_owned();
    // Below Linux's ephemeral range, so no other test's connection takes it meanwhile.
    let port = (20_000 + std::process::id() % 10_000 + 1..32_000)
        .map(|p| p as u16)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_fasttrack"))
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("PORT", port.to_string())
            .envs(secrets)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the local server did not start");

    let large = format!(
        "{{\"data\": {{\"note\": \"{}\"}}, \"status\": \"draft\"}}",
        "x".repeat(4000)
    );
    // As on Lambda, the size matters only to a route that reads a body, once
    // the request has found its route and its caller.
    for (method, path, token, status) in [
        ("GET", "/progress", Some(token.as_str()), "200"),
        ("PUT", "/tools/woop/submission", None, "401"),
        ("GET", "/nope", Some(&token), "404"),
        ("PUT", "/tools/woop/submission", Some(&token), "413"),
    ] {
        let (head, body) = exchange(port, &request(method, path, token, &large)).await;
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "{method} {path}: {head}"
        );
        let request_id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("{method} {path}: no x-request-id in {head}"));
        if status != "200" {
            let error: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["error"]["request_id"], request_id, "{method} {path}");
        }
    }

    // `fasttrack token --expired` (a client's refresh is tested with it): a
    // token the server refuses as expired, the answer a client refreshes on.
    let expired = fasttrack_with(
        &["token", "--email", "alice@demo.fasttrack.test", "--expired"],
        Some(&url),
        &secrets,
    );
    assert!(expired.status.success(), "{}", text(&expired.stderr));
    let expired = text(&expired.stdout).trim().to_owned();
    let (head, body) = exchange(port, &request("GET", "/progress", Some(&expired), "")).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_token", "{body}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has expired")),
        "{body}"
    );
}

/// A child process that is stopped however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrations = false)]
async fn bootstrap_admin_promotes_the_first_admin_once_and_audits_it(pool: PgPool) {
    let url = url_of(&pool).await;
    let migrated = fasttrack(&["migrate"], Some(&url));
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    for (lms, email) in [
        ("lms-first", "first@example.test"),
        ("lms-other", "other@example.test"),
    ] {
        sqlx::query(
            "insert into shared.users (lms_user_id, email, full_name) values ($1, $2, 'Someone')",
        )
        .bind(lms)
        .bind(email)
        .execute(&pool)
        .await
        .unwrap();
    }
    let unknown = fasttrack(
        &["bootstrap-admin", "--email", "nobody@example.test"],
        Some(&url),
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no user has the email"),
        "{}",
        text(&unknown.stderr)
    );

    let made = fasttrack(
        &["bootstrap-admin", "--email", "First@Example.test"],
        Some(&url),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(text(&made.stdout).contains("is now an admin"));
    let role: String = sqlx::query_scalar(
        "select role::text from shared.users where email = 'first@example.test'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(role, "admin");
    let audit: Vec<(Option<uuid::Uuid>, String, serde_json::Value)> = sqlx::query_as(
        "select actor_id, actor_role::text, after from shared.audit_log where action = 'bootstrap.admin'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, None);
    assert_eq!(audit[0].1, "operator");
    assert_eq!(audit[0].2, serde_json::json!({"role": "admin"}));

    // Once there is an admin, it refuses, and says why.
    let again = fasttrack(
        &["bootstrap-admin", "--email", "other@example.test"],
        Some(&url),
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("an admin already exists"),
        "{}",
        text(&again.stderr)
    );
    let admins: i64 = sqlx::query_scalar("select count(*) from shared.users where role = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admins, 1);
}

/// The operator's export: one person to a file or everyone to a directory,
/// each audited as the operator's; an unknown person is an error.
#[sqlx::test(migrations = false)]
async fn the_operator_exports_one_person_or_everyone_and_each_export_is_audited(pool: PgPool) {
    let url = url_of(&pool).await;
    let migrated = fasttrack(&["migrate"], Some(&url));
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let demo = fasttrack(&["demo"], Some(&url));
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let dir = std::env::temp_dir().join(format!("fasttrack-export-{}", std::process::id()));
    let file = dir.join("alice.json");
    std::fs::create_dir_all(&dir).unwrap();

    let one = fasttrack(
        &[
            "export",
            "--email",
            "ALICE@demo.fasttrack.test",
            "--out",
            file.to_str().unwrap(),
        ],
        Some(&url),
    );
    assert!(one.status.success(), "{}", text(&one.stderr));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(record["user"]["email"], "alice@demo.fasttrack.test");
    assert_eq!(record["format"], "fasttrack.export");

    let all_dir = dir.join("all");
    let all = fasttrack(
        &["export", "--all", "--out-dir", all_dir.to_str().unwrap()],
        Some(&url),
    );
    assert!(all.status.success(), "{}", text(&all.stderr));
    let people: i64 = sqlx::query_scalar("select count(*) from shared.users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(&all_dir).unwrap().count() as i64, people);
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from shared.audit_log where action = 'export' and actor_id is null",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, people + 1);

    let nobody = fasttrack(
        &["export", "--user-id", &uuid::Uuid::new_v4().to_string()],
        Some(&url),
    );
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        text(&nobody.stderr).contains("no user has the id"),
        "{}",
        text(&nobody.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

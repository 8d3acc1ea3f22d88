//! The `fasttrack` binary as `make migrate` and `make graph` run it.

use std::process::{Command, Output};

use sqlx::PgPool;

fn fasttrack(args: &[&str], database_url: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fasttrack"));
    command.args(args).env_remove("DATABASE_URL");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
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
        text(&first.stdout).contains("created 31 tool schema(s)"),
        "{}",
        text(&first.stdout)
    );

    let second = fasttrack(&["migrate"], Some(&url));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(
        text(&second.stdout),
        "migrate: up to date (31 tool schemas)\n"
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
fn check_config_validates_the_files_on_disk() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let ok = fasttrack(
        &[
            "check-config",
            "--registry",
            &format!("{dir}/tool-registry.json"),
            "--dependencies",
            &format!("{dir}/dependencies.json"),
        ],
        None,
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(
        text(&ok.stdout),
        "config is valid: 31 tools, 105 dependency fields, 96 outputs\n"
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

//! `make migrate`: idempotent, creates what the registry adds, and refuses to
//! run over drift in either direction.

use shared::Registry;
use shared::migrate::{self, Drift, MigrateError};
use sqlx::PgPool;

use crate::migrated;

#[sqlx::test(migrations = false)]
async fn migrating_an_empty_database_creates_every_tool_schema(pool: PgPool) {
    let report = migrated(&pool).await;
    assert_eq!(
        report.applied_migrations.len(),
        migrate::MIGRATOR.iter().count()
    );
    assert_eq!(
        report.created_schemas.len(),
        Registry::embedded().tools().len()
    );
    assert_eq!(report.created_schemas[0], "sprint_00_woop");
}

#[sqlx::test(migrations = false)]
async fn migrating_twice_is_a_no_op(pool: PgPool) {
    migrated(&pool).await;
    let snapshot = catalog_snapshot(&pool).await;
    let second = migrated(&pool).await;
    assert!(second.is_noop(), "second run did something: {second:?}");
    assert_eq!(catalog_snapshot(&pool).await, snapshot);
}

/// Every relation and index in the tool schemas, to prove a re-run touches nothing.
async fn catalog_snapshot(pool: &PgPool) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "select n.nspname::text, c.relname::text, c.oid::bigint from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'shared' or n.nspname like 'sprint\\_%' order by 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_sprint_schema_the_registry_lacks_is_drift_named_by_schema(pool: PgPool) {
    migrated(&pool).await;
    sqlx::query("create schema sprint_31_rogue")
        .execute(&pool)
        .await
        .unwrap();
    let err = migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap_err();
    let MigrateError::Drift(drift) = &err else {
        panic!("expected drift, got {err}")
    };
    assert_eq!(
        drift,
        &[Drift::UnknownSchema {
            schema: "sprint_31_rogue".into()
        }]
    );
    assert!(
        err.to_string()
            .contains("schema `sprint_31_rogue` is in the database but no registry tool owns it")
    );
}

#[sqlx::test(migrations = false)]
async fn a_tool_schema_missing_an_index_or_table_is_drift_named_by_schema(pool: PgPool) {
    migrated(&pool).await;
    sqlx::query("drop index sprint_05_fit.idx_submissions_status")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("drop table sprint_12_market_size.field_outputs")
        .execute(&pool)
        .await
        .unwrap();
    let err = migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap_err();
    let MigrateError::Drift(drift) = &err else {
        panic!("expected drift, got {err}")
    };
    assert_eq!(
        drift,
        &[
            Drift::Incomplete {
                schema: "sprint_05_fit".into(),
                missing: vec!["index idx_submissions_status".into()]
            },
            Drift::Incomplete {
                schema: "sprint_12_market_size".into(),
                missing: vec![
                    "table field_outputs".into(),
                    "index field_outputs_pkey".into(),
                    "index idx_field_outputs_submission_id".into(),
                    "index idx_field_outputs_field_id".into(),
                    "index idx_field_outputs_submission_field".into(),
                    // The recompute's mark (migration 0021) went with the table.
                    "trigger field_outputs_mark_insert".into(),
                ]
            },
        ]
    );
    let message = err.to_string();
    assert!(
        message.contains("schema `sprint_05_fit` is missing index idx_submissions_status"),
        "{message}"
    );
    // Drift is reported, not repaired.
    let still_missing: bool =
        sqlx::query_scalar("select to_regclass('sprint_05_fit.idx_submissions_status') is null")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(still_missing);
}

#[sqlx::test(migrations = false)]
async fn a_tool_added_to_the_registry_gets_its_schema_on_the_next_migrate(pool: PgPool) {
    migrated(&pool).await;
    // The catalogue plus one new tool that reads WOOP's wish.
    let mut registry: serde_json::Value =
        serde_json::from_str(include_str!("../../../config/tool-registry.json")).unwrap();
    let mut dependencies: serde_json::Value =
        serde_json::from_str(include_str!("../../../config/dependencies.json")).unwrap();
    registry["tools"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"sprint": 31, "slug": "alumni-circle", "name": "Alumni Circle", "module": 8}
        ));
    dependencies["tools"]["alumni-circle"] = serde_json::json!(
        {"dependencies": ["intro.woop.wish"], "outputs": ["alumni.circle.pledge"]}
    );
    let extended = Registry::from_json(&registry.to_string(), &dependencies.to_string()).unwrap();

    let report = migrate::run(&mut pool.acquire().await.unwrap(), &extended)
        .await
        .unwrap();
    assert!(report.applied_migrations.is_empty());
    assert_eq!(report.created_schemas, ["sprint_31_alumni_circle"]);
    // ...and for the original registry that schema is now drift.
    let err = migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sprint_31_alumni_circle"));
}

#[sqlx::test(migrations = false)]
async fn a_registry_schema_created_empty_by_hand_is_completed(pool: PgPool) {
    // The manual procedure (docs/database.md): create the schema, then call create_tool_schema.
    migrate::MIGRATOR.run(&pool).await.unwrap();
    sqlx::query("create schema sprint_02_dream")
        .execute(&pool)
        .await
        .unwrap();
    let report = migrated(&pool).await;
    assert!(
        report
            .created_schemas
            .contains(&"sprint_02_dream".to_owned())
    );
    let tables: i64 =
        sqlx::query_scalar("select count(*) from pg_tables where schemaname = 'sprint_02_dream'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 2);
}

#[sqlx::test(migrations = false)]
async fn create_tool_schema_rejects_hostile_names_inside_sql(pool: PgPool) {
    migrated(&pool).await;
    for name in [
        "x\"; drop schema shared; --",
        "Sprint_01_x",
        "sprint_01_",
        &format!("sprint_01_{}", "a".repeat(54)),
    ] {
        let err = sqlx::query("select shared.create_tool_schema($1)")
            .bind(name)
            .execute(&pool)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().as_deref(),
            Some("3F000"),
            "{name}"
        );
    }
    let shared_exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = 'shared')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(shared_exists);
}

#[sqlx::test(migrations = false)]
async fn create_tool_schema_is_idempotent(pool: PgPool) {
    migrated(&pool).await;
    let before = catalog_snapshot(&pool).await;
    sqlx::query("select shared.create_tool_schema('sprint_00_woop')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(catalog_snapshot(&pool).await, before);
}

#[sqlx::test(migrations = false)]
async fn the_sql_files_apply_with_plain_psql_in_file_order(pool: PgPool) {
    let url = crate::url_of(&pool).await;
    let files = migration_files();
    assert!(!files.is_empty());
    for file in &files {
        psql_file(&url, file);
    }
    let mut psql = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    psql.stdin
        .take()
        .unwrap()
        .write_all(migrate::tool_schemas_sql(Registry::embedded()).as_bytes())
        .unwrap();
    assert!(psql.wait().unwrap().success());
    let schemas: i64 = sqlx::query_scalar(
        "select count(*) from pg_namespace where nspname = 'shared' or nspname like 'sprint\\_%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(schemas as usize, Registry::embedded().tools().len() + 1);
}

/// The files in `migrations/`, in the order they apply.
fn migration_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
    files.sort();
    files
}

/// Applies with psql the migrations whose file name `wanted` accepts.
fn psql_migrations(url: &str, wanted: impl Fn(&str) -> bool) {
    for file in migration_files() {
        if wanted(&file.file_name().unwrap().to_string_lossy()) {
            psql_file(url, &file);
        }
    }
}

fn psql_file(url: &str, file: &std::path::Path) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(file)
        .output()
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "psql -f {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[sqlx::test(migrations = false)]
async fn upgrading_to_0005_keeps_each_users_last_delivery_and_the_previous_code_working(
    pool: PgPool,
) {
    let url = crate::url_of(&pool).await;
    psql_migrations(&url, |name| name < "0005");
    // Deliveries received before the upgrade: two for one user, one for
    // another, and an event without a user.
    sqlx::query(
        "insert into shared.webhook_events (body_sha256, lms_user_id, outcome, payload, received_at) values
             ('\\x01', 'lms-a', 'synced', '{}', now() - interval '2 days'),
             ('\\x02', 'lms-a', 'synced', '{}', now() - interval '1 day'),
             ('\\x03', 'lms-b', 'synced', '{}', now() - interval '3 days'),
             ('\\x04', null, 'ignored', '{}', now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    psql_migrations(&url, |name| name.starts_with("0005"));

    let last: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "select lms_user_id::text, body_sha256 from shared.webhook_last_deliveries order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        last,
        [("lms-a".to_owned(), vec![2]), ("lms-b".to_owned(), vec![3])]
    );
    // The previous version's statement, as after a rollback of the code: a
    // body seen before is still found, with no error.
    let previous: Option<uuid::Uuid> = sqlx::query_scalar(
        "insert into shared.webhook_events (body_sha256, event_type, trigger, lms_user_id, outcome, payload)
         values ($1, null, null, 'lms-a', 'synced', '{}')
         on conflict (body_sha256) do nothing
         returning id",
    )
    .bind(vec![1u8])
    .fetch_optional(&pool)
    .await
    .unwrap();
    assert_eq!(previous, None);
}

#[sqlx::test(migrations = false)]
async fn upgrading_to_0007_leaves_a_tool_schema_created_empty_by_hand_for_migrate_to_complete(
    pool: PgPool,
) {
    let url = crate::url_of(&pool).await;
    psql_migrations(&url, |name| name < "0007");
    // A complete tool schema, and one an operator created ahead of its tool.
    sqlx::query("select shared.create_tool_schema('sprint_00_woop')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("create schema sprint_02_dream")
        .execute(&pool)
        .await
        .unwrap();
    psql_migrations(&url, |name| name.starts_with("0007"));

    let deletable: bool = sqlx::query_scalar(
        "select has_table_privilege('fasttrack_runtime', 'sprint_00_woop.submissions', 'DELETE')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!deletable, "0007 took DELETE away on the existing schema");
    sqlx::query("select shared.create_tool_schema('sprint_02_dream')")
        .execute(&pool)
        .await
        .unwrap();
    let (tables, deletable): (i64, bool) = sqlx::query_as(
        "select (select count(*) from pg_tables where schemaname = 'sprint_02_dream'),
                has_table_privilege('fasttrack_runtime', 'sprint_02_dream.submissions', 'DELETE')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((tables, deletable), (2, false));
}

#[sqlx::test(migrations = false)]
async fn migrate_refuses_to_finish_while_an_index_is_invalid(pool: PgPool) {
    migrated(&pool).await;
    // What a failed CREATE INDEX CONCURRENTLY (0008) leaves behind.
    sqlx::query(
        "update pg_index set indisvalid = false
         where indexrelid = 'shared.idx_webhook_events_user_received'::regclass",
    )
    .execute(&pool)
    .await
    .unwrap();
    let error = migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("shared.idx_webhook_events_user_received"),
        "{error}"
    );
}

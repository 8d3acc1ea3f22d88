//! `make migrate` and the `migrate` Lambda: apply the SQL migrations, then give
//! every registry tool its schema through `shared.create_tool_schema`, refusing
//! to touch a database that has drifted from the registry.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection};

use crate::foundation::db;
use crate::foundation::steps::Steps;
use crate::registry::{Registry, SchemaName};

/// The files in `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The tables, indexes and trigger `create_tool_schema` gives every tool schema.
pub const TOOL_TABLES: [&str; 2] = ["submissions", "field_outputs"];
pub const TOOL_INDEXES: [&str; 8] = [
    "submissions_pkey",
    "idx_submissions_user_id",
    "idx_submissions_user_org",
    "idx_submissions_status",
    "field_outputs_pkey",
    "idx_field_outputs_submission_id",
    "idx_field_outputs_field_id",
    "idx_field_outputs_submission_field",
];
pub const TOOL_TRIGGERS: [&str; 2] = ["submissions_set_updated_at", "field_outputs_mark_insert"];

/// Serialises concurrent `migrate` runs on the tool-schema step.
const TOOL_SCHEMA_LOCK: i64 = 0x6661_7374_7472_6b01; // "fasttrk" + 1

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("applying SQL migrations failed: {0}")]
    Migrations(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database has drifted from the tool registry:\n{}", list(.0))]
    Drift(Vec<Drift>),
    /// A concurrent index build that failed (a migration run outside a
    /// transaction) leaves its index invalid, and `IF NOT EXISTS` then skips it.
    #[error(
        "invalid indexes, left by a failed concurrent build: {}; drop each \
         (DROP INDEX CONCURRENTLY <name>) and run migrate again",
        .0.join(", ")
    )]
    InvalidIndexes(Vec<String>),
    #[error("RUNTIME_DATABASE_URL names no login")]
    NoRuntimeLogin,
    #[error("ERASER_DATABASE_URL names no login")]
    NoEraserLogin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Drift {
    #[error("schema `{schema}` is in the database but no registry tool owns it")]
    UnknownSchema { schema: String },
    #[error("schema `{schema}` is missing {}", .missing.join(", "))]
    Incomplete {
        schema: String,
        missing: Vec<String>,
    },
}

fn list(drift: &[Drift]) -> String {
    drift
        .iter()
        .map(|d| format!("  - {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions of the SQL migrations applied by this run.
    pub applied_migrations: Vec<i64>,
    /// Tool schemas created by this run.
    pub created_schemas: Vec<String>,
}

impl MigrationReport {
    pub fn is_noop(&self) -> bool {
        self.applied_migrations.is_empty() && self.created_schemas.is_empty()
    }
}

/// Makes the route functions' login (the user and password of
/// `runtime_url`, their database connection) a member of `fasttrack_runtime`,
/// creating it or setting its password as needed (migration 0010's
/// `shared.ensure_runtime_login`, which refuses the schemas' owner and
/// superusers). Returns the login's name.
pub async fn ensure_runtime_login(
    conn: &mut PgConnection,
    runtime_url: &str,
) -> Result<String, MigrateError> {
    let (login, password) =
        crate::foundation::secrets::login(runtime_url).ok_or(MigrateError::NoRuntimeLogin)?;
    db::query("select shared.ensure_runtime_login($1, $2)")
        .bind(&login)
        .bind(password)
        .execute(&mut *conn)
        .await?;
    Ok(login)
}

/// Makes the erase-users function's login (the user and password of
/// `eraser_url`) a member of `fasttrack_eraser`, as
/// [`ensure_runtime_login`] does for the route functions (migration 0016's
/// `shared.ensure_eraser_login`, which also refuses the runtime login).
pub async fn ensure_eraser_login(
    conn: &mut PgConnection,
    eraser_url: &str,
) -> Result<String, MigrateError> {
    let (login, password) =
        crate::foundation::secrets::login(eraser_url).ok_or(MigrateError::NoEraserLogin)?;
    db::query("select shared.ensure_eraser_login($1, $2)")
        .bind(&login)
        .bind(password)
        .execute(&mut *conn)
        .await?;
    Ok(login)
}

/// Applies the migrations, then creates the tool schemas the registry has and
/// the database lacks. One session: sqlx's migrator holds a session lock.
pub async fn run(
    conn: &mut PgConnection,
    registry: &Registry,
) -> Result<MigrationReport, MigrateError> {
    run_with(conn, registry, &()).await
}

/// [`run`], telling `steps` of each tool schema it creates.
pub async fn run_with(
    conn: &mut PgConnection,
    registry: &Registry,
    steps: &dyn Steps,
) -> Result<MigrationReport, MigrateError> {
    let before = applied_versions(conn).await?;
    MIGRATOR.run(&mut *conn).await?;
    let applied_migrations = applied_versions(conn)
        .await?
        .difference(&before)
        .copied()
        .collect();
    let invalid: Vec<String> = db::query_scalar(
        "select format('%I.%I', n.nspname, c.relname)
         from pg_index i join pg_class c on c.oid = i.indexrelid
         join pg_namespace n on n.oid = c.relnamespace
         where not i.indisvalid and (n.nspname = 'shared' or n.nspname like 'sprint\\_%')
         order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    if !invalid.is_empty() {
        return Err(MigrateError::InvalidIndexes(invalid));
    }

    let mut tx = conn.begin().await?;
    db::query("select pg_advisory_xact_lock($1)")
        .bind(TOOL_SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    let objects = tool_schema_objects(&mut tx).await?;
    let (drift, to_create) = compare(registry, &objects);
    if !drift.is_empty() {
        return Err(MigrateError::Drift(drift));
    }
    steps.begin("tool schemas", to_create.len() as u64);
    for schema in &to_create {
        db::query("select shared.create_tool_schema($1)")
            .bind(schema.as_str())
            .execute(&mut *tx)
            .await?;
        steps.step();
    }
    steps.end();
    // Whatever create_tool_schema made must now be complete, or nothing is committed.
    if !to_create.is_empty() {
        let (drift, _) = compare(registry, &tool_schema_objects(&mut tx).await?);
        if !drift.is_empty() {
            return Err(MigrateError::Drift(drift));
        }
    }
    tx.commit().await?;

    Ok(MigrationReport {
        applied_migrations,
        created_schemas: to_create.iter().map(|s| s.to_string()).collect(),
    })
}

async fn applied_versions(conn: &mut PgConnection) -> Result<BTreeSet<i64>, sqlx::Error> {
    let exists: bool =
        db::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(BTreeSet::new());
    }
    let versions: Vec<i64> =
        db::query_scalar("select version from public._sqlx_migrations where success")
            .fetch_all(&mut *conn)
            .await?;
    Ok(versions.into_iter().collect())
}

/// Every `sprint_*` schema with the names of the tables, indexes and triggers in it:
/// one pass over the catalog, joined to the schemas by hash (a scan of `pg_class`
/// per schema cost 5 ms with 31 tools).
async fn tool_schema_objects(
    conn: &mut sqlx::PgConnection,
) -> Result<BTreeMap<String, BTreeSet<String>>, sqlx::Error> {
    let rows: Vec<(String, Option<String>)> = db::query_as(
        r"
        select n.nspname::text, objects.name
        from pg_namespace n
        left join (
            select c.relnamespace as namespace,
                   case when c.relkind in ('r', 'p') then 'table ' else 'index ' end
                   || c.relname::text as name
            from pg_class c where c.relkind in ('r', 'p', 'i', 'I')
            union all
            select c.relnamespace, 'trigger ' || t.tgname::text
            from pg_trigger t join pg_class c on c.oid = t.tgrelid
            where not t.tgisinternal
        ) objects on objects.namespace = n.oid
        where n.nspname like 'sprint\_%'
        ",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut schemas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (schema, object) in rows {
        let entry = schemas.entry(schema).or_default();
        entry.extend(object);
    }
    Ok(schemas)
}

fn expected_objects() -> impl Iterator<Item = String> {
    let tables = TOOL_TABLES.iter().map(|t| format!("table {t}"));
    let indexes = TOOL_INDEXES.iter().map(|i| format!("index {i}"));
    let triggers = TOOL_TRIGGERS.iter().map(|t| format!("trigger {t}"));
    tables.chain(indexes).chain(triggers)
}

/// Splits the database's tool schemas into drift, and registry schemas still to
/// create. A schema that exists but is empty counts as "to create": the manual
/// procedure creates the schema first and then calls `shared.create_tool_schema`.
fn compare(
    registry: &Registry,
    objects: &BTreeMap<String, BTreeSet<String>>,
) -> (Vec<Drift>, Vec<SchemaName>) {
    let known: BTreeSet<&str> = registry.tools().iter().map(|t| t.schema.as_str()).collect();
    let mut drift: Vec<Drift> = objects
        .keys()
        .filter(|schema| !known.contains(schema.as_str()))
        .map(|schema| Drift::UnknownSchema {
            schema: schema.clone(),
        })
        .collect();
    let mut to_create = Vec::new();
    for tool in registry.tools() {
        match objects.get(tool.schema.as_str()) {
            Some(present) if !present.is_empty() => {
                let missing: Vec<String> = expected_objects()
                    .filter(|o| !present.contains(o))
                    .collect();
                if !missing.is_empty() {
                    drift.push(Drift::Incomplete {
                        schema: tool.schema.to_string(),
                        missing,
                    });
                }
            }
            _ => to_create.push(tool.schema.clone()),
        }
    }
    (drift, to_create)
}

/// `select shared.create_tool_schema(...)` for every registry tool, for people
/// who apply the migrations with plain `psql -f`.
pub fn tool_schemas_sql(registry: &Registry) -> String {
    registry
        .tools()
        .iter()
        .map(|t| format!("SELECT shared.create_tool_schema('{}');\n", t.schema))
        .collect()
}

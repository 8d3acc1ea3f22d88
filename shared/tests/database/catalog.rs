//! The migrated catalog matches docs/database.md column by column and index by index,
//! read back from information_schema and pg_indexes rather than from our SQL.

use std::collections::BTreeSet;

use shared::Registry;
use sqlx::PgPool;

use crate::migrated;

/// (column, data type, max length, default, nullable) as docs/database.md writes them.
type Column = (
    &'static str,
    &'static str,
    Option<i32>,
    Option<&'static str>,
    bool,
);

const TIMESTAMPTZ: &str = "timestamp with time zone";
const NOW: Option<&str> = Some("CURRENT_TIMESTAMP");
const UUID_DEFAULT: Option<&str> = Some("gen_random_uuid()");

const USERS: &[Column] = &[
    ("id", "uuid", None, UUID_DEFAULT, false),
    ("lms_user_id", "character varying", Some(255), None, false),
    ("email", "character varying", Some(255), None, false),
    ("full_name", "character varying", Some(255), None, false),
    ("organization_id", "uuid", None, None, true),
    (
        "role",
        "character varying",
        Some(50),
        Some("'user'::character varying"),
        false,
    ),
    ("created_at", TIMESTAMPTZ, None, NOW, true),
    ("updated_at", TIMESTAMPTZ, None, NOW, true),
    ("last_login", TIMESTAMPTZ, None, None, true),
    // Beyond the original design: migration 0012.
    ("organization_joined_at", TIMESTAMPTZ, None, None, true),
    ("lms_state_at", TIMESTAMPTZ, None, None, true),
    // Migration 0013: where the organization and the role came from.
    (
        "organization_source",
        "character varying",
        Some(20),
        Some("'learnworlds'::character varying"),
        false,
    ),
    ("organization_set_by", "uuid", None, None, true),
    ("role_set_by", "uuid", None, None, true),
    ("role_set_at", TIMESTAMPTZ, None, None, true),
    // Migration 0016: an erasure requested closes the account.
    ("erasure_requested_at", TIMESTAMPTZ, None, None, true),
    // Migration 0017: what the staff reports sort and filter a roster by.
    ("tools_completed", "smallint", None, Some("0"), false),
    ("last_activity_at", TIMESTAMPTZ, None, None, true),
    // Migration 0018: the ETag of a person's role and organization.
    ("version", "integer", None, Some("1"), false),
];

const ORGANIZATIONS: &[Column] = &[
    ("id", "uuid", None, UUID_DEFAULT, false),
    ("name", "character varying", Some(255), None, false),
    ("slug", "character varying", Some(255), None, false),
    ("settings", "jsonb", None, Some("'{}'::jsonb"), true),
    ("created_at", TIMESTAMPTZ, None, NOW, true),
    ("updated_at", TIMESTAMPTZ, None, NOW, true),
];

const USER_PROGRESS: &[Column] = &[
    ("id", "uuid", None, UUID_DEFAULT, false),
    ("user_id", "uuid", None, None, false),
    ("tool_slug", "character varying", Some(255), None, false),
    (
        "status",
        "character varying",
        Some(50),
        Some("'locked'::character varying"),
        false,
    ),
    ("progress_percentage", "integer", None, Some("0"), true),
    ("unlocked_at", TIMESTAMPTZ, None, None, true),
    ("started_at", TIMESTAMPTZ, None, None, true),
    ("completed_at", TIMESTAMPTZ, None, None, true),
    ("created_at", TIMESTAMPTZ, None, NOW, true),
    ("updated_at", TIMESTAMPTZ, None, NOW, true),
];

const SUBMISSIONS: &[Column] = &[
    ("id", "uuid", None, UUID_DEFAULT, false),
    ("user_id", "uuid", None, None, false),
    ("organization_id", "uuid", None, None, true),
    ("data", "jsonb", None, Some("'{}'::jsonb"), false),
    (
        "status",
        "character varying",
        Some(50),
        Some("'draft'::character varying"),
        false,
    ),
    ("version", "integer", None, Some("1"), false),
    ("created_at", TIMESTAMPTZ, None, NOW, true),
    ("updated_at", TIMESTAMPTZ, None, NOW, true),
    ("submitted_at", TIMESTAMPTZ, None, None, true),
    ("completed_at", TIMESTAMPTZ, None, None, true),
    // Beyond the original design: the last submitted data, what dependents see (migration 0003).
    ("submitted_data", "jsonb", None, None, true),
];

const FIELD_OUTPUTS: &[Column] = &[
    ("id", "uuid", None, UUID_DEFAULT, false),
    ("submission_id", "uuid", None, None, false),
    ("field_id", "character varying", Some(255), None, false),
    ("field_value", "jsonb", None, None, false),
    ("created_at", TIMESTAMPTZ, None, NOW, true),
];

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct ColumnRow {
    name: String,
    data_type: String,
    max_length: Option<i32>,
    default: Option<String>,
    nullable: bool,
}

async fn assert_columns(pool: &PgPool, schema: &str, table: &str, expected: &[Column]) {
    let actual: Vec<ColumnRow> = sqlx::query_as(
        "select column_name::text as name, data_type::text as data_type,
                character_maximum_length::int as max_length, column_default::text as default,
                is_nullable = 'YES' as nullable
         from information_schema.columns where table_schema = $1 and table_name = $2
         order by ordinal_position",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    let expected: Vec<ColumnRow> = expected
        .iter()
        .map(
            |&(name, data_type, max_length, default, nullable)| ColumnRow {
                name: name.to_owned(),
                data_type: data_type.to_owned(),
                max_length,
                default: default.map(str::to_owned),
                nullable,
            },
        )
        .collect();
    assert_eq!(actual, expected, "columns of {schema}.{table}");
}

/// (columns, unique) of every index on the table, parsed from pg_indexes.indexdef.
async fn indexes(pool: &PgPool, schema: &str, table: &str) -> BTreeSet<(String, bool)> {
    let defs: Vec<String> = sqlx::query_scalar(
        "select indexdef from pg_indexes where schemaname = $1 and tablename = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    defs.iter()
        .map(|def| {
            let columns = def
                .rsplit_once('(')
                .unwrap()
                .1
                .trim_end_matches(')')
                .to_owned();
            (columns, def.starts_with("CREATE UNIQUE INDEX"))
        })
        .collect()
}

async fn assert_indexes(pool: &PgPool, schema: &str, table: &str, expected: &[(&str, bool)]) {
    let actual = indexes(pool, schema, table).await;
    for (columns, unique) in expected {
        assert!(
            actual.contains(&(columns.to_string(), *unique)),
            "{schema}.{table} lacks {} index on ({columns}); it has {actual:?}",
            if *unique { "a unique" } else { "an" }
        );
    }
}

/// (table, column) → (referenced table, referenced column, ON DELETE rule).
async fn foreign_keys(
    pool: &PgPool,
    schema: &str,
) -> BTreeSet<(String, String, String, String, String)> {
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "select kcu.table_name::text, kcu.column_name::text,
                ccu.table_schema::text || '.' || ccu.table_name::text, ccu.column_name::text, rc.delete_rule::text
         from information_schema.referential_constraints rc
         join information_schema.key_column_usage kcu
           on kcu.constraint_schema = rc.constraint_schema and kcu.constraint_name = rc.constraint_name
         join information_schema.constraint_column_usage ccu
           on ccu.constraint_schema = rc.constraint_schema and ccu.constraint_name = rc.constraint_name
         where rc.constraint_schema = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

fn fk(
    table: &str,
    column: &str,
    target: &str,
    target_column: &str,
    rule: &str,
) -> (String, String, String, String, String) {
    (
        table.into(),
        column.into(),
        target.into(),
        target_column.into(),
        rule.into(),
    )
}

#[sqlx::test(migrations = false)]
async fn shared_tables_match_the_design_column_by_column(pool: PgPool) {
    migrated(&pool).await;
    assert_columns(&pool, "shared", "users", USERS).await;
    assert_columns(&pool, "shared", "organizations", ORGANIZATIONS).await;
    assert_columns(&pool, "shared", "user_progress", USER_PROGRESS).await;
}

#[sqlx::test(migrations = false)]
async fn shared_tables_have_every_index_the_design_lists(pool: PgPool) {
    migrated(&pool).await;
    assert_indexes(
        &pool,
        "shared",
        "users",
        &[("id", true), ("lms_user_id", true), ("email", true)],
    )
    .await;
    assert_indexes(
        &pool,
        "shared",
        "organizations",
        &[("id", true), ("slug", true)],
    )
    .await;
    assert_indexes(
        &pool,
        "shared",
        "user_progress",
        &[
            ("id", true),
            ("user_id, tool_slug", true),
            ("user_id", false),
            ("status", false),
        ],
    )
    .await;
}

#[sqlx::test(migrations = false)]
async fn shared_foreign_keys_match_the_design(pool: PgPool) {
    migrated(&pool).await;
    let expected: BTreeSet<_> = [
        fk(
            "users",
            "organization_id",
            "shared.organizations",
            "id",
            "NO ACTION",
        ),
        fk("user_progress", "user_id", "shared.users", "id", "CASCADE"),
        // Beyond the original design: the API's idempotency keys (migration 0003).
        fk(
            "idempotency_keys",
            "user_id",
            "shared.users",
            "id",
            "CASCADE",
        ),
        // The save budgets (migration 0009): a user's goes with them.
        fk("save_budgets", "user_id", "shared.users", "id", "CASCADE"),
        // What staff leave on a participant's tools (migration 0013): gone
        // with the participant; an author who is erased leaves their words.
        fk("comments", "user_id", "shared.users", "id", "CASCADE"),
        fk("comments", "author_id", "shared.users", "id", "SET NULL"),
        fk("comment_reads", "user_id", "shared.users", "id", "CASCADE"),
        fk("overrides", "user_id", "shared.users", "id", "CASCADE"),
        fk("overrides", "actor_id", "shared.users", "id", "SET NULL"),
        fk(
            "submission_history",
            "user_id",
            "shared.users",
            "id",
            "CASCADE",
        ),
        // Staff changes' idempotency keys (migration 0018): gone with the
        // admin who made them or the person they were about.
        fk(
            "staff_idempotency_keys",
            "actor_id",
            "shared.users",
            "id",
            "CASCADE",
        ),
        fk(
            "staff_idempotency_keys",
            "subject",
            "shared.users",
            "id",
            "CASCADE",
        ),
        // The recompute's marks of changed users (migration 0021): gone with
        // the person.
        fk(
            "recompute_dirty",
            "user_id",
            "shared.users",
            "id",
            "CASCADE",
        ),
        // Sessions' refresh tokens (migration 0020): gone with the person.
        fk(
            "refresh_families",
            "user_id",
            "shared.users",
            "id",
            "CASCADE",
        ),
        fk(
            "refresh_tokens",
            "family_id",
            "shared.refresh_families",
            "id",
            "CASCADE",
        ),
    ]
    .into();
    assert_eq!(foreign_keys(&pool, "shared").await, expected);
}

#[sqlx::test(migrations = false)]
async fn there_are_32_schemas_shared_plus_one_per_registry_tool(pool: PgPool) {
    migrated(&pool).await;
    let schemas: BTreeSet<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace where nspname = 'shared' or nspname like 'sprint\\_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let registry = Registry::embedded();
    let expected: BTreeSet<String> = std::iter::once("shared".to_owned())
        .chain(registry.tools().iter().map(|t| t.schema.to_string()))
        .collect();
    assert_eq!(schemas, expected);
    assert_eq!(schemas.len(), registry.tools().len() + 1);
    assert_eq!(schemas.len(), 32);
}

#[sqlx::test(migrations = false)]
async fn every_tool_schema_has_both_tables_with_the_design_columns_and_indexes(pool: PgPool) {
    migrated(&pool).await;
    for tool in Registry::embedded().tools() {
        let schema = tool.schema.as_str();
        assert_columns(&pool, schema, "submissions", SUBMISSIONS).await;
        assert_columns(&pool, schema, "field_outputs", FIELD_OUTPUTS).await;
        // user_id is UNIQUE: one current submission per user per tool.
        assert_indexes(
            &pool,
            schema,
            "submissions",
            &[
                ("id", true),
                ("user_id", true),
                ("user_id, organization_id", false),
                ("status", false),
            ],
        )
        .await;
        // (submission_id, field_id) is UNIQUE: one value per field.
        assert_indexes(
            &pool,
            schema,
            "field_outputs",
            &[
                ("id", true),
                ("submission_id", false),
                ("field_id", false),
                ("submission_id, field_id", true),
            ],
        )
        .await;
        let expected: BTreeSet<_> = [
            fk("submissions", "user_id", "shared.users", "id", "CASCADE"),
            fk(
                "submissions",
                "organization_id",
                "shared.organizations",
                "id",
                "SET NULL",
            ),
            fk(
                "field_outputs",
                "submission_id",
                &format!("{schema}.submissions"),
                "id",
                "CASCADE",
            ),
        ]
        .into();
        assert_eq!(
            foreign_keys(&pool, schema).await,
            expected,
            "foreign keys of {schema}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn check_constraints_reject_values_outside_the_design(pool: PgPool) {
    migrated(&pool).await;
    let org: uuid::Uuid = sqlx::query_scalar(
        "insert into shared.organizations (name, slug) values ('O', 'o') returning id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let insert_user = |role: &'static str, n: i32| {
        sqlx::query("insert into shared.users (lms_user_id, email, full_name, organization_id, role) values ($1, $2, 'U', $3, $4)")
            .bind(format!("lms-{n}"))
            .bind(format!("u{n}@example.test"))
            .bind(org)
            .bind(role)
    };
    for (n, role) in ["user", "admin", "guru"].into_iter().enumerate() {
        insert_user(role, n as i32).execute(&pool).await.unwrap();
    }
    let err = insert_user("owner", 9).execute(&pool).await.unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("23514")
    );

    let user: uuid::Uuid =
        sqlx::query_scalar("select id from shared.users where lms_user_id = 'lms-0'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let progress = |status: &'static str, pct: i32| {
        sqlx::query("insert into shared.user_progress (user_id, tool_slug, status, progress_percentage) values ($1, $2, $3, $4)")
            .bind(user)
            .bind(format!("{status}-{pct}"))
            .bind(status)
            .bind(pct)
    };
    for status in ["locked", "unlocked", "in_progress", "completed"] {
        progress(status, 50).execute(&pool).await.unwrap();
    }
    for (status, pct) in [("done", 0), ("locked", 101), ("locked", -1)] {
        let err = progress(status, pct).execute(&pool).await.unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().as_deref(),
            Some("23514"),
            "{status} {pct}"
        );
    }

    for status in ["draft", "in_progress", "submitted", "completed"] {
        sqlx::query("insert into sprint_00_woop.submissions (user_id, status) values ($1, $2) on conflict (user_id) do update set status = excluded.status")
            .bind(user)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
    }
    let err = sqlx::query("update sprint_00_woop.submissions set status = 'archived'")
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("23514")
    );
}

#[sqlx::test(migrations = false)]
async fn updated_at_is_kept_current_on_update(pool: PgPool) {
    migrated(&pool).await;
    let long_ago = "2000-01-01T00:00:00Z";
    sqlx::query(
        "insert into shared.organizations (name, slug, created_at, updated_at) values ('O', 'o', $1::timestamptz, $1::timestamptz)",
    )
    .bind(long_ago)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.users (lms_user_id, email, full_name, created_at, updated_at) values ('l', 'e@x.test', 'U', $1::timestamptz, $1::timestamptz)",
    )
    .bind(long_ago)
    .execute(&pool)
    .await
    .unwrap();
    let user: uuid::Uuid = sqlx::query_scalar("select id from shared.users")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into shared.user_progress (user_id, tool_slug, created_at, updated_at) values ($1, 'woop', $2::timestamptz, $2::timestamptz)",
    )
    .bind(user)
    .bind(long_ago)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into sprint_03_values.submissions (user_id, created_at, updated_at) values ($1, $2::timestamptz, $2::timestamptz)",
    )
    .bind(user)
    .bind(long_ago)
    .execute(&pool)
    .await
    .unwrap();

    sqlx::query("update shared.organizations set name = 'O2'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update shared.users set full_name = 'U2'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update shared.user_progress set status = 'unlocked'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update sprint_03_values.submissions set version = 2")
        .execute(&pool)
        .await
        .unwrap();

    for table in [
        "shared.organizations",
        "shared.users",
        "shared.user_progress",
        "sprint_03_values.submissions",
    ] {
        let (created, updated): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select created_at, updated_at from {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(created.to_rfc3339(), "2000-01-01T00:00:00+00:00", "{table}");
        assert!(
            updated > created + chrono::Duration::days(365),
            "{table} updated_at was not bumped"
        );
    }
}

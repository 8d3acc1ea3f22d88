//! The three query patterns of docs/database.md run unchanged against the migrated database.
//! The only edit is the schema name: the design's `sprint_01_identity` is an
//! illustration; the curriculum's sprint 1 is `know-thyself`.

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use crate::migrated;

const CROSS_SCHEMA_FIELD_QUERY: &str = "
SELECT fo.field_value
FROM sprint_01_identity.field_outputs fo
INNER JOIN sprint_01_identity.submissions s ON fo.submission_id = s.id
WHERE s.user_id = $1 AND fo.field_id = $2
ORDER BY s.updated_at DESC
LIMIT 1;";

const BATCH_FIELD_QUERY: &str = "
SELECT fo.field_id, fo.field_value
FROM sprint_01_identity.field_outputs fo
INNER JOIN sprint_01_identity.submissions s ON fo.submission_id = s.id
WHERE s.user_id = $1 AND fo.field_id IN ($2, $3, $4);";

const PROGRESS_SUMMARY_QUERY: &str = "
SELECT
  COUNT(*) as total_tools,
  SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) as completed,
  SUM(CASE WHEN status = 'in_progress' THEN 1 ELSE 0 END) as in_progress,
  SUM(CASE WHEN status = 'unlocked' THEN 1 ELSE 0 END) as unlocked,
  SUM(CASE WHEN status = 'locked' THEN 1 ELSE 0 END) as locked
FROM shared.user_progress
WHERE user_id = $1;";

fn on_know_thyself(query: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(query.replace("sprint_01_identity", "sprint_01_know_thyself"))
}

async fn user(pool: &PgPool, n: u32) -> Uuid {
    sqlx::query_scalar("insert into shared.users (lms_user_id, email, full_name) values ($1, $2, 'U') returning id")
        .bind(format!("lms-{n}"))
        .bind(format!("u{n}@example.test"))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn submit_know_thyself(pool: &PgPool, user: Uuid, outputs: &[(&str, Value)]) {
    let submission: Uuid = sqlx::query_scalar(
        "insert into sprint_01_know_thyself.submissions (user_id, status, data) values ($1, 'submitted', '{}') returning id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    for (field, value) in outputs {
        sqlx::query("insert into sprint_01_know_thyself.field_outputs (submission_id, field_id, field_value) values ($1, $2, $3)")
            .bind(submission)
            .bind(field)
            .bind(value)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrations = false)]
async fn the_cross_schema_field_query_returns_the_users_value(pool: PgPool) {
    migrated(&pool).await;
    let (alice, bob) = (user(&pool, 1).await, user(&pool, 2).await);
    submit_know_thyself(
        &pool,
        alice,
        &[("identity.personal_dream", json!("A bakery on every corner"))],
    )
    .await;
    submit_know_thyself(
        &pool,
        bob,
        &[("identity.personal_dream", json!("Bob's dream"))],
    )
    .await;

    let value: Value = sqlx::query_scalar(on_know_thyself(CROSS_SCHEMA_FIELD_QUERY))
        .bind(alice)
        .bind("identity.personal_dream")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(value, json!("A bakery on every corner"));

    let missing: Option<Value> = sqlx::query_scalar(on_know_thyself(CROSS_SCHEMA_FIELD_QUERY))
        .bind(alice)
        .bind("identity.personal_values")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[sqlx::test(migrations = false)]
async fn the_batch_field_query_returns_only_the_requested_fields_of_the_user(pool: PgPool) {
    migrated(&pool).await;
    let (alice, bob) = (user(&pool, 1).await, user(&pool, 2).await);
    submit_know_thyself(
        &pool,
        alice,
        &[
            ("identity.personal_dream", json!("dream")),
            ("identity.strengths.matrix", json!({"craft": 5, "sales": 2})),
            ("identity.personal_values", json!(["honesty", "warmth"])),
        ],
    )
    .await;
    submit_know_thyself(&pool, bob, &[("identity.personal_dream", json!("other"))]).await;

    let mut rows: Vec<(String, Value)> = sqlx::query_as(on_know_thyself(BATCH_FIELD_QUERY))
        .bind(alice)
        .bind("identity.personal_dream")
        .bind("identity.personal_values")
        .bind("identity.not_a_field")
        .fetch_all(&pool)
        .await
        .unwrap();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        rows,
        [
            ("identity.personal_dream".to_owned(), json!("dream")),
            (
                "identity.personal_values".to_owned(),
                json!(["honesty", "warmth"])
            ),
        ]
    );
}

#[sqlx::test(migrations = false)]
async fn the_progress_summary_query_counts_each_status(pool: PgPool) {
    migrated(&pool).await;
    let (alice, bob) = (user(&pool, 1).await, user(&pool, 2).await);
    let statuses = [
        "completed",
        "completed",
        "in_progress",
        "unlocked",
        "locked",
        "locked",
        "locked",
    ];
    for (i, status) in statuses.iter().enumerate() {
        sqlx::query(
            "insert into shared.user_progress (user_id, tool_slug, status) values ($1, $2, $3)",
        )
        .bind(alice)
        .bind(format!("tool-{i}"))
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("insert into shared.user_progress (user_id, tool_slug, status) values ($1, 'woop', 'completed')")
        .bind(bob)
        .execute(&pool)
        .await
        .unwrap();

    let counts: (i64, i64, i64, i64, i64) = sqlx::query_as(AssertSqlSafe(PROGRESS_SUMMARY_QUERY))
        .bind(alice)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counts, (7, 2, 1, 1, 3));
}

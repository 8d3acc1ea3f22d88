//! The only place SQL text is assembled at run time. Each statement here is
//! built from a [`SchemaName`], which only the validated registry can make, and
//! quoted as an identifier; every value stays a bind parameter.

use sqlx::AssertSqlSafe;

use crate::registry::{Registry, SchemaName};

type Sql = AssertSqlSafe<String>;

/// Insert or update the user's one submission for the tool, bumping `version`.
/// Binds: $1 user_id, $2 organization_id, $3 data, $4 status.
pub fn upsert_submission(schema: &SchemaName) -> Sql {
    let s = schema.quoted();
    AssertSqlSafe(format!(
        r"insert into {s}.submissions as sub (user_id, organization_id, data, status, submitted_at)
        values ($1, $2, $3, $4, case when $4 = 'submitted' then current_timestamp end)
        on conflict (user_id) do update set
            organization_id = excluded.organization_id,
            data = excluded.data,
            status = excluded.status,
            version = sub.version + 1,
            submitted_at = coalesce(excluded.submitted_at, sub.submitted_at)
        returning id, version"
    ))
}

/// Replace a submission's outputs with the given (field_id, value) pairs, in one
/// statement: upsert the new set, delete every other field of the submission.
/// Binds: $1 submission_id, $2 field_ids text[], $3 values jsonb[].
pub fn replace_field_outputs(schema: &SchemaName) -> Sql {
    let s = schema.quoted();
    AssertSqlSafe(format!(
        r"with upserted as (
            insert into {s}.field_outputs (submission_id, field_id, field_value)
            select $1, f.field_id, f.field_value
            from unnest($2::text[], $3::jsonb[]) as f(field_id, field_value)
            on conflict (submission_id, field_id) do update
                set field_value = excluded.field_value, created_at = current_timestamp
            returning 1
        )
        delete from {s}.field_outputs
        where submission_id = $1 and field_id <> all($2::text[])"
    ))
}

/// Submissions per tool, across every tool schema, in one statement.
pub fn submission_counts(registry: &Registry) -> Sql {
    let parts: Vec<String> = registry
        .tools()
        .iter()
        .map(|t| {
            format!(
                "select {sprint}::int as sprint, count(*) filter (where status = 'draft') as drafts, \
                 count(*) filter (where status = 'submitted') as submitted, \
                 (select count(*) from {s}.field_outputs) as outputs from {s}.submissions",
                sprint = t.sprint,
                s = t.schema.quoted()
            )
        })
        .collect();
    AssertSqlSafe(parts.join("\nunion all\n") + "\norder by sprint")
}

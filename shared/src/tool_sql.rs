//! The only place SQL text is assembled at run time. Each statement here is
//! built from [`SchemaName`]s, which only the validated registry can make, and
//! quoted as identifiers; every value stays a bind parameter.

use std::collections::BTreeSet;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::registry::{Registry, SchemaName, Tool};

type Sql = SqlStr;

/// The one assertion that a run-time string is safe SQL: its only variable parts
/// are quoted [`SchemaName`]s.
fn sql(text: String) -> Sql {
    AssertSqlSafe(text).into_sql_str()
}

/// `t` (the target user) is visible to `a` (the caller): themself, an admin, or
/// a guru of the same organization. Every read joins through this condition,
/// so the role check happens in the statement that reads the data.
#[macro_export]
macro_rules! visible_to_caller {
    () => {
        "(a.id = t.id or a.role = 'admin' or (a.role = 'guru' and a.organization_id is not null and a.organization_id = t.organization_id))"
    };
}

/// The tool schemas that produce any of `fields`, except `skip`.
fn producer_schemas<'a>(
    registry: &'a Registry,
    fields: impl IntoIterator<Item = &'a str>,
    skip: Option<&Tool>,
) -> BTreeSet<&'a SchemaName> {
    fields
        .into_iter()
        .filter_map(|f| registry.producer(f))
        .filter(|p| skip.is_none_or(|s| s.slug != p.slug))
        .map(|p| &p.schema)
        .collect()
}

/// Reads what `tool` depends on, for a target user the caller may see, in one
/// statement. Binds: $1 caller, $2 target, $3 tool slug, $4 dependency field ids.
/// Returns one row: actor_exists, target_id, status, field_ids, field_values, updated_ats.
pub fn resolve_dependencies(registry: &Registry, tool: &Tool) -> Sql {
    let fields = tool.dependencies.iter().map(|d| d.field.as_str());
    let branches: Vec<String> = producer_schemas(registry, fields, None)
        .into_iter()
        .map(|schema| {
            let s = schema.quoted();
            format!(
                "select fo.field_id::text as field_id, fo.field_value, fo.created_at as updated_at
                 from {s}.field_outputs fo
                 join {s}.submissions sub on sub.id = fo.submission_id
                 join target on sub.user_id = target.id
                 where fo.field_id = any($4::text[])"
            )
        })
        .collect();
    let found = if branches.is_empty() {
        "select null::text as field_id, null::jsonb as field_value, null::timestamptz as updated_at where false".to_owned()
    } else {
        branches.join("\n union all\n")
    };
    sql(format!(
        r"with target as (
            select t.id from shared.users a
            join shared.users t on t.id = $2 and {visible}
            where a.id = $1
        ), found as (
            {found}
        )
        select
            exists (select 1 from shared.users where id = $1) as actor_exists,
            (select id from target) as target_id,
            (select p.status::text from shared.user_progress p join target on p.user_id = target.id
             where p.tool_slug = $3) as status,
            coalesce((select array_agg(field_id) from found), '{{}}') as field_ids,
            coalesce((select array_agg(field_value) from found), '{{}}') as field_values,
            coalesce((select array_agg(updated_at) from found), '{{}}') as updated_ats",
        visible = visible_to_caller!(),
    ))
}

/// A user's submission for `tool`, with the tool's progress row, if the caller
/// may see it. Binds: $1 caller, $2 target, $3 tool slug. Always one row.
pub fn get_submission(tool: &Tool) -> Sql {
    let s = tool.schema.quoted();
    sql(format!(
        r"select
            a.id is not null as actor_exists,
            t.id as target_id,
            sub.id, sub.status::text as status, sub.version, sub.data, sub.submitted_data,
            sub.created_at, sub.updated_at, sub.submitted_at,
            p.status::text as progress_status, p.progress_percentage, p.started_at, p.completed_at
        from (values (1)) as one
        left join shared.users a on a.id = $1
        left join shared.users t on t.id = $2 and {visible}
        left join {s}.submissions sub on sub.user_id = t.id
        left join shared.user_progress p on p.user_id = t.id and p.tool_slug = $3",
        visible = visible_to_caller!(),
    ))
}

/// The write of a save, in one statement, for a caller who already holds the
/// lock on their progress row for the tool:
///
/// * upsert the user's one submission (bumping `version`), honouring If-Match;
/// * on submit, replace the tool's field outputs and record `submitted_data`;
/// * update the tool's progress;
/// * on submit, unlock every locked dependent whose required fields are now all
///   available (this tool's new outputs, plus other tools' stored outputs);
/// * record the outcome under the Idempotency-Key, if one was sent.
///
/// Binds: $1 user, $2 organization, $3 data, $4 status ('draft' | 'submitted'),
/// $5 output field ids, $6 output values, $7 percentage, $8 If-Match version
/// (null: none; 0: `*`), $9 idempotency key, $10 tool slug, $11/$12 required
/// (dependent slug, field) pairs, $13 the fields to read from other tools.
/// Returns one row with the outcome as jsonb, or none when If-Match failed.
pub fn save_submission(registry: &Registry, tool: &Tool) -> Sql {
    let s = tool.schema.quoted();
    let needed = registry
        .dependents(tool)
        .flat_map(|d| d.required_dependencies().map(|dep| dep.field.as_str()));
    let mut available: Vec<String> = producer_schemas(registry, needed, Some(tool))
        .into_iter()
        .map(|schema| {
            let p = schema.quoted();
            format!(
                "select fo.field_id::text as field_id from {p}.field_outputs fo
                 join {p}.submissions ps on ps.id = fo.submission_id
                 where ps.user_id = $1 and fo.field_id = any($13::text[])"
            )
        })
        .collect();
    available.push("select unnest($5::text[]) as field_id".to_owned());
    let available = available.join("\n union all\n");
    sql(format!(
        r"with sub as (
            insert into {s}.submissions as sub
                (user_id, organization_id, data, status, submitted_data, submitted_at, completed_at)
            select $1, $2, $3, $4,
                case when $4 = 'submitted' then $3 end,
                case when $4 = 'submitted' then current_timestamp end,
                case when $4 = 'submitted' then current_timestamp end
            where $8::int is null or exists (select 1 from {s}.submissions where user_id = $1)
            on conflict (user_id) do update set
                organization_id = excluded.organization_id,
                data = excluded.data,
                status = excluded.status,
                submitted_data = coalesce(excluded.submitted_data, sub.submitted_data),
                submitted_at = coalesce(excluded.submitted_at, sub.submitted_at),
                completed_at = coalesce(excluded.completed_at, sub.completed_at),
                version = sub.version + 1
            where $8::int is null or $8 = 0 or sub.version = $8
            returning sub.*
        ), outputs as (
            insert into {s}.field_outputs (submission_id, field_id, field_value)
            select sub.id, f.field_id, f.field_value
            from sub, unnest($5::text[], $6::jsonb[]) as f(field_id, field_value)
            where $4 = 'submitted'
            on conflict (submission_id, field_id) do update
                set field_value = excluded.field_value, created_at = current_timestamp
            returning 1
        ), stale_outputs as (
            delete from {s}.field_outputs fo using sub
            where $4 = 'submitted' and fo.submission_id = sub.id and fo.field_id <> all($5::text[])
        ), progress as (
            update shared.user_progress p set
                status = case when $4 = 'submitted' or p.status = 'completed' then 'completed' else 'in_progress' end,
                progress_percentage = case
                    when $4 = 'submitted' then 100
                    when p.status = 'completed' then p.progress_percentage
                    else $7 end,
                started_at = coalesce(p.started_at, current_timestamp),
                completed_at = case when $4 = 'submitted' then coalesce(p.completed_at, current_timestamp)
                                    else p.completed_at end
            from sub
            where p.user_id = $1 and p.tool_slug = $10
            returning p.status, p.progress_percentage, p.started_at, p.completed_at
        ), available as (
            {available}
        ), unlocked as (
            update shared.user_progress p set status = 'unlocked', unlocked_at = current_timestamp
            from sub
            where $4 = 'submitted' and p.user_id = $1 and p.status = 'locked'
              and p.tool_slug = any($11::text[])
              and not exists (
                  select 1 from unnest($11::text[], $12::text[]) as r(tool_slug, field_id)
                  where r.tool_slug = p.tool_slug
                    and not exists (select 1 from available av where av.field_id = r.field_id))
            returning p.tool_slug
        ), result as (
            select jsonb_build_object(
                'submission', jsonb_build_object(
                    'id', sub.id, 'status', sub.status, 'version', sub.version, 'data', sub.data,
                    'submitted_data', sub.submitted_data, 'created_at', sub.created_at,
                    'updated_at', sub.updated_at, 'submitted_at', sub.submitted_at),
                'progress', (select jsonb_build_object(
                    'status', status, 'percentage', progress_percentage,
                    'started_at', started_at, 'completed_at', completed_at) from progress),
                'unlocked', coalesce((select jsonb_agg(tool_slug order by tool_slug) from unlocked), '[]'::jsonb)
            ) as outcome
            from sub
        ), remembered as (
            update shared.idempotency_keys k set response = (select outcome from result)
            where $9::text is not null and k.user_id = $1 and k.key = $9
        )
        select outcome from result"
    ))
}

/// The candidates of one batch of the scheduled recompute, as CTEs: the locked
/// registry tools of the users in the id range `($1, $2]` whose producer tools
/// are all completed.
///
/// A field is available only once its producer tool is completed (a submit
/// writes its outputs and completes the tool in one statement), so one pass over
/// the batch's progress rows finds the candidates; only those are checked
/// against the producers' `field_outputs`, which decide. Tools and fields are
/// bits of bit strings, passed as text (`'0100'`). The pass folds each user's
/// rows into one row (`batch`): how many registry rows they have, and their
/// completed and their locked tools as two strings; a candidate is then a
/// locked tool whose producers are all among the completed ones.
///
/// Binds: $1 exclusive lower and $2 inclusive upper user id; $3 every registry
/// slug, with $4 the bits of its required fields, $5 its own bit, $6 the bits of
/// the tools producing its required fields; $7 the all-zero tool string.
///
/// The range's size is known only from its bounds, so a generic plan (which a
/// named statement gets after five runs) guesses it badly: run these unnamed.
macro_rules! recompute_candidates {
    () => {
        r"tools as (
            select t.tool_slug, t.needs::varbit as needs, t.bit::varbit as bit,
                   t.producers::varbit as producers
            from unnest($3::text[], $4::text[], $5::text[], $6::text[])
                as t(tool_slug, needs, bit, producers)
        ), batch as (
            select p.user_id, count(*) as present,
                   coalesce(bit_or(t.bit) filter (where p.status = 'completed'), $7::varbit) as completed,
                   coalesce(bit_or(t.bit) filter (where p.status = 'locked'), $7::varbit) as locked
            from shared.user_progress p join tools t on t.tool_slug = p.tool_slug::text
            where p.user_id > $1 and p.user_id <= $2
            group by p.user_id
        ), candidates as materialized (
            select b.user_id, t.tool_slug, t.needs
            from batch b join tools t
              on (b.locked & t.bit) <> $7::varbit
             and (b.completed & t.producers) = t.producers
        )"
    };
}

/// What one batch of the scheduled recompute needs, and in the steady state
/// its only work besides reading the batch's user ids: how many users the id
/// range `($1, $2]` holds, how many progress rows they have for registry tools,
/// and how many unlock candidates (`recompute_candidates!`, binds $1 to $7).
/// All three come from one snapshot, so a user created in the range since the
/// batch was read counts on both sides; rows are missing unless present =
/// users x tools (a user has at most one row per tool). Nothing here depends
/// on the tool schemas, so it is cheap to plan; the unlock statement
/// ([`recompute_unlocks`]), with a branch per producer schema, runs only when
/// rows are missing or there is a candidate. Returns one row: users, present,
/// candidates.
pub const RECOMPUTE_SURVEY: &str = concat!(
    "with ",
    recompute_candidates!(),
    r"
    select (select count(*) from shared.users u where u.id > $1 and u.id <= $2) as users,
           (select coalesce(sum(present), 0)::bigint from batch) as present,
           (select count(*) from candidates) as candidates"
);

/// One batch of the scheduled recompute: unlock every candidate
/// (`recompute_candidates!`, binds $1 to $7) of the users in the id range
/// `($1, $2]` whose required fields are all available in the producers'
/// `field_outputs`. A user's available fields are one bit string.
///
/// Binds, after the candidates' seven: $8/$9 every required field id and its
/// bit; $10 the all-zero field string. Returns the unlocked (user, slug) pairs.
pub fn recompute_unlocks(registry: &Registry) -> Sql {
    let required = registry
        .tools()
        .iter()
        .flat_map(|t| t.required_dependencies().map(|d| d.field.as_str()));
    let mut branches: Vec<String> = producer_schemas(registry, required, None)
        .into_iter()
        .map(|schema| {
            let p = schema.quoted();
            // `offset 0` keeps the subquery a per-user index probe.
            format!(
                "select c.user_id, fo.field_id from candidate_users c
                 cross join lateral (
                     select fo.field_id::text as field_id from {p}.submissions ps
                     join {p}.field_outputs fo on fo.submission_id = ps.id
                     where ps.user_id = c.user_id and fo.field_id = any($8::text[])
                     offset 0
                 ) fo"
            )
        })
        .collect();
    if branches.is_empty() {
        branches
            .push("select null::uuid as user_id, null::text as field_id where false".to_owned());
    }
    let available = branches.join("\n union all\n");
    sql(format!(
        r"with {candidates}, candidate_users as (
            select distinct user_id from candidates
        ), field_bits as (
            select f.field_id, f.bit::varbit as bit
            from unnest($8::text[], $9::text[]) as f(field_id, bit)
        ), available as (
            {available}
        ), have as (
            select av.user_id, bit_or(fb.bit) as fields
            from available av join field_bits fb on fb.field_id = av.field_id
            group by av.user_id
        )
        update shared.user_progress p set status = 'unlocked', unlocked_at = current_timestamp
        from candidates c
        left join have h on h.user_id = c.user_id
        where p.user_id = c.user_id and p.tool_slug = c.tool_slug and p.status = 'locked'
          and (coalesce(h.fields, $10::varbit) & c.needs) = c.needs
        returning p.user_id, p.tool_slug::text",
        candidates = recompute_candidates!(),
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
    sql(parts.join("\nunion all\n") + "\norder by sprint")
}

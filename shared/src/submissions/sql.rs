//! The statements of a save and of a submission read, and the typed binds of
//! a save, which the benchmark replays as they are.

use serde_json::{Map, Value};
use sqlx::Arguments as _;
use sqlx::postgres::PgArguments;
use uuid::Uuid;

use super::request::{Budget, Idempotency, IfMatch, SaveRequest, SubmissionStatus};
use crate::access::{caller_and_target, work_visible_to_caller};
use crate::audit::audit_read;
use crate::foundation::error::ApiError;
use crate::registry::sql::{Branches, Sql, expand, producer_schemas};
use crate::registry::{Registry, Tool};

/// A bind parameter of a save's statements, typed as it is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Param<'a> {
    Uuid(Option<Uuid>),
    Text(Option<&'a str>),
    Bytes(Option<&'a [u8]>),
    Int(Option<i32>),
    Float(f64),
    Json(&'a Value),
    TextArray(Vec<&'a str>),
    JsonArray(&'a [Value]),
}

/// The parameters, in order, as one statement's arguments.
pub fn arguments<'a>(params: impl IntoIterator<Item = Param<'a>>) -> Result<PgArguments, ApiError> {
    let mut arguments = PgArguments::default();
    for param in params {
        match param {
            Param::Uuid(v) => arguments.add(v),
            Param::Text(v) => arguments.add(v),
            Param::Bytes(v) => arguments.add(v),
            Param::Int(v) => arguments.add(v),
            Param::Float(v) => arguments.add(v),
            Param::Json(v) => arguments.add(v),
            Param::TextArray(v) => arguments.add(v),
            Param::JsonArray(v) => arguments.add(v),
        }
        .map_err(|e| ApiError::Internal(format!("encoding a bind parameter: {e}")))?;
    }
    Ok(arguments)
}

/// The first statement of a save (see `save::lock`): spends the save's cost
/// from the user's budget, claims the Idempotency-Key (forgetting the user's
/// oldest beyond [`LIVE_IDEMPOTENCY_KEYS`]), and locks the user and their
/// progress row for the tool. Nothing is spent or claimed when the caller has
/// no open account or the progress row does not exist; nothing is claimed
/// when the budget cannot pay. Binds:
/// $1 user, $2 tool slug, $3 Idempotency-Key, $4 request fingerprint, $5 the
/// save's cost, $6 the budget's burst, $7 its refill per second, $8 the keys
/// a user keeps. One row (none when the user or the row does not exist):
/// organization_id, status, claimed, allowed, tokens (before this save).
pub const LOCK_PROGRESS_SQL: &str = r"with actor as (
            -- The user first, then the progress row: every save takes its locks
            -- in this order, so a submit that unlocks (and so updates) another
            -- tool's row cannot deadlock with a save of that tool.
            select u.id, u.organization_id from shared.callers u
            where u.id = $1
            for no key update
        ), budget as (
            select least($6::float8, b.tokens
                       + $7::float8 * extract(epoch from statement_timestamp() - b.refilled_at)::float8) as tokens
            from shared.save_budgets b
            where b.user_id = $1
            for update
        ), available as (
            select coalesce((select tokens from budget), $6::float8) as tokens
        ), spend as (
            insert into shared.save_budgets as b (user_id, tokens, refilled_at)
            select $1, a.tokens - $5::float8, statement_timestamp()
            from available a
            where a.tokens >= $5::float8
              -- An open account, locked: a closed one (its erasure requested)
              -- spends and claims nothing, and an erasure waits for this save.
              and exists (select 1 from actor)
              and exists (select 1 from shared.user_progress where user_id = $1 and tool_slug = $2)
            on conflict (user_id) do update
                set tokens = excluded.tokens, refilled_at = excluded.refilled_at
            returning 1
        ), claim as (
            insert into shared.idempotency_keys as k (user_id, key, request_sha256)
            select $1, $3, $4
            where $3::text is not null and exists (select 1 from spend)
            on conflict (user_id, key) do update
                set request_sha256 = excluded.request_sha256, response = null, created_at = current_timestamp
                where k.created_at < current_timestamp - interval '24 hours'
            returning 1
        ), forget as (
            delete from shared.idempotency_keys k
            where exists (select 1 from claim) and k.user_id = $1 and k.key <> $3
              and k.key not in (
                  select key from shared.idempotency_keys
                  where user_id = $1 and key <> $3
                  order by created_at desc, key
                  limit $8::int - 1)
        )
        select a.organization_id, p.status::text as status, exists (select 1 from claim) as claimed,
               exists (select 1 from spend) as allowed, (select tokens from available) as tokens
        from actor a
        join shared.user_progress p on p.user_id = a.id and p.tool_slug = $2
        for update of p";

/// The Idempotency-Keys a user keeps: a save that claims a new one forgets the
/// oldest beyond these (a retry of a forgotten key is a new save).
pub const LIVE_IDEMPOTENCY_KEYS: i32 = 100;

/// The binds of [`LOCK_PROGRESS_SQL`].
pub fn lock_params<'a>(
    user: Uuid,
    tool: &'a Tool,
    idempotency: Option<&'a Idempotency>,
    budget: Budget,
) -> [Param<'a>; 8] {
    [
        Param::Uuid(Some(user)),
        Param::Text(Some(&tool.slug)),
        Param::Text(idempotency.map(|i| i.key.as_str())),
        Param::Bytes(idempotency.map(|i| i.fingerprint.as_slice())),
        Param::Float(budget.cost),
        Param::Float(budget.burst),
        Param::Float(budget.refill_per_second),
        Param::Int(Some(LIVE_IDEMPOTENCY_KEYS)),
    ]
}

/// The write of a save, in one statement, for a caller who already holds the
/// lock on their progress row for the tool:
///
/// * upsert the user's one submission (bumping `version`, unless the data
///   and status are what it holds already), honouring If-Match:
///   without one ($8 null) only a first save inserts, and an existing row is
///   left alone (428); the conflict's row lock makes that check and the write
///   one step;
/// * on submit, replace the tool's field outputs and record `submitted_data`;
/// * update the tool's progress;
/// * on submit, unlock every locked dependent whose required fields are now all
///   available (this tool's new outputs, plus other tools' stored outputs);
/// * record the outcome under the Idempotency-Key, if one was sent.
///
/// Binds: [`SaveBinds`]. Returns one row with the outcome as jsonb, or none
/// when If-Match failed or was missing on an update.
pub fn save_submission(registry: &Registry, tool: &Tool) -> Sql {
    registry.kept_statement("submissions.save", tool, || {
        let needed = registry
            .dependents(tool)
            .flat_map(|d| d.required_dependencies().map(|dep| dep.field.as_str()));
        expand(
            SAVE,
            Some(&tool.schema),
            Some(Branches {
                each: "select fo.field_id::text as field_id from {s}.field_outputs fo
                 join {s}.submissions ps on ps.id = fo.submission_id
                 where ps.user_id = $1 and fo.field_id = any($13::text[])",
                none: "select null::text as field_id where false",
                schemas: producer_schemas(registry, needed, Some(tool)),
            }),
        )
    })
}

const SAVE: &str = r"with sub as (
            insert into {s}.submissions as sub
                (user_id, organization_id, data, status, submitted_data, submitted_at, completed_at)
            select $1, $2, $3, $4,
                case when $4 = 'submitted' then $3 end,
                case when $4 = 'submitted' then current_timestamp end,
                case when $4 = 'submitted' then current_timestamp end
            where $8::int is null or exists (select 1 from {s}.submissions where user_id = $1)
            -- The same data and status again changes nothing: no new version,
            -- and the times and organization of the work stay as they were.
            on conflict (user_id) do update set
                organization_id = case when sub.data = excluded.data and sub.status = excluded.status
                                       then sub.organization_id else excluded.organization_id end,
                data = excluded.data,
                status = excluded.status,
                submitted_data = coalesce(excluded.submitted_data, sub.submitted_data),
                submitted_at = case when sub.data = excluded.data and sub.status = excluded.status
                                    then sub.submitted_at
                                    else coalesce(excluded.submitted_at, sub.submitted_at) end,
                completed_at = case when sub.data = excluded.data and sub.status = excluded.status
                                    then sub.completed_at
                                    else coalesce(excluded.completed_at, sub.completed_at) end,
                version = sub.version
                    + case when sub.data = excluded.data and sub.status = excluded.status then 0 else 1 end
            where $8 = 0 or sub.version = $8
            returning sub.*, sub.xmax = 0 as inserted
        ), outputs as (
            insert into {s}.field_outputs as fo (submission_id, field_id, field_value)
            select sub.id, f.field_id, f.field_value
            from sub, unnest($5::text[], $6::jsonb[]) as f(field_id, field_value)
            where $4 = 'submitted'
            on conflict (submission_id, field_id) do update
                set field_value = excluded.field_value, created_at = current_timestamp
                where fo.field_value is distinct from excluded.field_value
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
            {branches}
             union all
            select unnest($5::text[]) as field_id
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
                'unlocked', coalesce((select jsonb_agg(tool_slug order by tool_slug) from unlocked), '[]'::jsonb),
                'created', sub.inserted
            ) as outcome
            from sub
        ), remembered as (
            -- Without the data: a retry carries it again (its fingerprint is
            -- checked), and the submission row holds the rest.
            update shared.idempotency_keys k
            set response = (select outcome #- '{submission,data}' #- '{submission,submitted_data}' from result)
            where $9::text is not null and k.user_id = $1 and k.key = $9
        )
        select outcome from result";

/// The binds of [`save_submission`], typed, in one place: the save binds them,
/// and the benchmark replays them in pgbench.
#[derive(Debug, Clone)]
pub struct SaveBinds<'a> {
    pub user: Uuid,
    pub organization: Option<Uuid>,
    pub data: &'a Value,
    pub status: SubmissionStatus,
    /// The tool's outputs (a submit's; none for a draft): field ids and values.
    pub fields: Vec<&'a str>,
    pub values: Vec<Value>,
    pub percentage: i32,
    pub if_match: Option<IfMatch>,
    pub idempotency_key: Option<&'a str>,
    pub tool: &'a Tool,
    /// The (dependent tool, required field) pairs a submit may complete.
    pub requirement_tools: Vec<&'a str>,
    pub requirement_fields: Vec<&'a str>,
}

impl<'a> SaveBinds<'a> {
    pub fn new(
        registry: &'a Registry,
        tool: &'a Tool,
        user: Uuid,
        organization: Option<Uuid>,
        data: &'a Value,
        request: &SaveRequest,
        outputs: &'a Map<String, Value>,
    ) -> Self {
        let (requirement_tools, requirement_fields) = registry
            .dependents(tool)
            .flat_map(|dependent| {
                dependent
                    .required_dependencies()
                    .map(|dep| (dependent.slug.as_str(), dep.field.as_str()))
            })
            .unzip();
        Self {
            user,
            organization,
            data,
            status: request.status,
            fields: outputs.keys().map(String::as_str).collect(),
            values: outputs.values().cloned().collect(),
            percentage: super::outputs::percentage(tool, &request.data),
            if_match: None,
            idempotency_key: None,
            tool,
            requirement_tools,
            requirement_fields,
        }
    }

    /// $1 to $13, in order.
    pub fn params(&self) -> [Param<'_>; 13] {
        [
            Param::Uuid(Some(self.user)),
            Param::Uuid(self.organization),
            Param::Json(self.data),
            Param::Text(Some(self.status.as_str())),
            Param::TextArray(self.fields.clone()),
            Param::JsonArray(&self.values),
            Param::Int(Some(self.percentage)),
            // null: none (a first save only); 0: `*`.
            Param::Int(self.if_match.and_then(IfMatch::bind)),
            Param::Text(self.idempotency_key),
            Param::Text(Some(&self.tool.slug)),
            Param::TextArray(self.requirement_tools.clone()),
            Param::TextArray(self.requirement_fields.clone()),
            // The fields to read from other tools.
            Param::TextArray(self.requirement_fields.clone()),
        ]
    }
}

/// What a retried draft save needs to answer as the first time did: the
/// submission's last submitted data, and when it was submitted. Binds: $1 user.
pub fn submitted_data(tool: &Tool) -> Sql {
    expand(
        "select submitted_data, submitted_at from {s}.submissions where user_id = $1",
        Some(&tool.schema),
        None,
    )
}

/// A user's submission for `tool`, with the tool's progress row, if the caller
/// may see it: the progress whenever they see the user, the submission when
/// its last save is work they may read, and what it submitted when that
/// submit is too (`access::work_visible_to_caller!`). A staff read of another
/// person's is recorded in the audit log. Binds: $1 caller, $2 target, $3 tool
/// slug, $4 the request's id. Always one row.
pub fn get_submission(tool: &Tool) -> Sql {
    expand(GET, Some(&tool.schema), None)
}

const GET: &str = concat!(
    "with ",
    caller_and_target!("$1", "$2"),
    ", ",
    audit_read!("read.submission", "$4", "$3"),
    r"
        select
            a.id is not null as actor_exists,
            t.id as target_id,
            sub.id, sub.status::text as status, sub.version, sub.data,
            case when ",
    work_visible_to_caller!("sub.organization_id", "sub.submitted_at"),
    r" then sub.submitted_data end as submitted_data,
            sub.created_at, sub.updated_at,
            case when ",
    work_visible_to_caller!("sub.organization_id", "sub.submitted_at"),
    r" then sub.submitted_at end as submitted_at,
            p.status::text as progress_status, p.progress_percentage, p.started_at, p.completed_at
        from (values (1)) as one
        left join caller a on true
        left join target t on true
        left join {s}.submissions sub on sub.user_id = t.id and ",
    work_visible_to_caller!("sub.organization_id", "sub.updated_at"),
    "
        left join shared.user_progress p on p.user_id = t.id and p.tool_slug = $3"
);

//! The statement of a dependency read.

use crate::access::{caller_and_target, work_visible_to_caller};
use crate::audit::audit_read;
use crate::registry::sql::{Branches, Sql, expand, producer_schemas};
use crate::registry::{Registry, Tool};

/// Reads what `tool` depends on, for a target user the caller may see, in one
/// statement. A field is found whenever its producer stored it; its value and
/// time only when the caller may read that work (`access::work_visible_to_caller!`),
/// else null. The producers' branches only read what is stored; the rule is
/// applied once, over all of them: the statement is planned on every call
/// behind a transaction pooler, and the planner's time grows with what each
/// branch holds. A staff read of another person's is recorded in the audit log.
/// Binds: $1 caller, $2 target, $3 tool slug, $4 dependency field ids, $5 the
/// request's id.
/// Returns one row: actor_exists, target_id, status, field_ids, field_values, updated_ats.
pub fn resolve(registry: &Registry, tool: &Tool) -> Sql {
    registry.kept_statement("dependencies.resolve", tool, || {
        let fields = tool.dependencies.iter().map(|d| d.field.as_str());
        expand(
            RESOLVE,
            None,
            Some(Branches {
                each: EACH_PRODUCER,
                none: "select null::text as field_id, null::jsonb as field_value, null::timestamptz as created_at, null::uuid as organization_id where false",
                schemas: producer_schemas(registry, fields, None),
            }),
        )
    })
}

const EACH_PRODUCER: &str = "select fo.field_id, fo.field_value, fo.created_at, sub.organization_id
                 from {s}.field_outputs fo
                 join {s}.submissions sub on sub.id = fo.submission_id
                 where sub.user_id = (select id from target) and fo.field_id = any($4::text[])";

const RESOLVE: &str = concat!(
    "with ",
    caller_and_target!("$1", "$2"),
    ", ",
    audit_read!("read.dependencies", "$5", "$3"),
    r", stored as (
            {branches}
        ), found as (
            select o.field_id::text as field_id,
                case when ",
    work_visible_to_caller!("o.organization_id", "o.created_at"),
    r" then o.field_value end as field_value,
                case when ",
    work_visible_to_caller!("o.organization_id", "o.created_at"),
    r" then o.created_at end as updated_at
            from stored o cross join target t cross join caller a
        )
        select
            exists (select 1 from caller) as actor_exists,
            (select id from target) as target_id,
            (select p.status::text from shared.user_progress p join target on p.user_id = target.id
             where p.tool_slug = $3) as status,
            coalesce((select array_agg(field_id) from found), '{}') as field_ids,
            coalesce((select array_agg(field_value) from found), '{}') as field_values,
            coalesce((select array_agg(updated_at) from found), '{}') as updated_ats"
);

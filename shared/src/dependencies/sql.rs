//! The statement of a dependency read.

use crate::access::visible_to_caller;
use crate::registry::sql::{Branches, Sql, expand, producer_schemas};
use crate::registry::{Registry, Tool};

/// Reads what `tool` depends on, for a target user the caller may see, in one
/// statement. Binds: $1 caller, $2 target, $3 tool slug, $4 dependency field ids.
/// Returns one row: actor_exists, target_id, status, field_ids, field_values, updated_ats.
pub fn resolve(registry: &Registry, tool: &Tool) -> Sql {
    let fields = tool.dependencies.iter().map(|d| d.field.as_str());
    expand(
        RESOLVE,
        None,
        Some(Branches {
            each:
                "select fo.field_id::text as field_id, fo.field_value, fo.created_at as updated_at
                 from {s}.field_outputs fo
                 join {s}.submissions sub on sub.id = fo.submission_id
                 join target on sub.user_id = target.id
                 where fo.field_id = any($4::text[])",
            none: "select null::text as field_id, null::jsonb as field_value, null::timestamptz as updated_at where false",
            schemas: producer_schemas(registry, fields, None),
        }),
    )
}

const RESOLVE: &str = concat!(
    r"with target as (
            select t.id from shared.users a
            join shared.users t on t.id = $2 and ",
    visible_to_caller!(),
    r"
            where a.id = $1
        ), found as (
            {branches}
        )
        select
            exists (select 1 from shared.users where id = $1) as actor_exists,
            (select id from target) as target_id,
            (select p.status::text from shared.user_progress p join target on p.user_id = target.id
             where p.tool_slug = $3) as status,
            coalesce((select array_agg(field_id) from found), '{}') as field_ids,
            coalesce((select array_agg(field_value) from found), '{}') as field_values,
            coalesce((select array_agg(updated_at) from found), '{}') as updated_ats"
);

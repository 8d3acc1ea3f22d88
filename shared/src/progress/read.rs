//! Reading a user's progress as the caller may see it.

use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row as _};
use uuid::Uuid;

use super::{Progress, Status, ToolProgress, explain_locks, summarize};
use crate::access::{Reading, caller_and_target};
use crate::audit::audit_read;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::registry::{Forms, Registry};

/// The one statement of a progress read, which records a staff read of
/// another person's progress in the audit log, and counts each tool's staff
/// comments the participant has not read. Binds: $1 caller, $2 target, $3 the
/// request's id.
pub const PROGRESS_SQL: &str = concat!(
    "with ",
    caller_and_target!("$1", "$2"),
    ", ",
    audit_read!("read.progress", "$3", "null"),
    "
     select a.id is not null as actor_exists, t.id as target_id, p.tool_slug::text as tool_slug,
            p.status::text as status, p.progress_percentage, p.unlocked_at, p.started_at, p.completed_at,
            (select count(*) from shared.comments c
             where c.user_id = t.id and c.tool_slug = p.tool_slug
               and c.created_at > coalesce((select r.read_at from shared.comment_reads r
                                            where r.user_id = t.id and r.tool_slug = p.tool_slug),
                                           '-infinity'::timestamptz)) as unread_comments
     from (values (1)) as one
     left join caller a on true
     left join target t on true
     left join shared.user_progress p on p.user_id = t.id"
);

/// The columns of [`PROGRESS_SQL`], by position. The caller and the target are
/// the same on every row, so they are read from the first one only.
mod column {
    pub const ACTOR_EXISTS: usize = 0;
    pub const TARGET_ID: usize = 1;
    pub const TOOL_SLUG: usize = 2;
    pub const STATUS: usize = 3;
    pub const PERCENTAGE: usize = 4;
    pub const UNLOCKED_AT: usize = 5;
    pub const STARTED_AT: usize = 6;
    pub const COMPLETED_AT: usize = 7;
    pub const UNREAD_COMMENTS: usize = 8;
}

/// The progress of `target` as `caller` may see it: themself, an admin, or a
/// guru of the target's organization. Anyone else gets the same 404 as for a
/// user who does not exist.
pub async fn for_user<'r>(
    db: impl PgExecutor<'_>,
    registry: &'r Registry,
    reading: Reading<'_>,
) -> Result<Progress<'r>, ApiError> {
    let rows: Vec<PgRow> = db::query(PROGRESS_SQL)
        .bind(reading.caller)
        .bind(reading.target)
        .bind(reading.request_id)
        .fetch_all(db)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::Internal("progress query returned no row".into()))?;
    if !first.try_get::<bool, _>(column::ACTOR_EXISTS)? {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    let Some(user_id) = first.try_get::<Option<Uuid>, _>(column::TARGET_ID)? else {
        return Err(ApiError::NotFound("user_not_found"));
    };

    // Each registry tool's row, if it has one.
    let mut rows_by_tool: Vec<Option<&PgRow>> = vec![None; registry.tools().len()];
    for row in &rows {
        let slug: Option<&str> = row.try_get(column::TOOL_SLUG)?;
        let at = slug.and_then(|slug| {
            registry
                .position(slug)
                .filter(|&at| registry.tools()[at].slug == slug)
        });
        if let Some(at) = at {
            rows_by_tool[at] = Some(row);
        }
    }
    let tools = registry
        .tools()
        .iter()
        .zip(rows_by_tool)
        .map(|(tool, row)| {
            let mut progress = ToolProgress {
                sprint: tool.sprint,
                slug: &tool.slug,
                name: &tool.name,
                module: tool.module,
                optional: tool.optional,
                status: Status::initial(tool),
                percentage: 0,
                unlocked_at: None,
                started_at: None,
                completed_at: None,
                unread_comments: 0,
                missing: Vec::new(),
            };
            if let Some(row) = row {
                if let Some(status) = row.try_get::<Option<Status>, _>(column::STATUS)? {
                    progress.status = status;
                }
                progress.percentage = row
                    .try_get::<Option<i32>, _>(column::PERCENTAGE)?
                    .unwrap_or(0);
                progress.unlocked_at = row.try_get(column::UNLOCKED_AT)?;
                progress.started_at = row.try_get(column::STARTED_AT)?;
                progress.completed_at = row.try_get(column::COMPLETED_AT)?;
                progress.unread_comments = row
                    .try_get::<Option<i64>, _>(column::UNREAD_COMMENTS)?
                    .unwrap_or(0);
            }
            Ok(progress)
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let mut tools = tools;
    explain_locks(registry, Forms::embedded(), &mut tools);
    let summary = summarize(&tools);
    Ok(Progress {
        user_id,
        tools,
        summary,
    })
}

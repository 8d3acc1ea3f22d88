//! A user's progress through the curriculum: one row per tool and a summary, read
//! in one round trip through the caller-visibility check.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db;
use crate::error::ApiError;
use crate::registry::{Registry, Tool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Locked,
    Unlocked,
    InProgress,
    Completed,
}

impl Status {
    /// What a tool starts as, and what a tool without a progress row (added since
    /// the last recompute) is shown as: unlocked when it needs nothing.
    pub fn initial(tool: &Tool) -> Self {
        if tool.starts_unlocked() {
            Self::Unlocked
        } else {
            Self::Locked
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "locked" => Some(Self::Locked),
            "unlocked" => Some(Self::Unlocked),
            "in_progress" => Some(Self::InProgress),
            "completed" => Some(Self::Completed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolProgress {
    pub sprint: u8,
    pub slug: String,
    pub name: String,
    pub module: u8,
    pub optional: bool,
    pub status: Status,
    pub percentage: i32,
    pub unlocked_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub total: usize,
    pub completed: usize,
    pub in_progress: usize,
    pub unlocked: usize,
    pub locked: usize,
    /// The mean of the tools' percentages.
    pub percentage: i32,
    /// The earliest tool in progress, else the earliest unlocked one.
    pub current_tool: Option<String>,
    /// The first tool after the current one that is not completed.
    pub next_tool: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub user_id: Uuid,
    pub tools: Vec<ToolProgress>,
    pub summary: Summary,
}

#[derive(sqlx::FromRow)]
struct Row {
    actor_exists: bool,
    target_id: Option<Uuid>,
    tool_slug: Option<String>,
    status: Option<String>,
    progress_percentage: Option<i32>,
    unlocked_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

/// The one statement of a progress read. Binds: $1 caller, $2 target.
pub const PROGRESS_SQL: &str = concat!(
    "select a.id is not null as actor_exists, t.id as target_id, p.tool_slug::text as tool_slug,
            p.status::text as status, p.progress_percentage, p.unlocked_at, p.started_at, p.completed_at
     from (values (1)) as one
     left join shared.users a on a.id = $1
     left join shared.users t on t.id = $2 and ",
    crate::visible_to_caller!(),
    "
     left join shared.user_progress p on p.user_id = t.id"
);

/// The progress of `target` as `caller` may see it: themself, an admin, or a
/// guru of the target's organization. Anyone else gets the same 404 as for a
/// user who does not exist.
pub async fn for_user(
    db: impl PgExecutor<'_>,
    registry: &Registry,
    caller: Uuid,
    target: Uuid,
) -> Result<Progress, ApiError> {
    let rows: Vec<Row> = db::query_as(PROGRESS_SQL)
        .bind(caller)
        .bind(target)
        .fetch_all(db)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::Internal("progress query returned no row".into()))?;
    if !first.actor_exists {
        return Err(ApiError::Unauthorized("the token's user no longer exists"));
    }
    let Some(user_id) = first.target_id else {
        return Err(ApiError::NotFound("user_not_found"));
    };

    let tools: Vec<ToolProgress> = registry
        .tools()
        .iter()
        .map(|tool| {
            let row = rows
                .iter()
                .find(|r| r.tool_slug.as_deref() == Some(tool.slug.as_str()));
            let default = Status::initial(tool);
            ToolProgress {
                sprint: tool.sprint,
                slug: tool.slug.clone(),
                name: tool.name.clone(),
                module: tool.module,
                optional: tool.optional,
                status: row
                    .and_then(|r| r.status.as_deref())
                    .and_then(Status::parse)
                    .unwrap_or(default),
                percentage: row.and_then(|r| r.progress_percentage).unwrap_or(0),
                unlocked_at: row.and_then(|r| r.unlocked_at),
                started_at: row.and_then(|r| r.started_at),
                completed_at: row.and_then(|r| r.completed_at),
            }
        })
        .collect();
    let summary = summarize(&tools);
    Ok(Progress {
        user_id,
        tools,
        summary,
    })
}

pub fn summarize(tools: &[ToolProgress]) -> Summary {
    let count = |status| tools.iter().filter(|t| t.status == status).count();
    let total = tools.len();
    let percentage = if total == 0 {
        0
    } else {
        (tools.iter().map(|t| i64::from(t.percentage)).sum::<i64>() / total as i64) as i32
    };
    let current = tools
        .iter()
        .position(|t| t.status == Status::InProgress)
        .or_else(|| tools.iter().position(|t| t.status == Status::Unlocked));
    let next = current.and_then(|i| {
        tools[i + 1..]
            .iter()
            .find(|t| t.status != Status::Completed)
    });
    Summary {
        total,
        completed: count(Status::Completed),
        in_progress: count(Status::InProgress),
        unlocked: count(Status::Unlocked),
        locked: count(Status::Locked),
        percentage,
        current_tool: current.map(|i| tools[i].slug.clone()),
        next_tool: next.map(|t| t.slug.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(slug: &str, status: Status, percentage: i32) -> ToolProgress {
        ToolProgress {
            sprint: 0,
            slug: slug.into(),
            name: slug.into(),
            module: 0,
            optional: false,
            status,
            percentage,
            unlocked_at: None,
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn the_summary_counts_statuses_and_finds_current_and_next() {
        let tools = [
            tool("a", Status::Completed, 100),
            tool("b", Status::Unlocked, 0),
            tool("c", Status::InProgress, 50),
            tool("d", Status::Completed, 100),
            tool("e", Status::Locked, 0),
        ];
        let summary = summarize(&tools);
        assert_eq!(
            summary,
            Summary {
                total: 5,
                completed: 2,
                in_progress: 1,
                unlocked: 1,
                locked: 1,
                percentage: 50,
                current_tool: Some("c".into()),
                next_tool: Some("e".into()),
            }
        );
    }

    #[test]
    fn without_work_in_progress_the_earliest_unlocked_tool_is_current() {
        let tools = [
            tool("a", Status::Completed, 100),
            tool("b", Status::Unlocked, 0),
            tool("c", Status::Locked, 0),
        ];
        let summary = summarize(&tools);
        assert_eq!(summary.current_tool.as_deref(), Some("b"));
        assert_eq!(summary.next_tool.as_deref(), Some("c"));
        let done = summarize(&[tool("a", Status::Completed, 100)]);
        assert_eq!(
            (done.current_tool, done.next_tool, done.percentage),
            (None, None, 100)
        );
    }
}

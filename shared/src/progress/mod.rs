//! A user's progress through the curriculum: one row per tool and a summary,
//! read in one round trip through the access rule ([`read`]), and written as
//! JSON by hand ([`json`]), as it is the service's most frequent answer.

pub mod handler;
mod json;
pub mod read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::foundation::db::text_column;
use crate::registry::{Forms, Registry, Tool};

pub use read::{PROGRESS_SQL, for_user};

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

    /// As it is written in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Locked => "locked",
            Self::Unlocked => "unlocked",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Locked,
            Self::Unlocked,
            Self::InProgress,
            Self::Completed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolProgress<'a> {
    pub sprint: u8,
    pub slug: &'a str,
    pub name: &'a str,
    pub module: u8,
    pub optional: bool,
    pub status: Status,
    pub percentage: i32,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub unlocked_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Staff comments on the tool the participant has not read yet (newer
    /// than their last `GET /tools/{slug}/comments`).
    pub unread_comments: i64,
    /// Why a locked tool is locked: its required inputs whose tool is not
    /// completed yet. Absent for a tool that is not locked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingInput<'a>>,
}

/// A required input a locked tool waits for.
#[derive(Debug, Clone, Serialize)]
pub struct MissingInput<'a> {
    pub field: &'a str,
    pub label: &'a str,
    /// `label` as a JSON string, made once with the forms.
    #[serde(skip)]
    pub label_json: &'a str,
    /// The slug of the tool that produces it (listed in the same answer).
    pub from_tool: &'a str,
}

/// Fills in, for each locked tool, the required inputs whose producing tool
/// is not completed in `tools` (the same answer): what the participant must
/// do to unlock it. A locked tool whose inputs are all there lists none: the
/// next save or scheduled recompute unlocks it.
///
/// `forms` are those checked against `registry` (their labels are kept by
/// the registry's positions).
pub fn explain_locks<'r>(registry: &'r Registry, forms: &'r Forms, tools: &mut [ToolProgress<'r>]) {
    let completed: Vec<bool> = tools
        .iter()
        .map(|t| t.status == Status::Completed)
        .collect();
    for (at, (tool, progress)) in registry.tools().iter().zip(tools.iter_mut()).enumerate() {
        if progress.status != Status::Locked {
            continue;
        }
        progress.missing = tool
            .dependencies
            .iter()
            .enumerate()
            .filter(|(_, d)| d.required && !completed.get(d.source_at).copied().unwrap_or(false))
            .map(|(i, d)| {
                let label = forms.dependency_label(at, i);
                MissingInput {
                    field: &d.field,
                    label: &label.text,
                    label_json: &label.json,
                    from_tool: &d.source,
                }
            })
            .collect();
    }
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
pub struct Progress<'a> {
    pub user_id: Uuid,
    pub tools: Vec<ToolProgress<'a>>,
    pub summary: Summary,
}

text_column!(Status);

pub fn summarize(tools: &[ToolProgress<'_>]) -> Summary {
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
        current_tool: current.map(|i| tools[i].slug.to_owned()),
        next_tool: next.map(|t| t.slug.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(slug: &str, status: Status, percentage: i32) -> ToolProgress<'_> {
        ToolProgress {
            sprint: 0,
            slug,
            name: slug,
            module: 0,
            optional: false,
            status,
            percentage,
            unlocked_at: None,
            started_at: None,
            completed_at: None,
            unread_comments: 0,
            missing: Vec::new(),
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

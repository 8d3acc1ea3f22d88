//! A user's progress through the curriculum: one row per tool and a summary, read
//! in one round trip through the caller-visibility check.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row as _};
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
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub unlocked_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
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
pub struct Progress<'a> {
    pub user_id: Uuid,
    pub tools: Vec<ToolProgress<'a>>,
    pub summary: Summary,
}

impl Progress<'_> {
    /// The answer's JSON: byte for byte what `serde_json::to_string` makes of
    /// it (a test holds it to that), written in a few large pieces. The
    /// progress answer is the service's most frequent and its largest (31
    /// tools); serde writes it in some 2,000 small writes, which measured as a
    /// quarter of the request's instructions.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256 + 256 * self.tools.len());
        out.push_str("{\"user_id\":\"");
        out.push_str(
            self.user_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        out.push_str("\",\"tools\":[");
        for (i, tool) in self.tools.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            tool.push_json(&mut out);
        }
        out.push_str("],\"summary\":");
        out.push_str(&serde_json::to_string(&self.summary).expect("a summary serializes"));
        out.push('}');
        out
    }
}

impl ToolProgress<'_> {
    fn push_json(&self, out: &mut String) {
        let mut number = itoa::Buffer::new();
        out.push_str("{\"sprint\":");
        out.push_str(number.format(self.sprint));
        out.push_str(",\"slug\":");
        push_json_string(out, self.slug);
        out.push_str(",\"name\":");
        push_json_string(out, self.name);
        out.push_str(",\"module\":");
        out.push_str(number.format(self.module));
        out.push_str(if self.optional {
            ",\"optional\":true,\"status\":\""
        } else {
            ",\"optional\":false,\"status\":\""
        });
        out.push_str(self.status.as_str());
        out.push_str("\",\"percentage\":");
        out.push_str(number.format(self.percentage));
        for (key, at) in [
            (",\"unlocked_at\":", &self.unlocked_at),
            (",\"started_at\":", &self.started_at),
            (",\"completed_at\":", &self.completed_at),
        ] {
            out.push_str(key);
            match at {
                Some(at) => crate::rfc3339::push_json(out, at),
                None => out.push_str("null"),
            }
        }
        out.push('}');
    }
}

/// `s` as a JSON string: as it is when nothing in it needs escaping (slugs and
/// names, nearly always), through serde_json otherwise.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
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
}

/// The progress of `target` as `caller` may see it: themself, an admin, or a
/// guru of the target's organization. Anyone else gets the same 404 as for a
/// user who does not exist.
pub async fn for_user<'r>(
    db: impl PgExecutor<'_>,
    registry: &'r Registry,
    caller: Uuid,
    target: Uuid,
) -> Result<Progress<'r>, ApiError> {
    let rows: Vec<PgRow> = db::query(PROGRESS_SQL)
        .bind(caller)
        .bind(target)
        .fetch_all(db)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::Internal("progress query returned no row".into()))?;
    if !first.try_get::<bool, _>(column::ACTOR_EXISTS)? {
        return Err(ApiError::Unauthorized("the token's user no longer exists"));
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
            };
            if let Some(row) = row {
                let status: Option<&str> = row.try_get(column::STATUS)?;
                if let Some(status) = status.and_then(Status::parse) {
                    progress.status = status;
                }
                progress.percentage = row
                    .try_get::<Option<i32>, _>(column::PERCENTAGE)?
                    .unwrap_or(0);
                progress.unlocked_at = row.try_get(column::UNLOCKED_AT)?;
                progress.started_at = row.try_get(column::STARTED_AT)?;
                progress.completed_at = row.try_get(column::COMPLETED_AT)?;
            }
            Ok(progress)
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
    fn the_written_json_is_exactly_what_serde_writes() {
        use chrono::TimeZone;
        let names = [
            "WOOP",
            "Know \"Thyself\"",
            "Énergie \\ focus",
            "tab\there",
            "",
            "线",
        ];
        let statuses = [
            Status::Locked,
            Status::Unlocked,
            Status::InProgress,
            Status::Completed,
        ];
        let mut tools = Vec::new();
        for i in 0..40_u8 {
            let at = |k: i64| {
                (i64::from(i) % (k + 1) != 0).then(|| {
                    Utc.timestamp_opt(
                        1_700_000_000 + i64::from(i) * 3_601 * k,
                        (u32::from(i) * 7_919) % 1_000_000 * 1_000,
                    )
                    .unwrap()
                })
            };
            tools.push(ToolProgress {
                sprint: i,
                slug: names[usize::from(i) % names.len()],
                name: names[(usize::from(i) + 1) % names.len()],
                module: i / 5,
                optional: i % 3 == 0,
                status: statuses[usize::from(i) % 4],
                percentage: i32::from(i) * 7 - 20,
                unlocked_at: at(1),
                started_at: at(2),
                completed_at: at(3),
            });
        }
        for n in [0, 1, 31, 40] {
            let progress = Progress {
                user_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
                summary: summarize(&tools[..n]),
                tools: tools[..n].to_vec(),
            };
            assert_eq!(
                progress.to_json(),
                serde_json::to_string(&progress).unwrap()
            );
        }
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

//! Staff reports (the read side): what coaches (gurus) and admins
//! see of the participants they look after.
//!
//! - `GET /organizations`: the organizations the caller may see (an admin:
//!   all; a guru: their own) with member counts and a completion summary.
//! - `GET /organizations/{organization_id}/members`: the roster, one row per
//!   member with the status of every tool in registry order; filtered,
//!   sorted and keyset-paged; or, with `Accept: text/csv`, the whole roster
//!   as CSV ([`csv`]).
//! - `GET /organizations/{organization_id}/funnel` and `GET /funnel` (admins):
//!   per tool, how many members are locked, open, in progress, completed.
//! - `GET /users?q=`: an admin's search of every user by name or email prefix.
//!
//! Every page is one statement ([`sql`]): the access rule is inside it (the
//! caller from `shared.callers`: an admin, or a guru of that organization),
//! and a read of people's data writes its audit row in a data-modifying CTE
//! of that same statement, so a read that cannot be audited fails. A roster
//! page is an index range over `shared.users` (migration 0017 keeps each
//! member's `tools_completed` and `last_activity_at` there), so page 90 costs
//! what page 1 costs.

pub mod csv;
pub mod handler;
pub mod sql;

use serde::{Deserialize, Serialize};

use crate::foundation::error::ApiError;
use crate::progress::Status;
use crate::registry::{Registry, Tool};

/// The longest `q` (characters) a search or roster filter accepts.
pub const MAX_QUERY_CHARS: usize = 100;

/// The one-letter code of a status in a roster row's `statuses`.
pub fn status_code(status: Status) -> char {
    match status {
        Status::Locked => 'L',
        Status::Unlocked => 'U',
        Status::InProgress => 'P',
        Status::Completed => 'C',
    }
}

/// The status a code stands for.
pub fn status_of_code(code: char) -> Option<Status> {
    match code {
        'L' => Some(Status::Locked),
        'U' => Some(Status::Unlocked),
        'P' => Some(Status::InProgress),
        'C' => Some(Status::Completed),
        _ => None,
    }
}

/// The registry's slugs, in order, and what each tool is while it has no
/// progress row: the statements' `$slugs` and `$initials`.
pub fn tool_columns(registry: &Registry) -> (Vec<String>, Vec<&'static str>) {
    registry
        .tools()
        .iter()
        .map(|tool| (tool.slug.clone(), Status::initial(tool).as_str()))
        .unzip()
}

/// A member's current tool: the first, in registry order, that is open or in
/// progress (neither locked nor completed); `None` when there is none.
pub fn current_tool<'r>(registry: &'r Registry, statuses: &str) -> Option<&'r Tool> {
    statuses
        .chars()
        .zip(registry.tools())
        .find(|(code, _)| matches!(code, 'U' | 'P'))
        .map(|(_, tool)| tool)
}

/// Completed tools as a whole percentage of the registry's.
pub fn percent(completed: i64, tools: usize) -> u32 {
    if tools == 0 {
        return 0;
    }
    let completed = completed.clamp(0, tools as i64) as u64;
    ((completed * 100) / tools as u64) as u32
}

/// How a roster is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// By name (case-insensitive), then id.
    Name,
    /// By last activity (never: before all), then id.
    LastActivity,
    /// By tools completed, then id.
    Progress,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "name" => Some(Self::Name),
            "last_activity" => Some(Self::LastActivity),
            "progress" => Some(Self::Progress),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }
}

/// Which members a roster shows; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct RosterFilter {
    /// One tool, and the statuses of it a member must have.
    pub tool: Option<(&'static Tool, Vec<Status>)>,
    /// No activity for this many days (the last save or submit, or joining
    /// when they never saved).
    pub stuck_days: Option<i32>,
    /// A case-insensitive prefix of the name or the email.
    pub prefix: Option<String>,
}

/// `status=`: one status, or `not_completed` (any but completed).
pub fn parse_statuses(s: &str) -> Option<Vec<Status>> {
    match s {
        "not_completed" => Some(vec![Status::Locked, Status::Unlocked, Status::InProgress]),
        other => Status::parse(other).map(|status| vec![status]),
    }
}

/// `q=`: at most [`MAX_QUERY_CHARS`] characters, no NUL (PostgreSQL's text
/// cannot hold it) and not empty.
pub fn check_prefix(q: &str) -> Result<String, ApiError> {
    if q.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_prefix",
            "`q` may not be empty",
        ));
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_prefix",
            format!("`q` may be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if q.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_prefix",
            "`q` may not contain NUL",
        ));
    }
    Ok(q.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_code_that_reads_back() {
        for status in [
            Status::Locked,
            Status::Unlocked,
            Status::InProgress,
            Status::Completed,
        ] {
            assert_eq!(status_of_code(status_code(status)), Some(status));
        }
        assert_eq!(status_of_code('x'), None);
    }

    #[test]
    fn the_current_tool_is_the_first_open_or_in_progress_one() {
        let registry = Registry::embedded();
        let tools = registry.tools();
        let mut statuses: String = std::iter::repeat_n('L', tools.len()).collect();
        assert!(current_tool(registry, &statuses).is_none());
        statuses.replace_range(0..3, "CCU");
        assert_eq!(
            current_tool(registry, &statuses).map(|t| t.slug.as_str()),
            Some(tools[2].slug.as_str())
        );
    }

    #[test]
    fn a_prefix_is_bounded_and_refuses_nul() {
        assert!(check_prefix("ana").is_ok());
        assert!(check_prefix(&"a".repeat(MAX_QUERY_CHARS)).is_ok());
        assert!(check_prefix(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(check_prefix("a\0b").is_err());
        assert!(check_prefix("").is_err());
    }

    #[test]
    fn percent_rounds_down_and_stays_within_bounds() {
        assert_eq!(percent(0, 31), 0);
        assert_eq!(percent(31, 31), 100);
        assert_eq!(percent(40, 31), 100);
        assert_eq!(percent(1, 3), 33);
    }
}

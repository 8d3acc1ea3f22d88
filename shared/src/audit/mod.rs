//! The audit log (`shared.audit_log`, migration 0013): who among the staff
//! read or changed whose data, when, and why.
//!
//! - A staff **read** of another person's data is recorded by the statement
//!   that reads it: a data-modifying CTE ([`audit_read!`]) inserts the row in
//!   the same round trip, so a read that cannot be audited fails, and the
//!   read's round trips stay what they were.
//! - A staff **change** is recorded in the transaction that makes it
//!   ([`record`]).
//! - Admins page through the log ([`handler`]); each person finds the rows
//!   that name them in `subjects`.
//!
//! The runtime role may insert and read the log, never change or delete it.

pub mod handler;
pub mod query;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;

/// What an audit row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadProgress,
    ReadSubmission,
    ReadDependencies,
    ReadRoster,
    ReadRosterCsv,
    ReadFunnel,
    ReadProfile,
    ChangeRole,
    ChangeOrganization,
    OverrideUnlock,
    OverrideReopen,
    Comment,
    BootstrapAdmin,
    Export,
    ErasureRequested,
    ErasureCancelled,
    ErasureCompleted,
    TombstoneLifted,
    ReadComments,
}

impl Action {
    pub const ALL: [Action; 19] = [
        Action::ReadProgress,
        Action::ReadSubmission,
        Action::ReadDependencies,
        Action::ReadRoster,
        Action::ReadRosterCsv,
        Action::ReadFunnel,
        Action::ReadProfile,
        Action::ChangeRole,
        Action::ChangeOrganization,
        Action::OverrideUnlock,
        Action::OverrideReopen,
        Action::Comment,
        Action::BootstrapAdmin,
        Action::Export,
        Action::ErasureRequested,
        Action::ErasureCancelled,
        Action::ErasureCompleted,
        Action::TombstoneLifted,
        Action::ReadComments,
    ];

    /// As the log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadProgress => "read.progress",
            Action::ReadSubmission => "read.submission",
            Action::ReadDependencies => "read.dependencies",
            Action::ReadRoster => "read.roster",
            Action::ReadRosterCsv => "read.roster_csv",
            Action::ReadFunnel => "read.funnel",
            Action::ReadProfile => "read.profile",
            Action::ChangeRole => "change.role",
            Action::ChangeOrganization => "change.organization",
            Action::OverrideUnlock => "override.unlock",
            Action::OverrideReopen => "override.reopen",
            Action::Comment => "comment",
            Action::BootstrapAdmin => "bootstrap.admin",
            Action::Export => "export",
            Action::ErasureRequested => "erasure.requested",
            Action::ErasureCancelled => "erasure.cancelled",
            Action::ErasureCompleted => "erasure.completed",
            Action::TombstoneLifted => "tombstone.lifted",
            Action::ReadComments => "read.comments",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The CTE that records a staff read of one person's data, for a statement
/// that reads it, after its [`caller_and_target!`](crate::access::caller_and_target)
/// CTEs: named `audit`, it inserts a row when the caller is not the target and
/// may see them (`target` then holds them), and nothing otherwise (a
/// self-read, or a read the access rule refuses, which then reads nothing).
/// The arguments are the action's text and the statement's bind parameters
/// (or `null`), as literals:
/// `audit_read!("read.submission", "$4", "$3")`, the request's id, then the tool.
macro_rules! audit_read {
    ($action:literal, $request:literal, $tool:literal) => {
        concat!(
            "audit as (
            insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, tool_slug, request_id)
            select a.id, a.role, '",
            $action,
            "', array[t.id], t.organization_id, ",
            $tool,
            "::text, ",
            $request,
            "::text
            from caller a, target t
            where a.id <> t.id
            returning 1
        )"
        )
    };
}
pub(crate) use audit_read;

/// One staff change, as [`record`] writes it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub actor: Uuid,
    pub actor_role: &'a str,
    pub action: Action,
    pub subjects: Vec<Uuid>,
    pub organization: Option<Uuid>,
    pub tool: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub request_id: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A staff change's row: the binds in [`Change`]'s order.
pub const RECORD_SQL: &str = "insert into shared.audit_log
         (actor_id, actor_role, action, subjects, organization_id, tool_slug, reason, request_id, before, after)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Records a staff change, in the transaction `tx` that makes it.
pub async fn record(tx: &mut PgConnection, change: &Change<'_>) -> Result<(), ApiError> {
    db::query(RECORD_SQL)
        .bind(change.actor)
        .bind(change.actor_role)
        .bind(change.action.as_str())
        .bind(&change.subjects)
        .bind(change.organization)
        .bind(change.tool)
        .bind(change.reason)
        .bind(change.request_id)
        .bind(&change.before)
        .bind(&change.after)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_text() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("read.everything"), None);
    }

    #[test]
    fn the_read_cte_names_its_binds_and_reads_the_caller_and_the_visible_target() {
        let cte = audit_read!("read.progress", "$3", "null");
        assert!(cte.starts_with("audit as ("));
        assert!(
            cte.contains("'read.progress', array[t.id], t.organization_id, null::text, $3::text")
        );
        assert!(cte.contains("from caller a, target t\n            where a.id <> t.id"));
        let ctes = crate::access::caller_and_target!("$1", "$2");
        assert!(ctes.contains("from shared.callers where id = $1"));
        assert!(ctes.contains(
            "(select * from shared.users where id = $2 offset 0) t\n            where (a.id = t.id or a.role = 'admin'"
        ));
    }
}

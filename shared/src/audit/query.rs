//! Reading the audit log: for admins, filtered and in keyset pages.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row as _};
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;

/// What to look for; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<Uuid>,
    pub subject: Option<Uuid>,
    pub organization: Option<Uuid>,
    pub action: Option<super::Action>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub subjects: Vec<Uuid>,
    pub organization_id: Option<Uuid>,
    pub tool: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The newest entries first, after the entry `after` (a cursor), at most
/// `limit + 1` of them (the extra one says there is a next page). Only an
/// admin reads the log: the caller's role is checked in the statement. Binds:
/// $1 caller, $2 actor, $3 subject, $4 organization, $5 action, $6 since,
/// $7 until, $8 after, $9 rows.
const PAGE: &str = r"with caller as (
        select role from shared.callers where id = $1
    ), page as (
        select l.id, l.at, l.actor_id, l.actor_role::text, l.action::text, l.subjects,
               l.organization_id, l.tool_slug::text as tool, l.reason, l.request_id::text,
               l.before, l.after
        from shared.audit_log l
        where (select role from caller) = 'admin'
          and ($2::uuid is null or l.actor_id = $2)
          and ($3::uuid is null or l.subjects @> array[$3::uuid])
          and ($4::uuid is null or l.organization_id = $4)
          and ($5::text is null or l.action = $5)
          and ($6::timestamptz is null or l.at >= $6)
          and ($7::timestamptz is null or l.at < $7)
          and ($8::bigint is null or l.id < $8)
        order by l.id desc
        limit $9
    )
    select (select role::text from caller) as caller_role, page.*
    from (values (1)) as one left join page on true
    order by page.id desc";

/// A page of the log for `caller`: 401 when the caller no longer exists, 403
/// when they are not an admin.
pub async fn page(
    db: impl PgExecutor<'_>,
    caller: Uuid,
    filter: &Filter,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<Entry>, ApiError> {
    let rows: Vec<PgRow> = db::query(PAGE)
        .bind(caller)
        .bind(filter.actor)
        .bind(filter.subject)
        .bind(filter.organization)
        .bind(filter.action.map(super::Action::as_str))
        .bind(filter.since)
        .bind(filter.until)
        .bind(after)
        .bind(limit as i64 + 1)
        .fetch_all(db)
        .await?;
    let role: Option<String> = match rows.first() {
        Some(row) => row.try_get("caller_role")?,
        None => None,
    };
    match role.as_deref() {
        None => Err(ApiError::InvalidToken("the token's user no longer exists")),
        Some("admin") => {
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                // The one row of an empty page has no entry.
                if row.try_get::<Option<i64>, _>("id")?.is_some() {
                    entries.push(Entry::from_row(row)?);
                }
            }
            Ok(entries)
        }
        Some(_) => Err(ApiError::Forbidden("only an admin reads the audit log")),
    }
}

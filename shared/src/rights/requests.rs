//! Erasure requests (GDPR Art. 17) and tombstone lifts: the statements behind
//! the data-rights routes. Each checks the caller's role in the statement
//! that acts, and records the change in the audit log in that statement.
//!
//! A request opens a cool-off (`ERASURE_COOL_OFF_DAYS`): the person's account
//! is closed at once (`users.erasure_requested_at`: their token, launches and
//! webhooks are refused), their data stays intact, and an admin may cancel.
//! After it, the eraser ([`super::eraser`]) erases them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;

/// An erasure request, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureRequest {
    pub id: Uuid,
    pub subject: Uuid,
    pub requested_by: Option<Uuid>,
    pub requested_by_role: String,
    pub reason: String,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub requested_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub erase_after: DateTime<Utc>,
    pub status: String,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// What a request statement found, besides the request it made or changed.
#[derive(Debug, sqlx::FromRow)]
struct Outcome {
    /// `None`: the caller has no open account.
    caller_role: Option<String>,
    /// The target, as far as the caller may act on them.
    target_role: Option<String>,
    found: bool,
    request: Option<sqlx::types::Json<ErasureRequest>>,
}

/// Requests the erasure of `target` by `caller` (themself, or anyone when an
/// admin), after `cool_off`. An admin's account is not erased: another admin
/// first changes its role.
pub async fn request(
    conn: &mut PgConnection,
    caller: Uuid,
    target: Uuid,
    reason: &str,
    cool_off: Duration,
    request_id: &str,
) -> Result<ErasureRequest, ApiError> {
    let cool_off_secs = i64::try_from(cool_off.as_secs()).unwrap_or(i64::MAX);
    let outcome: Outcome = db::query_as(REQUEST)
        .bind(caller)
        .bind(target)
        .bind(reason)
        .bind(cool_off_secs)
        .bind(request_id)
        .fetch_one(&mut *conn)
        .await?;
    match outcome {
        Outcome {
            request: Some(request),
            ..
        } => Ok(request.0),
        Outcome {
            caller_role: None, ..
        } => Err(ApiError::InvalidToken("no open account for this token")),
        Outcome {
            target_role: None,
            caller_role: Some(role),
            found,
            ..
        } => Err(if role == "admin" && !found {
            ApiError::NotFound("user_not_found")
        } else {
            ApiError::Forbidden("only an admin may request another person's erasure")
        }),
        Outcome {
            target_role: Some(role),
            ..
        } if role == "admin" => Err(ApiError::Conflict {
            code: "admin_not_erasable",
            message: "an admin's account is not erased: another admin first changes its role"
                .into(),
            details: serde_json::Value::Null,
        }),
        Outcome { .. } => Err(ApiError::Conflict {
            code: "erasure_already_requested",
            message: "this person's erasure is already requested".into(),
            details: serde_json::Value::Null,
        }),
    }
}

/// Cancels the pending erasure request of `target`: an admin's act alone. The
/// account opens again as it was.
pub async fn cancel(
    conn: &mut PgConnection,
    caller: Uuid,
    target: Uuid,
    reason: Option<&str>,
    request_id: &str,
) -> Result<ErasureRequest, ApiError> {
    let (caller_role, request): (Option<String>, Option<sqlx::types::Json<ErasureRequest>>) =
        db::query_as(CANCEL)
            .bind(caller)
            .bind(target)
            .bind(reason)
            .bind(request_id)
            .fetch_one(&mut *conn)
            .await?;
    match (caller_role.as_deref(), request) {
        (_, Some(request)) => Ok(request.0),
        (None, None) => Err(ApiError::InvalidToken("no open account for this token")),
        (Some("admin"), None) => Err(ApiError::NotFound("erasure_request_not_found")),
        (Some(_), None) => Err(ApiError::Forbidden(
            "only an admin may cancel an erasure request",
        )),
    }
}

/// Lifts the tombstones matching a LearnWorlds id's or an email's keyed hash:
/// that person may then be created again by a webhook or a launch. An admin's
/// act alone. Returns how many were lifted.
pub async fn lift_tombstones(
    conn: &mut PgConnection,
    caller: Uuid,
    lms_hash: Option<Vec<u8>>,
    email_hash: Option<Vec<u8>>,
    reason: &str,
    request_id: &str,
) -> Result<i64, ApiError> {
    let (caller_role, lifted): (Option<String>, i64) = db::query_as(LIFT)
        .bind(caller)
        .bind(lms_hash)
        .bind(email_hash)
        .bind(reason)
        .bind(request_id)
        .fetch_one(&mut *conn)
        .await?;
    match (caller_role.as_deref(), lifted) {
        (None, _) => Err(ApiError::InvalidToken("no open account for this token")),
        (Some("admin"), 0) => Err(ApiError::NotFound("tombstone_not_found")),
        (Some("admin"), lifted) => Ok(lifted),
        (Some(_), _) => Err(ApiError::Forbidden("only an admin may lift a tombstone")),
    }
}

/// The request's columns as its JSON.
macro_rules! request_json {
    ($r:literal) => {
        concat!(
            "jsonb_build_object('id', ",
            $r,
            ".id, 'subject', ",
            $r,
            ".subject, 'requested_by', ",
            $r,
            ".requested_by, 'requested_by_role', ",
            $r,
            ".requested_by_role, 'reason', ",
            $r,
            ".reason, 'requested_at', ",
            $r,
            ".requested_at, 'erase_after', ",
            $r,
            ".erase_after, 'status', ",
            $r,
            ".status, 'cancelled_at', ",
            $r,
            ".cancelled_at)"
        )
    };
}

/// Binds: $1 caller, $2 target, $3 reason, $4 cool-off in seconds, $5 request
/// id. One pending request per person (a unique index): a second, even one
/// racing the first, makes nothing.
const REQUEST: &str = concat!(
    "with a as (
        select id, role from shared.callers where id = $1
    ), t as (
        select t.id, t.role, t.organization_id from shared.users t, a
        where t.id = $2 and (a.id = t.id or a.role = 'admin')
    ), r as (
        insert into shared.erasure_requests (subject, requested_by, requested_by_role, reason, erase_after)
        select t.id, a.id, a.role, $3, clock_timestamp() + make_interval(secs => $4)
        from t, a where t.role <> 'admin'
        on conflict (subject) where status = 'pending' do nothing
        returning *
    ), closed as (
        update shared.users u set erasure_requested_at = r.requested_at
        from r where u.id = r.subject
        returning 1
    ), audit as (
        insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, reason, request_id, after)
        select r.requested_by, r.requested_by_role, 'erasure.requested', array[r.subject], t.organization_id,
               r.reason, $5::text, jsonb_build_object('erase_after', r.erase_after)
        from r, t
        returning 1
    )
    select (select role::text from a) as caller_role,
           (select role::text from t) as target_role,
           exists (select 1 from shared.users where id = $2) as found,
           (select ",
    request_json!("r"),
    " from r) as request"
);

/// Binds: $1 caller, $2 target, $3 reason (or null), $4 request id.
const CANCEL: &str = concat!(
    "with a as (
        select id, role from shared.callers where id = $1 and role = 'admin'
    ), r as (
        update shared.erasure_requests r
        set status = 'cancelled', cancelled_by = a.id, cancelled_at = clock_timestamp()
        from a where r.subject = $2 and r.status = 'pending'
        returning r.*
    ), opened as (
        update shared.users u set erasure_requested_at = null
        from r where u.id = r.subject
        returning u.organization_id
    ), audit as (
        insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, reason, request_id)
        select a.id, a.role, 'erasure.cancelled', array[r.subject],
               (select organization_id from shared.users where id = r.subject), $3, $4::text
        from r, a
        returning 1
    )
    select (select role::text from shared.callers where id = $1) as caller_role,
           (select ",
    request_json!("r"),
    " from r) as request"
);

/// Binds: $1 caller, $2 LearnWorlds id hash (or null), $3 email hash (or
/// null), $4 reason, $5 request id.
const LIFT: &str = "with a as (
        select id, role from shared.callers where id = $1 and role = 'admin'
    ), lifted as (
        update shared.tombstones t set lifted_at = clock_timestamp(), lifted_by = a.id
        from a
        where t.lifted_at is null and (t.lms_hash = $2 or t.email_hash = $3)
        returning 1
    ), audit as (
        insert into shared.audit_log (actor_id, actor_role, action, reason, request_id, after)
        select a.id, a.role, 'tombstone.lifted', $4, $5::text,
               jsonb_build_object('lifted', (select count(*) from lifted),
                                  'by', case when $2::bytea is not null then 'lms_user_id' else 'email' end)
        from a where exists (select 1 from lifted)
        returning 1
    )
    select (select role::text from shared.callers where id = $1) as caller_role,
           (select count(*) from lifted) as lifted";

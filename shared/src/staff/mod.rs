//! What coaches (gurus) and admins do to a participant's record, and what the
//! participant sees of it (the write side). The `staff-actions`
//! function serves it.
//!
//! - [`profile`]: `GET` and `PATCH /users/{id}`: a person's profile with its
//!   ETag, and an admin's change of their role or organization (`If-Match`,
//!   `Idempotency-Key`, a reason; the change and its audit row in one
//!   transaction). An admin's organization sticks against LearnWorlds' tags
//!   until handed back (`crate::identity::users::SYNC_SQL`).
//! - [`overrides`]: unlocking a tool although its inputs are missing, and
//!   reopening a submitted one for revision.
//! - [`comments`]: staff feedback on a participant's tool, the participant's
//!   reading of it (unread counts in `/progress`), and `GET /me/activity`.
//! - [`bootstrap`]: the first admin of a fresh deployment (`fasttrack
//!   bootstrap-admin`).
//!
//! Every staff act is checked in the database, against the caller's row as it
//! is (`shared.callers`) and the access rule (`crate::access`): a guru acts on
//! the members of their own organization, an admin on anyone, nobody on their
//! own tools; someone the caller may not see answers 404.

pub mod bootstrap;
pub mod comments;
pub mod overrides;
pub mod profile;

use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::visible_to_caller;
use crate::foundation::db;
use crate::foundation::error::ApiError;

/// The body as an object with only `allowed` members.
pub(crate) fn fields<'v>(
    body: &'v Value,
    allowed: &[&str],
) -> Result<&'v Map<String, Value>, ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::unprocessable("invalid_body", "the body must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::unprocessable(
            "unknown_field",
            format!("unknown field `{unknown}`"),
        ));
    }
    Ok(object)
}

/// A required text member of 1 to `max` characters, not blank, without NUL.
pub(crate) fn text<'v>(
    object: &'v Map<String, Value>,
    name: &'static str,
    max: usize,
) -> Result<&'v str, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(ApiError::unprocessable(
            "field_required",
            format!("`{name}` is required (1 to {max} characters)"),
        )),
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= max && !s.contains('\0') =>
        {
            Ok(s)
        }
        Some(_) => Err(ApiError::unprocessable(
            "invalid_field",
            format!("`{name}` must be 1 to {max} characters, not blank, without NUL"),
        )),
    }
}

/// The staff member acting, and the participant they act on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Acting {
    pub actor: Uuid,
    pub actor_role: String,
    pub actor_name: String,
    pub target: Uuid,
    pub organization: Option<Uuid>,
}

/// The caller (an open account) and whether they see the target. Binds: $1
/// caller, $2 target.
pub const ACTING_SQL: &str = concat!(
    "select a.id as actor, a.role::text as actor_role, a.full_name::text as actor_name,
            t.id as target, t.organization_id as organization
     from shared.callers a
     left join shared.callers t on t.id = $2 and ",
    visible_to_caller!(),
    "
     where a.id = $1"
);

/// The target's row locked for a staff change, as a save locks it. Binds: $1
/// target.
pub const LOCK_TARGET_SQL: &str = "select 1 from shared.callers where id = $1 for no key update";

#[derive(sqlx::FromRow)]
struct ActingRow {
    actor: Uuid,
    actor_role: String,
    actor_name: String,
    target: Option<Uuid>,
    organization: Option<Uuid>,
}

/// `caller` acting as staff on `target`'s tools: a guru of their
/// organization or an admin, never on their own. A target the caller may not
/// see (or whose account is closed) is a 404, as one who does not exist; then
/// the target's row is locked (`for no key update`, as a save locks it), so
/// the act and the participant's saves take turns.
pub(crate) async fn acting(
    tx: &mut PgConnection,
    caller: Uuid,
    target: Uuid,
) -> Result<Acting, ApiError> {
    let row: Option<ActingRow> = db::query_as(ACTING_SQL)
        .bind(caller)
        .bind(target)
        .fetch_optional(&mut *tx)
        .await?;
    let row = row.ok_or(ApiError::InvalidToken("the token's user no longer exists"))?;
    let Some(target) = row.target else {
        return Err(ApiError::NotFound("user_not_found"));
    };
    if target == row.actor {
        return Err(ApiError::Forbidden(
            "nobody overrides or comments on their own tools: staff act on the participants they coach",
        ));
    }
    if !matches!(row.actor_role.as_str(), "guru" | "admin") {
        return Err(ApiError::NotFound("user_not_found"));
    }
    db::query(LOCK_TARGET_SQL)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    Ok(Acting {
        actor: row.actor,
        actor_role: row.actor_role,
        // Signed on comments as shown: a name stored before invisible
        // formatting was dropped on sync is shown without it.
        actor_name: crate::identity::users::display_name(&row.actor_name),
        target,
        organization: row.organization,
    })
}

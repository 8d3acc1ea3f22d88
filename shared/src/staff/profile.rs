//! `GET /users/{id}`: a person's profile as staff see it, with its ETag; and
//! `PATCH /users/{id}`: an admin's change of their role or organization.
//!
//! A change needs `If-Match` (the ETag of `GET`, `users.version`, which every
//! change of role or organization bumps: migration 0018) and an
//! `Idempotency-Key` (a retry replays the first answer). The change, its audit
//! rows, and the key's stored answer are one transaction: a refused change
//! (412, a guard) writes nothing, audit included.
//!
//! **Organizations.** An admin's assignment sets `organization_source` to
//! `admin`, and it sticks: LearnWorlds' `org:` tags no longer move the person
//! (`crate::identity::users::SYNC_SQL`) until an admin hands the organization
//! back (`"organization_source": "learnworlds"`); the next tag sync then
//! applies. **Roles** go through `shared.set_role` (migration 0013), which
//! keeps its guards in the database: only admins, nobody changes their own
//! role, the last admin stays one.

use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::access::{Caller, caller_and_target};
use crate::audit::{self, Action, Change, audit_read};
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};
use crate::identity::profile::Organization;
use crate::identity::users::{display_email, display_name};
use crate::submissions::IfMatch;

/// The Idempotency-Keys an admin keeps: claiming a new one forgets the oldest
/// beyond these (and the recompute expires them after 24 hours).
pub const LIVE_IDEMPOTENCY_KEYS: i32 = 100;

/// A person as staff see them, and where their role and organization came
/// from.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub organization: Option<Organization>,
    /// `learnworlds` (their `org:` tag) or `admin` (set by an admin; sticks).
    pub organization_source: String,
    pub organization_set_by: Option<Uuid>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub organization_joined_at: Option<DateTime<Utc>>,
    pub role_set_by: Option<Uuid>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub role_set_at: Option<DateTime<Utc>>,
    /// The ETag's value.
    pub version: i32,
}

#[derive(sqlx::FromRow)]
struct Row {
    actor_exists: bool,
    id: Option<Uuid>,
    full_name: Option<String>,
    email: Option<String>,
    role: Option<String>,
    organization_id: Option<Uuid>,
    organization_slug: Option<String>,
    organization_name: Option<String>,
    organization_source: Option<String>,
    organization_set_by: Option<Uuid>,
    organization_joined_at: Option<DateTime<Utc>>,
    role_set_by: Option<Uuid>,
    role_set_at: Option<DateTime<Utc>>,
    version: Option<i32>,
}

impl Row {
    fn profile(self) -> Option<Profile> {
        let organization = match (
            self.organization_id,
            self.organization_slug,
            self.organization_name,
        ) {
            (Some(id), Some(slug), Some(name)) => Some(Organization {
                id,
                slug,
                name: display_name(&name),
            }),
            _ => None,
        };
        Some(Profile {
            id: self.id?,
            name: display_name(&self.full_name?),
            email: display_email(&self.email?),
            role: self.role?,
            organization,
            organization_source: self.organization_source?,
            organization_set_by: self.organization_set_by,
            organization_joined_at: self.organization_joined_at,
            role_set_by: self.role_set_by,
            role_set_at: self.role_set_at,
            version: self.version?,
        })
    }
}

macro_rules! profile_columns {
    () => {
        "t.id, t.full_name::text, t.email::text, t.role::text,
         o.id as organization_id, o.slug::text as organization_slug, o.name::text as organization_name,
         t.organization_source::text, t.organization_set_by, t.organization_joined_at,
         t.role_set_by, t.role_set_at, t.version"
    };
}

/// The profile of `t` if the caller sees them, a staff read audited by the
/// statement itself. Binds: $1 caller, $2 target, $3 the request's id.
pub const GET_SQL: &str = concat!(
    "with ",
    caller_and_target!("$1", "$2"),
    ", ",
    audit_read!("read.profile", "$3", "null"),
    "
     select a.id is not null as actor_exists, ",
    profile_columns!(),
    "
     from (values (1)) as one
     left join caller a on true
     left join target t on true
     left join shared.organizations o on o.id = t.organization_id"
);

/// The profile of `t`, in the transaction of a change. Binds: $1 target.
const READ_SQL: &str = concat!(
    "select true as actor_exists, ",
    profile_columns!(),
    "
     from shared.users t
     left join shared.organizations o on o.id = t.organization_id
     where t.id = $1"
);

/// `GET /users/{user_id}`.
pub async fn get(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let row: Row = ctx
        .read(async |conn| {
            Ok(db::query_as(GET_SQL)
                .bind(caller.id())
                .bind(target)
                .bind(request.id())
                .fetch_one(conn)
                .await?)
        })
        .await?;
    if !row.actor_exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    let profile = row.profile().ok_or(ApiError::NotFound("user_not_found"))?;
    let version = profile.version;
    Ok(response::with_etag(
        response::json(StatusCode::OK, &profile),
        Some(version),
    ))
}

/// What a `PATCH /users/{id}` asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest {
    pub role: Option<String>,
    /// `Some(None)`: out of any organization.
    pub organization: Option<Option<Uuid>>,
    /// The organization handed back to LearnWorlds' tags.
    pub hand_back: bool,
    pub reason: String,
}

impl ChangeRequest {
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let object = super::fields(
            body,
            &["role", "organization_id", "organization_source", "reason"],
        )?;
        let role = match object.get("role") {
            None => None,
            Some(Value::String(r)) if matches!(r.as_str(), "user" | "guru" | "admin") => {
                Some(r.clone())
            }
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    "`role` must be \"user\", \"guru\" or \"admin\"",
                ));
            }
        };
        let organization = match object.get("organization_id") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(id)) => Some(Some(Uuid::parse_str(id).map_err(|_| {
                ApiError::unprocessable("invalid_field", "`organization_id` must be a UUID or null")
            })?)),
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    "`organization_id` must be a UUID or null",
                ));
            }
        };
        let hand_back = match object.get("organization_source") {
            None => false,
            Some(Value::String(s)) if s == "learnworlds" => true,
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    "`organization_source` may only be \"learnworlds\" (an organization_id is the admin's)",
                ));
            }
        };
        if hand_back && organization.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "give `organization_id` (an admin's assignment) or `organization_source: \"learnworlds\"`, not both",
            ));
        }
        if role.is_none() && organization.is_none() && !hand_back {
            return Err(ApiError::unprocessable(
                "nothing_to_change",
                "give `role`, `organization_id` or `organization_source`",
            ));
        }
        let reason = super::text(object, "reason", 1000)?.to_owned();
        Ok(Self {
            role,
            organization,
            hand_back,
            reason,
        })
    }
}

/// A validated Idempotency-Key of a staff change and its request's
/// fingerprint (the target and the body).
#[derive(Debug, Clone)]
pub struct StaffKey {
    pub key: String,
    pub fingerprint: Vec<u8>,
}

impl StaffKey {
    pub fn new(key: &str, target: Uuid, body: &Value) -> Result<Self, ApiError> {
        let valid = !key.is_empty()
            && key.len() <= 255
            && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !valid {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters other than a comma",
            ));
        }
        let mut hash = Sha256::new();
        hash.update(b"PATCH /users/");
        hash.update(target.to_string().as_bytes());
        hash.update(b"\n");
        hash.update(body.to_string().as_bytes());
        Ok(Self {
            key: key.to_owned(),
            fingerprint: hash.finalize().to_vec(),
        })
    }
}

/// Claims the key for this change (a key older than 24 hours is free again),
/// forgetting the actor's oldest beyond [`LIVE_IDEMPOTENCY_KEYS`]. Binds: $1
/// actor, $2 key, $3 subject, $4 fingerprint, $5 the keys kept. One row:
/// whether it was claimed.
const CLAIM_SQL: &str = "with claim as (
        insert into shared.staff_idempotency_keys as k (actor_id, key, subject, request_sha256)
        values ($1, $2, $3, $4)
        on conflict (actor_id, key) do update
            set subject = excluded.subject, request_sha256 = excluded.request_sha256,
                response = null, created_at = current_timestamp
            where k.created_at < current_timestamp - interval '24 hours'
        returning 1
    ), forget as (
        delete from shared.staff_idempotency_keys k
        where exists (select 1 from claim) and k.actor_id = $1 and k.key <> $2
          and k.key not in (
              select key from shared.staff_idempotency_keys
              where actor_id = $1 and key <> $2
              order by created_at desc, key
              limit $5::int - 1)
    )
    select exists (select 1 from claim)";

/// What a change answered, as stored under its key.
fn stored(profile: &Profile) -> Value {
    json!({ "status": 200, "body": profile })
}

/// `PATCH /users/{user_id}`.
pub async fn patch(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let key = request.strict_header("idempotency-key")?.ok_or_else(|| {
        ApiError::bad_request(
            "missing_idempotency_key",
            "send an Idempotency-Key: a retry of this change then replays its answer",
        )
    })?;
    let if_match = request
        .strict_header("if-match")?
        .map(IfMatch::parse)
        .transpose()?
        .ok_or(ApiError::PreconditionRequired {
            what: "user",
            current: None,
        })?;
    let body = request.json_body()?;
    let key = StaffKey::new(key, target, &body)?;
    let change = ChangeRequest::from_json(&body)?;
    let outcome = ctx
        .pool
        .transaction(async |tx| {
            apply(
                tx,
                caller.id(),
                target,
                &change,
                if_match,
                &key,
                request.id(),
            )
            .await
        })
        .await?;
    let (profile, replayed) = match outcome {
        Outcome::Changed(profile) => (profile, false),
        Outcome::Replayed(body) => (body, true),
    };
    request
        .log()
        .outcome(if replayed { "replayed" } else { "user_changed" });
    let version = profile["version"]
        .as_i64()
        .and_then(|v| i32::try_from(v).ok());
    let mut answer = response::with_etag(response::json(StatusCode::OK, &profile), version);
    if replayed {
        answer
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(answer)
}

enum Outcome {
    Changed(Value),
    Replayed(Value),
}

#[derive(sqlx::FromRow)]
struct Target {
    version: i32,
    role: String,
    organization_id: Option<Uuid>,
    organization_source: String,
}

async fn apply(
    tx: &mut PgConnection,
    actor: Uuid,
    target: Uuid,
    change: &ChangeRequest,
    if_match: IfMatch,
    key: &StaffKey,
    request_id: &str,
) -> Result<Outcome, ApiError> {
    let role: Option<String> =
        db::query_scalar("select role::text from shared.callers where id = $1")
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await?;
    match role.as_deref() {
        None => return Err(ApiError::InvalidToken("the token's user no longer exists")),
        Some("admin") => {}
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only an admin changes a person's role or organization",
            ));
        }
    }
    if change.role.is_some() {
        // The admins, in the order shared.set_role locks them, before the
        // target: two role changes never wait on each other in a cycle.
        db::query("select 1 from shared.users where role = 'admin' order by id for update")
            .execute(&mut *tx)
            .await?;
    }
    let current: Option<Target> = db::query_as(
        "select version, role::text, organization_id, organization_source::text
         from shared.users where id = $1 for update",
    )
    .bind(target)
    .fetch_optional(&mut *tx)
    .await?;
    let current = current.ok_or(ApiError::NotFound("user_not_found"))?;

    let claimed: bool = db::query_scalar(CLAIM_SQL)
        .bind(actor)
        .bind(&key.key)
        .bind(target)
        .bind(&key.fingerprint)
        .bind(LIVE_IDEMPOTENCY_KEYS)
        .fetch_one(&mut *tx)
        .await?;
    if !claimed {
        return replay(tx, actor, key).await;
    }
    if let IfMatch::Version(expected) = if_match
        && expected != current.version
    {
        return Err(ApiError::PreconditionFailed {
            what: "user",
            expected: if_match.etag(),
            current: Some(current.version),
        });
    }

    if let Some(role) = &change.role
        && *role != current.role
    {
        db::query_scalar::<String>("select shared.set_role($1, $2, $3, $4, $5)")
            .bind(actor)
            .bind(target)
            .bind(role)
            .bind(&change.reason)
            .bind(request_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(role_refused)?;
    }

    let organization = match (change.organization, change.hand_back) {
        (Some(organization), _) => {
            if let Some(id) = organization {
                let exists: bool = db::query_scalar(
                    "select exists (select 1 from shared.organizations where id = $1)",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if !exists {
                    return Err(ApiError::Unprocessable {
                        code: "organization_not_found",
                        message: "no organization has this `organization_id`".into(),
                        details: json!({ "organization_id": id }),
                    });
                }
            }
            (organization != current.organization_id || current.organization_source != "admin")
                .then_some((organization, "admin"))
        }
        (None, true) => (current.organization_source != "learnworlds")
            .then_some((current.organization_id, "learnworlds")),
        (None, false) => None,
    };
    if let Some((organization, source)) = organization {
        db::query(
            "update shared.users set
                 organization_joined_at = case
                     when $2::uuid is null then null
                     when organization_id is distinct from $2 then current_timestamp
                     else organization_joined_at end,
                 organization_id = $2, organization_source = $3, organization_set_by = $4
             where id = $1",
        )
        .bind(target)
        .bind(organization)
        .bind(source)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        audit::record(
            tx,
            &Change {
                actor,
                actor_role: "admin",
                action: Action::ChangeOrganization,
                subjects: vec![target],
                organization: organization.or(current.organization_id),
                tool: None,
                reason: Some(&change.reason),
                request_id,
                before: Some(json!({
                    "organization_id": current.organization_id,
                    "organization_source": current.organization_source,
                })),
                after: Some(json!({
                    "organization_id": organization,
                    "organization_source": source,
                })),
            },
        )
        .await?;
    }

    let row: Row = db::query_as(READ_SQL)
        .bind(target)
        .fetch_one(&mut *tx)
        .await?;
    let profile = row
        .profile()
        .ok_or_else(|| ApiError::Internal("a changed user has no profile".into()))?;
    let body = serde_json::to_value(&profile)
        .map_err(|e| ApiError::Internal(format!("writing a profile: {e}")))?;
    db::query(
        "update shared.staff_idempotency_keys set response = $3 where actor_id = $1 and key = $2",
    )
    .bind(actor)
    .bind(&key.key)
    .bind(stored(&profile))
    .execute(&mut *tx)
    .await?;
    Ok(Outcome::Changed(body))
}

/// The first answer to this key, for a retry of the same request.
async fn replay(tx: &mut PgConnection, actor: Uuid, key: &StaffKey) -> Result<Outcome, ApiError> {
    let (fingerprint, response): (Vec<u8>, Option<Value>) = db::query_as(
        "select request_sha256, response from shared.staff_idempotency_keys
         where actor_id = $1 and key = $2",
    )
    .bind(actor)
    .bind(&key.key)
    .fetch_one(&mut *tx)
    .await?;
    if fingerprint != key.fingerprint {
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request".into(),
            details: Value::Null,
        });
    }
    let mut response = response.ok_or_else(|| {
        ApiError::Internal("an idempotency key was committed without its response".into())
    })?;
    Ok(Outcome::Replayed(response["body"].take()))
}

/// shared.set_role's refusals, as the API answers them.
fn role_refused(error: sqlx::Error) -> ApiError {
    let Some(db) = error.as_database_error() else {
        return ApiError::from(error);
    };
    let message = db.message().to_owned();
    match db.code().as_deref() {
        Some("42501") => ApiError::Forbidden("only an admin changes roles"),
        Some("P0002") => ApiError::NotFound("user_not_found"),
        Some("23514") if message.contains("own role") => ApiError::Conflict {
            code: "own_role",
            message: "nobody changes their own role: another admin does".into(),
            details: Value::Null,
        },
        Some("23514") => ApiError::Conflict {
            code: "last_admin",
            message: "the last admin stays an admin: make another admin first".into(),
            details: Value::Null,
        },
        _ => ApiError::from(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_checked_before_anything_is_written() {
        let ok = ChangeRequest::from_json(&json!({"role": "guru", "reason": "coach"})).unwrap();
        assert_eq!(ok.role.as_deref(), Some("guru"));
        let out =
            ChangeRequest::from_json(&json!({"organization_id": null, "reason": "x"})).unwrap();
        assert_eq!(out.organization, Some(None));
        for body in [
            json!({"reason": "nothing"}),
            json!({"role": "root", "reason": "x"}),
            json!({"role": "guru"}),
            json!({"role": "guru", "reason": ""}),
            json!({"role": "guru", "reason": "a\u{0}b"}),
            json!({"role": "guru", "reason": "x".repeat(1001)}),
            json!({"organization_id": "nope", "reason": "x"}),
            json!({"organization_source": "admin", "reason": "x"}),
            json!({"organization_source": "learnworlds", "organization_id": null, "reason": "x"}),
            json!({"role": "guru", "reason": "x", "extra": 1}),
            json!([]),
        ] {
            let error = ChangeRequest::from_json(&body).unwrap_err();
            assert_eq!(error.status().as_u16(), 422, "{body}");
        }
    }
}

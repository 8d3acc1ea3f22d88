//! Overrides of a participant's tool, each with a reason, recorded in
//! `shared.overrides` and the audit log in the transaction that makes it:
//!
//! - **unlock** (`POST /users/{id}/tools/{slug}/unlock`): a locked tool is
//!   opened although its required inputs are missing. Nothing locks it again:
//!   the scheduled recompute (`crate::unlocks`) only ever unlocks, and a save
//!   opens a tool that is not locked as it is. What the tool reads shows the
//!   missing inputs as missing (`GET /tools/{slug}/dependencies`:
//!   `available: false`, listed in `missing_required`), never as an error.
//! - **reopen** (`POST /users/{id}/tools/{slug}/reopen`): a submitted tool
//!   goes back to a draft for revision, with a comment to the participant.
//!   The submitted version is kept in `shared.submission_history`; the
//!   submission becomes a `draft` (its version bumped, so an editor holding the
//!   old ETag reads it again), its progress `in_progress`. The participant
//!   edits and submits again as before.
//!
//!   **The tools it unlocked stay unlocked, and keep reading what it
//!   submitted**: the submitted outputs stay in its `field_outputs` (and its
//!   `submitted_data`) until the resubmission replaces them, so a reopen
//!   never takes work away from a later tool the participant has started.

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Acting, acting};
use crate::access::Caller;
use crate::audit::{self, Action, Change};
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};
use crate::progress::Status;
use crate::registry::sql::expand;
use crate::registry::{Registry, Tool};

/// An override, as the routes answer it and `GET /me/activity` lists it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Override {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool_slug: String,
    pub kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_role: String,
    pub reason: String,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

const INSERT_SQL: &str = "insert into shared.overrides (user_id, tool_slug, kind, actor_id, actor_role, reason)
     values ($1, $2, $3, $4, $5, $6)
     returning id, user_id, tool_slug::text, kind::text, actor_id, actor_role::text, reason, created_at";

async fn insert(
    tx: &mut PgConnection,
    acting: &Acting,
    tool: &Tool,
    kind: &str,
    reason: &str,
) -> Result<Override, ApiError> {
    Ok(db::query_as(INSERT_SQL)
        .bind(acting.target)
        .bind(&tool.slug)
        .bind(kind)
        .bind(acting.actor)
        .bind(&acting.actor_role)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?)
}

/// The body of an unlock: `{"reason"}`; of a reopen: `{"reason", "comment"}`.
fn reason_and_comment(
    request: &Request<'_>,
    with_comment: bool,
) -> Result<(String, Option<String>), ApiError> {
    let body = request.json_body()?;
    let allowed: &[&str] = if with_comment {
        &["reason", "comment"]
    } else {
        &["reason"]
    };
    let object = super::fields(&body, allowed)?;
    let reason = super::text(object, "reason", 1000)?.to_owned();
    let comment = with_comment
        .then(|| super::text(object, "comment", 4000).map(str::to_owned))
        .transpose()?;
    Ok((reason, comment))
}

/// The status of `target`'s progress row of `tool`, the row locked for the
/// change (`None`: no row yet).
async fn progress_locked(
    tx: &mut PgConnection,
    target: Uuid,
    tool: &Tool,
) -> Result<Option<Status>, ApiError> {
    Ok(db::query_scalar(
        "select status::text from shared.user_progress
         where user_id = $1 and tool_slug = $2 for update",
    )
    .bind(target)
    .bind(&tool.slug)
    .fetch_optional(&mut *tx)
    .await?)
}

/// `POST /users/{user_id}/tools/{slug}/unlock`.
pub async fn unlock(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = tool(ctx, request)?;
    let (reason, _) = reason_and_comment(request, false)?;
    let registry = ctx.registry;
    let (made, missing) = ctx
        .pool
        .transaction(async |tx| {
            let acting = acting(tx, caller.id(), target).await?;
            let status = progress_locked(tx, target, tool).await?;
            let status = status.unwrap_or(Status::initial(tool));
            if status != Status::Locked {
                return Err(ApiError::Conflict {
                    code: "not_locked",
                    message: format!("`{}` is not locked: it is {}", tool.slug, status.as_str()),
                    details: json!({ "status": status }),
                });
            }
            db::query(
                "insert into shared.user_progress (user_id, tool_slug, status, unlocked_at)
                 values ($1, $2, 'unlocked', current_timestamp)
                 on conflict (user_id, tool_slug) do update
                     set status = 'unlocked', unlocked_at = current_timestamp",
            )
            .bind(target)
            .bind(&tool.slug)
            .execute(&mut *tx)
            .await?;
            let missing = missing_inputs(tx, registry, tool, target).await?;
            let made = insert(tx, &acting, tool, "unlock", &reason).await?;
            audit::record(
                tx,
                &Change {
                    actor: acting.actor,
                    actor_role: &acting.actor_role,
                    action: Action::OverrideUnlock,
                    subjects: vec![target],
                    organization: acting.organization,
                    tool: Some(&tool.slug),
                    reason: Some(&reason),
                    request_id: request.id(),
                    before: Some(json!({ "status": status })),
                    after: Some(json!({
                        "status": Status::Unlocked,
                        "override_id": made.id,
                        "missing_required": missing,
                    })),
                },
            )
            .await?;
            Ok::<_, ApiError>((made, missing))
        })
        .await?;
    request.log().outcome("tool_unlocked");
    Ok(response::json(
        StatusCode::CREATED,
        &json!({
            "override": made,
            "status": Status::Unlocked,
            "missing_required": missing,
        }),
    ))
}

/// The required fields of `tool` that `user` has no output for: one
/// statement over the producers' schemas, as the save's unlock check reads
/// them.
async fn missing_inputs(
    tx: &mut PgConnection,
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
) -> Result<Vec<String>, ApiError> {
    let required: Vec<&str> = tool
        .required_dependencies()
        .map(|d| d.field.as_str())
        .collect();
    let sql = crate::registry::sql::expand(
        "select field_id from ({branches}) as available",
        None,
        Some(crate::registry::sql::Branches {
            each: "select fo.field_id::text as field_id from {s}.field_outputs fo
                 join {s}.submissions ps on ps.id = fo.submission_id
                 where ps.user_id = $1 and fo.field_id = any($2::text[])",
            none: "select null::text as field_id where false",
            schemas: crate::registry::sql::producer_schemas(
                registry,
                required.iter().copied(),
                None,
            ),
        }),
    );
    let available: Vec<String> = db::query_scalar(sql)
        .bind(user)
        .bind(&required)
        .fetch_all(&mut *tx)
        .await?;
    Ok(required
        .into_iter()
        .filter(|field| !available.iter().any(|a| a == field))
        .map(str::to_owned)
        .collect())
}

#[derive(sqlx::FromRow)]
struct Submitted {
    id: Uuid,
    status: String,
    version: i32,
    submitted_data: Option<Value>,
    submitted_at: Option<DateTime<Utc>>,
}

/// `POST /users/{user_id}/tools/{slug}/reopen`.
pub async fn reopen(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = tool(ctx, request)?;
    let (reason, comment) = reason_and_comment(request, true)?;
    let comment = comment.expect("a reopen's comment is required");
    let answer = ctx
        .pool
        .transaction(async |tx| {
            let acting = acting(tx, caller.id(), target).await?;
            // The progress row, then the submission: the order a save locks them.
            let progress = progress_locked(tx, target, tool).await?;
            let submitted: Option<Submitted> = db::query_as(expand(
                "select id, status::text, version, submitted_data, submitted_at
                 from {s}.submissions where user_id = $1 for update",
                Some(&tool.schema),
                None,
            ))
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?;
            // Submitted: completed, with what it submitted (a draft saved
            // over a submit since is reopened as well: it goes back too).
            let submitted = match (progress, submitted) {
                (Some(Status::Completed), Some(s)) if s.submitted_data.is_some() => s,
                _ => {
                    return Err(ApiError::Conflict {
                        code: "not_submitted",
                        message: format!(
                            "`{}` is not submitted: only a submitted tool is reopened",
                            tool.slug
                        ),
                        details: Value::Null,
                    });
                }
            };
            let history: Uuid = db::query_scalar(
                "insert into shared.submission_history (user_id, tool_slug, version, data, submitted_at)
                 values ($1, $2, $3, $4, $5) returning id",
            )
            .bind(target)
            .bind(&tool.slug)
            .bind(submitted.version)
            .bind(&submitted.submitted_data)
            .bind(submitted.submitted_at)
            .fetch_one(&mut *tx)
            .await?;
            let version: i32 = db::query_scalar(expand(
                "update {s}.submissions set status = 'draft', version = version + 1
                 where id = $1 returning version",
                Some(&tool.schema),
                None,
            ))
            .bind(submitted.id)
            .fetch_one(&mut *tx)
            .await?;
            db::query(
                "update shared.user_progress set status = 'in_progress', completed_at = null
                 where user_id = $1 and tool_slug = $2",
            )
            .bind(target)
            .bind(&tool.slug)
            .execute(&mut *tx)
            .await?;
            let posted = super::comments::insert(tx, &acting, tool, &comment).await?;
            let made = insert(tx, &acting, tool, "reopen", &reason).await?;
            audit::record(
                tx,
                &Change {
                    actor: acting.actor,
                    actor_role: &acting.actor_role,
                    action: Action::OverrideReopen,
                    subjects: vec![target],
                    organization: acting.organization,
                    tool: Some(&tool.slug),
                    reason: Some(&reason),
                    request_id: request.id(),
                    before: Some(json!({
                        "status": submitted.status,
                        "progress": Status::Completed,
                        "version": submitted.version,
                    })),
                    after: Some(json!({
                        "status": "draft",
                        "version": version,
                        "override_id": made.id,
                        "history_id": history,
                        "comment_id": posted.id,
                    })),
                },
            )
            .await?;
            Ok::<_, ApiError>(json!({
                "override": made,
                "comment": posted,
                "history_id": history,
                "submission": { "status": "draft", "version": version },
                "status": Status::InProgress,
            }))
        })
        .await?;
    request.log().outcome("tool_reopened");
    Ok(response::json(StatusCode::CREATED, &answer))
}

/// The tool a path's `{slug}` names (the route's second parameter).
pub(crate) fn tool(ctx: &Context, request: &Request<'_>) -> Result<&'static Tool, ApiError> {
    let tool = ctx
        .registry
        .tool(request.param(1))
        .ok_or(ApiError::NotFound("tool_not_found"))?;
    request.log().tool(tool.slug.as_str());
    Ok(tool)
}

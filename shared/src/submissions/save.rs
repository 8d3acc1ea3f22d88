//! Saving a draft or submitting a tool.
//!
//! A save is one transaction of four round trips: BEGIN; lock the caller's
//! progress row for the tool (and claim the Idempotency-Key); one statement that
//! writes the submission, its outputs, the progress and the unlocks; COMMIT.
//!
//! Once a submission exists, a save must say which version it overwrites
//! (`If-Match`): two tabs editing one tool would otherwise each overwrite the
//! other's draft unseen. The write statement checks it, on the row it locks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::outputs::{extract_outputs, missing_keys};
use super::request::{Budget, Idempotency, IfMatch, SaveRequest, SubmissionStatus};
use super::sql::{self, SaveBinds};
use super::{ProgressState, Submission, read};
use crate::access::Reading;
use crate::dependencies;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::progress::Status;
use crate::registry::{Forms, Registry, Tool};

/// One save: who saves which tool, with what, on which conditions.
pub struct Save<'a> {
    pub tool: &'a Tool,
    pub user: Uuid,
    pub request: SaveRequest,
    pub if_match: Option<IfMatch>,
    pub idempotency: Option<Idempotency>,
    pub budget: Budget,
}

/// What a save did; stored under its Idempotency-Key so a retry replays it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaveOutcome {
    pub submission: Submission,
    pub progress: ProgressState,
    /// Slugs of the tools this save unlocked.
    pub unlocked: Vec<String>,
    /// Whether this save made the submission (a first save); `None` in an
    /// answer stored before saves said so, where a first save was version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Saved {
    pub outcome: SaveOutcome,
    /// The submission's outputs, by field id (none for a draft).
    pub outputs: Map<String, Value>,
    /// True when this answers a retry with the first response.
    pub replayed: bool,
}

impl Saved {
    pub fn created(&self) -> bool {
        self.outcome
            .created
            .unwrap_or(self.outcome.submission.version == 1)
    }
}

/// The caller's progress row for the tool, locked; whether the save's budget
/// paid for it (and the tokens it held), and whether it claimed its
/// Idempotency-Key.
#[derive(sqlx::FromRow)]
struct Locked {
    organization_id: Option<Uuid>,
    status: Status,
    claimed: bool,
    allowed: bool,
    tokens: f64,
}

/// Saves the user's draft or submission of the tool.
pub async fn save(
    pool: &db::Pool,
    registry: &Registry,
    save: &Save<'_>,
) -> Result<Saved, ApiError> {
    let Save { tool, user, .. } = *save;
    let request = &save.request;
    let data = Value::Object(request.data.clone());
    let outputs = match request.status {
        SubmissionStatus::Submitted => {
            require_every_output(tool, &request.data)?;
            require_shapes(tool, &data)?;
            extract_outputs(tool, &data)
        }
        SubmissionStatus::Draft => Map::new(),
    };

    pool.transaction(async |tx| {
        let locked = lock(tx, registry, save).await?;
        if !locked.allowed {
            return Err(ApiError::TooManyRequests {
                retry_after: save.budget.wait_seconds(locked.tokens),
            });
        }
        if let Some(idempotency) = &save.idempotency
            && !locked.claimed
        {
            return replay(tx, save, idempotency).await;
        }
        if locked.status == Status::Locked {
            open_if_ready(tx, registry, tool, user).await?;
        }
        let mut binds = SaveBinds::new(
            registry,
            tool,
            user,
            locked.organization_id,
            &data,
            request,
            &outputs,
        );
        binds.if_match = save.if_match;
        binds.idempotency_key = save.idempotency.as_ref().map(|i| i.key.as_str());
        let outcome: Option<Value> = db::query_scalar_with(
            sql::save_submission(registry, tool),
            sql::arguments(binds.params())?,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(outcome) = outcome else {
            // Refused by If-Match, or for the want of one: the submission
            // exists. Still under the lock, so `current` is what was refused.
            let current = read::read(&mut *tx, tool, Reading::own(user))
                .await?
                .version;
            return Err(match save.if_match {
                None => ApiError::PreconditionRequired { current },
                Some(if_match) => ApiError::PreconditionFailed {
                    expected: if_match.etag(),
                    current,
                },
            });
        };
        let outcome = serde_json::from_value(outcome)
            .map_err(|e| ApiError::Internal(format!("reading a save outcome: {e}")))?;
        Ok(Saved {
            outcome,
            outputs: outputs.clone(),
            replayed: false,
        })
    })
    .await
}

/// A submit fills every key the tool's outputs are read from.
fn require_every_output(tool: &Tool, data: &Map<String, Value>) -> Result<(), ApiError> {
    let missing = missing_keys(tool, data);
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::Unprocessable {
        code: "missing_fields",
        message: format!(
            "a submit needs every required field; missing: {}",
            missing.join(", ")
        ),
        details: json!({ "missing": missing }),
    })
}

/// A submit's outputs have the shapes the tool's form declares
/// (`config/tool-forms.json`), so that what later tools show is what the form
/// asked for. A tool without a form (a test's own registry) is not checked.
fn require_shapes(tool: &Tool, data: &Value) -> Result<(), ApiError> {
    let Some(form) = Forms::embedded().tool(&tool.slug) else {
        return Ok(());
    };
    let invalid = form.misshapen(data);
    if invalid.is_empty() {
        return Ok(());
    }
    Err(ApiError::Unprocessable {
        code: "invalid_shape",
        message: format!(
            "a submit's values must have their fields' shapes: {}",
            invalid
                .iter()
                .map(|(key, expected)| format!("`{key}` must be {expected}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        details: json!({
            "invalid": invalid
                .iter()
                .map(|(key, expected)| json!({ "key": key, "expected": expected }))
                .collect::<Vec<_>>()
        }),
    })
}

/// Locks the user (serializing all of one user's saves, so that each save's
/// write sees every earlier save's outputs when it decides what to unlock) and
/// their progress row for the tool, and claims the Idempotency-Key. A tool
/// added to the registry after the user was synced has no progress row until
/// the scheduled recompute; the save creates it on the spot.
async fn lock(
    tx: &mut PgConnection,
    registry: &Registry,
    save: &Save<'_>,
) -> Result<Locked, ApiError> {
    if let Some(locked) = lock_progress(tx, save).await? {
        return Ok(locked);
    }
    create_missing_progress_row(tx, registry, save.tool, save.user).await?;
    lock_progress(tx, save)
        .await?
        .ok_or(ApiError::InvalidToken("the token's user no longer exists"))
}

/// `None`, and no claim, when the user or their progress row does not exist.
async fn lock_progress(tx: &mut PgConnection, save: &Save<'_>) -> Result<Option<Locked>, ApiError> {
    let params = sql::lock_params(save.user, save.tool, save.idempotency.as_ref(), save.budget);
    Ok(
        db::query_as_with::<Locked>(sql::LOCK_PROGRESS_SQL, sql::arguments(params)?)
            .fetch_optional(&mut *tx)
            .await?,
    )
}

async fn create_missing_progress_row(
    tx: &mut PgConnection,
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
) -> Result<(), ApiError> {
    let resolution = dependencies::resolve(&mut *tx, registry, tool, Reading::own(user)).await?;
    let status = if resolution.missing_required.is_empty() {
        Status::Unlocked
    } else {
        Status::Locked
    };
    // Only for an open account, held until the commit: an erasure waits.
    db::query(
        "with caller as (select id from shared.callers where id = $1 for key share)
         insert into shared.user_progress (user_id, tool_slug, status, unlocked_at)
         select caller.id, $2, $3, case when $3 = 'unlocked' then current_timestamp end
         from caller
         on conflict (user_id, tool_slug) do nothing",
    )
    .bind(user)
    .bind(&tool.slug)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A locked tool is saved only once everything it needs is there (an unlock
/// the recompute has not made yet): it is opened now rather than refused.
async fn open_if_ready(
    tx: &mut PgConnection,
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
) -> Result<(), ApiError> {
    let resolution = dependencies::resolve(&mut *tx, registry, tool, Reading::own(user)).await?;
    if !resolution.missing_required.is_empty() {
        return Err(ApiError::Conflict {
            code: "tool_locked",
            message: format!(
                "`{}` is locked until its required fields are available",
                tool.slug
            ),
            details: json!({ "missing": resolution.missing_required }),
        });
    }
    db::query(
        "update shared.user_progress set status = 'unlocked', unlocked_at = current_timestamp
         where user_id = $1 and tool_slug = $2 and status = 'locked'",
    )
    .bind(user)
    .bind(&tool.slug)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The first answer to this Idempotency-Key. The stored answer holds no data:
/// the retry carries the same body (its fingerprint says so), and a draft's
/// last submitted data is the submission row's, unless a submit has replaced
/// it since, when the first answer cannot be given again.
async fn replay(
    tx: &mut PgConnection,
    save: &Save<'_>,
    idempotency: &Idempotency,
) -> Result<Saved, ApiError> {
    let (fingerprint, response): (Vec<u8>, Option<Value>) =
        db::query_as("select request_sha256, response from shared.idempotency_keys where user_id = $1 and key = $2")
            .bind(save.user)
            .bind(&idempotency.key)
            .fetch_one(&mut *tx)
            .await?;
    if fingerprint != idempotency.fingerprint {
        // A conflict with what the key already stands for, not a fault in this
        // request's content: 409.
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used with a different request".into(),
            details: Value::Null,
        });
    }
    // A key is claimed and its response stored in one transaction, after the
    // user's row is locked: a retry sent while the first request runs waits
    // for it, so it never sees a key without a response.
    let response = response.ok_or_else(|| {
        ApiError::Internal("an idempotency key was committed without its response".into())
    })?;
    let mut outcome: SaveOutcome = serde_json::from_value(response)
        .map_err(|e| ApiError::Internal(format!("reading a stored outcome: {e}")))?;
    let data = Value::Object(save.request.data.clone());
    let submission = &mut outcome.submission;
    submission.submitted_data = match submission.status {
        SubmissionStatus::Submitted => Some(data.clone()),
        SubmissionStatus::Draft => {
            let (submitted_data, submitted_at): (Option<Value>, Option<DateTime<Utc>>) =
                db::query_as(sql::submitted_data(save.tool))
                    .bind(save.user)
                    .fetch_one(&mut *tx)
                    .await?;
            if submitted_at != submission.submitted_at {
                return Err(ApiError::Conflict {
                    code: "idempotency_key_superseded",
                    message: "this request was saved, and the tool has been submitted since; read it again".into(),
                    details: json!({ "version": submission.version }),
                });
            }
            submitted_data
        }
    };
    submission.data = data;
    let outputs = match submission.status {
        SubmissionStatus::Submitted => extract_outputs(save.tool, &submission.data),
        SubmissionStatus::Draft => Map::new(),
    };
    Ok(Saved {
        outcome,
        outputs,
        replayed: true,
    })
}

//! Saving and submitting a tool, and reading a submission back.
//!
//! A save is one transaction of four round trips: BEGIN; lock the caller's
//! progress row for the tool (and claim the Idempotency-Key); one statement that
//! writes the submission, its outputs, the progress and the unlocks; COMMIT.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::db;
use crate::dependencies;
use crate::error::ApiError;
use crate::progress::Status;
use crate::registry::{Registry, Tool};
use crate::tool_sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Draft,
    Submit,
}

impl SaveKind {
    fn as_str(self) -> &'static str {
        match self {
            SaveKind::Draft => "draft",
            SaveKind::Submit => "submitted",
        }
    }
}

/// The body of `PUT /tools/{slug}/submission`, checked.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    pub data: Map<String, Value>,
    pub kind: SaveKind,
}

impl SaveRequest {
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let Value::Object(mut body) = body else {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the body must be an object with `data` and `status`",
            ));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "data" | "status"))
        {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("unknown field `{unknown}`; expected `data` and `status`"),
            ));
        }
        let data = match body.remove("data") {
            Some(Value::Object(data)) => data,
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_data",
                    "`data` must be a JSON object",
                ));
            }
            None => {
                return Err(ApiError::unprocessable(
                    "invalid_data",
                    "`data` is required",
                ));
            }
        };
        let kind = match body.remove("status") {
            Some(Value::String(s)) if s == "draft" => SaveKind::Draft,
            Some(Value::String(s)) if s == "submitted" => SaveKind::Submit,
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_status",
                    "`status` must be \"draft\" or \"submitted\"",
                ));
            }
        };
        Ok(Self { data, kind })
    }
}

/// `If-Match`: a version, or `*` for "any existing submission".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Version(i32),
}

impl IfMatch {
    /// Accepts `"3"`, `3` and `*` (openapi.yaml's pattern): a version is 1 to 9
    /// digits without a leading zero. A weak tag (`W/"3"`) never matches:
    /// If-Match compares strongly (RFC 9110).
    pub fn parse(header: &str) -> Result<Self, ApiError> {
        let value = header.trim_matches([' ', '\t']);
        if value == "*" {
            return Ok(Self::Any);
        }
        if value.starts_with("W/") {
            return Err(ApiError::BadRequest(
                "If-Match needs a strong ETag such as \"3\"".into(),
            ));
        }
        let digits = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let well_formed = (1..=9).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit());
        well_formed
            .then(|| digits.parse().ok())
            .flatten()
            .map(Self::Version)
            .ok_or_else(|| ApiError::BadRequest("If-Match must be an ETag such as \"3\"".into()))
    }

    fn etag(self) -> String {
        match self {
            IfMatch::Any => "*".to_owned(),
            IfMatch::Version(v) => format!("\"{v}\""),
        }
    }

    fn bind(self) -> i32 {
        match self {
            IfMatch::Any => 0,
            IfMatch::Version(v) => v,
        }
    }
}

/// A validated Idempotency-Key and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    fingerprint: Vec<u8>,
}

impl Idempotency {
    pub fn new(key: &str, tool: &Tool, body: &Value) -> Result<Self, ApiError> {
        // No comma: API Gateway joins a repeated header's values with commas.
        let valid = !key.is_empty()
            && key.len() <= 255
            && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !valid {
            return Err(ApiError::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters other than a comma"
                    .into(),
            ));
        }
        // serde_json's maps are sorted, so equal bodies serialize equally.
        let mut hash = Sha256::new();
        hash.update(tool.slug.as_bytes());
        hash.update(b"\n");
        hash.update(body.to_string().as_bytes());
        Ok(Self {
            key: key.to_owned(),
            fingerprint: hash.finalize().to_vec(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub id: Uuid,
    pub status: String,
    pub version: i32,
    pub data: Value,
    pub submitted_data: Option<Value>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgressState {
    pub status: Status,
    pub percentage: i32,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option::serialize")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// What a save did; stored under its Idempotency-Key so a retry replays it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaveOutcome {
    pub submission: Submission,
    pub progress: ProgressState,
    /// Slugs of the tools this save unlocked.
    pub unlocked: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Saved {
    pub outcome: SaveOutcome,
    /// True when this answers a retry with the first response.
    pub replayed: bool,
}

impl Saved {
    pub fn created(&self) -> bool {
        self.outcome.submission.version == 1
    }
}

/// A value counts as filled unless it is null, blank text, or an empty list or object.
pub fn is_filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The tool's outputs read from `data`, keyed by field ID.
pub fn extract_outputs(tool: &Tool, data: &Value) -> Map<String, Value> {
    tool.outputs
        .iter()
        .filter_map(|o| {
            let value = data.get(&o.key);
            is_filled(value).then(|| (o.field.clone(), value.cloned().unwrap_or_default()))
        })
        .collect()
}

/// The data keys a submit must fill: the keys its outputs are read from.
fn missing_keys<'a>(tool: &'a Tool, data: &Map<String, Value>) -> Vec<&'a str> {
    tool.outputs
        .iter()
        .map(|o| o.key.as_str())
        .filter(|key| !is_filled(data.get(*key)))
        .collect()
}

fn percentage(tool: &Tool, data: &Map<String, Value>) -> i32 {
    let required = tool.outputs.len();
    if required == 0 {
        return 0;
    }
    let filled = required - missing_keys(tool, data).len();
    (filled * 100 / required) as i32
}

#[derive(sqlx::FromRow)]
struct Locked {
    organization_id: Option<Uuid>,
    status: String,
    claimed: bool,
}

/// Saves `user`'s draft or submission of `tool`.
pub async fn save(
    pool: &db::Pool,
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
    request: &SaveRequest,
    if_match: Option<IfMatch>,
    idempotency: Option<&Idempotency>,
) -> Result<Saved, ApiError> {
    if request.kind == SaveKind::Submit {
        let missing = missing_keys(tool, &request.data);
        if !missing.is_empty() {
            return Err(ApiError::Unprocessable {
                code: "missing_fields",
                message: format!(
                    "a submit needs every required field; missing: {}",
                    missing.join(", ")
                ),
                details: json!({ "missing": missing }),
            });
        }
    }
    let data = Value::Object(request.data.clone());
    let outputs = if request.kind == SaveKind::Submit {
        extract_outputs(tool, &data)
    } else {
        Map::new()
    };

    pool.transaction(async |tx| {
        let locked = match lock_progress(tx, tool, user, idempotency).await? {
            Some(locked) => locked,
            None => {
                create_missing_progress_row(tx, registry, tool, user).await?;
                lock_progress(tx, tool, user, idempotency)
                    .await?
                    .ok_or(ApiError::Unauthorized("the token's user no longer exists"))?
            }
        };
        if let Some(idempotency) = idempotency
            && !locked.claimed
        {
            return replay(tx, user, idempotency).await;
        }
        if locked.status == "locked" {
            let resolution = dependencies::resolve(&mut *tx, registry, tool, user, user).await?;
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
            // Everything it needs is there (an unlock the recompute has not made
            // yet): open it now rather than refuse.
            db::query(
                "update shared.user_progress set status = 'unlocked', unlocked_at = current_timestamp
                 where user_id = $1 and tool_slug = $2 and status = 'locked'",
            )
            .bind(user)
            .bind(&tool.slug)
            .execute(&mut *tx)
            .await?;
        }

        let (fields, values): (Vec<String>, Vec<Value>) = outputs.into_iter().unzip();
        let mut requirement_tools = Vec::new();
        let mut requirement_fields = Vec::new();
        for dependent in registry.dependents(tool) {
            for dep in dependent.required_dependencies() {
                requirement_tools.push(dependent.slug.as_str());
                requirement_fields.push(dep.field.as_str());
            }
        }
        let outcome: Option<Value> = db::query_scalar(tool_sql::save_submission(registry, tool))
            .bind(user)
            .bind(locked.organization_id)
            .bind(&data)
            .bind(request.kind.as_str())
            .bind(&fields)
            .bind(&values)
            .bind(percentage(tool, &request.data))
            .bind(if_match.map(IfMatch::bind))
            .bind(idempotency.map(|i| i.key.as_str()))
            .bind(&tool.slug)
            .bind(&requirement_tools)
            .bind(&requirement_fields)
            .bind(&requirement_fields)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(outcome) = outcome else {
            let current = current_version(tx, tool, user).await?;
            return Err(ApiError::PreconditionFailed {
                expected: if_match.map_or_else(String::new, IfMatch::etag),
                current,
            });
        };
        let outcome: SaveOutcome = serde_json::from_value(outcome)
            .map_err(|e| ApiError::Internal(format!("reading a save outcome: {e}")))?;
        Ok(Saved {
            outcome,
            replayed: false,
        })
    })
    .await
}

/// The first statement of a save: see `lock_progress`. Binds: $1 user, $2
/// tool slug, $3 Idempotency-Key, $4 request fingerprint.
pub const LOCK_PROGRESS_SQL: &str = r"with claim as (
            insert into shared.idempotency_keys as k (user_id, key, request_sha256)
            select $1, $3, $4
            where $3::text is not null
              and exists (select 1 from shared.user_progress where user_id = $1 and tool_slug = $2)
            on conflict (user_id, key) do update
                set request_sha256 = excluded.request_sha256, response = null, created_at = current_timestamp
                where k.created_at < current_timestamp - interval '24 hours'
            returning 1
        ), actor as (
            -- The user first, then the progress row: every save takes its locks
            -- in this order, so a submit that unlocks (and so updates) another
            -- tool's row cannot deadlock with a save of that tool.
            select u.id, u.organization_id from shared.users u
            where u.id = $1
            for no key update
        )
        select a.organization_id, p.status::text as status, exists (select 1 from claim) as claimed
        from actor a
        join shared.user_progress p on p.user_id = a.id and p.tool_slug = $2
        for update of p";

/// Locks the user (serializing all of one user's saves, so that each save's
/// write sees every earlier save's outputs when it decides what to unlock) and
/// their progress row for the tool, and claims the Idempotency-Key. `None`, and
/// no claim, when the user or their progress row does not exist.
async fn lock_progress(
    tx: &mut PgConnection,
    tool: &Tool,
    user: Uuid,
    idempotency: Option<&Idempotency>,
) -> Result<Option<Locked>, ApiError> {
    Ok(db::query_as::<Locked>(LOCK_PROGRESS_SQL)
        .bind(user)
        .bind(&tool.slug)
        .bind(idempotency.map(|i| i.key.as_str()))
        .bind(idempotency.map(|i| i.fingerprint.as_slice()))
        .fetch_optional(&mut *tx)
        .await?)
}

/// A tool added to the registry after the user was synced has no progress row
/// until the scheduled recompute; a save creates it on the spot.
async fn create_missing_progress_row(
    tx: &mut PgConnection,
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
) -> Result<(), ApiError> {
    let resolution = dependencies::resolve(&mut *tx, registry, tool, user, user).await?;
    let status = if resolution.missing_required.is_empty() {
        "unlocked"
    } else {
        "locked"
    };
    db::query(
        "insert into shared.user_progress (user_id, tool_slug, status, unlocked_at)
         values ($1, $2, $3, case when $3 = 'unlocked' then current_timestamp end)
         on conflict (user_id, tool_slug) do nothing",
    )
    .bind(user)
    .bind(&tool.slug)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn replay(
    tx: &mut PgConnection,
    user: Uuid,
    idempotency: &Idempotency,
) -> Result<Saved, ApiError> {
    let (fingerprint, response): (Vec<u8>, Option<Value>) =
        db::query_as("select request_sha256, response from shared.idempotency_keys where user_id = $1 and key = $2")
            .bind(user)
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
    let outcome = serde_json::from_value(response)
        .map_err(|e| ApiError::Internal(format!("reading a stored outcome: {e}")))?;
    Ok(Saved {
        outcome,
        replayed: true,
    })
}

async fn current_version(
    tx: &mut PgConnection,
    tool: &Tool,
    user: Uuid,
) -> Result<Option<i32>, ApiError> {
    Ok(read(&mut *tx, tool, user, user).await?.version)
}

#[derive(Debug, sqlx::FromRow)]
struct SubmissionRow {
    actor_exists: bool,
    target_id: Option<Uuid>,
    id: Option<Uuid>,
    status: Option<String>,
    version: Option<i32>,
    data: Option<Value>,
    submitted_data: Option<Value>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
    progress_status: Option<String>,
    progress_percentage: Option<i32>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

/// A user's submission of a tool as the caller may see it.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionView {
    pub tool: String,
    pub user_id: Uuid,
    pub submission: Option<Submission>,
    pub progress: ProgressState,
}

async fn read(
    db: impl PgExecutor<'_>,
    tool: &Tool,
    caller: Uuid,
    target: Uuid,
) -> Result<SubmissionRow, ApiError> {
    Ok(
        db::query_as::<SubmissionRow>(tool_sql::get_submission(tool))
            .bind(caller)
            .bind(target)
            .bind(&tool.slug)
            .fetch_one(db)
            .await?,
    )
}

pub async fn get(
    db: impl PgExecutor<'_>,
    tool: &Tool,
    caller: Uuid,
    target: Uuid,
) -> Result<SubmissionView, ApiError> {
    let row = read(db, tool, caller, target).await?;
    if !row.actor_exists {
        return Err(ApiError::Unauthorized("the token's user no longer exists"));
    }
    let Some(user_id) = row.target_id else {
        return Err(ApiError::NotFound("user_not_found"));
    };
    let submission = match (row.id, row.status, row.version, row.data) {
        (Some(id), Some(status), Some(version), Some(data)) => Some(Submission {
            id,
            status,
            version,
            data,
            submitted_data: row.submitted_data,
            created_at: row.created_at,
            updated_at: row.updated_at,
            submitted_at: row.submitted_at,
        }),
        _ => None,
    };
    let default = Status::initial(tool);
    Ok(SubmissionView {
        tool: tool.slug.clone(),
        user_id,
        submission,
        progress: ProgressState {
            status: row
                .progress_status
                .as_deref()
                .and_then(Status::parse)
                .unwrap_or(default),
            percentage: row.progress_percentage.unwrap_or(0),
            started_at: row.started_at,
            completed_at: row.completed_at,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_do_not_count_as_filled() {
        for empty in [
            None,
            Some(json!(null)),
            Some(json!("")),
            Some(json!("  ")),
            Some(json!([])),
            Some(json!({})),
        ] {
            assert!(!is_filled(empty.as_ref()), "{empty:?}");
        }
        for filled in [
            json!("x"),
            json!(0),
            json!(false),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(is_filled(Some(&filled)), "{filled}");
        }
    }

    #[test]
    fn outputs_are_read_from_their_data_keys() {
        let registry = Registry::embedded();
        let know = registry.tool("know-thyself").unwrap();
        let data =
            json!({"dream": "A bakery", "strengths": {"craft": 5}, "values": [], "extra": 1});
        let outputs = extract_outputs(know, &data);
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs["identity.personal_dream"], json!("A bakery"));
        assert_eq!(outputs["identity.strengths.matrix"], json!({"craft": 5}));
        let Value::Object(data) = data else {
            unreachable!()
        };
        assert_eq!(missing_keys(know, &data), ["values"]);
        assert_eq!(percentage(know, &data), 66);
    }

    #[test]
    fn the_save_body_is_checked() {
        let ok = SaveRequest::from_json(json!({"data": {"a": 1}, "status": "draft"})).unwrap();
        assert_eq!(ok.kind, SaveKind::Draft);
        for (body, code) in [
            (json!([]), "invalid_body"),
            (json!({"data": [], "status": "draft"}), "invalid_data"),
            (json!({"data": "x", "status": "draft"}), "invalid_data"),
            (json!({"status": "draft"}), "invalid_data"),
            (json!({"data": {}, "status": "done"}), "invalid_status"),
            (json!({"data": {}}), "invalid_status"),
            (
                json!({"data": {}, "status": "draft", "user_id": "x"}),
                "invalid_body",
            ),
        ] {
            let err = SaveRequest::from_json(body.clone()).unwrap_err();
            assert_eq!((err.status().as_u16(), err.code()), (422, code), "{body}");
        }
    }

    #[test]
    fn if_match_accepts_etags_and_star() {
        assert_eq!(IfMatch::parse("\"3\"").unwrap(), IfMatch::Version(3));
        assert!(IfMatch::parse("W/\"3\"").is_err());
        assert_eq!(IfMatch::parse("*").unwrap(), IfMatch::Any);
        for bad in ["", "\"x\"", "0", "-1", "99999999999"] {
            assert!(IfMatch::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Reading a submission back, as the caller may see it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::request::SubmissionStatus;
use super::{ProgressState, Submission, sql};
use crate::access::Reading;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::progress::Status;
use crate::registry::Tool;

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SubmissionRow {
    actor_exists: bool,
    target_id: Option<Uuid>,
    id: Option<Uuid>,
    status: Option<SubmissionStatus>,
    pub version: Option<i32>,
    data: Option<Value>,
    submitted_data: Option<Value>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
    progress_status: Option<Status>,
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

pub(super) async fn read(
    db: impl PgExecutor<'_>,
    tool: &Tool,
    reading: Reading<'_>,
) -> Result<SubmissionRow, ApiError> {
    Ok(db::query_as::<SubmissionRow>(sql::get_submission(tool))
        .bind(reading.caller)
        .bind(reading.target)
        .bind(&tool.slug)
        .bind(reading.request_id)
        .fetch_one(db)
        .await?)
}

pub async fn get(
    db: impl PgExecutor<'_>,
    tool: &Tool,
    reading: Reading<'_>,
) -> Result<SubmissionView, ApiError> {
    let row = read(db, tool, reading).await?;
    if !row.actor_exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
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
            status: row.progress_status.unwrap_or(default),
            percentage: row.progress_percentage.unwrap_or(0),
            started_at: row.started_at,
            completed_at: row.completed_at,
        },
    })
}

//! What a tool needs from earlier tools, for one user, in one round trip however
//! many tool schemas the fields come from ([`sql`]).

pub mod handler;
pub mod sql;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::access::Reading;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::progress::Status;
use crate::registry::{Registry, Tool};

#[derive(Debug, Clone, Serialize)]
pub struct DependencyValue {
    pub field_id: String,
    pub required: bool,
    pub source_tool: String,
    pub available: bool,
    /// Null also when the caller may not read the work that stored it (a
    /// guru, for what was saved before the user joined their organization).
    pub value: Option<Value>,
    /// When the value was last written (the source tool's last submit).
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resolution {
    pub tool: String,
    pub user_id: Uuid,
    pub status: Status,
    pub unlocked: bool,
    pub dependencies: Vec<DependencyValue>,
    pub missing_required: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    actor_exists: bool,
    target_id: Option<Uuid>,
    status: Option<Status>,
    field_ids: Vec<String>,
    /// Null where the caller may not read the work that stored the field.
    field_values: Vec<Option<Value>>,
    updated_ats: Vec<Option<DateTime<Utc>>>,
}

pub async fn resolve(
    db: impl PgExecutor<'_>,
    registry: &Registry,
    tool: &Tool,
    reading: Reading<'_>,
) -> Result<Resolution, ApiError> {
    let fields: Vec<&str> = tool.dependencies.iter().map(|d| d.field.as_str()).collect();
    let row: Row = db::query_as(sql::resolve(registry, tool))
        .bind(reading.caller)
        .bind(reading.target)
        .bind(&tool.slug)
        .bind(&fields)
        .bind(reading.request_id)
        .fetch_one(db)
        .await?;
    if !row.actor_exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    let Some(user_id) = row.target_id else {
        return Err(ApiError::NotFound("user_not_found"));
    };
    let dependencies: Vec<DependencyValue> = tool
        .dependencies
        .iter()
        .map(|dep| {
            let found = row.field_ids.iter().position(|f| f == &dep.field);
            DependencyValue {
                field_id: dep.field.clone(),
                required: dep.required,
                source_tool: dep.source.clone(),
                available: found.is_some(),
                value: found.and_then(|i| row.field_values[i].clone()),
                updated_at: found.and_then(|i| row.updated_ats[i]),
            }
        })
        .collect();
    let missing_required = dependencies
        .iter()
        .filter(|d| d.required && !d.available)
        .map(|d| d.field_id.clone())
        .collect();
    let default = Status::initial(tool);
    let status = row.status.unwrap_or(default);
    Ok(Resolution {
        tool: tool.slug.clone(),
        user_id,
        status,
        unlocked: status != Status::Locked,
        dependencies,
        missing_required,
    })
}

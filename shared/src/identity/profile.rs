//! `GET /me`: who the caller is, for the frontend to choose its views.

use http::StatusCode;
use serde::Serialize;
use uuid::Uuid;

use super::users::display_name;
use crate::access::Caller;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub organization: Option<Organization>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    full_name: String,
    email: String,
    role: String,
    organization_id: Option<Uuid>,
    organization_slug: Option<String>,
    organization_name: Option<String>,
}

/// The caller's own row and organization. Binds: $1 caller.
const ME_SQL: &str = "select u.id, u.full_name::text, u.email::text, u.role::text,
        o.id as organization_id, o.slug::text as organization_slug, o.name::text as organization_name
     from shared.callers u
     left join shared.organizations o on o.id = u.organization_id
     where u.id = $1";

pub async fn me(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let row: Option<Row> = ctx
        .read(async |conn| {
            Ok(db::query_as(ME_SQL)
                .bind(caller.id())
                .fetch_optional(conn)
                .await?)
        })
        .await?;
    let row = row.ok_or(ApiError::InvalidToken("the token's user no longer exists"))?;
    let organization = match (
        row.organization_id,
        row.organization_slug,
        row.organization_name,
    ) {
        (Some(id), Some(slug), Some(name)) => Some(Organization {
            id,
            slug,
            name: display_name(&name),
        }),
        _ => None,
    };
    Ok(response::json(
        StatusCode::OK,
        &Me {
            id: row.id,
            name: display_name(&row.full_name),
            email: row.email,
            role: row.role,
            organization,
        },
    ))
}

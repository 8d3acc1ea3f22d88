//! `GET /progress` and `GET /users/{user_id}/progress`.

use http::StatusCode;

use crate::access::Caller;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

/// The caller's own progress.
pub async fn own(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    answer(ctx, caller, caller.id()).await
}

/// Another user's progress, for an admin or their guru.
pub async fn of_user(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let target = request.uuid_param(0, "user_id")?;
    answer(ctx, caller, target).await
}

async fn answer(ctx: &Context, caller: Caller, target: uuid::Uuid) -> Result<Response, ApiError> {
    let progress = ctx
        .read(async |conn| super::for_user(conn, ctx.registry, caller.id(), target).await)
        .await?;
    Ok(response::json_text(StatusCode::OK, progress.to_json()))
}

//! `GET /progress` and `GET /users/{user_id}/progress`.

use http::StatusCode;

use crate::access::{Caller, Reading};
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

/// The caller's own progress.
pub async fn own(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    answer(ctx, request.reading(caller, caller.id())).await
}

/// Another user's progress, for an admin or their guru.
pub async fn of_user(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let target = request.uuid_param(0, "user_id")?;
    answer(ctx, request.reading(caller, target)).await
}

async fn answer(ctx: &Context, reading: Reading<'_>) -> Result<Response, ApiError> {
    let progress = ctx
        .read(async |conn| super::for_user(conn, ctx.registry, reading).await)
        .await?;
    Ok(response::json_text(StatusCode::OK, progress.to_json()))
}

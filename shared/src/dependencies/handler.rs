//! `GET /tools/{slug}/dependencies`.

use http::StatusCode;

use crate::access::Caller;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

pub async fn get(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let target = request.target_user(caller)?;
    let tool = ctx.tool(request)?;
    let resolution = ctx
        .read(async |conn| {
            super::resolve(conn, ctx.registry, tool, request.reading(caller, target)).await
        })
        .await?;
    Ok(response::json(StatusCode::OK, &resolution))
}

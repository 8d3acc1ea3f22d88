//! `GET` and `PUT /tools/{slug}/submission`.

use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::request::stored_json_bytes;
use super::{Budget, Idempotency, IfMatch, Save, SaveRequest, SubmissionStatus};
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
    let view = ctx
        .read(async |conn| super::read::get(conn, tool, request.reading(caller, target)).await)
        .await?;
    let etag = view.submission.as_ref().map(|s| s.version);
    // A client polling with the ETag it holds gets a 304 while the submission
    // is the same version (RFC 9110, 13.1.2: weak comparison). The progress in
    // the answer changes only with a save of the submission.
    if let (Some(version), Some(held)) = (etag, request.strict_header("if-none-match")?)
        && if_none_match_holds(held, version)
    {
        return Ok(response::with_etag(
            response::empty(StatusCode::NOT_MODIFIED),
            etag,
        ));
    }
    Ok(response::with_etag(
        response::json(StatusCode::OK, &view),
        etag,
    ))
}

/// Whether `If-None-Match` names the current version (or is `*`).
fn if_none_match_holds(header: &str, version: i32) -> bool {
    let current = format!("\"{version}\"");
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

pub async fn put(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = ctx.tool(request)?;
    let body = request.json_body()?;
    let if_match = IfMatch::from_headers(
        request.strict_header("if-match")?,
        request.strict_header("if-none-match")?,
    )?;
    // Fingerprint the body before it moves into the request (no copy).
    let idempotency = request
        .strict_header("idempotency-key")?
        .map(|key| Idempotency::new(key, tool, &body))
        .transpose()?;
    let settings = &ctx.settings;
    // What the data takes stored, which can be several times its text.
    let stored = body.get("data").map_or(0, stored_json_bytes);
    let save_request = SaveRequest::from_json(body)?;
    if stored > settings.max_body_bytes {
        return Err(ApiError::unprocessable(
            "invalid_data",
            format!(
                "`data` would take up to {stored} bytes stored, over the {} allowed \
                 (many small numbers or empty arrays and objects take more room stored than sent)",
                settings.max_body_bytes
            ),
        ));
    }
    let save = Save {
        tool,
        user: caller.id(),
        request: save_request,
        if_match,
        idempotency,
        budget: Budget::for_body(
            request.raw_body().len().max(stored),
            settings.save_burst,
            settings.save_refill_per_minute,
        ),
    };
    let saved = super::save(&ctx.pool, ctx.registry, &save).await?;
    request
        .log()
        .outcome(match (saved.replayed, save.request.status) {
            (true, _) => "replayed",
            (false, SubmissionStatus::Draft) => "draft_saved",
            (false, SubmissionStatus::Submitted) => "submitted",
        });
    let status = if saved.created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let outcome = &saved.outcome;
    let body = json!({
        "tool": tool.slug,
        "submission": outcome.submission,
        "outputs": saved.outputs,
        "progress": outcome.progress,
        "unlocked_tools": outcome.unlocked,
    });
    let mut answer = response::with_etag(
        response::json(status, &body),
        Some(outcome.submission.version),
    );
    if saved.replayed {
        answer
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(answer)
}

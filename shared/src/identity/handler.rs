//! `POST /webhooks/learnworlds`.

use http::StatusCode;

use super::learnworlds::LearnWorldsApi;
use super::tombstones::ErasureKeys;
use super::{signature, webhooks};
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

pub async fn webhook(
    ctx: &Context,
    learnworlds: &LearnWorldsApi,
    erasure: &ErasureKeys,
    request: &Request<'_>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    // The signature is checked on the raw bytes before anything is parsed.
    signature::verify_webhook(
        ctx.settings.webhook_secret.as_ref(),
        ctx.settings.webhook_signature_mode,
        request.header("learnworlds-webhook-signature"),
        request.raw_body(),
    )?;
    // Any Content-Type; tolerant of what sits in fields never read, strict
    // in those that are (webhooks.rs, "Tolerance").
    let body = request.delivery_body()?;
    webhooks::refuse_ambiguous(&body.value, &body.duplicate_keys)?;
    let receipt = webhooks::receive(
        &ctx.pool,
        ctx.registry,
        learnworlds,
        erasure,
        request.raw_body(),
        &body.value,
    )
    .await?;
    request.log().user_id(receipt.user_id);
    request.log().outcome(receipt.outcome);
    Ok(response::json(StatusCode::OK, &receipt))
}

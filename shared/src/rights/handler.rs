//! The data-rights routes: exports, erasure requests and tombstone lifts.

use http::StatusCode;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::export::{self, Exporter, Refused};
use super::requests;
use crate::access::Caller;
use crate::foundation::error::ApiError;
use crate::foundation::out::Limited;
use crate::http::stream::{self, Chunks, Streamed};
use crate::http::{Context, Request, Response, response};
use crate::identity::tombstones::ErasureKeys;

/// The largest export the API answers with: a Lambda answer holds at most
/// 6 MB, and a JSON body is escaped into it (each `"` becomes `\"`). A
/// larger record is exported by the operator with `fasttrack export`, which
/// streams it to a file.
pub const EXPORT_LIMIT_BYTES: usize = 2_500_000;

/// `GET /me/export`, `GET /users/{user_id}/export`.
pub async fn export(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Option<Uuid>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let target = target.unwrap_or(caller.id());
    let exporter = Exporter::Caller {
        id: caller.id(),
        request_id: request.id(),
    };
    let mut body = Limited::new(EXPORT_LIMIT_BYTES);
    let written = ctx
        .pool
        .one_statement(async |conn| {
            export::write(conn, ctx.registry, exporter, target, &mut body).await
        })
        .await?;
    match written {
        Ok(()) if body.is_over() => Err(ApiError::unprocessable(
            "export_too_large",
            format!(
                "this record is larger than the API answers ({EXPORT_LIMIT_BYTES} bytes): \
                 the operator exports it with `fasttrack export`"
            ),
        )),
        Ok(()) => {
            request.log().outcome("exported");
            let text = String::from_utf8(body.into_bytes())
                .map_err(|_| ApiError::Internal("the export is not UTF-8".into()))?;
            Ok(response::json_text(StatusCode::OK, text))
        }
        Err(refused) => Err(refusal(refused)),
    }
}

/// Why an export was refused, as the caller is told.
fn refusal(refused: Refused) -> ApiError {
    match refused {
        Refused::NoCaller => ApiError::InvalidToken("no open account for this token"),
        Refused::NotAllowed => {
            ApiError::Forbidden("only an admin may export another person's record")
        }
        Refused::NotFound => ApiError::NotFound("user_not_found"),
    }
}

/// `GET /downloads/me/export`, `GET /downloads/users/{user_id}/export`: the
/// record whatever its size, sent as its rows are read, through the downloads
/// function's URL (response streaming, [`stream::spawn`]): a refusal is
/// still a JSON error, since it comes before the first byte.
pub async fn export_streamed(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Option<Uuid>,
) -> Result<Streamed, ApiError> {
    request.allow_query(&[])?;
    let target = target.unwrap_or(caller.id());
    let (pool, registry) = (ctx.pool.clone(), ctx.registry);
    let (caller, request_id) = (caller.id(), request.id().to_owned());
    let body = stream::spawn(|mut chunks: Chunks| async move {
        let exporter = Exporter::Caller {
            id: caller,
            request_id: &request_id,
        };
        let written = pool
            .one_statement(async |conn| {
                export::write(conn, registry, exporter, target, &mut chunks).await
            })
            .await;
        let outcome = match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refused)) => Err(refusal(refused)),
            Err(error) => Err(error),
        };
        (chunks, outcome)
    })
    .await?;
    request.log().outcome("exported");
    let mut answer = http::Response::new(body);
    let headers = answer.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(disposition) = http::HeaderValue::from_str(&format!(
        "attachment; filename=\"fasttrack-export-{target}.json\""
    )) {
        headers.insert(http::header::CONTENT_DISPOSITION, disposition);
    }
    Ok(answer)
}

/// `POST /me/erasure`, `POST /users/{user_id}/erasure`: 202, the request.
pub async fn request_erasure(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Option<Uuid>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    // Naming a person (even oneself) is a staff act: it carries a reason.
    let body = optional_body(request)?;
    let reason = reason(body.as_ref(), target.is_some())?.unwrap_or("requested by the person");
    let target = target.unwrap_or(caller.id());
    let made = ctx
        .pool
        .transaction(async |tx| {
            requests::request(
                tx,
                caller.id(),
                target,
                reason,
                ctx.settings.erasure_cool_off,
                request.id(),
            )
            .await
        })
        .await?;
    request.log().outcome("erasure_requested");
    Ok(response::json(StatusCode::ACCEPTED, &made))
}

/// `DELETE /users/{user_id}/erasure`: the pending request, cancelled.
pub async fn cancel_erasure(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&["reason"])?;
    let reason = request.query("reason")?;
    if let Some(reason) = reason {
        check_reason(reason)?;
    }
    let cancelled = ctx
        .pool
        .transaction(async |tx| {
            requests::cancel(tx, caller.id(), target, reason, request.id()).await
        })
        .await?;
    request.log().outcome("erasure_cancelled");
    Ok(response::json(StatusCode::OK, &cancelled))
}

/// `POST /tombstones/lift`: `{"lms_user_id" | "email", "reason"}`.
pub async fn lift_tombstone(
    ctx: &Context,
    keys: &ErasureKeys,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json_body()?;
    let object = fields(&body, &["lms_user_id", "email", "reason"])?;
    let text = |name: &str| -> Result<Option<&str>, ApiError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            // Characters, as the users' VARCHAR(255) columns and openapi.yaml's
            // maxLength count them.
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
                Ok(Some(s))
            }
            Some(_) => Err(ApiError::unprocessable(
                "invalid_field",
                format!("`{name}` must be a non-blank string of at most 255 characters"),
            )),
        }
    };
    let (lms_user_id, email) = (text("lms_user_id")?, text("email")?);
    if lms_user_id.is_some() == email.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "give exactly one of `lms_user_id` and `email`",
        ));
    }
    let reason = reason(Some(&body), true)?.expect("required");
    let lifted = ctx
        .pool
        .transaction(async |tx| {
            requests::lift_tombstones(
                tx,
                caller.id(),
                lms_user_id.map(|id| keys.lms_hash(id)),
                email.map(|e| keys.email_hash(e)),
                reason,
                request.id(),
            )
            .await
        })
        .await?;
    request.log().outcome("tombstone_lifted");
    Ok(response::json(
        StatusCode::OK,
        &serde_json::json!({ "lifted": lifted }),
    ))
}

/// A body that may be absent (nothing, or `{}`), else a JSON object.
fn optional_body(request: &Request<'_>) -> Result<Option<Value>, ApiError> {
    if request.raw_body().is_empty() {
        return Ok(None);
    }
    let body = request.json_body()?;
    fields(&body, &["reason"])?;
    Ok(Some(body))
}

/// The body as an object with only `allowed` members.
fn fields<'v>(body: &'v Value, allowed: &[&str]) -> Result<&'v Map<String, Value>, ApiError> {
    let object = body
        .as_object()
        .ok_or_else(|| ApiError::unprocessable("invalid_body", "the body must be a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::unprocessable(
            "unknown_field",
            format!("unknown field `{unknown}`"),
        ));
    }
    Ok(object)
}

/// The body's `reason`: required of staff acting on someone else.
fn reason(body: Option<&Value>, required: bool) -> Result<Option<&str>, ApiError> {
    match body.and_then(|b| b.get("reason")) {
        None if required => Err(ApiError::unprocessable(
            "reason_required",
            "give a `reason` (1 to 1000 characters): it is kept in the audit log",
        )),
        None => Ok(None),
        Some(Value::String(reason)) => check_reason(reason).map(Some),
        Some(_) => Err(ApiError::unprocessable(
            "invalid_field",
            "`reason` must be a string",
        )),
    }
}

fn check_reason(reason: &str) -> Result<&str, ApiError> {
    if reason.trim().is_empty() || reason.chars().count() > 1000 || reason.contains('\0') {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "`reason` must be 1 to 1000 characters",
        ));
    }
    Ok(reason)
}

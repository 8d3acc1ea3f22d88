//! Answers: JSON bodies with the service's headers, and errors turned into
//! their one JSON shape.

use std::error::Error as _;

use http::{HeaderValue, StatusCode, header};
use lambda_http::Body;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::Serialize;
use uuid::Uuid;

use crate::foundation::error::ApiError;

pub type Response = http::Response<Body>;

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    json_text(
        status,
        serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
    )
}

/// A JSON answer already written out.
pub fn json_text(status: StatusCode, text: String) -> Response {
    // Text, not Binary: API Gateway then passes it on without base64.
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An empty answer (a CORS preflight's).
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// The answer's `ETag`: a submission's version.
pub fn with_etag(mut response: Response, version: Option<i32>) -> Response {
    if let Some(version) = version
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub fn with_request_id<B>(mut response: http::Response<B>, request_id: &str) -> http::Response<B> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// API Gateway's request id when there is one (it is what clients and access
/// logs see), otherwise a fresh one.
pub fn request_id(request: &lambda_http::Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .filter(|id| !id.is_empty())
    .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The error's JSON answer. A server fault is logged with its causes; the
/// client gets a fixed sentence.
pub fn error(error: &ApiError, request_id: &str) -> Response {
    if error.is_server_fault() {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %error, causes = ?causes, "request failed");
    }
    let mut response = json(error.status(), &error.body(request_id));
    let headers = response.headers_mut();
    if let ApiError::MethodNotAllowed { allow } = error
        && let Ok(value) = HeaderValue::from_str(&allow.join(", "))
    {
        headers.insert(header::ALLOW, value);
    }
    if let Some(challenge) = error.challenge()
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    match error {
        ApiError::TooManyRequests { retry_after } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        _ if error.status() == StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

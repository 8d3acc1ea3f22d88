//! The one error type of the API and its single mapping to an HTTP status and a
//! JSON body: `{"error": {"code", "message", "details", "request_id"}}`.
//!
//! Client mistakes carry their own message. Database and internal faults are
//! logged with their cause and answered with a generic message, so nothing
//! internal leaks.

use http::StatusCode;
use serde_json::{Value, json};

/// The protection space a 401's challenge names.
const REALM: &str = "fasttrack";

/// Every `error.code` the service answers with, in the order docs/api.md's
/// error table gives them: the fixed codes of [`ApiError::code`] and every code
/// a `BadRequest`, `NotFound`, `Conflict` or `Unprocessable` is built with.
/// openapi.yaml's `Error.code` enum is this list, and docs/api.md explains each
/// (tests in shared/tests/error_codes.rs keep the three, and the code, in step).
pub const CODES: &[&str] = &[
    // 400
    "malformed_json",
    "invalid_uuid",
    "unknown_parameter",
    "repeated_parameter",
    "invalid_query",
    "invalid_limit",
    "invalid_cursor",
    "invalid_time",
    "unknown_action",
    "invalid_filter",
    "invalid_prefix",
    "invalid_if_match",
    "invalid_idempotency_key",
    "missing_idempotency_key",
    "repeated_header",
    "invalid_header",
    "unreadable_body",
    // 401
    "unauthorized",
    "invalid_token",
    "invalid_signature",
    "invalid_refresh_token",
    // 403
    "forbidden",
    // 404
    "route_not_found",
    "tool_not_found",
    "user_not_found",
    "erasure_request_not_found",
    "tombstone_not_found",
    "organization_not_found",
    // 405
    "method_not_allowed",
    // 409
    "tool_locked",
    "email_conflict",
    "idempotency_key_reused",
    "idempotency_key_superseded",
    "erasure_already_requested",
    "admin_not_erasable",
    "own_role",
    "last_admin",
    "not_locked",
    "not_submitted",
    // 412
    "precondition_failed",
    // 413
    "payload_too_large",
    // 415
    "unsupported_media_type",
    // 422
    "invalid_body",
    "invalid_data",
    "invalid_status",
    "missing_fields",
    "invalid_shape",
    "too_deep",
    "duplicate_key",
    "invalid_text",
    "invalid_launch",
    "invalid_user",
    "invalid_webhook",
    "export_too_large",
    "reason_required",
    "unknown_field",
    "invalid_field",
    "nothing_to_change",
    "field_required",
    // 428
    "precondition_required",
    // 429
    "too_many_requests",
    // 500
    "internal_error",
    // 503
    "service_unavailable",
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the service cannot read; `code` names what is wrong.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No credentials: a route that needs a bearer token got none.
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    /// A bearer token that is not, or no longer, valid: forged, expired, not
    /// yet valid, or its account closed (RFC 6750's `invalid_token`).
    #[error("{0}")]
    InvalidToken(&'static str),
    /// A webhook's or a session launch's signature that does not verify (or
    /// has expired, or cannot be checked since no secret is configured).
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// A refresh token that is not, or no longer, good: unknown, used before
    /// (its session is then revoked), past its session's lifetime, revoked,
    /// or its account closed or changed. The client goes back to LearnWorlds.
    #[error("{0}")]
    InvalidRefreshToken(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<&'static str> },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// If-Match named another version of `what` (`submission`, `user`), or
    /// none exists for `If-Match: *`, or one exists for `If-None-Match: *`.
    #[error("{}", precondition_failed(.what, .expected, *.current))]
    PreconditionFailed {
        what: &'static str,
        expected: String,
        current: Option<i32>,
    },
    #[error("too many saves; retry in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    /// An update sent without If-Match: it would overwrite whatever another
    /// tab or device saved since this client last read the submission.
    #[error(
        "this {what} already exists: send If-Match with the ETag you last read, \
         so that a change never overwrites changes you have not seen"
    )]
    PreconditionRequired {
        what: &'static str,
        current: Option<i32>,
    },
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("the request took too long")]
    Timeout,
    /// A service this one depends on (LearnWorlds' API) cannot answer now;
    /// the message names what failed, never a credential or a user's data.
    #[error("{0}")]
    Upstream(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A 412's message, true to what was asked and what is stored.
fn precondition_failed(what: &str, expected: &str, current: Option<i32>) -> String {
    match (expected, current) {
        ("If-Match with If-None-Match: *", _) => {
            "If-Match and If-None-Match: * never hold together (RFC 9110, 13.2.2): send one".into()
        }
        ("If-None-Match: *", _) => format!(
            "this {what} already exists (If-None-Match: * only creates one): read it, then save with If-Match"
        ),
        (_, None) => format!(
            "there is no {what} yet, and If-Match {expected} matches only an existing one: save without If-Match to create it"
        ),
        _ => format!("the {what} has changed since version {expected}"),
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_)
            | Self::InvalidToken(_)
            | Self::InvalidSignature(_)
            | Self::InvalidRefreshToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired { .. } => StatusCode::PRECONDITION_REQUIRED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Timeout | Self::Upstream(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidToken(_) => "invalid_token",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::InvalidRefreshToken(_) => "invalid_refresh_token",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(what) => what,
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict { code, .. } | Self::Unprocessable { code, .. } => code,
            Self::PreconditionFailed { .. } => "precondition_failed",
            Self::PreconditionRequired { .. } => "precondition_required",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unavailable(_) | Self::Timeout | Self::Upstream(_) => "service_unavailable",
            Self::Database(_) | Self::Internal(_) => "internal_error",
        }
    }

    /// What the client is told. Server faults get a fixed sentence.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unavailable(_) | Self::Timeout | Self::Upstream(_) => {
                "The service is temporarily unavailable; retry shortly.".to_owned()
            }
            Self::Database(_) | Self::Internal(_) => "An internal error occurred.".to_owned(),
            Self::NotFound(_) => "Not found.".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn details(&self) -> Value {
        match self {
            Self::Conflict { details, .. } | Self::Unprocessable { details, .. } => details.clone(),
            Self::PreconditionFailed { current, .. }
            | Self::PreconditionRequired { current, .. } => {
                json!({ "current_version": current })
            }
            Self::MethodNotAllowed { allow } => json!({ "allow": allow }),
            Self::TooManyRequests { retry_after } => json!({ "retry_after": retry_after }),
            _ => Value::Null,
        }
    }

    /// A 401's `WWW-Authenticate` challenge (RFC 9110, 11.6.1): a bearer
    /// token's per RFC 6750, section 3, with `error="invalid_token"` and its
    /// reason when a token was sent but is refused; the signed deliveries'
    /// scheme for a webhook or a launch.
    pub fn challenge(&self) -> Option<String> {
        match self {
            Self::Unauthorized(_) => Some(format!("Bearer realm=\"{REALM}\"")),
            Self::InvalidToken(reason) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{reason}\""
            )),
            Self::InvalidSignature(_) => Some(format!("Signature realm=\"{REALM}\"")),
            // The refresh token is a credential of its own, sent in the body.
            Self::InvalidRefreshToken(_) => Some(format!("RefreshToken realm=\"{REALM}\"")),
            _ => None,
        }
    }

    pub fn is_server_fault(&self) -> bool {
        self.status().is_server_error()
    }

    pub fn body(&self, request_id: &str) -> Value {
        json!({
            "error": {
                "code": self.code(),
                "message": self.public_message(),
                "details": self.details(),
                "request_id": request_id,
            }
        })
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            return Self::Unavailable(error);
        }
        // PostgreSQL rejects \u0000 in jsonb and text; the body checks catch it
        // first, this is the backstop that keeps it a client error.
        if let Some(db) = error.as_database_error()
            && matches!(db.code().as_deref(), Some("22P05" | "22021"))
        {
            return Self::unprocessable("invalid_text", "text may not contain \\u0000");
        }
        Self::Database(error)
    }
}

/// Errors that mean "the database cannot be reached right now", as opposed to a
/// statement that failed.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
            // query_canceled (statement timeout), lock_not_available (lock timeout),
            // deadlock_detected and serialization_failure (a retry succeeds),
            // connection exceptions
            Some(
                "57P01"
                    | "57P02"
                    | "57P03"
                    | "53300"
                    | "57014"
                    | "55P03"
                    | "40P01"
                    | "40001"
                    | "08000"
                    | "08003"
                    | "08006"
            )
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant whose code is fixed. The match has no wildcard, so
    /// a new variant does not compile until it is placed here or among those
    /// built with a code (which shared/tests/route_table.rs finds in the source).
    fn fixed() -> Vec<ApiError> {
        let all = vec![
            ApiError::Unauthorized("no token"),
            ApiError::InvalidToken("expired"),
            ApiError::InvalidSignature("bad"),
            ApiError::InvalidRefreshToken("used"),
            ApiError::Forbidden("no"),
            ApiError::MethodNotAllowed { allow: vec!["GET"] },
            ApiError::PreconditionFailed {
                what: "submission",
                expected: "1".into(),
                current: Some(2),
            },
            ApiError::TooManyRequests { retry_after: 1 },
            ApiError::PreconditionRequired {
                what: "submission",
                current: Some(1),
            },
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::UnsupportedMediaType,
            ApiError::Unavailable(sqlx::Error::PoolTimedOut),
            ApiError::Timeout,
            ApiError::Upstream("down".into()),
            ApiError::Database(sqlx::Error::PoolClosed),
            ApiError::Internal("bug".into()),
        ];
        for error in &all {
            match error {
                ApiError::BadRequest { .. }
                | ApiError::NotFound(_)
                | ApiError::Conflict { .. }
                | ApiError::Unprocessable { .. } => unreachable!("built with a code"),
                ApiError::Unauthorized(_)
                | ApiError::InvalidToken(_)
                | ApiError::InvalidSignature(_)
                | ApiError::InvalidRefreshToken(_)
                | ApiError::Forbidden(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::PreconditionFailed { .. }
                | ApiError::TooManyRequests { .. }
                | ApiError::PreconditionRequired { .. }
                | ApiError::PayloadTooLarge { .. }
                | ApiError::UnsupportedMediaType
                | ApiError::Unavailable(_)
                | ApiError::Timeout
                | ApiError::Upstream(_)
                | ApiError::Database(_)
                | ApiError::Internal(_) => {}
            }
        }
        all
    }

    #[test]
    fn every_fixed_code_is_listed_and_none_twice() {
        for error in fixed() {
            assert!(
                CODES.contains(&error.code()),
                "{} is not in CODES",
                error.code()
            );
        }
        let mut sorted = CODES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), CODES.len(), "a code listed twice");
    }
}

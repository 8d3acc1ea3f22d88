//! `GET /audit`: the audit log, for admins.

use chrono::{DateTime, Utc};
use http::StatusCode;

use super::Action;
use super::query::{self, Filter};
use crate::access::Caller;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, cursor, response};

pub async fn list(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[
        "actor",
        "subject",
        "organization",
        "action",
        "since",
        "until",
        "cursor",
        "limit",
    ])?;
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        request
            .query(name)?
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::bad_request(
                            "invalid_time",
                            format!("`{name}` must be an RFC 3339 time"),
                        )
                    })
            })
            .transpose()
    };
    let filter = Filter {
        actor: request.uuid_query("actor")?,
        subject: request.uuid_query("subject")?,
        organization: request.uuid_query("organization")?,
        action: request
            .query("action")?
            .map(|a| {
                Action::parse(a).ok_or_else(|| {
                    ApiError::bad_request(
                        "unknown_action",
                        format!("unknown action `{}`", a.escape_debug()),
                    )
                })
            })
            .transpose()?,
        since: time("since")?,
        until: time("until")?,
    };
    let limit = request.limit(50, 200)?;
    let after: Option<i64> = request.cursor()?;
    let entries = ctx
        .read(async |conn| query::page(conn, caller.id(), &filter, after, limit).await)
        .await?;
    let page = cursor::page(entries, limit, |e| e.id);
    Ok(response::json(StatusCode::OK, &page))
}

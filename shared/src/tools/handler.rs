//! `GET /tools` and `GET /tools/{slug}`: static for a deployment, so each
//! carries an ETag and `Cache-Control: private, no-cache` (a client keeps it
//! and asks again with `If-None-Match`, which a 304 answers).

use http::{HeaderValue, StatusCode, header};

use super::Described;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};

pub fn list(request: &Request<'_>) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    answer(request, super::all())
}

pub fn get(ctx: &Context, request: &Request<'_>) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = ctx.tool(request)?;
    let described = super::one(&tool.slug).ok_or(ApiError::NotFound("tool_not_found"))?;
    answer(request, described)
}

fn answer(request: &Request<'_>, described: &Described) -> Result<Response, ApiError> {
    let unchanged = request
        .strict_header("if-none-match")?
        .is_some_and(|header| matches(header, &described.etag));
    let mut answer = if unchanged {
        response::empty(StatusCode::NOT_MODIFIED)
    } else {
        response::json_text(StatusCode::OK, described.json.clone())
    };
    let headers = answer.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&described.etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(answer)
}

/// `If-None-Match` against `etag`, by weak comparison (RFC 9110, 13.1.2).
fn matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_any() {
        let etag = "\"tools-abc\"";
        assert!(matches("\"tools-abc\"", etag));
        assert!(matches("W/\"tools-abc\"", etag));
        assert!(matches("\"x\", \"tools-abc\"", etag));
        assert!(matches("*", etag));
        assert!(!matches("\"tools-abd\"", etag));
        assert!(!matches("tools-abc", etag));
    }
}

//! What a handler reads of a request, checked once: headers, the query string,
//! the path's parameters and the body; and what the request's closing log line
//! reports.

use std::sync::Mutex;

use http::header::{self, AsHeaderName};
use http::{HeaderMap, Method};
use serde_json::Value;
use uuid::Uuid;

use super::body;
use crate::access::{Caller, Reading};
use crate::foundation::error::ApiError;
use crate::foundation::percent::{self, Part};

/// A header's value as text; `None` when absent or not visible ASCII. The one
/// way the service reads a header.
pub fn header(headers: &HeaderMap, name: impl AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request matched to a route.
pub struct Request<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    query: Vec<(String, String)>,
    body: &'a [u8],
    /// The route's path parameters, in order, percent-decoded.
    params: Vec<String>,
    max_body_bytes: usize,
    log: &'a RequestLog,
    request_id: &'a str,
}

/// What a request's closing log line reports besides status and duration,
/// filled in by whoever learns it (the authentication, the feature).
#[derive(Default)]
pub struct RequestLog(Mutex<Logged>);

#[derive(Debug, Default, Clone, Copy)]
pub struct Logged {
    pub user_id: Option<Uuid>,
    pub tool: Option<&'static str>,
    pub outcome: Option<&'static str>,
}

impl RequestLog {
    pub fn user_id(&self, user_id: Option<Uuid>) {
        self.fields().user_id = user_id;
    }

    pub fn tool(&self, slug: &'static str) {
        self.fields().tool = Some(slug);
    }

    pub fn outcome(&self, outcome: &'static str) {
        self.fields().outcome = Some(outcome);
    }

    pub fn get(&self) -> Logged {
        *self.fields()
    }

    fn fields(&self) -> std::sync::MutexGuard<'_, Logged> {
        // One request's own log: nothing panics while holding it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<'a> Request<'a> {
    pub fn new(
        request: &'a lambda_http::Request,
        params: Vec<String>,
        max_body_bytes: usize,
        log: &'a RequestLog,
        request_id: &'a str,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            method: request.method(),
            headers: request.headers(),
            query: parse_query(request.uri().query().unwrap_or_default())?,
            body: request.body().as_ref(),
            params,
            max_body_bytes,
            log,
            request_id,
        })
    }

    pub fn header(&self, name: impl AsHeaderName) -> Option<&'a str> {
        header(self.headers, name)
    }

    /// A header that changes what a write does: present but not visible ASCII
    /// is a 400, never "absent"; so is one sent twice, which API Gateway would
    /// join with a comma and the local server would not.
    pub fn strict_header(&self, name: &'static str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "repeated_header",
                format!("the {name} header must be sent once"),
            ));
        }
        value.to_str().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                format!("the {name} header must be visible ASCII"),
            )
        })
    }

    /// The raw body, for signatures computed over its bytes.
    pub fn raw_body(&self) -> &'a [u8] {
        self.body
    }

    /// The body as strict JSON: size, then Content-Type, then syntax.
    pub fn json_body(&self) -> Result<Value, ApiError> {
        debug_assert!(self.method == Method::POST || self.method == Method::PUT);
        body::check_size(self.body, self.max_body_bytes)?;
        body::require_json_content_type(self.header(header::CONTENT_TYPE))?;
        body::parse_json(self.body)
    }

    /// A LearnWorlds webhook delivery's body: size, then JSON, parsed
    /// leniently ([`body::parse_json_lenient`]), whatever the Content-Type
    /// says. LearnWorlds documents none ("Triggers a POST json request"), the
    /// signature is checked before, and the body is read as JSON anyway; a
    /// refusal would only be retried. Every other route stays strict
    /// ([`Request::json_body`]).
    pub fn delivery_body(&self) -> Result<body::LenientJson, ApiError> {
        debug_assert!(self.method == Method::POST);
        body::check_size(self.body, self.max_body_bytes)?;
        body::parse_json_lenient(self.body)
    }

    /// Refuses a query parameter not in `allowed`.
    pub fn allow_query(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if let Some((name, _)) = self
            .query
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                // Escaped: the message may not carry U+0000 or other control
                // characters a client sent (openapi.yaml's Error.message).
                format!("unknown query parameter `{}`", name.escape_debug()),
            ));
        }
        Ok(())
    }

    /// The whose-data query parameter: `?user_id=` for a guru or admin reading
    /// someone else; the caller by default. No other parameter is allowed.
    pub fn target_user(&self, caller: Caller) -> Result<Uuid, ApiError> {
        self.allow_query(&["user_id"])?;
        Ok(self.uuid_query("user_id")?.unwrap_or(caller.id()))
    }

    /// A query parameter given at most once (`None` when absent); the caller
    /// has checked the names with [`Request::allow_query`].
    pub fn query(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.query.iter().filter(|(n, _)| n == name);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some((_, value)), None) => Ok(Some(value)),
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "repeated_parameter",
                format!("`{name}` may be given once"),
            )),
        }
    }

    /// A UUID query parameter.
    pub fn uuid_query(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.query(name)?.map(|v| parse_uuid(v, name)).transpose()
    }

    /// `?limit=`: 1 to `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.query("limit")? {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_limit", format!("`limit` must be 1 to {max}"))
                }),
        }
    }

    /// `?cursor=`: the key the previous page ended on.
    pub fn cursor<K: serde::de::DeserializeOwned>(&self) -> Result<Option<K>, ApiError> {
        self.query("cursor")?.map(super::cursor::decode).transpose()
    }

    /// The request's id: API Gateway's, as the answer's `X-Request-Id` and
    /// every log line carry it; the audit log records it.
    pub fn id(&self) -> &'a str {
        self.request_id
    }

    /// `caller`'s read of `target`'s data in this request.
    pub fn reading(&self, caller: Caller, target: Uuid) -> Reading<'a> {
        Reading {
            caller: caller.id(),
            target,
            request_id: self.request_id,
        }
    }

    /// The route's `index`th path parameter.
    pub fn param(&self, index: usize) -> &str {
        &self.params[index]
    }

    /// The route's `index`th path parameter, a UUID named `name`.
    pub fn uuid_param(&self, index: usize, name: &str) -> Result<Uuid, ApiError> {
        parse_uuid(self.param(index), name)
    }

    /// What the request's closing log line will report.
    pub fn log(&self) -> &'a RequestLog {
        self.log
    }
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (
                percent::decode(name, Part::Query),
                percent::decode(value, Part::Query),
            ) {
                (Some(name), Some(value)) => Ok((name, value)),
                _ => Err(ApiError::bad_request(
                    "invalid_query",
                    "the query string is not valid",
                )),
            }
        })
        .collect()
}

fn parse_uuid(value: &str, name: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::bad_request("invalid_uuid", format!("`{name}` must be a UUID")))
}

//! CORS as API Gateway's HTTP API does it for this service. In production API
//! Gateway answers preflights and adds the headers (template.yaml's
//! CorsConfiguration, checked against these constants by a test); the local
//! server does the same here, so a browser talking to `make run` behaves alike.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use lambda_http::Body;

pub const ALLOW_METHODS: [&str; 6] = ["GET", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"];
pub const ALLOW_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "if-match",
    "idempotency-key",
];
pub const EXPOSE_HEADERS: [&str; 4] =
    ["etag", "x-request-id", "idempotent-replayed", "retry-after"];
pub const MAX_AGE_SECONDS: u32 = 600;

#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Origins as in the template's `CorsAllowedOrigins` (`*` allows any).
    pub fn new(origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            origins: origins
                .into_iter()
                .map(Into::into)
                .map(|o: String| o.trim().trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let origin = super::request::header(headers, header::ORIGIN)?;
        self.origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            .then_some(origin)
    }

    /// The answer to a preflight request, or `None` when this is not one.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        if let Some(origin) = self.allowed_origin(headers) {
            let out = response.headers_mut();
            insert(out, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            insert(
                out,
                header::ACCESS_CONTROL_ALLOW_METHODS,
                &ALLOW_METHODS.join(","),
            );
            insert(
                out,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                &ALLOW_HEADERS.join(","),
            );
            insert(
                out,
                header::ACCESS_CONTROL_MAX_AGE,
                &MAX_AGE_SECONDS.to_string(),
            );
            insert(out, header::VARY, "origin");
        }
        Some(response)
    }

    /// Adds the CORS headers to an actual response, when its origin is allowed.
    pub fn decorate<B>(&self, request_headers: &HeaderMap, response: &mut Response<B>) {
        if let Some(origin) = self.allowed_origin(request_headers) {
            let out = response.headers_mut();
            insert(out, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            insert(
                out,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &EXPOSE_HEADERS.join(","),
            );
            insert(out, header::VARY, "origin");
        }
    }
}

fn insert(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_the_allowances() {
        let cors = Cors::new(["https://app.example.com"]);
        let request = headers(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
        ]);
        let response = cors.preflight(&Method::OPTIONS, &request).unwrap();
        assert_eq!(response.status(), 204);
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(
            h["access-control-allow-methods"],
            "GET,PUT,PATCH,POST,DELETE,OPTIONS"
        );
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization,content-type,if-match,idempotency-key"
        );
        assert_eq!(h["access-control-max-age"], "600");
    }

    #[test]
    fn other_origins_get_no_allowances_and_plain_requests_are_not_preflights() {
        let cors = Cors::new(["https://app.example.com"]);
        let evil = headers(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ]);
        let response = cors.preflight(&Method::OPTIONS, &evil).unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let mut plain = Response::new(Body::Empty);
        cors.decorate(&evil, &mut plain);
        assert!(plain.headers().get("access-control-allow-origin").is_none());
        assert!(cors.preflight(&Method::GET, &evil).is_none());
        assert!(
            cors.preflight(
                &Method::OPTIONS,
                &headers(&[("origin", "https://app.example.com")])
            )
            .is_none()
        );
    }

    #[test]
    fn responses_to_allowed_origins_expose_the_api_headers() {
        let cors = Cors::new(["*"]);
        let mut response = Response::new(Body::Empty);
        cors.decorate(
            &headers(&[("origin", "http://localhost:5173")]),
            &mut response,
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "http://localhost:5173"
        );
        assert_eq!(
            response.headers()["access-control-expose-headers"],
            "etag,x-request-id,idempotent-replayed,retry-after"
        );
    }
}

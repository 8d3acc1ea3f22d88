//! The example events in `events/` carry placeholders for what differs between
//! environments; this fills them in, for `cargo lambda invoke --data-file` (via
//! `fasttrack render-event`) and for the handler tests.

use super::routes::{Matched, ROUTES, Route, match_route};

#[derive(Debug, Default)]
pub struct Placeholders {
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub webhook_secret: Option<String>,
    /// The JSON text of a signed launch, embedded as the event's string body.
    pub launch_body: Option<String>,
    /// A session's refresh token (`POST /sessions/refresh` and `/logout`).
    pub refresh_token: Option<String>,
}

/// The route an API Gateway v2 event is for: named by its `routeKey`
/// (`"GET /progress"`), or, for a function URL's event (`"$default"`, the
/// downloads), by its method and path. `None`: no such route, or no HTTP event.
pub fn route_of(event: &serde_json::Value) -> Option<&'static Route> {
    match event["routeKey"].as_str()? {
        "$default" => {
            let method: http::Method = event["requestContext"]["http"]["method"]
                .as_str()?
                .parse()
                .ok()?;
            match match_route(&method, event["rawPath"].as_str()?) {
                Matched::Route(route, _) => Some(route),
                Matched::WrongMethod(_) | Matched::NotFound => None,
            }
        }
        key => {
            let (method, path) = key.split_once(' ')?;
            ROUTES
                .iter()
                .find(|r| r.method.as_str() == method && r.path == path)
        }
    }
}

pub fn render(event: &str, values: &Placeholders) -> String {
    let mut out = event.to_owned();
    let pairs = [
        ("${TOKEN}", values.token.clone()),
        ("${USER_ID}", values.user_id.clone()),
        ("${WEBHOOK_SECRET}", values.webhook_secret.clone()),
        ("${REFRESH_TOKEN}", values.refresh_token.clone()),
        // Inside a JSON string: escape it as one.
        (
            "${LAUNCH_BODY}",
            values.launch_body.as_ref().map(|b| json_string_content(b)),
        ),
    ];
    for (placeholder, value) in pairs {
        if let Some(value) = value {
            out = out.replace(placeholder, &value);
        }
    }
    out
}

fn json_string_content(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_bodies_stay_valid_json() {
        let event = r#"{"headers": {"authorization": "Bearer ${TOKEN}"}, "body": "${LAUNCH_BODY}", "other": "${USER_ID}"}"#;
        let rendered = render(
            event,
            &Placeholders {
                token: Some("abc".into()),
                launch_body: Some(r#"{"email": "a@b.c"}"#.into()),
                ..Placeholders::default()
            },
        );
        let value: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(value["headers"]["authorization"], "Bearer abc");
        assert_eq!(value["body"], r#"{"email": "a@b.c"}"#);
        assert_eq!(value["other"], "${USER_ID}");
    }
}

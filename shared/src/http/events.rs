//! The example events in `events/` carry placeholders for what differs between
//! environments; this fills them in, for `cargo lambda invoke --data-file` (via
//! `fasttrack render-event`) and for the handler tests.

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

//! `POST /webhooks/learnworlds`: the signature header and raw body, checked in
//! both signature modes, then the payload read as the route reads it. The
//! signature check runs on every input; the payload is interpreted whether or
//! not the signature held (a fuzzer cannot forge one), so both are explored.
//!
//! The body is also read as LearnWorlds' API answers (a token, a user), the
//! other outside bytes the route takes in.
//!
//! Input: one mode byte, the header value up to the first newline, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::foundation::config::{Secret, SignatureMode};
use shared::http::body;
use shared::identity::signature;
use shared::identity::users::{LmsUser, Membership};
use shared::identity::{learnworlds, webhooks};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mode = if mode & 1 == 0 {
        SignatureMode::SharedSecret
    } else {
        SignatureMode::HmacSha256
    };
    let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = std::str::from_utf8(header).ok();
    let secret = Secret::new("fuzz-webhook-secret-0123456789");
    let _ = signature::verify_webhook(Some(&secret), mode, header, payload);
    let _ = signature::verify_webhook(None, mode, header, payload);
    // A correctly signed copy of the same body must pass.
    let signed = format!("v1={}", signature::sign_webhook(&secret, payload));
    assert!(
        signature::verify_webhook(
            Some(&secret),
            SignatureMode::HmacSha256,
            Some(&signed),
            payload
        )
        .is_ok()
    );
    // The same bytes as LearnWorlds' API would answer them: never a panic.
    let _ = learnworlds::read_token(payload);
    // As the route reads it: leniently, a key given twice where it is read
    // refused, and what is stored free of `\u0000`.
    let Ok(parsed) = body::parse_json_lenient(payload) else {
        return;
    };
    let value = parsed.value;
    let _ = webhooks::refuse_ambiguous(&value, &parsed.duplicate_keys);
    assert!(
        !holds_nul(&webhooks::storable(&value)),
        "a stored payload holds no \\u0000"
    );
    if let Ok(event) = webhooks::interpret(&value)
        && let Some(user) = event.user
    {
        // A delivery never names an organization: only the API does.
        assert_eq!(user.organization, Membership::Unchanged);
        check(&user);
    }
    let asked = value
        .get("id")
        .or_else(|| value.get("data").and_then(|d| d.get("id")))
        .and_then(|id| id.as_str())
        .unwrap_or_default();
    if let Ok(user) = learnworlds::read_current_user(payload, asked) {
        assert_eq!(user.lms_user_id, asked);
        check(&user);
    }
});

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(object) => {
            object.iter().any(|(k, v)| k.contains('\0') || holds_nul(v))
        }
        _ => false,
    }
}

/// What validate() lets through fits the VARCHAR(255) columns it goes into.
fn check(user: &LmsUser) {
    if user.validate().is_err() {
        return;
    }
    for field in [&user.lms_user_id, &user.email, &user.full_name] {
        assert!(
            field.chars().count() <= 255 && !field.contains('\0'),
            "{user:?}"
        );
    }
    if let Membership::In(org) = &user.organization {
        assert!(org.slug.chars().count() <= 255 && org.name.chars().count() <= 255);
        assert!(
            !org.slug.is_empty() && !org.name.trim().is_empty(),
            "{org:?}"
        );
    }
}

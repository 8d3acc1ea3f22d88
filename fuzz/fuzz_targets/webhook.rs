//! `POST /webhooks/learnworlds`: the signature header and raw body, checked in
//! both signature modes, then the payload read as the route reads it. The
//! signature check runs on every input; the payload is interpreted whether or
//! not the signature held (a fuzzer cannot forge one), so both are explored.
//!
//! Input: one mode byte, the header value up to the first newline, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::identity::signature;
use shared::foundation::config::{Secret, SignatureMode};
use shared::http::body;
use shared::identity::webhooks;

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
    let Ok(value) = body::parse_json(payload) else {
        return;
    };
    if let Ok(event) = webhooks::interpret(&value)
        && let Some(user) = event.user
        && user.validate().is_ok()
    {
        // What validate() lets through fits the VARCHAR(255) columns it goes into.
        for field in [&user.lms_user_id, &user.email, &user.full_name] {
            assert!(
                field.chars().count() <= 255 && !field.contains('\0'),
                "{user:?}"
            );
        }
        if let shared::identity::users::Membership::In(org) = &user.organization {
            assert!(org.slug.chars().count() <= 255 && org.name.chars().count() <= 255);
            assert!(
                !org.slug.is_empty() && !org.name.trim().is_empty(),
                "{org:?}"
            );
        }
    }
});

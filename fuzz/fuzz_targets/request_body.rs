//! Every JSON request body (`PUT /tools/{slug}/submission`, `POST /sessions`,
//! the webhook) goes through the strict parser. Whatever the bytes: no panic;
//! whatever it accepts, serde_json accepts too with the same value, and it
//! accepts its own output again; the save body check never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::http::body;
use shared::submissions::SaveRequest;

fuzz_target!(|data: &[u8]| {
    // The first line, when there is one, doubles as a Content-Type.
    if let Some(newline) = data.iter().position(|&b| b == b'\n')
        && let Ok(content_type) = std::str::from_utf8(&data[..newline])
    {
        let _ = body::require_json_content_type(Some(content_type));
    }
    let _ = body::check_size(data, 262_144);
    let Ok(value) = body::parse_json(data) else {
        return;
    };
    let loose: Value = serde_json::from_slice(data).expect("strictly valid JSON is valid JSON");
    assert_eq!(value, loose, "the strict parse reads the same value");
    let again = body::parse_json(value.to_string().as_bytes()).expect("its own output parses");
    assert_eq!(again, value, "the strict parse round-trips");
    let _ = SaveRequest::from_json(value);
});

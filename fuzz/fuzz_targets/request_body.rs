//! Every JSON request body (`PUT /tools/{slug}/submission`, `POST /sessions`)
//! goes through the strict parser, the webhook's through the lenient one.
//! Whatever the bytes: no panic; whatever the strict parser accepts, serde_json
//! and the lenient parser accept too with the same value (and no duplicate
//! key), and it accepts its own output again; whatever the lenient parser
//! accepts, serde_json accepts with the same value; the save body check never
//! panics.
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
    let lenient = body::parse_json_lenient(data);
    if let Ok(lenient) = &lenient {
        let loose: Value =
            serde_json::from_slice(data).expect("leniently valid JSON is valid JSON");
        assert_eq!(
            lenient.value, loose,
            "the lenient parse reads serde_json's value"
        );
    }
    let Ok(value) = body::parse_json(data) else {
        return;
    };
    let lenient = lenient.expect("what the strict parser accepts, the lenient one does");
    assert_eq!(lenient.value, value, "both parses read the same value");
    assert!(
        lenient.duplicate_keys.is_empty(),
        "no duplicate key passes the strict parse"
    );
    let loose: Value = serde_json::from_slice(data).expect("strictly valid JSON is valid JSON");
    assert_eq!(value, loose, "the strict parse reads the same value");
    let again = body::parse_json(value.to_string().as_bytes()).expect("its own output parses");
    assert_eq!(again, value, "the strict parse round-trips");
    let _ = SaveRequest::from_json(value);
});

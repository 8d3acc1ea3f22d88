//! Request bodies: Content-Type, size, and a strict JSON parse that rejects what
//! PostgreSQL or a reader would trip over (duplicate keys, `\u0000`, nesting past
//! the limit) while parsing, before anything reaches the database.
//!
//! One route parses leniently instead ([`parse_json_lenient`]): LearnWorlds'
//! webhook, whose sender retries any refusal for days and whose bodies are
//! mostly fields the service never reads.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::foundation::error::ApiError;

/// Deepest nesting of arrays and objects accepted, counting the body itself.
pub const MAX_DEPTH: usize = 32;

pub fn require_json_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(content_type) = content_type else {
        return Err(ApiError::UnsupportedMediaType);
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

pub fn check_size(body: &[u8], limit: usize) -> Result<(), ApiError> {
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    TooDeep,
    DuplicateKey,
    Nul,
}

/// Parses a JSON document strictly. Malformed JSON (including invalid UTF-8 and
/// trailing bytes) is a 400; nesting past [`MAX_DEPTH`], a duplicate key or a
/// `\u0000` is a 422.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    parse(bytes, None)
}

/// A body parsed by [`parse_json_lenient`].
#[derive(Debug, Clone, PartialEq)]
pub struct LenientJson {
    /// Strings may hold `\u0000`; of a key given twice, the last value.
    pub value: Value,
    /// The JSON pointers (RFC 6901) of the keys given more than once in one
    /// object, in the order met; the caller refuses those it reads.
    pub duplicate_keys: Vec<String>,
}

/// Parses a JSON document as [`parse_json`] does (malformed is a 400, nesting
/// past [`MAX_DEPTH`] a 422), except that a `\u0000` is kept and a key given
/// twice in one object keeps its **last** value (as `serde_json` and most
/// parsers do), its pointer noted. For a sender whose bodies are mostly
/// fields nobody reads: the reader stays strict in the fields it uses, and
/// must remove `\u0000` before storing the value (jsonb cannot hold it).
pub fn parse_json_lenient(bytes: &[u8]) -> Result<LenientJson, ApiError> {
    let duplicates = RefCell::new(Vec::new());
    let value = parse(bytes, Some(&duplicates))?;
    Ok(LenientJson {
        value,
        duplicate_keys: duplicates.into_inner(),
    })
}

fn parse(bytes: &[u8], lenient: Option<&RefCell<Vec<String>>>) -> Result<Value, ApiError> {
    let problem = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        depth: 1,
        problem: &problem,
        lenient: lenient.map(|duplicates| Lenient {
            duplicates,
            pointer: String::new(),
        }),
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, problem.get()) {
        (Ok(value), _) => Ok(value),
        (Err(e), Some(Problem::TooDeep)) => Err(ApiError::unprocessable(
            "too_deep",
            format!("JSON nests deeper than {MAX_DEPTH} levels ({e})"),
        )),
        (Err(e), Some(Problem::DuplicateKey)) => {
            Err(ApiError::unprocessable("duplicate_key", e.to_string()))
        }
        (Err(e), Some(Problem::Nul)) => Err(ApiError::unprocessable(
            "invalid_text",
            format!("strings may not contain \\u0000 ({e})"),
        )),
        (Err(e), None) if e.to_string().starts_with("recursion limit exceeded") => {
            Err(ApiError::unprocessable(
                "too_deep",
                format!("JSON nests deeper than {MAX_DEPTH} levels"),
            ))
        }
        (Err(e), None) => Err(ApiError::bad_request(
            "malformed_json",
            format!("malformed JSON: {e}"),
        )),
    }
}

struct StrictValue<'a> {
    depth: usize,
    problem: &'a Cell<Option<Problem>>,
    /// In lenient mode: where duplicate keys are noted, and this value's
    /// JSON pointer.
    lenient: Option<Lenient<'a>>,
}

struct Lenient<'a> {
    duplicates: &'a RefCell<Vec<String>>,
    pointer: String,
}

/// `pointer` and one more reference token, escaped (RFC 6901).
fn child_pointer(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

impl StrictValue<'_> {
    fn fail<E: de::Error>(&self, problem: Problem, message: impl fmt::Display) -> E {
        self.problem.set(Some(problem));
        E::custom(message)
    }

    /// Called on entering an array or object, which sits at `self.depth`.
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(self.fail(Problem::TooDeep, "nesting limit reached"));
        }
        Ok(())
    }

    /// The value at `token` inside this one.
    fn nested(&self, token: impl FnOnce() -> String) -> StrictValue<'_> {
        StrictValue {
            depth: self.depth + 1,
            problem: self.problem,
            lenient: self.lenient.as_ref().map(|l| Lenient {
                duplicates: l.duplicates,
                pointer: child_pointer(&l.pointer, &token()),
            }),
        }
    }

    fn string<E: de::Error>(&self, s: &str) -> Result<(), E> {
        if self.lenient.is_none() && s.contains('\0') {
            return Err(self.fail(Problem::Nul, "string contains \\u0000"));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.string(v)?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.string(&v)?;
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested(|| items.len().to_string()))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.string(&key)?;
            if object.contains_key(&key) {
                match &self.lenient {
                    None => {
                        return Err(
                            self.fail(Problem::DuplicateKey, format!("duplicate key `{key}`"))
                        );
                    }
                    Some(lenient) => lenient
                        .duplicates
                        .borrow_mut()
                        .push(child_pointer(&lenient.pointer, &key)),
                }
            }
            let value = map.next_value_seed(self.nested(|| key.clone()))?;
            // A key given twice keeps its last value.
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(bytes: &[u8]) -> u16 {
        parse_json(bytes).map_or_else(|e| e.status().as_u16(), |_| 200)
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn valid_json_parses_to_the_same_value_as_serde_json() {
        let text = br#"{"data": {"a": [1, 2.5, -3, true, null, "x"], "b": {"c": 18446744073709551615}}, "status": "draft"}"#;
        let strict = parse_json(text).unwrap();
        let loose: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, loose);
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted_and_one_more_is_422() {
        assert_eq!(status(nested(MAX_DEPTH).as_bytes()), 200);
        assert_eq!(status(nested(MAX_DEPTH + 1).as_bytes()), 422);
        assert_eq!(status(nested(10_000).as_bytes()), 422);
    }

    #[test]
    fn duplicate_keys_are_422_at_any_depth() {
        assert_eq!(status(br#"{"a": 1, "a": 2}"#), 422);
        assert_eq!(status(br#"{"data": {"x": {"k": 1, "k": 1}}}"#), 422);
        assert_eq!(status(br#"{"a": {"k": 1}, "b": {"k": 1}}"#), 200);
    }

    #[test]
    fn nul_in_keys_or_values_is_422() {
        assert_eq!(status(br#"{"a": "x\u0000y"}"#), 422);
        assert_eq!(status(br#"{"a\u0000": "x"}"#), 422);
        assert_eq!(status(br#"["\u0000"]"#), 422);
    }

    #[test]
    fn malformed_json_is_400() {
        for bad in [
            &b"{"[..],
            b"",
            b"{\"a\": 1,}",
            b"{\"a\": 1} x",
            b"\xff\xfe",
            b"{\"a\": \"\xc3\x28\"}",
            b"1e400",
            b"NaN",
        ] {
            assert_eq!(status(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// Found by fuzzing (fuzz/fuzz_targets/request_body.rs): without serde_json's
    /// `float_roundtrip`, its fast float parser read some numbers one ULP off
    /// (here `1.8444467440371759e21`, the printed form of the body's
    /// 1844446744037175950615), so data read back and saved again drifted.
    #[test]
    fn numbers_parse_correctly_rounded_and_read_back_unchanged() {
        let body = br#"{"data": {"n": 1844446744037175950615, "f": 1.5e10, "g": 0.1, "h": 2.2250738585072014e-308}, "status": "draft"}"#;
        let value = parse_json(body).unwrap();
        assert_eq!(
            value["data"]["n"].as_f64(),
            Some(1_844_446_744_037_175_950_615_f64)
        );
        assert_eq!(value["data"]["g"].as_f64(), Some(0.1));
        let again = parse_json(value.to_string().as_bytes()).unwrap();
        assert_eq!(again, value);
        let crash = include_bytes!("../../tests/fixtures/fuzz-request-body-float-drift.json");
        let value = parse_json(crash).unwrap();
        assert_eq!(parse_json(value.to_string().as_bytes()).unwrap(), value);
    }

    #[test]
    fn a_lenient_parse_keeps_nul_and_the_last_of_duplicate_keys_and_says_where() {
        let parsed = parse_json_lenient(
            br#"{"data": {"user": {"bio": "a\u0000b", "fields": {"cf_x": 1, "cf_x": 2}}, "l": [{"k": 1, "k": 2}]}, "a/b~": {"c": 0, "c": 1}}"#,
        )
        .unwrap();
        assert_eq!(parsed.value["data"]["user"]["bio"], "a\u{0}b");
        assert_eq!(parsed.value["data"]["user"]["fields"]["cf_x"], 2);
        assert_eq!(
            parsed.duplicate_keys,
            ["/data/user/fields/cf_x", "/data/l/0/k", "/a~1b~0/c"]
        );
        // The rest is as strict as ever.
        for (bad, status) in [
            (&b"{"[..], 400),
            (b"{\"a\": 1} x", 400),
            (nested(MAX_DEPTH + 1).as_bytes(), 422),
        ] {
            let got = parse_json_lenient(bad).map_or_else(|e| e.status().as_u16(), |_| 200);
            assert_eq!(got, status, "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse_json_lenient(nested(MAX_DEPTH).as_bytes()).is_ok());
    }

    #[test]
    fn content_types_other_than_json_are_415() {
        assert!(require_json_content_type(Some("application/json")).is_ok());
        assert!(require_json_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(require_json_content_type(Some("application/merge-patch+json")).is_ok());
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some(""),
        ] {
            let err = require_json_content_type(bad).unwrap_err();
            assert_eq!(err.status().as_u16(), 415);
        }
    }
}

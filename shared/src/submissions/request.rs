//! What a save is asked to do: the body, `If-Match` and `Idempotency-Key`,
//! each checked before anything reaches the database.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::foundation::db::text_column;
use crate::foundation::error::ApiError;
use crate::registry::Tool;

/// A submission's status: a draft is UI state the participant keeps coming
/// back to; a submitted one is what later tools read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    Draft,
    Submitted,
}

impl SubmissionStatus {
    /// As it is written in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::Submitted]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

text_column!(SubmissionStatus);

/// The body of `PUT /tools/{slug}/submission`, checked.
#[derive(Debug, Clone)]
pub struct SaveRequest {
    pub data: Map<String, Value>,
    /// What the save makes of the submission.
    pub status: SubmissionStatus,
}

impl SaveRequest {
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let Value::Object(mut body) = body else {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the body must be an object with `data` and `status`",
            ));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "data" | "status"))
        {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("unknown field `{unknown}`; expected `data` and `status`"),
            ));
        }
        let data = match body.remove("data") {
            Some(Value::Object(data)) => data,
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "invalid_data",
                    "`data` must be a JSON object",
                ));
            }
            None => {
                return Err(ApiError::unprocessable(
                    "invalid_data",
                    "`data` is required",
                ));
            }
        };
        let status = match body.remove("status") {
            Some(Value::String(s)) => SubmissionStatus::parse(&s),
            _ => None,
        };
        let Some(status) = status else {
            return Err(ApiError::unprocessable(
                "invalid_status",
                "`status` must be \"draft\" or \"submitted\"",
            ));
        };
        Ok(Self { data, status })
    }
}

/// What `If-None-Match: *` is shown as in a 412's message.
pub const NONE_EXISTS: &str = "If-None-Match: *";

/// What `If-Match` with `If-None-Match: *` is shown as in a 412's message.
pub const NEVER: &str = "If-Match with If-None-Match: *";

/// `If-Match`: a version, or `*` for "any existing submission".
///
/// An update needs one (428 without). `*` satisfies that, as RFC 9110 has it:
/// it is a client's explicit "overwrite whatever is stored", which gives up the
/// lost-update check on purpose, for clients that replay a fixed request (the
/// benchmark). An editor sends the ETag it last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Version(i32),
    /// `If-None-Match: *`: create only. The save writes only when there is
    /// no submission yet, so that two tabs' first saves never overwrite each
    /// other (the second is a 412).
    NoneExists,
    /// `If-Match` and `If-None-Match: *` together: never true (a 412).
    Never,
}

impl IfMatch {
    /// Accepts `"3"`, `3` and `*` (openapi.yaml's pattern): a version is 1 to 9
    /// digits without a leading zero. A weak tag (`W/"3"`) never matches:
    /// If-Match compares strongly (RFC 9110).
    pub fn parse(header: &str) -> Result<Self, ApiError> {
        let value = header.trim_matches([' ', '\t']);
        if value == "*" {
            return Ok(Self::Any);
        }
        if value.starts_with("W/") {
            return Err(ApiError::bad_request(
                "invalid_if_match",
                "If-Match needs a strong ETag such as \"3\"",
            ));
        }
        let digits = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let well_formed = (1..=9).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit());
        well_formed
            .then(|| digits.parse().ok())
            .flatten()
            .map(Self::Version)
            .ok_or_else(|| {
                ApiError::bad_request("invalid_if_match", "If-Match must be an ETag such as \"3\"")
            })
    }

    pub fn etag(self) -> String {
        match self {
            IfMatch::Any => "*".to_owned(),
            IfMatch::Version(v) => format!("\"{v}\""),
            IfMatch::NoneExists => NONE_EXISTS.to_owned(),
            IfMatch::Never => NEVER.to_owned(),
        }
    }

    /// As the save statement takes it: 0 for any version, a version, or
    /// null for "only a first save" (as without a precondition).
    pub fn bind(self) -> Option<i32> {
        match self {
            IfMatch::Any => Some(0),
            IfMatch::Version(v) => Some(v),
            IfMatch::NoneExists => None,
            // A version no submission ever has.
            IfMatch::Never => Some(-1),
        }
    }

    /// The save's precondition from its `If-Match` and `If-None-Match`: at
    /// most one of them, and `If-None-Match` only as `*` (create only).
    pub fn from_headers(
        if_match: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<Option<Self>, ApiError> {
        let none_exists = match if_none_match {
            None => false,
            Some(header) if header.trim_matches([' ', '\t']) == "*" => true,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_if_match",
                    "a save takes If-None-Match only as `*`: create the submission only if none exists",
                ));
            }
        };
        match (if_match.map(Self::parse).transpose()?, none_exists) {
            // Both never hold together (RFC 9110, 13.2.2): If-Match needs a
            // submission, If-None-Match: * needs none.
            (Some(_), true) => Ok(Some(Self::Never)),
            (Some(if_match), false) => Ok(Some(if_match)),
            (None, true) => Ok(Some(Self::NoneExists)),
            (None, false) => Ok(None),
        }
    }
}

/// At most how many bytes `value` takes stored as PostgreSQL `jsonb`, before
/// TOAST compression: an upper bound, from jsonb's layout (`jsonb.h`): a
/// 4-byte varlena header; per container a 4-byte header, a 4-byte entry per
/// element (two per member of an object) and padding to 4 bytes; a string's
/// bytes; a number as a `numeric` (a 4-byte header, 2 bytes of its own, 2 per
/// four decimal digits, padding); `null` and booleans only their entry.
///
/// The stored form can be much larger than the text: `[0,0,...]` takes 2
/// bytes an element as text and 12 as jsonb. A save is bounded, and paid
/// for, by the larger of its body and this.
pub fn stored_json_bytes(value: &Value) -> usize {
    fn inner(value: &Value) -> usize {
        const PAD: usize = 3;
        match value {
            Value::Null | Value::Bool(_) => 0,
            Value::Number(n) => {
                let digits = n.to_string().bytes().filter(u8::is_ascii_digit).count();
                PAD + 4 + 2 + 2 * (digits / 4 + 2)
            }
            Value::String(s) => s.len(),
            Value::Array(items) => PAD + 4 + items.iter().map(|v| 4 + inner(v)).sum::<usize>(),
            Value::Object(members) => {
                PAD + 4
                    + members
                        .iter()
                        .map(|(k, v)| 8 + k.len() + inner(v))
                        .sum::<usize>()
            }
        }
    }
    // A scalar at the top is stored as a one-element array.
    4 + match value {
        Value::Array(_) | Value::Object(_) => inner(value),
        scalar => 8 + 4 + inner(scalar),
    }
}

/// What a save costs from the user's save budget (`shared.save_budgets`, a
/// token bucket), and the bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub cost: f64,
    pub burst: f64,
    pub refill_per_second: f64,
}

impl Budget {
    /// A save costs a token, plus one per this many bytes of body.
    pub const BYTES_PER_TOKEN: usize = 8192;

    /// The budget of a save whose body is `body_bytes` long. A body that would
    /// cost more than the burst costs the burst: a large save waits for a full
    /// bucket, it is never refused for good.
    pub fn for_body(body_bytes: usize, burst: u32, refill_per_minute: u32) -> Self {
        let cost = 1 + body_bytes / Self::BYTES_PER_TOKEN;
        Self {
            cost: cost.min(burst as usize) as f64,
            burst: f64::from(burst),
            refill_per_second: f64::from(refill_per_minute) / 60.0,
        }
    }

    /// A save that costs nothing (the demo data, loaded by an operator).
    pub const FREE: Self = Self {
        cost: 0.0,
        burst: 1.0,
        refill_per_second: 1.0,
    };

    /// Seconds until a bucket holding `tokens` can pay for this save.
    pub fn wait_seconds(&self, tokens: f64) -> u64 {
        ((self.cost - tokens).max(0.0) / self.refill_per_second)
            .ceil()
            .max(1.0) as u64
    }
}

/// A validated Idempotency-Key and the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: Vec<u8>,
}

impl Idempotency {
    pub fn new(key: &str, tool: &Tool, body: &Value) -> Result<Self, ApiError> {
        // No comma: API Gateway joins a repeated header's values with commas.
        let valid = !key.is_empty()
            && key.len() <= 255
            && key.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !valid {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters other than a comma",
            ));
        }
        // serde_json's maps are sorted, so equal bodies serialize equally.
        let mut hash = Sha256::new();
        hash.update(tool.slug.as_bytes());
        hash.update(b"\n");
        hash.update(body.to_string().as_bytes());
        Ok(Self {
            key: key.to_owned(),
            fingerprint: hash.finalize().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_save_body_is_checked() {
        let ok = SaveRequest::from_json(json!({"data": {"a": 1}, "status": "draft"})).unwrap();
        assert_eq!(ok.status, SubmissionStatus::Draft);
        for (body, code) in [
            (json!([]), "invalid_body"),
            (json!({"data": [], "status": "draft"}), "invalid_data"),
            (json!({"data": "x", "status": "draft"}), "invalid_data"),
            (json!({"status": "draft"}), "invalid_data"),
            (json!({"data": {}, "status": "done"}), "invalid_status"),
            (json!({"data": {}}), "invalid_status"),
            (
                json!({"data": {}, "status": "draft", "user_id": "x"}),
                "invalid_body",
            ),
        ] {
            let err = SaveRequest::from_json(body.clone()).unwrap_err();
            assert_eq!((err.status().as_u16(), err.code()), (422, code), "{body}");
        }
    }

    #[test]
    fn if_match_accepts_etags_and_star() {
        assert_eq!(IfMatch::parse("\"3\"").unwrap(), IfMatch::Version(3));
        assert!(IfMatch::parse("W/\"3\"").is_err());
        assert_eq!(IfMatch::parse("*").unwrap(), IfMatch::Any);
        for bad in ["", "\"x\"", "0", "-1", "99999999999"] {
            assert!(IfMatch::parse(bad).is_err(), "{bad}");
        }
    }
}

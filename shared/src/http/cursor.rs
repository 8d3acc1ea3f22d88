//! Keyset pagination: a page starts after the last row's sort key, which the
//! opaque cursor carries (base64url of its JSON), so page 90 costs what page 1
//! costs. A cursor that does not decode to the feature's key is a 400.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::foundation::error::ApiError;

/// A page of rows and the cursor of the next one (`None`: the last page).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub fn encode(key: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("a cursor key serializes"))
}

pub fn decode<K: DeserializeOwned>(cursor: &str) -> Result<K, ApiError> {
    let invalid =
        || ApiError::bad_request("invalid_cursor", "`cursor` is not a cursor this list gave");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// `rows` (fetched one past `limit`) as a page: the extra row says there is a
/// next page, whose cursor is the last kept row's key.
pub fn page<T, K: Serialize>(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> K) -> Page<T> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = more
        .then(|| rows.last().map(|last| encode(&key(last))))
        .flatten();
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_a_400() {
        let cursor = encode(&(42_i64, "Ana"));
        assert_eq!(
            decode::<(i64, String)>(&cursor).unwrap(),
            (42, "Ana".into())
        );
        for bad in ["", "not base64!", &encode(&"just a string")] {
            assert_eq!(
                decode::<(i64, String)>(bad).unwrap_err().status().as_u16(),
                400
            );
        }
    }

    #[test]
    fn a_page_holds_at_most_the_limit_and_says_when_there_is_more() {
        let full = page(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(
            (full.items, full.next_cursor),
            (vec![1, 2], Some(encode(&2)))
        );
        let last = page(vec![1, 2], 2, |n| *n);
        assert_eq!(last.next_cursor, None);
    }
}

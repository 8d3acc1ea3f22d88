//! The one percent-decoder: path segments and query strings (`http`), and
//! the user and password of a database URL (`secrets`).

/// Where the text comes from: in a query string (form encoding) `+` is a space,
/// in a path segment it is itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Query,
}

/// Decodes `%XX` escapes (and `+` in a query); `None` for a malformed escape or
/// a result that is not UTF-8.
pub fn decode(text: &str, part: Part) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // from_str_radix alone would take a sign: `%+1`.
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if part == Part::Query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_plus_is_a_space_only_in_a_query() {
        assert_eq!(decode("a%2Fb+c", Part::Path).as_deref(), Some("a/b+c"));
        assert_eq!(decode("a%2Fb+c", Part::Query).as_deref(), Some("a/b c"));
        assert_eq!(decode("%C3%A9", Part::Path).as_deref(), Some("é"));
        for bad in ["%", "%2", "%zz", "%ff", "%+1"] {
            assert_eq!(decode(bad, Part::Query), None, "{bad}");
        }
    }
}

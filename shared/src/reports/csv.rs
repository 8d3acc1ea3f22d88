//! RFC 4180 CSV, safe to open in a spreadsheet: CRLF line ends; a field with
//! a comma, a quote, CR or LF is quoted, its quotes doubled; and a field that
//! begins with `=`, `+`, `-`, `@`, a tab or CR gets a leading `'`, so that a
//! spreadsheet never reads a participant's name as a formula (OWASP's CSV
//! injection advice).

/// Appends one field (not its separator) to `out`.
pub fn push_field(out: &mut String, value: &str) {
    let neutralise = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = value.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if neutralise {
        out.push('\'');
    }
    if quote {
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// Appends one record and its CRLF.
pub fn push_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> String {
        let mut out = String::new();
        push_record(&mut out, fields.iter().copied());
        out
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(record(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(
            record(&["a,b", "say \"hi\"", "l1\nl2", "x\ry"]),
            "\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\",\"x\ry\"\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(
            record(&["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "ok=1"]),
            "'=1+1,'+1,'-1,'@SUM(A1),'\tx,ok=1\r\n"
        );
        assert_eq!(record(&["=a,b"]), "\"'=a,b\"\r\n");
        assert_eq!(record(&["\rx"]), "\"'\rx\"\r\n");
    }
}

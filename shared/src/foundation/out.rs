//! Where long output goes, a piece at a time: a buffer, a blocking writer (a
//! file, stdout), or a streamed answer whose `put` waits while its reader is
//! behind. The export writes a person's record through it.

use std::future::{Future, ready};

pub trait Out {
    fn put(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        self.extend_from_slice(bytes);
        ready(Ok(()))
    }
}

/// A blocking writer (a file, stdout), for the CLI.
pub struct Blocking<W>(pub W);

impl<W: std::io::Write + Send> Out for Blocking<W> {
    fn put(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        ready(self.0.write_all(bytes))
    }
}

/// A body that stops growing past its limit (and says so), so that an answer
/// too large to send is never held whole in memory.
pub struct Limited {
    bytes: Vec<u8>,
    size: usize,
    limit: usize,
    escaped: bool,
    over: bool,
}

impl Limited {
    /// At most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            size: 0,
            limit,
            escaped: false,
            over: false,
        }
    }

    /// At most `limit` bytes once escaped into a JSON string, as a Lambda
    /// answer carries a text body: each `"`, `\`, and control character
    /// counts for its escape (`\"`, `\n`, `\u0001`).
    pub fn escaped_in_json(limit: usize) -> Self {
        Self {
            escaped: true,
            ..Self::new(limit)
        }
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// What `bytes` take in a JSON string.
fn json_escaped_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum()
}

impl Out for Limited {
    fn put(&mut self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        let size = if self.escaped {
            json_escaped_len(bytes)
        } else {
            bytes.len()
        };
        if self.over || self.size + size > self.limit {
            self.over = true;
        } else {
            self.size += size;
            self.bytes.extend_from_slice(bytes);
        }
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limited_body_keeps_what_fits_and_says_when_more_came() {
        let mut body = Limited::new(5);
        body.put(b"abc").await.unwrap();
        body.put(b"de").await.unwrap();
        assert!(!body.is_over());
        body.put(b"f").await.unwrap();
        assert!(body.is_over());
        assert_eq!(body.into_bytes(), b"abcde");
    }

    #[tokio::test]
    async fn a_body_limited_in_json_counts_each_escape() {
        // `a"b` + newline escapes to `a\"b\n`: 6 bytes, not 4.
        let mut body = Limited::escaped_in_json(5);
        body.put(b"a\"b\n").await.unwrap();
        assert!(body.is_over());
        let mut body = Limited::escaped_in_json(6);
        body.put(b"a\"b\n").await.unwrap();
        body.put(b"\x01").await.unwrap();
        assert!(body.is_over(), "a control character is six bytes escaped");
        assert_eq!(body.into_bytes(), b"a\"b\n");
    }
}

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

//! What a command writes on stdout. A reader that stops early
//! (`fasttrack tool-schemas-sql | head`) closes the pipe: the rest is not
//! wanted, and the command ends as it would have, where `print!` panics.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

/// `text` on stdout, as it is.
pub fn print(text: impl Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match write!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// `text` and a newline on stdout.
pub fn println(text: impl Display) -> std::io::Result<()> {
    print(format_args!("{text}\n"))
}

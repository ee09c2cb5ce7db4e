//! Writing to stdout and stderr without panicking: `println!` panics when the reader has gone
//! (`josefk topics list | head -3`), and a panic skips the clean stop (no commit of what was
//! written, no LeaveGroup). A closed stdout is [`exit::OUTPUT_CLOSED`]: the command stops as it
//! would at its end, quietly. Diagnostics on stderr are best effort: a closed stderr is ignored.

use std::fmt;
use std::io::{self, Write};

use crate::exit::{self, CliError, CliResult};

/// Writes one line to stdout; a closed pipe is [`closed`], any other failure a runtime error.
pub fn line(args: fmt::Arguments<'_>) -> CliResult {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(from_io)
}

/// The error a failed write to stdout becomes.
pub fn from_io(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        closed()
    } else {
        CliError::runtime(format!("cannot write to stdout: {e}"))
    }
}

/// Stdout's reader has gone: stop quietly, with the shell's code for SIGPIPE.
pub fn closed() -> CliError {
    CliError {
        code: exit::OUTPUT_CLOSED,
        message: "stdout was closed".into(),
    }
}

/// Writes one line to stderr, ignoring failure (diagnostics must not stop the work).
pub fn diag(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that returns [`CliResult`] instead of panicking on a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! diagln {
    ($($arg:tt)*) => {
        $crate::output::diag(format_args!($($arg)*))
    };
}

pub(crate) use {diagln, outln};

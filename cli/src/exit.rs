//! The exit codes scripts can rely on, and the one error type commands return.

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// A runtime error: the broker refused, a record failed, I/O on input or output.
pub const RUNTIME: u8 = 1;
/// A usage error: bad arguments, an unknown or invalid property.
pub const USAGE: u8 = 2;
/// No broker could be reached (refused, unreachable, timed out).
pub const UNREACHABLE: u8 = 3;
/// `--count` / `--num-records` not reached before `--timeout-ms`.
pub const INCOMPLETE: u8 = 4;
/// Stopped by Ctrl-C (SIGINT), after closing cleanly; the shell's convention (128 + 2).
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM (`timeout`, `docker stop`, systemd), after closing cleanly as for Ctrl-C;
/// the shell's convention (128 + 15).
pub const TERMINATED: u8 = 143;
/// Stdout's reader went away (`| head`), after stopping cleanly; the shell's code for SIGPIPE.
pub const OUTPUT_CLOSED: u8 = 141;

/// Why a command failed, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// What to print on stderr.
    pub message: String,
}

impl CliError {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: USAGE,
            message: message.into(),
        }
    }

    /// A runtime error (exit code 1).
    pub fn runtime(message: impl Into<String>) -> CliError {
        CliError {
            code: RUNTIME,
            message: message.into(),
        }
    }

    /// The exit code as the process returns it.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<josefk::Error> for CliError {
    fn from(e: josefk::Error) -> CliError {
        let code = match &e {
            josefk::Error::Config(_) => USAGE,
            josefk::Error::Connect { .. } => UNREACHABLE,
            _ => RUNTIME,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::runtime(format!("I/O error: {e}"))
    }
}

/// What commands return.
pub type CliResult<T = ()> = Result<T, CliError>;

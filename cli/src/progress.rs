//! Progress lines on stderr for long work (one every few seconds, never per record) and the final
//! summary line.

use std::time::{Duration, Instant};

use crate::output::diagln;

/// How often a progress line is printed.
const EVERY: Duration = Duration::from_secs(2);

/// `1 record`, `2 records`.
pub fn records(n: u64) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}

/// Counts records and bytes over time for one command.
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    quiet: bool,
    started: Instant,
    last_print: Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn new(what: &'static str, quiet: bool) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            quiet,
            started: now,
            last_print: now,
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints a progress line if one is due.
    pub fn tick(&mut self, records: u64, bytes: u64) {
        if self.quiet || self.last_print.elapsed() < EVERY {
            return;
        }
        self.last_print = Instant::now();
        let secs = self.elapsed().as_secs_f64().max(1e-9);
        let mut line = format!(
            "{}: {} in {:.1} s ({:.0} records/s",
            self.what,
            self::records(records),
            secs,
            records as f64 / secs
        );
        if bytes > 0 {
            line.push_str(&format!(", {:.2} MB/s", bytes as f64 / secs / 1e6));
        }
        line.push(')');
        diagln!("{line}");
    }

    /// Prints the summary line.
    pub fn finish(&self, summary: &str) {
        if !self.quiet {
            diagln!(
                "{}: {summary} in {:.2} s",
                self.what,
                self.elapsed().as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_record_is_singular() {
        assert_eq!(super::records(1), "1 record");
        assert_eq!(super::records(0), "0 records");
        assert_eq!(super::records(2), "2 records");
    }
}

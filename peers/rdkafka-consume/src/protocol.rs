//! The consume-worker protocol shared by `benches/consume_compare.rs`, this crate and
//! `peers/krafka-consume` (each includes this file with `#[path]`; the peers are separate crates
//! outside the workspace, so a shared library crate would pull them into one build graph).
//!
//! A worker is run as `<binary> --bootstrap B --topic T --partitions P --expected N
//! --isolation read_committed|read_uncommitted`. It assigns partitions `0..P` of `T` from the
//! beginning (no group), polls until it has counted `N` records (or nothing came for
//! [`IDLE_LIMIT`]) and prints, last, one line
//! `CONSUME_COMPARE_RESULT records=.. bytes=.. aborted=.. disorder=.. elapsed_s=.. cpu_s=..`.
//!
//! Checks done while counting ([`Tally`]): bytes are key + value lengths (what Java's
//! ConsumerPerformance counts); `aborted` counts values starting with b'a', the mark the bench
//! writes on records of aborted transactions (committed ones start with b'c', plain topics with
//! an uppercase letter), so read_committed must report 0; `disorder` counts records whose offset
//! is not above the previous one of its partition (duplicates or reordering), which must be 0.

//!
//! Flag and result-line helpers come from `peers/common/worker.rs`, which every includer of this
//! file also includes as `mod worker`.

// Each includer uses a different subset of this file.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::worker::{to_flags, Flags, ResultLine};

/// The prefix of the result line, so the parent finds it among any log output.
pub const RESULT_PREFIX: &str = "CONSUME_COMPARE_RESULT";

/// A worker gives up when no record arrived for this long.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Fetch settings every client is given (where it has the knob).
pub const FETCH_MAX_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_PARTITION_FETCH_BYTES: usize = 1024 * 1024;
pub const FETCH_MIN_BYTES: usize = 1;
pub const FETCH_MAX_WAIT_MS: u64 = 500;
pub const MAX_POLL_RECORDS: usize = 500;

/// What a worker is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeArgs {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub expected: u64,
    /// `read_committed` or `read_uncommitted`.
    pub isolation: String,
}

impl ConsumeArgs {
    pub fn read_committed(&self) -> bool {
        self.isolation == "read_committed"
    }

    /// The arguments as a worker command line (without the binary or mode flag).
    pub fn to_args(&self) -> Vec<String> {
        to_flags([
            ("--bootstrap", self.bootstrap.clone()),
            ("--topic", self.topic.clone()),
            ("--partitions", self.partitions.to_string()),
            ("--expected", self.expected.to_string()),
            ("--isolation", self.isolation.clone()),
        ])
    }

    /// Parses what [`ConsumeArgs::to_args`] wrote; every flag is required.
    pub fn parse(args: &[String]) -> Result<ConsumeArgs, String> {
        let f = Flags(args);
        let isolation = f.get("--isolation")?;
        if isolation != "read_committed" && isolation != "read_uncommitted" {
            return Err(format!("--isolation: unknown level {isolation}"));
        }
        Ok(ConsumeArgs {
            bootstrap: f.get("--bootstrap")?,
            topic: f.get("--topic")?,
            partitions: f.parsed("--partitions")?,
            expected: f.parsed("--expected")?,
            isolation,
        })
    }
}

/// Counts and checks records as a worker receives them.
#[derive(Debug)]
pub struct Tally {
    pub records: u64,
    pub bytes: u64,
    pub aborted: u64,
    pub disorder: u64,
    last_offset: Vec<i64>,
    start: Option<Instant>,
    last_record: Option<Instant>,
}

impl Tally {
    pub fn new(partitions: i32) -> Tally {
        Tally {
            records: 0,
            bytes: 0,
            aborted: 0,
            disorder: 0,
            last_offset: vec![-1; partitions.max(0) as usize],
            start: None,
            last_record: None,
        }
    }

    /// Starts the clock (call just before the first poll).
    pub fn start(&mut self) {
        self.start = Some(Instant::now());
    }

    /// Counts one record.
    #[inline]
    pub fn record(&mut self, partition: i32, offset: i64, key_len: usize, value: Option<&[u8]>) {
        self.records += 1;
        self.bytes += (key_len + value.map_or(0, <[u8]>::len)) as u64;
        if value.and_then(|v| v.first()) == Some(&b'a') {
            self.aborted += 1;
        }
        match self.last_offset.get_mut(partition as usize) {
            Some(last) if offset > *last => *last = offset,
            _ => self.disorder += 1,
        }
    }

    /// Marks the end of a poll that returned records.
    pub fn polled(&mut self) {
        self.last_record = Some(Instant::now());
    }

    /// True once `expected` records are counted, or nothing came for [`IDLE_LIMIT`].
    pub fn done(&self, expected: u64) -> bool {
        if self.records >= expected {
            return true;
        }
        let since = self.last_record.or(self.start);
        since.is_some_and(|t| t.elapsed() > IDLE_LIMIT)
    }

    /// The result, with elapsed time from [`Tally::start`] to the last poll that returned
    /// records; `cpu_s` is filled in by the caller.
    pub fn result(&self) -> ConsumeResult {
        let elapsed_s = match (self.start, self.last_record) {
            (Some(s), Some(e)) => (e - s).as_secs_f64(),
            _ => 0.0,
        };
        ConsumeResult {
            records: self.records,
            bytes: self.bytes,
            aborted: self.aborted,
            disorder: self.disorder,
            elapsed_s,
            cpu_s: 0.0,
        }
    }
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeResult {
    pub records: u64,
    /// Key + value bytes.
    pub bytes: u64,
    /// Records of aborted transactions seen (must be 0 under read_committed).
    pub aborted: u64,
    /// Records not above their partition's previous offset (must be 0).
    pub disorder: u64,
    /// From the first poll to the poll that returned the last record.
    pub elapsed_s: f64,
    /// The worker's own user+sys, process start to exit.
    pub cpu_s: f64,
}

impl ConsumeResult {
    pub fn line(&self) -> String {
        format!(
            "{RESULT_PREFIX} records={} bytes={} aborted={} disorder={} elapsed_s={:.6} cpu_s={:.3}",
            self.records, self.bytes, self.aborted, self.disorder, self.elapsed_s, self.cpu_s
        )
    }

    /// Finds and parses the result line in a worker's stdout.
    pub fn parse(stdout: &str) -> Option<ConsumeResult> {
        let line = ResultLine::find(stdout, RESULT_PREFIX)?;
        let field = |name: &str| line.field(name);
        Some(ConsumeResult {
            records: field("records")? as u64,
            bytes: field("bytes")? as u64,
            aborted: field("aborted")? as u64,
            disorder: field("disorder")? as u64,
            elapsed_s: field("elapsed_s")?,
            cpu_s: field("cpu_s")?,
        })
    }
}

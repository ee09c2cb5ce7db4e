//! The worker protocol of `benches/txn_compare.rs`, shared (with `#[path]`) by the bench's josefk
//! worker and the peers `peers/rdkafka-txn` and `peers/krafka-txn`.
//!
//! A worker is run as `<binary> --bootstrap B --topic T --txn-id ID --records R --per-txn K
//! --interval-ms I --size S --linger-ms L --batch-size BS --buffer-memory M`. It sends `R` keyless
//! records of `S` bytes. With an empty transactional id (`--txn-id -`) it is a plain idempotent
//! producer. Otherwise it calls `init_transactions`, then begins a transaction, sends, and
//! commits when the transaction holds `K` records (`K` = 0: no limit) or when `I` ms have passed
//! since it began (`I` = 0: no limit; checked after each send, as Java's ProducerPerformance
//! does), and once more at the end. Commit latency is the commit call until it returns.
//!
//! It prints, last, one line
//! `TXN_COMPARE_RESULT txns=.. records=.. failed=.. elapsed_s=.. p50_ms=.. p99_ms=.. cpu_s=..`:
//! transactions committed, records committed (idempotent: acknowledged), records failed, seconds
//! from the first send to the last commit's return (idempotent: last ack), commit latency
//! percentiles (idempotent: NaN) and the worker's own user+sys CPU.

//!
//! Flag and result-line helpers come from `peers/common/worker.rs`, which every includer of this
//! file also includes as `mod worker`.

#![allow(dead_code)]

use super::worker::{to_flags, Flags, ResultLine};

pub const TXN_RESULT_PREFIX: &str = "TXN_COMPARE_RESULT";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnArgs {
    pub bootstrap: String,
    pub topic: String,
    /// `None` = idempotent, not transactional.
    pub txn_id: Option<String>,
    pub records: u64,
    pub per_txn: u64,
    pub interval_ms: u64,
    pub size: usize,
    pub linger_ms: u64,
    pub batch_size: usize,
    pub buffer_memory: usize,
}

impl TxnArgs {
    pub fn to_args(&self) -> Vec<String> {
        to_flags([
            ("--bootstrap", self.bootstrap.clone()),
            ("--topic", self.topic.clone()),
            (
                "--txn-id",
                self.txn_id.clone().unwrap_or_else(|| "-".into()),
            ),
            ("--records", self.records.to_string()),
            ("--per-txn", self.per_txn.to_string()),
            ("--interval-ms", self.interval_ms.to_string()),
            ("--size", self.size.to_string()),
            ("--linger-ms", self.linger_ms.to_string()),
            ("--batch-size", self.batch_size.to_string()),
            ("--buffer-memory", self.buffer_memory.to_string()),
        ])
    }

    pub fn parse(args: &[String]) -> Result<TxnArgs, String> {
        let f = Flags(args);
        let txn_id = f.get("--txn-id")?;
        Ok(TxnArgs {
            bootstrap: f.get("--bootstrap")?,
            topic: f.get("--topic")?,
            txn_id: (txn_id != "-").then_some(txn_id),
            records: f.num("--records")?,
            per_txn: f.num("--per-txn")?,
            interval_ms: f.num("--interval-ms")?,
            size: f.num("--size")? as usize,
            linger_ms: f.num("--linger-ms")?,
            batch_size: f.num("--batch-size")? as usize,
            buffer_memory: f.num("--buffer-memory")? as usize,
        })
    }

    /// Whether the open transaction, begun `open_for` ago and holding `in_txn` records, is due.
    pub fn commit_due(&self, in_txn: u64, open_for: std::time::Duration) -> bool {
        (self.per_txn > 0 && in_txn >= self.per_txn)
            || (self.interval_ms > 0 && open_for.as_millis() as u64 >= self.interval_ms)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TxnResult {
    pub txns: u64,
    pub records: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_s: f64,
}

impl TxnResult {
    pub fn line(&self) -> String {
        format!(
            "{TXN_RESULT_PREFIX} txns={} records={} failed={} elapsed_s={:.6} p50_ms={:.3} p99_ms={:.3} cpu_s={:.3}",
            self.txns, self.records, self.failed, self.elapsed_s, self.p50_ms, self.p99_ms, self.cpu_s
        )
    }

    pub fn parse(stdout: &str) -> Option<TxnResult> {
        let line = ResultLine::find(stdout, TXN_RESULT_PREFIX)?;
        let field = |name: &str| line.field(name);
        Some(TxnResult {
            txns: field("txns")? as u64,
            records: field("records")? as u64,
            failed: field("failed")? as u64,
            elapsed_s: field("elapsed_s")?,
            p50_ms: field("p50_ms")?,
            p99_ms: field("p99_ms")?,
            cpu_s: field("cpu_s")?,
        })
    }
}

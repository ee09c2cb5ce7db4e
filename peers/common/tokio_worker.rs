//! What the tokio-based workers share (josefk's in the compare benches, `peers/krafka-bench`,
//! `peers/krafka-txn`, `peers/krafka-consume`): the runtime a worker runs on and the delivery
//! collector of the producers, one task that awaits delivery futures in send order and counts
//! them. Included with `#[path]` next to `peers/common/worker.rs` (as `mod worker`) by crates
//! that have tokio.

// Each includer uses a different subset of this file.
#![allow(dead_code)]

use std::future::Future;
use std::time::Instant;

use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use super::worker::Latencies;

/// Runs a worker's future on a multi-threaded runtime and returns its output with the process's
/// own user+sys CPU, process start to the runtime's shutdown.
pub fn block_on_measured<F: Future>(work: F) -> (F::Output, f64) {
    super::worker::with_own_cpu(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(work)
    })
}

/// What the collector saw.
pub struct Collected {
    pub acked: u64,
    pub failed: u64,
    /// When the last acknowledgement arrived.
    pub last_ack: Option<Instant>,
    /// Send → acknowledgement, for the messages that carried a send time.
    pub latencies: Latencies,
}

/// Spawns the collector. `split` takes a message apart into its send time (if latency is
/// measured) and its delivery future. Futures are awaited in send order by this one task; with
/// one broker every produce response arrives on one connection in request order, so FIFO order
/// is ack order and a measured latency is not inflated by a slow head. `who` prefixes the
/// message about the first failure; `capacity` presizes the latencies.
pub fn spawn_collector<M, F, T, E>(
    mut rx: Receiver<M>,
    split: fn(M) -> (Option<Instant>, F),
    capacity: usize,
    who: &'static str,
) -> JoinHandle<Collected>
where
    M: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut latencies = Latencies::with_capacity(capacity);
        let (mut acked, mut failed) = (0u64, 0u64);
        let mut last_ack = None;
        while let Some(message) = rx.recv().await {
            let (sent, delivery) = split(message);
            match delivery.await {
                Ok(_) => {
                    let now = Instant::now();
                    if let Some(sent) = sent {
                        latencies.record(now - sent);
                    }
                    acked += 1;
                    last_ack = Some(now);
                }
                Err(e) => {
                    if failed == 0 {
                        eprintln!("{who}: first delivery failure: {e}");
                    }
                    failed += 1;
                }
            }
        }
        Collected {
            acked,
            failed,
            last_ack,
            latencies,
        }
    })
}

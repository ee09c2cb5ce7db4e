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

/// Spawns the collector. Each message on `rx` carries one or more items (a `[item; 1]`, or a
/// [`Handoff`]'s chunk); `split` takes an item apart into its send time (if latency is measured)
/// and its delivery future. Futures are awaited in send order by this one task; with one broker
/// every produce response arrives on one connection in request order, so FIFO order is ack order
/// and a measured latency is not inflated by a slow head. `who` prefixes the message about the
/// first failure; `capacity` presizes the latencies.
pub fn spawn_collector<M, I, F, T, E>(
    mut rx: Receiver<M>,
    split: fn(I) -> (Option<Instant>, F),
    capacity: usize,
    who: &'static str,
) -> JoinHandle<Collected>
where
    M: IntoIterator<Item = I> + Send + 'static,
    M::IntoIter: Send,
    I: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut latencies = Latencies::with_capacity(capacity);
        let (mut acked, mut failed) = (0u64, 0u64);
        let mut last_ack = None;
        while let Some(message) = rx.recv().await {
            for item in message {
                let (sent, delivery) = split(item);
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
        }
        Collected {
            acked,
            failed,
            last_ack,
            latencies,
        }
    })
}

/// Hands a producer's delivery futures to the collector in chunks of `chunk` items: one channel
/// send per chunk instead of one per record. A bounded tokio channel costs a semaphore permit, a
/// queue slot and a wake-up per message, which in a 100 B throughput run was ~15 % of the josefk
/// worker's CPU (perf, 2026-12-07): bench bookkeeping that librdkafka's and franz-go's workers
/// do not pay (they count in a delivery callback). Fixed-rate runs use chunks of one, so every
/// future reaches the collector as soon as it is sent and latencies stay exact; in throughput
/// runs a future waits at most `chunk - 1` sends, far less than its batch's linger.
pub struct Handoff<I> {
    tx: tokio::sync::mpsc::Sender<Vec<I>>,
    chunk: Vec<I>,
    size: usize,
}

impl<I> Handoff<I> {
    /// A handoff of chunks of `size` items and its receiver, which holds at most `window` items.
    pub fn new(size: usize, window: usize) -> (Handoff<I>, Receiver<Vec<I>>) {
        let size = size.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel((window / size).max(1));
        let chunk = Vec::with_capacity(size);
        (Handoff { tx, chunk, size }, rx)
    }

    /// Queues `item`, sending the chunk once full; false once the collector is gone.
    pub async fn push(&mut self, item: I) -> bool {
        self.chunk.push(item);
        if self.chunk.len() < self.size {
            return true;
        }
        self.flush().await
    }

    /// Sends what is left and closes the channel, so the collector ends after it.
    pub async fn finish(mut self) {
        self.flush().await;
    }

    /// Sends what is queued; false once the collector is gone.
    async fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return true;
        }
        let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.size));
        self.tx.send(full).await.is_ok()
    }
}

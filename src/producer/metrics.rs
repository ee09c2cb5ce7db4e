//! The producer's metric hooks: what a request sent, what was retried or failed, and the snapshot
//! that adds the accumulator's buffer values to the client's cells. Called per request or per
//! batch outcome, never per record.

use std::sync::atomic::Ordering::Relaxed;

use super::sender::Shared;
use crate::metrics::registry::Registry;
use crate::metrics::ProducerMetrics;
use crate::protocol::compression::Compression;

/// A batch as it leaves in a produce request.
pub(crate) struct SentBatch<'a> {
    pub(crate) topic: &'a str,
    pub(crate) records: usize,
    /// Encoded (compressed) bytes.
    pub(crate) bytes: usize,
    /// The accumulator's estimate of its uncompressed size.
    pub(crate) uncompressed: usize,
}

/// What happened to a batch's records, for the per-topic counters.
#[derive(Clone, Copy)]
pub(crate) enum RecordOutcome {
    Retried,
    Failed,
}

impl Shared {
    pub(crate) fn registry(&self) -> &Registry {
        &self.cluster.pool().metrics().0
    }

    /// The producer's snapshot (one lock of the producer state, for the buffer values).
    pub(crate) fn metrics_snapshot(&self) -> ProducerMetrics {
        let mut m = ProducerMetrics::read(self.registry());
        let used = self.lock().accumulator.used_memory();
        m.buffer_total_bytes = self.config.buffer_memory as u64;
        m.buffer_available_bytes = self.config.buffer_memory.saturating_sub(used) as u64;
        m
    }

    /// Counts one produce request's batches (Java `Sender.updateProduceRequestMetrics`).
    pub(crate) fn count_sent(&self, batches: &[SentBatch<'_>]) {
        if !self.registry().enabled {
            return;
        }
        let p = &self.registry().producer;
        let cells = p.topics(batches.iter().map(|b| b.topic));
        let mut records = 0;
        for (batch, topic) in batches.iter().zip(cells) {
            records += batch.records;
            topic
                .record_send_total
                .fetch_add(batch.records as u64, Relaxed);
            topic.byte_total.fetch_add(batch.bytes as u64, Relaxed);
            p.batch_size.record(batch.bytes as u64);
            let ratio_ppm = match self.compression {
                Compression::None => 1_000_000,
                _ => (batch.bytes as u64 * 1_000_000) / batch.uncompressed.max(1) as u64,
            };
            p.compression_rate.record(ratio_ppm);
        }
        if !batches.is_empty() {
            p.records_per_request.record(records as u64);
        }
    }

    /// Counts `records` of `topic` retried or failed.
    pub(crate) fn count_records(&self, topic: &str, records: usize, outcome: RecordOutcome) {
        if !self.registry().enabled {
            return;
        }
        let cells = self.registry().producer.topics(std::iter::once(topic));
        let topic = &cells[0];
        let counter = match outcome {
            RecordOutcome::Retried => &topic.record_retry_total,
            RecordOutcome::Failed => &topic.record_error_total,
        };
        counter.fetch_add(records as u64, Relaxed);
    }
}

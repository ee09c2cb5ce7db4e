//! The consumer's metric hooks: lag per partition, assignment size, and the snapshot. Called per
//! fetch answer, per partition handed out and per assignment change, never per record.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FetchResponse;

use super::{Consumer, PartitionState};
use crate::metrics::registry::nanos;
use crate::metrics::registry::ConsumerCells;
use crate::metrics::ConsumerMetrics;
use crate::record::TopicPartition;

impl Consumer {
    /// A snapshot of this consumer's metrics (Java names; see [`crate::metrics`]): records
    /// consumed, fetches, lag per assigned partition, commits, rebalances, connections.
    pub fn metrics(&self) -> ConsumerMetrics {
        ConsumerMetrics::read(&self.cluster.pool().metrics().0)
    }

    pub(super) fn cells(&self) -> &ConsumerCells {
        &self.cluster.pool().metrics().0.consumer
    }

    /// `poll` returns `records`.
    pub(super) fn count_consumed(&self, records: usize) {
        let registry = &self.cluster.pool().metrics().0;
        if registry.enabled {
            let total = &registry.consumer.records_consumed_total;
            total.fetch_add(records as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A `poll` starts: its start and the time since the previous one started (`None` with
    /// `metrics.enabled=false`).
    pub(super) fn poll_started(&self) -> Option<(Instant, Duration)> {
        let registry = &self.cluster.pool().metrics().0;
        if !registry.enabled {
            return None;
        }
        let now = Instant::now();
        let between = registry.consumer.poll_started(registry.started(), now);
        Some((now, between))
    }

    pub(super) fn poll_ended(&self, started: Option<(Instant, Duration)>) {
        if let Some((at, between)) = started {
            self.cells().poll_ended(at.elapsed(), between);
        }
    }

    /// The assignment changed: `assigned-partitions`, and no lag kept for partitions gone.
    pub(super) fn assignment_changed(&self) {
        self.cells().set_assignment(self.assignment.keys());
    }
}

/// Counts one answered fetch: latency, throttle, record bytes.
pub(super) fn count_fetch(cells: &ConsumerCells, response: &FetchResponse, took: Duration) {
    cells.fetch_latency.record(nanos(took));
    cells
        .fetch_throttle_time
        .record(response.throttle_time_ms.max(0) as u64);
    let fetched: usize = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref().map(|r| r.len()))
        .sum();
    cells.fetch_size.record(fetched as u64);
}

/// Counts `bytes` of fetched data the consumer keeps for the application (`bytes-consumed-total`;
/// data dropped as stale, unassigned or not asked for is not counted, as in Java, where the bytes
/// are counted as fetched data is drained).
pub(super) fn count_kept(cells: &ConsumerCells, bytes: usize) {
    cells.bytes_consumed_total.fetch_add(bytes as u64, Relaxed);
}

/// Records `tp`'s lag from its log end as last fetched and its position (Java
/// `SubscriptionState.partitionLag`), when both are known.
pub(super) fn note_lag(cells: &ConsumerCells, tp: &TopicPartition, state: &PartitionState) {
    if let (Some(end), Some(position)) = (state.end_offset, state.position) {
        cells.set_lag(tp, lag(end, position));
    }
}

/// Records between `position` and `end`, never negative. Both come from the broker (the end
/// from a fetch answer, the position from ListOffsets or fetched batches), so their difference
/// may not fit in an i64.
fn lag(end: i64, position: i64) -> i64 {
    end.saturating_sub(position).max(0)
}

#[cfg(test)]
mod tests {
    use super::lag;

    #[test]
    fn lag_of_hostile_offsets_saturates_instead_of_overflowing() {
        assert_eq!(lag(10, 4), 6);
        assert_eq!(lag(4, 10), 0);
        assert_eq!(lag(i64::MAX, -1), i64::MAX);
        assert_eq!(lag(i64::MAX, i64::MIN), i64::MAX);
        assert_eq!(lag(i64::MIN, i64::MAX), 0);
    }
}

//! The consumer's metric hooks: lag per partition, assignment size, and the snapshot. Called per
//! fetch answer, per partition handed out and per assignment change, never per record.

use super::{Consumer, PartitionState};
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

    /// The assignment changed: `assigned-partitions`, and no lag kept for partitions gone.
    pub(super) fn assignment_changed(&self) {
        self.cells().set_assignment(self.assignment.keys());
    }
}

/// Records `tp`'s lag from its log end as last fetched and its position (Java
/// `SubscriptionState.partitionLag`), when both are known.
pub(super) fn note_lag(cells: &ConsumerCells, tp: &TopicPartition, state: &PartitionState) {
    if let (Some(end), Some(position)) = (state.end_offset, state.position) {
        cells.set_lag(tp, (end - position).max(0));
    }
}

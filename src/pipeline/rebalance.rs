//! What the pipeline learns of rebalances: a [`RebalanceListener`] that records revoked and lost
//! partitions for the runner, which reads them after every `poll` (the only place the consumer
//! calls its listener).
//!
//! Policy (see ARCHITECTURE.md, "Pipeline"): a transaction open when any partition is revoked or
//! lost is aborted, and every assigned partition rewound to its committed offset. Committing
//! instead, before the revocation completes, is not possible here: the listener is called
//! synchronously inside `poll`, and a commit is a network round trip (EndTxn, which waits for
//! every record of the transaction). franz-go's `GroupTransactSession` makes the same choice.

use std::sync::{Arc, Mutex};

use crate::consumer::RebalanceListener;
use crate::record::TopicPartition;

/// Revocations and losses since the runner last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RebalanceEvents {
    pub(crate) revoked: Vec<TopicPartition>,
    pub(crate) lost: Vec<TopicPartition>,
    pub(crate) assigned: Vec<TopicPartition>,
}

impl RebalanceEvents {
    /// Whether partitions left this member (orderly or not): an open transaction must abort.
    pub(crate) fn partitions_left(&self) -> bool {
        !self.revoked.is_empty() || !self.lost.is_empty()
    }
}

/// The listener installed on the pipeline's consumer; the runner keeps a clone of `events`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    events: Arc<Mutex<RebalanceEvents>>,
}

impl Recorder {
    /// Takes what happened since the last call.
    pub(crate) fn take(&self) -> RebalanceEvents {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn record(&self, f: impl FnOnce(&mut RebalanceEvents)) {
        f(&mut self.events.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.record(|e| e.revoked.extend_from_slice(partitions));
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.record(|e| e.assigned.extend_from_slice(partitions));
    }

    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.record(|e| e.lost.extend_from_slice(partitions));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_once_and_only_departures_force_an_abort() {
        let recorder = Recorder::default();
        let mut listener = recorder.clone();
        listener.on_partitions_assigned(&[TopicPartition::new("t", 0)]);
        let events = recorder.take();
        assert!(!events.partitions_left());
        assert_eq!(events.assigned, vec![TopicPartition::new("t", 0)]);
        listener.on_partitions_lost(&[TopicPartition::new("t", 1)]);
        let events = recorder.take();
        assert!(events.partitions_left());
        assert_eq!(events.lost, vec![TopicPartition::new("t", 1)]);
        assert!(events.revoked.is_empty(), "lost is not reported as revoked");
        assert_eq!(recorder.take(), RebalanceEvents::default());
        listener.on_partitions_revoked(&[TopicPartition::new("t", 2)]);
        assert!(recorder.take().partitions_left());
    }
}

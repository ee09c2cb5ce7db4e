//! One partition's log in the mock cluster: record batches kept as the bytes the client sent
//! (with the base offset the mock assigned), the high watermark, the last stable offset, and the
//! transactions aborted on it.

use bytes::{Bytes, BytesMut};

use crate::protocol::records::{
    encode_batch, set_base_offset, BatchOptions, RecordBatches, RecordInput,
};
use crate::record::Header;

/// One stored batch.
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) bytes: Bytes,
}

/// A transaction aborted on this partition: producer, first offset, offset of the abort marker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AbortedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
}

/// A partition's log and leadership.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) batches: Vec<StoredBatch>,
    pub(crate) log_start: i64,
    pub(crate) log_end: i64,
    /// Open transactions on this partition: (producer id, first offset).
    pub(crate) open_txns: Vec<(i64, i64)>,
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl PartitionLog {
    pub(crate) fn new(leader: i32) -> Self {
        PartitionLog {
            leader,
            leader_epoch: 0,
            batches: Vec::new(),
            log_start: 0,
            log_end: 0,
            open_txns: Vec::new(),
            aborted: Vec::new(),
        }
    }

    /// With one replica the high watermark is the log end.
    pub(crate) fn high_watermark(&self) -> i64 {
        self.log_end
    }

    /// The first offset of the oldest open transaction, or the high watermark.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.open_txns
            .iter()
            .map(|&(_, first)| first)
            .min()
            .unwrap_or(self.log_end)
            .min(self.log_end)
    }

    /// Appends one batch (already validated), stamping its base offset and leader epoch; returns
    /// the base offset.
    pub(crate) fn append(&mut self, batch: &[u8], record_span: i64, max_timestamp: i64) -> i64 {
        let base = self.log_end;
        let mut owned = BytesMut::from(batch);
        // The batch was checked to be exactly one v2 batch, so these cannot fail.
        let _ = set_base_offset(&mut owned, base);
        owned[12..16].copy_from_slice(&self.leader_epoch.to_be_bytes());
        self.batches.push(StoredBatch {
            base_offset: base,
            last_offset: base + record_span - 1,
            max_timestamp,
            bytes: owned.freeze(),
        });
        self.log_end = base + record_span;
        base
    }

    /// Notes that `producer_id` wrote its first transactional batch here at `offset`.
    pub(crate) fn open_txn(&mut self, producer_id: i64, offset: i64) {
        if !self.open_txns.iter().any(|&(p, _)| p == producer_id) {
            self.open_txns.push((producer_id, offset));
        }
    }

    /// Writes a commit or abort marker for `producer_id` and closes its transaction here.
    pub(crate) fn write_marker(&mut self, producer_id: i64, epoch: i16, commit: bool, now: i64) {
        let first = self
            .open_txns
            .iter()
            .find(|&&(p, _)| p == producer_id)
            .map(|&(_, first)| first);
        self.open_txns.retain(|&(p, _)| p != producer_id);
        let opts = BatchOptions {
            producer_id,
            producer_epoch: epoch,
            transactional: true,
            control: true,
            ..BatchOptions::default()
        };
        // Control record: key = version 0 + type (0 abort, 1 commit); value = version 0 +
        // coordinator epoch.
        let key = [0, 0, 0, u8::from(commit)];
        let value = [0u8, 0, 0, 0, 0, 0];
        let mut out = BytesMut::new();
        let record = RecordInput::<Header> {
            timestamp: now,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        };
        if encode_batch(&mut out, &opts, [record]).is_err() {
            return;
        }
        let marker_offset = self.append(&out, 1, now);
        if !commit {
            if let Some(first_offset) = first {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: marker_offset,
                });
            }
        }
    }

    /// Index of the batch holding `offset` (or the first after it).
    pub(crate) fn batch_index_from(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.last_offset < offset)
    }

    /// The offset and timestamp of the first record whose timestamp is at least `ts`, as Kafka's
    /// ListOffsets answers (the first batch whose largest timestamp qualifies is decoded).
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        let batch = self
            .batches
            .iter()
            .find(|b| b.max_timestamp >= ts && b.base_offset >= self.log_start)?;
        let exact = RecordBatches::new(batch.bytes.clone())
            .next()
            .and_then(|b| b.ok())
            .and_then(|b| b.records().ok())
            .and_then(|mut records| records.find_map(|r| r.ok().filter(|r| r.timestamp >= ts)))
            .map(|r| (r.offset, r.timestamp));
        // A batch that cannot be decoded (only the client's word for its contents) answers with
        // its first offset.
        Some(exact.unwrap_or((batch.base_offset, batch.max_timestamp)))
    }
}

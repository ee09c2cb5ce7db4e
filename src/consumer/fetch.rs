//! One partition's fetched data on its way to the user (Java's `CompletedFetch`): the records bytes
//! of one Fetch response partition, decoded batch by batch as records are asked for, filtered for
//! `read_committed` by [`TransactionFilter`], and the position that results.
//!
//! IO-free: it holds the response's `Bytes` and hands out zero-copy slices of them.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::error::{BrokerRef, Error};
use crate::protocol::records::{
    ControlRecordType, DecodeOptions, Headers, RecordBatch, RecordBatches, Records, RecordsError,
    TimestampType,
};
use crate::record::{IsolationLevel, TopicPartition};
use crate::state::isolation::{
    AbortedTransaction, BatchAction, ControlMarker, FetchedBatch, TransactionFilter,
};

/// A record handed to the application by [`Consumer::poll`](super::Consumer::poll).
///
/// Key, value and header bytes are slices of the fetched response buffer (or, for compressed
/// batches, of the one buffer the batch was decompressed into): no per-record copy. Holding a record
/// keeps that buffer alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic (shared by every record of the partition).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// Milliseconds since the epoch: the producer's (`CreateTime`) or the broker's append time.
    pub timestamp: i64,
    /// What `timestamp` means.
    pub timestamp_type: TimestampType,
    /// The epoch of the leader that appended the record, when the batch carries one.
    pub leader_epoch: Option<i32>,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// The headers, in order, duplicates kept (iterate with [`Headers::iter`], or
    /// [`Headers::to_vec`] for owned [`Header`](crate::Header)s).
    pub headers: Headers,
}

impl ConsumerRecord {
    /// The record's topic-partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// The batch whose records are being handed out.
#[derive(Debug)]
struct CurrentBatch {
    records: Records,
    start: i64,
    end: i64,
    timestamp_type: TimestampType,
    leader_epoch: Option<i32>,
}

/// One partition's data from one Fetch response.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    pub(crate) tp: TopicPartition,
    topic: Arc<str>,
    broker: Option<BrokerRef>,
    /// The position after everything handed out or skipped so far.
    next_offset: i64,
    batches: RecordBatches,
    filter: TransactionFilter,
    current: Option<CurrentBatch>,
    /// No more batches will be read (end of data, LSO reached, or an error).
    exhausted: bool,
    /// A decoding error met after the records before it were handed out; reported next.
    error: Option<Error>,
}

impl PartitionFetch {
    /// Data of `tp` fetched from `fetch_offset`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tp: TopicPartition,
        broker: Option<BrokerRef>,
        fetch_offset: i64,
        data: Bytes,
        isolation: IsolationLevel,
        last_stable_offset: i64,
        aborted: impl IntoIterator<Item = AbortedTransaction>,
        check_crcs: bool,
    ) -> Self {
        let options = DecodeOptions {
            check_crc: check_crcs,
            ..DecodeOptions::default()
        };
        PartitionFetch {
            topic: Arc::from(tp.topic.as_str()),
            tp,
            broker,
            next_offset: fetch_offset,
            batches: RecordBatches::with_options(data, options),
            filter: TransactionFilter::new(isolation, fetch_offset, last_stable_offset, aborted),
            current: None,
            exhausted: false,
            error: None,
        }
    }

    /// The partition's position after what was handed out (and skipped) so far.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Whether everything was handed out (or an error is waiting in [`Self::take_error`]).
    pub(crate) fn is_drained(&self) -> bool {
        self.exhausted && self.current.is_none()
    }

    /// The error that stopped decoding, once the records before it were handed out.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    /// Whether an error is waiting.
    pub(crate) fn has_error(&self) -> bool {
        self.error.is_some()
    }

    /// Appends records to `out` until it holds `limit` records or this data is drained. Skipped
    /// batches (aborted, control, already consumed) advance the position without output. A
    /// corrupt batch stops the walk; the error waits in [`Self::take_error`] and the position
    /// stays at the bad batch.
    pub(crate) fn drain(&mut self, limit: usize, out: &mut Vec<ConsumerRecord>) {
        while out.len() < limit {
            if let Some(current) = &mut self.current {
                match current.records.next() {
                    Some(Ok(r)) => {
                        if r.offset < current.start {
                            continue;
                        }
                        if r.offset >= current.end {
                            self.next_offset = self.next_offset.max(current.end);
                            self.current = None;
                            continue;
                        }
                        self.next_offset = self.next_offset.max(r.offset + 1);
                        out.push(ConsumerRecord {
                            topic: self.topic.clone(),
                            partition: self.tp.partition,
                            offset: r.offset,
                            timestamp: r.timestamp,
                            timestamp_type: current.timestamp_type,
                            leader_epoch: current.leader_epoch,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                    }
                    Some(Err(e)) => {
                        let at = self.next_offset;
                        self.fail(e, at);
                    }
                    None => {
                        self.next_offset = self.next_offset.max(current.end);
                        self.current = None;
                    }
                }
                continue;
            }
            if self.exhausted {
                break;
            }
            match self.batches.next() {
                None => self.exhausted = true,
                Some(Err(e)) => {
                    let at = self.next_offset;
                    self.fail(e, at);
                }
                Some(Ok(batch)) => {
                    if let Err(e) = self.start_batch(&batch) {
                        self.fail(e, batch.base_offset);
                    }
                }
            }
        }
    }

    /// Runs one batch header through the transaction filter and, if it is delivered, opens its
    /// records.
    fn start_batch(&mut self, batch: &RecordBatch) -> Result<(), RecordsError> {
        let control = if batch.is_control {
            // Compaction can empty a control batch; like Java, that is not an abort marker.
            let marker = if batch.record_count == 0 {
                ControlMarker::Other
            } else {
                match batch.control_record()?.map(|c| c.kind) {
                    Some(ControlRecordType::Abort) => ControlMarker::Abort,
                    Some(ControlRecordType::Commit) => ControlMarker::Commit,
                    _ => ControlMarker::Other,
                }
            };
            Some(marker)
        } else {
            None
        };
        let header = FetchedBatch {
            base_offset: batch.base_offset,
            last_offset: batch.last_offset(),
            producer_id: batch.producer_id,
            is_transactional: batch.is_transactional,
            control,
        };
        match self.filter.next_batch(&header) {
            BatchAction::Deliver { start, end } => {
                self.current = Some(CurrentBatch {
                    records: batch.records()?,
                    start,
                    end,
                    timestamp_type: batch.timestamp_type,
                    leader_epoch: (batch.partition_leader_epoch >= 0)
                        .then_some(batch.partition_leader_epoch),
                });
            }
            BatchAction::Skip(_) => {
                self.next_offset = self.next_offset.max(batch.next_offset());
            }
            BatchAction::Stop => self.exhausted = true,
        }
        Ok(())
    }

    fn fail(&mut self, e: RecordsError, at: i64) {
        self.current = None;
        self.exhausted = true;
        self.error = Some(Error::Protocol {
            api: Some(ApiKey::Fetch),
            broker: self.broker.clone(),
            message: format!(
                "fetched data of partition {} is invalid at offset {at}: {e}",
                self.tp
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::{encode_batch, ControlRecord, RecordInput};

    fn batch(
        base_offset: i64,
        n: usize,
        producer_id: i64,
        transactional: bool,
        control: Option<bool>,
    ) -> Bytes {
        let mut out = bytes::BytesMut::new();
        let (key, value) = ControlRecord::marker(control.unwrap_or(false), 0);
        let records: Vec<RecordInput<'_, crate::record::Header>> = match control {
            Some(_) => vec![RecordInput {
                timestamp: 0,
                key: Some(&key),
                value: Some(&value),
                headers: &[],
            }],
            None => (0..n)
                .map(|_| RecordInput {
                    timestamp: 1,
                    key: Some(b"k"),
                    value: Some(b"v"),
                    headers: &[],
                })
                .collect(),
        };
        let options = crate::protocol::records::BatchOptions {
            base_offset,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            base_sequence: if producer_id >= 0 { 0 } else { -1 },
            transactional,
            control: control.is_some(),
            ..Default::default()
        };
        encode_batch(&mut out, &options, records).expect("encodes");
        out.freeze()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        let mut all = bytes::BytesMut::new();
        for p in parts {
            all.extend_from_slice(p);
        }
        all.freeze()
    }

    fn fetch(
        data: Bytes,
        offset: i64,
        isolation: IsolationLevel,
        aborted: &[AbortedTransaction],
    ) -> PartitionFetch {
        PartitionFetch::new(
            TopicPartition::new("t", 0),
            None,
            offset,
            data,
            isolation,
            -1,
            aborted.iter().copied(),
            true,
        )
    }

    #[test]
    fn read_committed_skips_aborted_data_and_markers_but_advances() {
        // pid 7: aborted txn at 0..=2, ABORT marker at 3; pid 8: committed at 4..=5, COMMIT at 6.
        let data = concat(&[
            batch(0, 3, 7, true, None),
            batch(3, 1, 7, true, Some(false)),
            batch(4, 2, 8, true, None),
            batch(6, 1, 8, true, Some(true)),
        ]);
        let mut f = fetch(
            data.clone(),
            0,
            IsolationLevel::ReadCommitted,
            &[AbortedTransaction::new(7, 0)],
        );
        let mut out = Vec::new();
        f.drain(100, &mut out);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![4, 5]);
        assert_eq!(f.next_offset(), 7);
        assert!(f.is_drained());

        let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
        let mut out = Vec::new();
        f.drain(100, &mut out);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 4, 5]);
        assert_eq!(f.next_offset(), 7);
    }

    #[test]
    fn only_aborted_data_still_advances_the_position() {
        let data = concat(&[
            batch(10, 4, 3, true, None),
            batch(14, 1, 3, true, Some(false)),
        ]);
        let mut f = fetch(
            data,
            10,
            IsolationLevel::ReadCommitted,
            &[AbortedTransaction::new(3, 10)],
        );
        let mut out = Vec::new();
        f.drain(100, &mut out);
        assert!(out.is_empty());
        assert_eq!(f.next_offset(), 15);
    }

    #[test]
    fn limit_and_fetch_offset_inside_a_batch_are_respected() {
        let data = concat(&[batch(0, 5, -1, false, None), batch(5, 5, -1, false, None)]);
        let mut f = fetch(data, 2, IsolationLevel::ReadUncommitted, &[]);
        let mut out = Vec::new();
        f.drain(4, &mut out);
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2, 3, 4, 5]);
        assert_eq!(f.next_offset(), 6);
        assert!(!f.is_drained());
        out.clear();
        f.drain(100, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(f.next_offset(), 10);
        assert!(f.is_drained());
    }

    #[test]
    fn truncated_tail_is_normal_and_crc_error_names_partition_and_offset() {
        let good = batch(0, 2, -1, false, None);
        let next = batch(2, 2, -1, false, None);
        let data = concat(&[good.clone(), next.slice(..next.len() - 3)]);
        let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
        let mut out = Vec::new();
        f.drain(100, &mut out);
        assert_eq!(out.len(), 2);
        assert!(f.take_error().is_none());
        assert_eq!(f.next_offset(), 2);

        let mut corrupt = next.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let data = concat(&[good, Bytes::from(corrupt)]);
        let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
        let mut out = Vec::new();
        f.drain(100, &mut out);
        assert_eq!(out.len(), 2, "records before the bad batch are delivered");
        assert_eq!(f.next_offset(), 2, "position stays at the bad batch");
        let text = f.take_error().expect("crc error").to_string();
        assert!(text.contains("t-0"), "{text}");
        assert!(text.contains("offset 2"), "{text}");
        assert!(text.contains("CRC"), "{text}");
    }
}

//! One partition's fetched data on its way to the user (Java's `CompletedFetch`): the records bytes
//! of one Fetch response partition, decoded batch by batch as records are asked for, filtered for
//! `read_committed` by `TransactionFilter`, and the position that results.
//!
//! IO-free: it holds the response's `Bytes` and hands out zero-copy slices of them.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{BrokerRef, Error};
use crate::protocol::compression::{Compression, CompressionError};
use crate::protocol::records::decode::MAX_CONTROL_BATCH_BYTES;
use crate::protocol::records::{
    ControlRecordType, DecodeOptions, Headers, RecordBatch, RecordBatches, Records, RecordsError,
    TimestampType,
};
use crate::record::{IsolationLevel, TopicPartition};
use crate::state::isolation::{
    AbortedTransaction, BatchAction, ControlMarker, FetchedBatch, SkipReason, TransactionFilter,
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

    /// The W3C trace context the producer sent with this record (its last valid-looking
    /// `traceparent` header), to link this record's processing to the producer's span. `None`
    /// when absent or malformed. See [`crate::trace_context`].
    pub fn trace_parent(&self) -> Option<crate::trace_context::TraceParent> {
        let value = self.headers.last(crate::trace_context::TRACEPARENT)??;
        crate::trace_context::TraceParent::parse(std::str::from_utf8(&value).ok()?)
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
    /// Bytes decompression allocated for this batch (0 when uncompressed): what each of its
    /// records keeps alive.
    decompressed: usize,
}

/// A batch the filter delivers whose records were not opened yet: it did not fit into what was
/// left of the last poll's decompression budget.
#[derive(Debug)]
struct UnopenedBatch {
    batch: RecordBatch,
    start: i64,
    end: i64,
}

/// One `poll`'s allowance of decompressed bytes (`max.poll.decompressed.bytes`): the records a
/// poll returns keep their batches' decompressed buffers alive, so the sum of those buffers is
/// what one poll can pin in memory. Uncompressed records are slices of the fetch response, whose
/// size `fetch.max.bytes` bounds already, so they are not counted.
#[derive(Debug)]
pub(crate) struct DecompressBudget {
    limit: usize,
    held: usize,
    full: bool,
}

impl DecompressBudget {
    /// A budget of `limit` bytes, nothing spent.
    pub(crate) fn new(limit: usize) -> Self {
        DecompressBudget {
            limit,
            held: 0,
            full: false,
        }
    }

    /// Whether a batch was held back because it did not fit: the poll should return what it has.
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.held)
    }

    /// Counts decompression whose output is dropped at once (a compressed control batch read for
    /// its marker): nothing stays held, but a fetch of many such batches is worked through over
    /// several polls instead of in one.
    fn spend(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.held = self.held.saturating_add(bytes);
        if self.held >= self.limit {
            self.full = true;
        }
    }

    /// Charges a batch of `bytes` already decompressed (carried over from an earlier poll). Fails,
    /// marking the budget full, when it does not fit beside what this poll already holds.
    fn charge(&mut self, bytes: usize) -> bool {
        if self.held > 0 && bytes > self.room() {
            self.full = true;
            return false;
        }
        self.held = self.held.saturating_add(bytes);
        true
    }
}

/// One partition's data from one Fetch response.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    pub(crate) tp: TopicPartition,
    topic: Arc<str>,
    broker: Option<BrokerRef>,
    /// The position after everything handed out or skipped so far.
    next_offset: i64,
    /// Where this data was fetched from: the position did not move if `next_offset` still is.
    fetch_offset: i64,
    batches: RecordBatches,
    filter: TransactionFilter,
    /// `read_committed`: only then are control markers read (read_uncommitted skips their
    /// batches unopened, as Java does, so a malformed marker cannot stop the partition).
    reads_markers: bool,
    current: Option<CurrentBatch>,
    unopened: Option<UnopenedBatch>,
    /// Batches skipped because every record in them is below the fetch offset (re-sent), and the
    /// last offset of the last of them.
    resent_batches: usize,
    resent_up_to: i64,
    /// The filter stopped at the last stable offset.
    stopped_at_lso: bool,
    last_stable_offset: i64,
    /// No more batches will be read (end of data, LSO reached, or an error).
    exhausted: bool,
    /// A decoding error met after the records before it were handed out; reported next.
    error: Option<Error>,
}

impl PartitionFetch {
    /// Data of `tp` fetched from `fetch_offset`. No batch may decompress to more than
    /// `max_decompressed` bytes.
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
        max_decompressed: usize,
    ) -> Self {
        let options = DecodeOptions {
            check_crc: check_crcs,
            max_decompressed_bytes: max_decompressed,
        };
        PartitionFetch {
            topic: Arc::from(tp.topic.as_str()),
            tp,
            broker,
            next_offset: fetch_offset,
            fetch_offset,
            batches: RecordBatches::with_options(data, options),
            filter: TransactionFilter::new(isolation, fetch_offset, last_stable_offset, aborted),
            reads_markers: isolation == IsolationLevel::ReadCommitted,
            current: None,
            unopened: None,
            resent_batches: 0,
            resent_up_to: -1,
            stopped_at_lso: false,
            last_stable_offset,
            exhausted: false,
            error: None,
        }
    }

    /// Once drained without error: why the position did not move, or `None` if it did. A broker
    /// that keeps answering like this would have the consumer fetch the same data forever.
    pub(crate) fn stall(&self) -> Option<String> {
        if self.next_offset != self.fetch_offset || !self.is_drained() || self.error.is_some() {
            return None;
        }
        let mut why = Vec::new();
        if self.resent_batches > 0 {
            why.push(format!(
                "only records before the position ({} batch(es) up to offset {}, already consumed)",
                self.resent_batches, self.resent_up_to
            ));
        }
        if self.stopped_at_lso {
            why.push(format!(
                "only data at or past the last stable offset {}",
                self.last_stable_offset
            ));
        }
        if let Some((base_offset, declared)) = self.batches.truncated_batch() {
            why.push(format!(
                "a truncated batch: the batch at offset {base_offset} declares {declared} bytes \
                 but only {} arrived",
                self.batches.remaining()
            ));
        }
        if why.is_empty() {
            why.push("no complete batch".to_owned());
        }
        Some(why.join(", then "))
    }

    /// The broker the data came from.
    pub(crate) fn broker(&self) -> Option<&BrokerRef> {
        self.broker.as_ref()
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
    ///
    /// Each batch decompressed for this call, or carried over from an earlier one, is charged to
    /// `budget`; a batch that does not fit beside what the budget already holds waits for the next
    /// call (and marks the budget full), and one larger than the whole budget is an error.
    pub(crate) fn drain(
        &mut self,
        limit: usize,
        budget: &mut DecompressBudget,
        out: &mut Vec<ConsumerRecord>,
    ) {
        if let Some(current) = &self.current {
            if !budget.charge(current.decompressed) {
                return;
            }
        }
        while out.len() < limit && !budget.is_full() {
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
            if let Some(waiting) = self.unopened.take() {
                self.open(waiting, budget);
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
                    // The most its marker's decoding can decompress: an upper bound, since the
                    // decoder does not report how much it did.
                    let control_work = if batch.is_control && batch.needs_decompression() {
                        MAX_CONTROL_BATCH_BYTES
                    } else {
                        0
                    };
                    match self.start_batch(batch) {
                        Ok(Some(deliver)) => self.open(deliver, budget),
                        Ok(None) => {}
                        Err((e, at)) => self.fail(e, at),
                    }
                    budget.spend(control_work);
                }
            }
        }
        self.finish_if_nothing_left();
    }

    /// A drain that stopped at `limit` right after the last record would leave this data looking
    /// undrained until the next call. Looking ahead (without decoding anything) lets the poll that
    /// hands out the last record see it drained, so the consumer fetches the partition again
    /// before its caller polls next. Anything unusual (bytes after a batch's last record, a
    /// partial batch) is left to the next `drain` to report as before.
    fn finish_if_nothing_left(&mut self) {
        if let Some(current) = &self.current {
            if current.records.finished() {
                self.next_offset = self.next_offset.max(current.end);
                self.current = None;
            }
        }
        if self.current.is_none()
            && self.unopened.is_none()
            && self.error.is_none()
            && !self.exhausted
            && self.batches.remaining() == 0
        {
            self.exhausted = true;
        }
    }

    /// Decompresses (if need be) a delivered batch within what is left of `budget` and makes it
    /// the current batch; or leaves it for the next poll when it does not fit beside what this
    /// poll already holds; or fails when it could not fit even alone.
    fn open(&mut self, deliver: UnopenedBatch, budget: &mut DecompressBudget) {
        let batch = &deliver.batch;
        let records = if batch.needs_decompression() {
            batch.records_within(budget.room())
        } else {
            batch.records()
        };
        let records = match records {
            Ok(records) => records,
            Err(RecordsError::Decompress {
                source: CompressionError::TooLarge { .. },
                ..
            }) if budget.held > 0 => {
                budget.full = true;
                self.unopened = Some(deliver);
                return;
            }
            Err(RecordsError::Decompress {
                source: CompressionError::TooLarge { codec, .. },
                ..
            }) => {
                self.fail_too_large(codec, batch, budget.limit);
                return;
            }
            Err(e) => {
                self.fail(e, batch.base_offset);
                return;
            }
        };
        let decompressed = if batch.needs_decompression() {
            records.byte_len()
        } else {
            0
        };
        budget.held = budget.held.saturating_add(decompressed);
        self.current = Some(CurrentBatch {
            records,
            start: deliver.start,
            end: deliver.end,
            timestamp_type: batch.timestamp_type,
            leader_epoch: (batch.partition_leader_epoch >= 0)
                .then_some(batch.partition_leader_epoch),
            decompressed,
        });
    }

    /// Runs one batch header through the transaction filter: the batch to open if it is
    /// delivered, `None` if it is skipped (or the filter stopped at the LSO).
    #[allow(clippy::result_large_err)]
    fn start_batch(
        &mut self,
        batch: RecordBatch,
    ) -> Result<Option<UnopenedBatch>, (RecordsError, i64)> {
        let at = batch.base_offset;
        self.read_header(&batch)
            .map_err(|e| (e, at))
            .map(|action| match action {
                BatchAction::Deliver { start, end } => Some(UnopenedBatch { batch, start, end }),
                BatchAction::Skip(reason) => {
                    if reason == SkipReason::BeforeFetchOffset {
                        self.resent_batches += 1;
                        self.resent_up_to = batch.last_offset();
                    }
                    self.next_offset = self.next_offset.max(batch.next_offset());
                    None
                }
                BatchAction::Stop => {
                    self.stopped_at_lso = true;
                    self.exhausted = true;
                    None
                }
            })
    }

    /// What the transaction filter says about one batch header.
    fn read_header(&mut self, batch: &RecordBatch) -> Result<BatchAction, RecordsError> {
        let control = if batch.is_control {
            // Compaction can empty a control batch; like Java, that is not an abort marker.
            let marker = if batch.record_count == 0 || !self.reads_markers {
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
        Ok(self.filter.next_batch(&header))
    }

    fn fail_too_large(&mut self, codec: Compression, batch: &RecordBatch, limit: usize) {
        self.current = None;
        self.exhausted = true;
        self.error = Some(Error::Protocol {
            api: Some(crate::error::ApiKey::Fetch),
            broker: self.broker.clone(),
            message: format!(
                "batch at offset {} of partition {} ({codec}, {} bytes fetched) decompresses to \
                 more than `max.poll.decompressed.bytes` ({limit} bytes): raise it to read the \
                 batch, or seek to offset {} to skip it",
                batch.base_offset,
                self.tp,
                batch.size_in_bytes(),
                batch.next_offset()
            ),
        });
    }

    fn fail(&mut self, e: RecordsError, at: i64) {
        self.current = None;
        self.exhausted = true;
        self.error = Some(Error::Protocol {
            api: Some(crate::error::ApiKey::Fetch),
            broker: self.broker.clone(),
            message: format!(
                "fetched data of partition {} is invalid at offset {at}: {e}",
                self.tp
            ),
        });
    }
}

#[cfg(test)]
mod tests;

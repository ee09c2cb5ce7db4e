//! `Producer::send`: a record from the call to its place in the accumulator.
//!
//! The common case takes no wait: the topic is known and `buffer.memory` has room, so the record
//! is appended in the call's first poll, under one lock ([`Producer::attempt`]). The rare waits
//! (the topic's metadata, freed memory; `max.block.ms` bounds both) live in a boxed future of
//! their own, so the future `send` returns stays small: it is moved, and so copied whole, per
//! record.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tracing::Instrument;

use super::{DeliveryFuture, Partitioner, Producer, RecordData};
use crate::cluster::{validate_topic_name, MetadataSnapshot, TopicInfo};
use crate::error::{Error, Result};
use crate::metrics::registry::nanos;
use crate::protocol::records::{record_fields_len, record_size};
use crate::record::{Header, ProducerRecord, TopicPartition};
use crate::state::accumulator::AppendResult;

/// A record taken apart for the accumulator, kept while `send` waits for memory.
struct Outgoing {
    /// Topic and (once appended) partition; the record's own topic string, not a copy.
    tp: TopicPartition,
    /// The partition asked for or hashed from the key; `None` for the sticky partitioner.
    partition: Option<i32>,
    data: RecordData,
    timestamp: i64,
    /// `record_fields_len` of the record.
    fields: usize,
    /// Its size estimate (`estimated_record_size`), for errors.
    size: usize,
}

/// How far one try at queueing a record got.
enum Attempt {
    Queued(DeliveryFuture),
    /// The topic is not in the metadata yet.
    NeedsTopic(ProducerRecord),
    /// `buffer.memory` is full; the snapshot the record was placed with.
    NeedsMemory(Box<Outgoing>, Arc<MetadataSnapshot>),
}

impl Producer {
    /// Queues `record` and returns a future for its delivery.
    ///
    /// Waits (up to `max.block.ms`) for the topic's metadata and for buffer memory, as the Java
    /// client's `send` does. Errors here mean the record was not queued: too large for
    /// `max.request.size`, unknown topic, partition out of range, producer closed or failed,
    /// or [`Error::BufferExhausted`] when `buffer.memory` stayed full for `max.block.ms`.
    ///
    /// Cancellation: dropping this future before it resolves leaves the record unqueued; once it
    /// has resolved, the record is queued and dropping the [`DeliveryFuture`] does not cancel it.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("127.0.0.1:9092")).await?;
    /// // Queue many, then await their deliveries: each future says where its record landed.
    /// let mut deliveries = Vec::new();
    /// for i in 0..100 {
    ///     let record = ProducerRecord::new("events", format!("event {i}")).key("user-1");
    ///     deliveries.push(producer.send(record).await?);
    /// }
    /// for delivery in deliveries {
    ///     let written = delivery.await?;
    ///     println!("{}-{} at {:?}", written.topic, written.partition, written.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        // Made here rather than by `#[tracing::instrument]`, whose wrapper futures took this
        // future from 296 to 816 bytes. The record is placed (and a `traceparent` taken) inside
        // it. Unlike the attribute's, this span starts at the first poll rather than at the
        // call, and its target is this module (`josefk::producer::send`).
        let span = send_span(&record.topic);
        let attempt = span.in_scope(|| self.attempt(self.stamped(record), None));
        match attempt {
            Ok(Attempt::Queued(delivery)) => Ok(delivery),
            Ok(waiting) => self.wait_and_send(waiting, span).await,
            Err(e) => span.in_scope(|| logged(Err(e))),
        }
    }

    /// The rest of a `send` that must wait, boxed, span and all: `send`'s future is moved
    /// (copied whole) per record, and is as large as what it holds across its largest await.
    fn wait_and_send(
        &self,
        waiting: Attempt,
        span: tracing::Span,
    ) -> Pin<Box<dyn Future<Output = Result<DeliveryFuture>> + Send + '_>> {
        let waits = async move { logged(self.finish_send(waiting, None).await) };
        Box::pin(waits.instrument(span))
    }

    /// `record` with the current `traceparent` when the producer has a context source: once per
    /// record, inside its `send` span, before anything but `send_with`'s partitioner waits.
    fn stamped(&self, mut record: ProducerRecord) -> ProducerRecord {
        if let Some(context) = &self.shared().config.trace_context {
            add_trace_parent(&mut record, context);
        }
        record
    }

    /// Tries to queue `record` without waiting, placing it with `snapshot` (else the current
    /// metadata). Errors mean the record will not be queued.
    fn attempt(
        &self,
        record: ProducerRecord,
        snapshot: Option<Arc<MetadataSnapshot>>,
    ) -> Result<Attempt> {
        let shared = self.shared();
        let fields = record_fields_len(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers[..],
        );
        let size = estimated_record_size(fields);
        if size > shared.config.max_request_size {
            shared.check_usable()?;
            return Err(Error::InvalidArgument(format!(
                "record of about {size} bytes exceeds max.request.size ({}); it was not sent",
                shared.config.max_request_size
            )));
        }
        // One lookup of the topic on the common path (the snapshot already knows it).
        let known = snapshot.unwrap_or_else(|| shared.cluster.metadata());
        let Some(info) = usable_topic(&known, &record.topic) else {
            // Fail fast rather than wait for metadata on a closed or failed producer, or ask the
            // cluster about a name it must refuse.
            shared.check_usable()?;
            validate_topic_name(&record.topic)?;
            return Ok(Attempt::NeedsTopic(record));
        };
        let num_partitions = info.partitions.len() as i32;
        let partition = match record.partition {
            Some(p) if p < 0 || p >= num_partitions => {
                shared.check_usable()?;
                return Err(Error::InvalidArgument(format!(
                    "partition {p} of topic `{}` does not exist (it has {num_partitions})",
                    record.topic
                )));
            }
            Some(p) => Some(p),
            None => record
                .key
                .as_deref()
                .map(|k| super::partition_for_key(k, num_partitions)),
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let outgoing = Outgoing {
            // The record's own topic string becomes the partition key: no copy per record.
            tp: TopicPartition::new(record.topic, 0),
            partition,
            data: RecordData {
                timestamp,
                key: record.key,
                value: record.value,
                headers: record.headers,
            },
            timestamp,
            fields,
            size,
        };
        Ok(match self.append(outgoing, info)? {
            Ok(delivery) => Attempt::Queued(delivery),
            Err(back) => Attempt::NeedsMemory(Box::new(back), known),
        })
    }

    /// Appends under the producer's lock; hands the record back when `buffer.memory` is full.
    fn append(
        &self,
        mut outgoing: Outgoing,
        info: &TopicInfo,
    ) -> Result<std::result::Result<DeliveryFuture, Outgoing>> {
        let shared = self.shared();
        let mut state = shared.lock();
        // Checked under the lock the append takes anyway: one lock per record, not two.
        state.check_usable()?;
        let mut placed = None;
        let memory_was_short = state.accumulator.memory_short();
        let result = state.append(
            &mut outgoing.tp,
            outgoing.partition,
            info,
            outgoing.data,
            outgoing.fields,
            &mut placed,
        )?;
        if state.txn.is_some() {
            shared.wake_txn();
        }
        // Wake the sender only when this append changed what it could send now: a new batch
        // (its linger starts, and the one before it is closed) or a batch that just filled, for
        // a leader with a free `max.in.flight` slot; or memory running out, which makes every
        // batch sendable at once (only the first refusal changes that), while some broker has a
        // free slot. Appending behind batches already queued (Java's `batchIsFull` for
        // `deque.size() > 1`) changes nothing the sender has not been told. A broker with every
        // slot taken can take nothing until one of its requests ends, which wakes the sender
        // (`sink::finish_request`, under this lock). Under load each needless wake-up costs a
        // context switch and a sender pass: without these checks two of three passes sent
        // nothing.
        let wake_sender = match &result {
            AppendResult::Appended(a) if a.new_batch || a.tail_full => {
                // The current metadata: a send waiting for memory placed the record with the
                // snapshot it started with, whose leader may have moved since.
                let leader = shared.cluster.metadata().leader(&outgoing.tp);
                state.may_send_to(leader, shared.config.max_in_flight)
            }
            AppendResult::NoMemory(_) if !memory_was_short => {
                // Any broker with a free slot (none known yet: let the sender look).
                let brokers = &shared.cluster.metadata().brokers;
                let max = shared.config.max_in_flight;
                brokers.is_empty()
                    || brokers
                        .keys()
                        .any(|&node| state.may_send_to(Some(node), max))
            }
            _ => false,
        };
        drop(state);
        if wake_sender {
            shared.wake.notify_one();
        }
        match result {
            AppendResult::Appended(_) => {
                let (completion, index) = placed.expect("an appended record was placed");
                Ok(Ok(DeliveryFuture::new(
                    completion,
                    index,
                    outgoing.timestamp,
                )))
            }
            AppendResult::NoMemory(back) => {
                outgoing.data = back;
                Ok(Err(outgoing))
            }
            AppendResult::TooLarge(_) => Err(Error::Config(format!(
                "a record of about {} bytes cannot fit in buffer.memory ({})",
                outgoing.size, shared.config.buffer_memory
            ))),
            AppendResult::Closed(_) => Err(Error::Closed),
        }
    }

    /// Waits for what `attempt` lacked and queues the record, by `deadline` or `max.block.ms`
    /// from the first wait (the clock is read only once something must wait).
    async fn finish_send(
        &self,
        mut attempt: Attempt,
        mut deadline: Option<Instant>,
    ) -> Result<DeliveryFuture> {
        let max_block = self.shared().config.max_block;
        loop {
            attempt = match attempt {
                Attempt::Queued(delivery) => return Ok(delivery),
                Attempt::NeedsTopic(record) => {
                    let at = *deadline.get_or_insert_with(|| crate::clock::from_now(max_block));
                    let snapshot = self.topic_metadata(&record.topic, at).await?;
                    self.attempt(record, Some(snapshot))?
                }
                Attempt::NeedsMemory(outgoing, snapshot) => {
                    return self.wait_for_memory(*outgoing, &snapshot, deadline).await
                }
            };
        }
    }

    /// Appends `outgoing` once `buffer.memory` has room for it, waiting until `deadline` (or
    /// `max.block.ms` from now).
    async fn wait_for_memory(
        &self,
        mut outgoing: Outgoing,
        snapshot: &MetadataSnapshot,
        deadline: Option<Instant>,
    ) -> Result<DeliveryFuture> {
        let shared = self.shared();
        // Placed with this snapshot, which knows the topic: `attempt` found it there, and a
        // snapshot never changes.
        let info = &snapshot.topics[&outgoing.tp.topic];
        let at = deadline.unwrap_or_else(|| crate::clock::from_now(shared.config.max_block));
        loop {
            // Register, then try once more, so a release between the failed append and the
            // wait is not missed.
            let mut freed = std::pin::pin!(shared.progress.notified());
            freed.as_mut().enable();
            // The first refused append woke the sender if some broker had a free slot; else, and
            // for later refusals, the end of a request wakes it. Memory is freed as requests end.
            match self.append(outgoing, info)? {
                Ok(delivery) => return Ok(delivery),
                Err(back) => outgoing = back,
            }
            let waiting = Instant::now();
            let waited = tokio::time::timeout_at(at, freed).await;
            shared
                .registry()
                .producer
                .bufferpool_wait_ns
                .fetch_add(nanos(waiting.elapsed()), Relaxed);
            if waited.is_err() {
                return Err(Error::BufferExhausted {
                    record_size: outgoing.size,
                    in_use: shared.lock().accumulator.used_memory(),
                    buffer_memory: shared.config.buffer_memory,
                    waited: shared.config.max_block,
                });
            }
        }
    }

    /// Metadata that knows `topic`, waiting for it until `deadline`.
    async fn topic_metadata(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<Arc<crate::cluster::MetadataSnapshot>> {
        let shared = self.shared();
        let snapshot = shared.cluster.metadata();
        if usable_topic(&snapshot, topic).is_some() {
            return Ok(snapshot);
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        // One metadata request may take up to `request.timeout.ms`: the deadline bounds the whole
        // wait, not just the pauses between requests.
        // Known partitions are enough: a partition without a leader holds only the records
        // placed on it (keyless ones go to the others), as in Java's `waitOnMetadata`.
        let known = |snapshot: &crate::cluster::MetadataSnapshot, topic: &str| {
            usable_topic(snapshot, topic).is_some()
        };
        let topics = [topic];
        let waited = shared
            .cluster
            .wait_for_topics_where(&topics, wait, "with partitions", known);
        match tokio::time::timeout_at(deadline, waited).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                api: Some(crate::error::ApiKey::Metadata),
                broker: None,
                after: shared.config.max_block,
                outcome_unknown: false,
            }),
        }
    }

    /// Queues a record for a partition chosen by `partitioner` (a custom partitioner); the
    /// partitioner's `None` falls back to the default choice. One `max.block.ms` bounds the
    /// whole call.
    ///
    /// Cancellation: as [`send`](Self::send).
    pub async fn send_with(
        &self,
        record: ProducerRecord,
        partitioner: &dyn Partitioner,
    ) -> Result<DeliveryFuture> {
        let span = send_span(&record.topic);
        let send = async move { logged(self.send_partitioned(record, partitioner).await) };
        send.instrument(span).await
    }

    /// [`Producer::send_with`] inside its span.
    async fn send_partitioned(
        &self,
        mut record: ProducerRecord,
        partitioner: &dyn Partitioner,
    ) -> Result<DeliveryFuture> {
        let mut limit = None;
        if record.partition.is_none() {
            validate_topic_name(&record.topic)?;
            let deadline = crate::clock::from_now(self.shared().config.max_block);
            limit = Some(deadline);
            let n = self.topic_metadata(&record.topic, deadline).await?.topics[&record.topic]
                .partitions
                .len() as i32;
            record.partition = partitioner.partition(
                &record.topic,
                record.key.as_deref(),
                record.value.as_deref(),
                n,
            );
        }
        let attempt = self.attempt(self.stamped(record), None)?;
        self.finish_send(attempt, limit).await
    }
}

/// `topic` as metadata knows it, if records can be placed on it: a topic listed without an error
/// but with no partitions (a broker's answer mid-creation, or a faulty one) has nowhere to put a
/// record, so `send` waits for it as for a topic metadata does not know yet, refreshing until
/// `max.block.ms`; `wait_for_topics` only returns a topic with partitions. Placed anyway, a keyed
/// record would be hashed modulo 0 and a keyless one queued for a partition that does not exist.
fn usable_topic<'a>(snapshot: &'a MetadataSnapshot, topic: &str) -> Option<&'a TopicInfo> {
    snapshot
        .topics
        .get(topic)
        .filter(|info| !info.partitions.is_empty())
}

/// The `debug` span of one `send`, on the OpenTelemetry messaging conventions; disabled, it costs
/// one callsite check per record and its fields are never evaluated.
fn send_span(topic: &str) -> tracing::Span {
    tracing::debug_span!(
        "send",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.destination.name = %topic,
    )
}

/// `result`, its error logged at `debug` in the current (`send`) span, as
/// `#[tracing::instrument(err(level = "debug"))]` would.
fn logged<T>(result: Result<T>) -> Result<T> {
    if let Err(e) = &result {
        tracing::debug!(error = %e);
    }
    result
}

/// Adds the current `traceparent` to `record` unless it carries one already (the application's
/// own propagation wins).
fn add_trace_parent(record: &mut ProducerRecord, context: &crate::trace_context::TraceContext) {
    use crate::trace_context::TRACEPARENT;
    if record.headers.iter().any(|h| h.key == TRACEPARENT) {
        return;
    }
    if let Some(parent) = context.current() {
        record
            .headers
            .push(Header::new(TRACEPARENT, parent.to_string()));
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An upper bound of the batch a record alone would make: the v2 batch header plus the record's
/// fields with the widest offset and timestamp deltas, as Java's
/// `DefaultRecordBatch.estimateBatchSizeUpperBound` counts it. Checked against
/// `max.request.size` and said in errors (so a record Java refuses is refused here too); the
/// accumulator counts the record's exact size in the batch it joins.
pub(crate) fn estimated_record_size(fields: usize) -> usize {
    crate::protocol::records::RECORD_BATCH_OVERHEAD + record_size(fields, i64::MIN, i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `send`'s future is moved (copied whole) per record, and a future is as large as what it
    /// holds across its largest await: the rare waits (metadata, memory) are boxed.
    #[test]
    fn send_future_stays_small() {
        fn size<F>(_: impl Fn(&'static Producer, ProducerRecord) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let send = size(|p: &'static Producer, r: ProducerRecord| p.send(r));
        // 5.5 KB before the waits were boxed, 1,232 B after; 480 B since the common path runs
        // in one synchronous call and the span is made by hand (`#[tracing::instrument]`'s
        // wrappers alone took it to 816 B).
        assert!(send <= 512, "send's future takes {send} bytes");
    }

    #[test]
    fn size_estimate_bounds_the_encoded_size() {
        use crate::protocol::records::{encode_batch, BatchOptions, RecordInput};
        let record = ProducerRecord::new("t", vec![7u8; 300])
            .key(vec![1u8; 40])
            .header("a", "x")
            .header("a", "y");
        let mut out = bytes::BytesMut::new();
        let info = encode_batch(
            &mut out,
            &BatchOptions::default(),
            [RecordInput {
                timestamp: 1,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers[..],
            }],
        )
        .unwrap();
        // The whole one-record batch, header included, as Java's upper bound counts it.
        let estimate = estimated_record_size(record_fields_len(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers[..],
        ));
        assert!(estimate >= info.len, "{estimate} < {}", info.len);
        // Only the deltas' varints may be wider than written (timestamp 10 vs 1, offset 5 vs 1).
        assert!(
            estimate <= info.len + 13,
            "estimate {estimate} too loose for {}",
            info.len
        );
    }
}

//! What `Producer::send` would refuse a record for before queueing it (a bad topic name, a record
//! over `max.request.size`, a partition the topic does not have, a topic that does not exist),
//! checked on all of an input record's outputs before the first is sent: a record's outputs are
//! written all or none (then its dead letter instead). And the dead letter's own fitting.

use std::time::Duration;

use crate::cluster::{validate_topic_name, MetadataSnapshot};
use crate::error::{ApiKey, Error, ErrorClass, ErrorCode, Millis};
use crate::producer::{Producer, ProducerConfig};
use crate::protocol::records::record_fields_len;
use crate::record::{Header, ProducerRecord};
use crate::trace_context::TRACEPARENT;

/// Header of a dead letter whose input value was dropped to fit `max.request.size`: says why.
pub(crate) const VALUE_DROPPED_HEADER: &str = "josefk.dlq.value-dropped";

/// What the producer's `send` checks records against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendLimits {
    max_request_size: usize,
    /// Whether `send` adds a `traceparent` header to records without one.
    traced: bool,
    max_block: Duration,
}

impl SendLimits {
    pub(crate) fn of(config: &ProducerConfig) -> Self {
        SendLimits {
            max_request_size: config.max_request_size,
            traced: config.trace_context.is_some(),
            max_block: config.max_block,
        }
    }
}

/// Why records cannot be sent.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A record cannot be sent as made ([`ErrorClass::Rejected`]): a failure of its input record,
    /// handled by the policy.
    Record(Error),
    /// A topic does not exist: no record can go there, the pipeline stops.
    Stop(Error),
    /// Anything else: the transaction fails (aborted and retried).
    Producer(Error),
}

/// Checks `records` as `send` would, waiting (up to `max.block.ms`, as `send` does) for the
/// metadata of topics the producer does not know yet. `role` names the records in errors.
pub(crate) async fn check(
    producer: &Producer,
    records: &[ProducerRecord],
    limits: &SendLimits,
    role: &str,
) -> Result<(), Refused> {
    for r in records {
        validate_topic_name(&r.topic).map_err(Refused::Record)?;
        if let Some(e) = too_large(r, limits) {
            return Err(Refused::Record(e));
        }
    }
    let cluster = producer.cluster();
    let mut snapshot = cluster.metadata();
    for r in records {
        if !usable(&snapshot, &r.topic) {
            snapshot = cluster.metadata();
        }
        if !usable(&snapshot, &r.topic) {
            let topics = [r.topic.as_str()];
            let wait =
                cluster.wait_for_topics_where(&topics, limits.max_block, "with partitions", usable);
            snapshot = match tokio::time::timeout(limits.max_block, wait).await {
                Ok(Ok(snapshot)) => snapshot,
                Ok(Err(e)) => return Err(classify(e, &r.topic, role, limits)),
                Err(_) => {
                    return Err(Refused::Producer(Error::Timeout {
                        api: Some(ApiKey::Metadata),
                        broker: None,
                        after: limits.max_block,
                        outcome_unknown: false,
                    }))
                }
            };
        }
        let Some(p) = r.partition else { continue };
        let n = snapshot
            .topics
            .get(&r.topic)
            .map_or(0, |t| t.partitions.len()) as i32;
        if p < 0 || p >= n {
            return Err(Refused::Record(Error::InvalidArgument(format!(
                "partition {p} of topic `{}` does not exist (it has {n})",
                r.topic
            ))));
        }
    }
    Ok(())
}

/// Sorts a `send` (or metadata) error for `topic`. A topic metadata still does not know after
/// `max.block.ms` is taken as not existing, a configuration error (`send` calls it retriable:
/// the pipeline would retry every transaction for ten times `max.block.ms` before giving up).
pub(crate) fn classify(error: Error, topic: &str, role: &str, limits: &SendLimits) -> Refused {
    let unknown = error.api() == Some(ApiKey::Metadata)
        && error.kafka_code() == Some(ErrorCode::UnknownTopicOrPartition);
    if unknown {
        return Refused::Stop(Error::Broker {
            api: ApiKey::Metadata,
            broker: error.broker().cloned(),
            code: ErrorCode::UnknownTopicOrPartition,
            message: Some(format!(
                "the pipeline's {role} topic `{topic}` does not exist (unknown to the cluster \
                 after max.block.ms, {}); create it before running the pipeline",
                Millis(limits.max_block)
            )),
            class: ErrorClass::Rejected,
        });
    }
    match error.class() {
        ErrorClass::Rejected => Refused::Record(error),
        _ => Refused::Producer(error),
    }
}

/// `send`'s refusal of `record` for `max.request.size`, if it would refuse it.
pub(crate) fn too_large(record: &ProducerRecord, limits: &SendLimits) -> Option<Error> {
    let size = estimated_size(record, limits.traced);
    (size > limits.max_request_size).then(|| {
        Error::InvalidArgument(format!(
            "record of about {size} bytes exceeds max.request.size ({}); it was not sent",
            limits.max_request_size
        ))
    })
}

/// `letter` as sent: without its value (and a header saying why) when the value makes it too
/// large for `max.request.size`, so that one oversized input record does not stop the pipeline.
pub(crate) fn fit_dead_letter(mut letter: ProducerRecord, limits: &SendLimits) -> ProducerRecord {
    let size = estimated_size(&letter, limits.traced);
    if size <= limits.max_request_size {
        return letter;
    }
    if let Some(value) = letter.value.take() {
        letter.headers.push(Header::new(
            VALUE_DROPPED_HEADER,
            format!(
                "the input's value ({} bytes) made the dead letter about {size} bytes, over \
                 max.request.size ({})",
                value.len(),
                limits.max_request_size
            ),
        ));
    }
    letter
}

/// The producer's size estimate (the batch a record alone would make), with the `traceparent` header `send` may add counted in.
fn estimated_size(record: &ProducerRecord, traced: bool) -> usize {
    let mut fields = record_fields_len(
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers[..],
    );
    if traced && !record.headers.iter().any(|h| h.key == TRACEPARENT) {
        // Key and value with their length varints (a W3C traceparent is 55 characters), and a
        // byte more for the header count's varint.
        fields = fields.saturating_add(1 + TRACEPARENT.len() + 1 + 55 + 1);
    }
    crate::producer::estimated_record_size(fields)
}

/// Whether records can be placed on `topic` (known, with partitions), as `send` decides it.
fn usable(snapshot: &MetadataSnapshot, topic: &str) -> bool {
    snapshot
        .topics
        .get(topic)
        .is_some_and(|t| !t.partitions.is_empty())
}

//! One poll's records through the user's transform: grouped by input partition, each partition's
//! records transformed and their outputs sent in offset order by one task, at most
//! `max_in_flight_partitions` tasks at a time. Dead letters are built here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use crate::consumer::ConsumerRecord;
use crate::error::{Error, ErrorClass};
use crate::producer::Producer;
use crate::record::{Header, ProducerRecord, TopicPartition};

/// The error type a transform may return.
pub type TransformError = Box<dyn std::error::Error + Send + Sync>;

/// What one poll's records added to the open transaction.
#[derive(Debug, Default)]
pub(crate) struct BatchDone {
    /// Per input partition, the offset after its last record transformed.
    pub(crate) next: BTreeMap<TopicPartition, i64>,
    pub(crate) records_in: u64,
    pub(crate) records_out: u64,
    pub(crate) dead_letters: u64,
}

/// Why a batch stopped.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The transform failed (or its output was refused) and the policy is to stop.
    Transform(Error),
    /// The producer failed: the transaction must be aborted (or the producer replaced).
    Producer(Error),
}

/// Runs `records` through `transform` and sends the outputs with `producer`. On error every
/// task has ended before this returns, so no record of this batch can be sent afterwards (into
/// the next transaction).
pub(crate) async fn run_batch<F, Fut, E>(
    records: Vec<ConsumerRecord>,
    transform: &Arc<F>,
    producer: &Producer,
    dead_letter_topic: Option<&str>,
    max_in_flight: usize,
) -> Result<BatchDone, BatchError>
where
    F: Fn(ConsumerRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<ProducerRecord>, E>> + Send + 'static,
    E: Into<TransformError> + 'static,
{
    // `poll` returns each partition's records in offset order; grouping keeps that order.
    let mut groups: BTreeMap<TopicPartition, Vec<ConsumerRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(r.topic_partition()).or_default().push(r);
    }
    // Bounded by the groups: `max_in_flight_partitions` may be anything up to `usize::MAX`.
    let first = max_in_flight.min(groups.len());
    let mut pending = groups.into_iter();
    let mut tasks = JoinSet::new();
    let mut done = BatchDone::default();
    let mut spawn_next = |tasks: &mut JoinSet<_>| {
        if let Some((tp, records)) = pending.next() {
            let transform = transform.clone();
            let producer = producer.clone();
            let dlq = dead_letter_topic.map(str::to_owned);
            tasks.spawn(async move {
                let result = run_partition(records, &*transform, &producer, dlq.as_deref()).await;
                (tp, result)
            });
        }
    };
    for _ in 0..first {
        spawn_next(&mut tasks);
    }
    while let Some(joined) = tasks.join_next().await {
        let failure = match joined {
            Ok((tp, Ok(part))) => {
                done.next.insert(tp, part.next);
                done.records_in += part.records_in;
                done.records_out += part.records_out;
                done.dead_letters += part.dead_letters;
                spawn_next(&mut tasks);
                continue;
            }
            Ok((_, Err(e))) => e,
            Err(join) => BatchError::Transform(Error::InvalidState(format!(
                "a transform task panicked or was cancelled: {join}"
            ))),
        };
        // Dropping a `send` before it resolves leaves its record unqueued, so once every task
        // has ended nothing more of this batch reaches the producer.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        return Err(failure);
    }
    Ok(done)
}

struct PartitionDone {
    next: i64,
    records_in: u64,
    records_out: u64,
    dead_letters: u64,
}

async fn run_partition<F, Fut, E>(
    records: Vec<ConsumerRecord>,
    transform: &F,
    producer: &Producer,
    dead_letter_topic: Option<&str>,
) -> Result<PartitionDone, BatchError>
where
    F: Fn(ConsumerRecord) -> Fut,
    Fut: Future<Output = Result<Vec<ProducerRecord>, E>>,
    E: Into<TransformError>,
{
    let mut done = PartitionDone {
        next: 0,
        records_in: 0,
        records_out: 0,
        dead_letters: 0,
    };
    for record in records {
        let (topic, partition, offset) = (record.topic.clone(), record.partition, record.offset);
        // The dead letter needs the input as it was; the transform takes it by value.
        let original = dead_letter_topic.map(|_| record.clone());
        // Converted at once: the user's error type need not be `Send`.
        let result: Result<Vec<ProducerRecord>, TransformError> =
            transform(record).await.map_err(Into::into);
        let failed = match result {
            Ok(outputs) => send_outputs(producer, outputs, &mut done).await?,
            Err(e) => Some(e),
        };
        if let Some(error) = failed {
            match (dead_letter_topic, original) {
                (Some(topic), Some(original)) => {
                    let letter = dead_letter(topic, &original, &error);
                    // The delivery future is not awaited: commit_transaction fails if any
                    // record of the transaction failed.
                    drop(producer.send(letter).await.map_err(BatchError::Producer)?);
                    done.dead_letters += 1;
                }
                _ => {
                    return Err(BatchError::Transform(Error::Transform {
                        topic: topic.to_string(),
                        partition,
                        offset,
                        source: error,
                    }));
                }
            }
        }
        done.records_in += 1;
        done.next = offset + 1;
    }
    Ok(done)
}

/// Sends a record's outputs in order. A send refused as made (a bad topic name, a record too
/// large: [`ErrorClass::Rejected`]) is a failure of this input record, handled by the policy;
/// any other send error ends the transaction.
async fn send_outputs(
    producer: &Producer,
    outputs: Vec<ProducerRecord>,
    done: &mut PartitionDone,
) -> Result<Option<TransformError>, BatchError> {
    for out in outputs {
        match producer.send(out).await {
            Ok(delivery) => {
                drop(delivery);
                done.records_out += 1;
            }
            Err(e) if e.class() == ErrorClass::Rejected => return Ok(Some(Box::new(e))),
            Err(e) => return Err(BatchError::Producer(e)),
        }
    }
    Ok(None)
}

/// The dead letter of `record`: its key, value and headers, plus where it came from and why it
/// failed.
pub(crate) fn dead_letter(
    topic: &str,
    record: &ConsumerRecord,
    error: &TransformError,
) -> ProducerRecord {
    let mut headers: Vec<Header> = record.headers.to_vec();
    for (key, value) in [
        ("josefk.dlq.error", error.to_string()),
        ("josefk.dlq.topic", record.topic.to_string()),
        ("josefk.dlq.partition", record.partition.to_string()),
        ("josefk.dlq.offset", record.offset.to_string()),
    ] {
        headers.push(Header::new(key, value));
    }
    ProducerRecord {
        topic: topic.to_owned(),
        partition: None,
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
        timestamp: Some(record.timestamp),
    }
}

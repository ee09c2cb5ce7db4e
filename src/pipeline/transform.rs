//! One poll's records through the user's transform: grouped by input partition, each partition's
//! records transformed and their outputs sent in offset order by one task, at most
//! `max_in_flight_partitions` tasks at a time. Dead letters are built here.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;
use tracing::warn;

use super::outputs::{check, classify, fit_dead_letter, Refused, SendLimits};
use crate::consumer::ConsumerRecord;
use crate::error::Error;
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
    /// The pipeline must stop: the transform failed (or its output was refused) and the policy
    /// is to stop, an output or dead-letter topic does not exist, or a dead letter was refused.
    Stop(Error),
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
    limits: SendLimits,
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
                let result =
                    run_partition(records, &*transform, &producer, dlq.as_deref(), &limits).await;
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
            Err(join) => BatchError::Stop(Error::InvalidState(format!(
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
    limits: &SendLimits,
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
            // All of the record's outputs are checked before the first is sent, so that a
            // refusal leaves none of them in the transaction.
            Ok(outputs) => match check(producer, &outputs, limits, "output").await {
                Ok(()) => send_outputs(producer, outputs, &mut done, limits).await?,
                Err(Refused::Record(e)) => Some(Box::new(e) as TransformError),
                Err(Refused::Stop(e)) => return Err(BatchError::Stop(e)),
                Err(Refused::Producer(e)) => return Err(BatchError::Producer(e)),
            },
            Err(e) => Some(e),
        };
        if let Some(error) = failed {
            match (dead_letter_topic, original) {
                (Some(dlq), Some(original)) => {
                    let letter = fit_dead_letter(dead_letter(dlq, &original, &error), limits);
                    send_dead_letter(producer, letter, &original, &error, limits).await?;
                    done.dead_letters += 1;
                }
                _ => {
                    return Err(BatchError::Stop(Error::Transform {
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

/// Sends a record's outputs, checked by [`check`], in order. A send refused as made (a bad topic
/// name, a record too large: [`ErrorClass::Rejected`](crate::ErrorClass::Rejected)) that `check`
/// did not foresee is a failure of this input record, handled by the policy, if no output of it
/// was sent yet; else it fails the transaction, so that a record's outputs are still written all
/// or none. A topic that does not exist stops the pipeline; any other send error ends the
/// transaction.
async fn send_outputs(
    producer: &Producer,
    outputs: Vec<ProducerRecord>,
    done: &mut PartitionDone,
    limits: &SendLimits,
) -> Result<Option<TransformError>, BatchError> {
    for (i, out) in outputs.into_iter().enumerate() {
        let topic = out.topic.clone();
        match producer.send(out).await {
            // The delivery future is not awaited: commit_transaction fails if any record of the
            // transaction failed.
            Ok(delivery) => {
                drop(delivery);
                done.records_out += 1;
            }
            Err(e) => match classify(e, &topic, "output", limits) {
                Refused::Record(e) if i == 0 => return Ok(Some(Box::new(e))),
                Refused::Record(e) | Refused::Producer(e) => return Err(BatchError::Producer(e)),
                Refused::Stop(e) => return Err(BatchError::Stop(e)),
            },
        }
    }
    Ok(None)
}

/// Sends `letter`, the dead letter of `original`. A dead letter that cannot be sent as made (its
/// key and headers alone over `max.request.size`) stops the pipeline with an error that names
/// the input record, as does a dead-letter topic that does not exist.
async fn send_dead_letter(
    producer: &Producer,
    letter: ProducerRecord,
    original: &ConsumerRecord,
    error: &TransformError,
    limits: &SendLimits,
) -> Result<(), BatchError> {
    let topic = letter.topic.clone();
    let refused = match check(
        producer,
        std::slice::from_ref(&letter),
        limits,
        "dead-letter",
    )
    .await
    {
        Ok(()) => match producer.send(letter).await {
            Ok(delivery) => {
                drop(delivery);
                return Ok(());
            }
            Err(e) => classify(e, &topic, "dead-letter", limits),
        },
        Err(refused) => refused,
    };
    Err(match refused {
        Refused::Record(e) => BatchError::Stop(Error::Transform {
            topic: original.topic.to_string(),
            partition: original.partition,
            offset: original.offset,
            source: format!("{error}; its dead letter was refused too: {e}").into(),
        }),
        Refused::Stop(e) => BatchError::Stop(e),
        Refused::Producer(e) => {
            warn!(
                topic = %original.topic,
                partition = original.partition,
                offset = original.offset,
                error = %e,
                "the dead letter of this input record failed; the transaction fails"
            );
            BatchError::Producer(e)
        }
    })
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

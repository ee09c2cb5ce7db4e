//! The pipeline's loop: poll, transform, commit when due; abort, rewind and (after a
//! coordinator timeout) replace the producer when a transaction fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::outputs::SendLimits;
use super::transform::{run_batch, BatchError, TransformError};
use super::{Pipeline, PipelineStats, TransformErrorPolicy};
use crate::consumer::ConsumerRecord;
use crate::error::{Error, ErrorClass, ErrorCode, Result};
use crate::producer::Producer;
use crate::record::{ProducerRecord, TopicPartition};

/// Poll timeout while no transaction is open.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Failed transactions in a row (no commit between) before the error is returned: a cause that
/// does not go away (an output topic that does not exist) must not loop for ever.
const MAX_FAILED_IN_A_ROW: u32 = 10;
/// Transactions in a row whose records were refused for an old producer epoch (not explained by
/// a coordinator timeout) before the pipeline concludes that another producer took its
/// `transactional.id`: under v2 a fenced producer's sends fail abortably, not fatally.
const EPOCH_REFUSALS_MEAN_FENCED: u32 = 3;
/// Times a commit or abort whose call timed out (`max.block.ms`) is resumed before giving up.
const MAX_RESUMES: u32 = 5;
/// How long `close` may deliver what is queued when the pipeline stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The open transaction.
#[derive(Debug)]
struct Open {
    began: Instant,
    records_in: u64,
    records_out: u64,
    dead_letters: u64,
    next: BTreeMap<TopicPartition, i64>,
}

impl Open {
    fn new() -> Self {
        Open {
            began: Instant::now(),
            records_in: 0,
            records_out: 0,
            dead_letters: 0,
            next: BTreeMap::new(),
        }
    }
}

pub(super) struct Runner {
    p: Pipeline,
    stats: PipelineStats,
    open: Option<Open>,
    failed_in_a_row: u32,
    recreations_in_a_row: u32,
    epoch_refusals_in_a_row: u32,
}

impl Runner {
    pub(super) fn new(p: Pipeline) -> Self {
        Runner {
            p,
            stats: PipelineStats::default(),
            open: None,
            failed_in_a_row: 0,
            recreations_in_a_row: 0,
            epoch_refusals_in_a_row: 0,
        }
    }

    pub(super) async fn run<F, Fut, E>(mut self, transform: Arc<F>) -> Result<PipelineStats>
    where
        F: Fn(ConsumerRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<ProducerRecord>, E>> + Send + 'static,
        E: Into<TransformError> + 'static,
    {
        let result = self.run_loop(&transform).await;
        let Runner { p, stats, open, .. } = self;
        match result {
            Ok(()) => {
                close_both(p.producer.close(CLOSE_TIMEOUT), p.consumer.close()).await?;
                Ok(stats)
            }
            Err(e) => {
                if open.is_some() {
                    // Best effort: a fenced or closed producer cannot abort, and the coordinator
                    // aborts the transaction after `transaction.timeout.ms` anyway.
                    let _ = p.producer.abort_transaction().await;
                }
                let _ = p.producer.close(Duration::ZERO).await;
                // Leave the group, so the partitions move to the other members at once.
                let _ = p.consumer.close().await;
                Err(e)
            }
        }
    }

    async fn run_loop<F, Fut, E>(&mut self, transform: &Arc<F>) -> Result<()>
    where
        F: Fn(ConsumerRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<ProducerRecord>, E>> + Send + 'static,
        E: Into<TransformError> + 'static,
    {
        let dlq = match &self.p.config.on_transform_error {
            TransformErrorPolicy::DeadLetter(topic) => Some(topic.clone()),
            TransformErrorPolicy::Fail => None,
        };
        let limits = SendLimits::of(&self.p.config.producer);
        loop {
            if self.commit_due() || (self.p.shutdown.is_requested() && self.open.is_some()) {
                self.commit().await?;
            }
            if self.p.shutdown.is_requested() {
                return Ok(());
            }
            let timeout = match &self.open {
                Some(o) => self
                    .p
                    .config
                    .commit_interval
                    .saturating_sub(o.began.elapsed())
                    .max(Duration::from_millis(1)),
                None => IDLE_POLL,
            };
            let shutdown = self.p.shutdown.clone();
            let polled = tokio::select! {
                // `poll` is cancellation-safe: a dropped poll moved no position.
                r = self.p.consumer.poll(timeout) => r,
                () = shutdown.requested() => continue,
            };
            let records = match polled {
                Ok(records) => records,
                Err(e) if e.is_retriable() => {
                    warn!(error = %e, "pipeline poll failed; aborting and rewinding");
                    self.fail_transaction(e).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let events = self.p.recorder.take();
            if events.partitions_left() && self.open.is_some() {
                debug!(?events, "partitions left during a transaction; aborting it");
                self.stats.rebalance_aborts += 1;
                self.abort_and_rewind(None).await?;
                continue;
            }
            if records.is_empty() {
                continue;
            }
            if self.open.is_none() {
                if let Err(e) = self.p.producer.begin_transaction() {
                    self.fail_transaction(e).await?;
                    continue;
                }
                self.open = Some(Open::new());
            }
            let batch = run_batch(
                records,
                transform,
                &self.p.producer,
                dlq.as_deref(),
                limits,
                self.p.config.max_in_flight_partitions,
            )
            .await;
            match batch {
                Ok(done) => {
                    let open = self.open.as_mut().expect("opened above");
                    open.next.extend(done.next);
                    open.records_in += done.records_in;
                    open.records_out += done.records_out;
                    open.dead_letters += done.dead_letters;
                }
                Err(BatchError::Stop(e)) => {
                    // Nothing of this transaction may be committed.
                    self.abort_and_rewind(None).await?;
                    return Err(e);
                }
                Err(BatchError::Producer(e)) => self.fail_transaction(e).await?,
            }
        }
    }

    fn commit_due(&self) -> bool {
        self.open.as_ref().is_some_and(|o| {
            o.records_in >= self.p.config.commit_records as u64
                || o.began.elapsed() >= self.p.config.commit_interval
        })
    }

    /// Commits the open transaction with its input offsets; on failure aborts (or replaces the
    /// producer) and rewinds.
    async fn commit(&mut self) -> Result<()> {
        let Some(open) = &self.open else {
            return Ok(());
        };
        let offsets: Vec<(TopicPartition, i64, Option<String>)> = open
            .next
            .iter()
            .map(|(tp, o)| (tp.clone(), *o, None))
            .collect();
        let result = async {
            let group = self.p.consumer.group_metadata().ok_or_else(|| {
                Error::InvalidState("the pipeline's consumer has no group".into())
            })?;
            self.p
                .producer
                .send_offsets_to_transaction(&offsets, &group)
                .await?;
            let mut resumes = 0;
            loop {
                // A commit whose call timed out goes on in the background: its outcome is not
                // known until it ends, so it is resumed, never turned into an abort.
                match self.p.producer.commit_transaction().await {
                    Err(Error::Timeout { .. }) if resumes < MAX_RESUMES => resumes += 1,
                    other => return other,
                }
            }
        }
        .await;
        match result {
            Ok(()) => {
                let open = self.open.take().expect("checked");
                self.stats.transactions_committed += 1;
                self.stats.records_in += open.records_in;
                self.stats.records_out += open.records_out;
                self.stats.dead_letters += open.dead_letters;
                self.failed_in_a_row = 0;
                self.recreations_in_a_row = 0;
                self.epoch_refusals_in_a_row = 0;
                Ok(())
            }
            Err(e) => self.fail_transaction(e).await,
        }
    }

    /// A transaction failed with `error`: abort it (or replace a producer the coordinator fenced
    /// for a timed-out transaction) and rewind, or return the error when it ends the pipeline.
    async fn fail_transaction(&mut self, error: Error) -> Result<()> {
        warn!(error = %error, "pipeline transaction failed; aborting and rewinding");
        self.failed_in_a_row += 1;
        if self.failed_in_a_row > MAX_FAILED_IN_A_ROW {
            return Err(error);
        }
        if error.class() == ErrorClass::Fatal {
            return self.replace_producer(error).await;
        }
        if self.epoch_refused(&error) {
            self.epoch_refusals_in_a_row += 1;
            if self.epoch_refusals_in_a_row >= EPOCH_REFUSALS_MEAN_FENCED {
                let fenced = Error::Broker {
                    api: error.api().unwrap_or(crate::error::ApiKey::Produce),
                    broker: error.broker().cloned(),
                    code: error.kafka_code().unwrap_or(ErrorCode::ProducerFenced),
                    message: None,
                    class: ErrorClass::Fatal,
                };
                return Err(fenced_error(fenced, self.p.config.transactional_id()));
            }
        }
        self.abort_and_rewind(Some(error)).await
    }

    /// Aborts the open transaction, if any, and rewinds every partition to its committed offset.
    async fn abort_and_rewind(&mut self, cause: Option<Error>) -> Result<()> {
        if self.open.is_some() {
            let mut resumes = 0;
            let aborted = loop {
                match self.p.producer.abort_transaction().await {
                    Err(Error::Timeout { .. }) if resumes < MAX_RESUMES => resumes += 1,
                    other => break other,
                }
            };
            match aborted {
                Ok(()) => {}
                Err(e) if e.class() == ErrorClass::Fatal => return self.replace_producer(e).await,
                // E.g. a commit still completing in the background refuses the abort.
                Err(e) => return Err(cause.unwrap_or(e)),
            }
            self.open = None;
            self.stats.transactions_aborted += 1;
        }
        self.p.consumer.rewind_to_committed()
    }

    /// The producer is fatally failed. If the open transaction ran past `transaction.timeout.ms`
    /// and the error is the coordinator's fence of that timeout, a new producer with the same
    /// `transactional.id` takes over (its InitProducerId ends the old epoch) and the consumer
    /// rewinds. Otherwise another process took the `transactional.id` (or worse): the error ends
    /// the pipeline.
    async fn replace_producer(&mut self, error: Error) -> Result<()> {
        let timeout = self.p.config.producer.transaction_timeout;
        let timed_out = self
            .open
            .as_ref()
            .is_some_and(|o| o.began.elapsed() >= timeout);
        let fence = matches!(
            error.kafka_code(),
            Some(
                ErrorCode::ProducerFenced
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::InvalidTxnState
            )
        );
        if !(timed_out && fence) {
            return Err(fenced_error(error, self.p.config.transactional_id()));
        }
        if self.recreations_in_a_row >= self.p.config.max_producer_recreations {
            return Err(error);
        }
        warn!(error = %error, "transaction timed out at the coordinator; replacing the producer");
        self.recreations_in_a_row += 1;
        self.stats.producers_recreated += 1;
        self.stats.transactions_aborted += 1;
        self.open = None;
        let _ = self.p.producer.close(Duration::ZERO).await;
        let producer = Producer::connect(self.p.config.producer.clone()).await?;
        producer.init_transactions().await?;
        self.p.producer = producer;
        self.p.consumer.rewind_to_committed()
    }
}

impl Runner {
    /// Whether `error` refuses this producer's epoch while the open transaction is younger than
    /// `transaction.timeout.ms` (so the coordinator's timeout does not explain it).
    fn epoch_refused(&self, error: &Error) -> bool {
        let timeout = self.p.config.producer.transaction_timeout;
        let young = self
            .open
            .as_ref()
            .is_none_or(|o| o.began.elapsed() < timeout);
        young
            && matches!(
                error.kafka_code(),
                Some(ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced)
            )
    }
}

/// Awaits `producer_close`, then `consumer_close` whatever the first returned (the consumer must
/// leave the group even when the producer could not deliver everything), and returns the first
/// error.
async fn close_both(
    producer_close: impl Future<Output = Result<()>>,
    consumer_close: impl Future<Output = Result<()>>,
) -> Result<()> {
    let producer = producer_close.await;
    let consumer = consumer_close.await;
    producer.and(consumer)
}

/// A fence by another process, said so; other errors unchanged.
fn fenced_error(error: Error, transactional_id: &str) -> Error {
    match error {
        Error::Broker {
            api,
            broker,
            code: code @ (ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch),
            message,
            class: ErrorClass::Fatal,
        } => Error::Broker {
            api,
            broker,
            code,
            message: Some(format!(
                "another producer with transactional.id `{transactional_id}` fenced this \
                 pipeline's producer, which stops{}",
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            )),
            class: ErrorClass::Fatal,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_failed_producer_close_still_closes_the_consumer_and_is_returned() {
        let consumer_closed = AtomicBool::new(false);
        let result = close_both(
            async {
                Err(Error::CloseTimedOut {
                    after: CLOSE_TIMEOUT,
                    unsent: 1,
                    unknown: 0,
                })
            },
            async {
                consumer_closed.store(true, Ordering::SeqCst);
                Err(Error::Closed)
            },
        )
        .await;
        assert!(
            consumer_closed.load(Ordering::SeqCst),
            "the consumer was closed"
        );
        assert!(
            matches!(result, Err(Error::CloseTimedOut { unsent: 1, .. })),
            "the first error: {result:?}"
        );
    }
}

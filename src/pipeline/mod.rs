//! Managed exactly-once pipelines: [`Pipeline`] owns a `read_committed` group consumer and a
//! transactional producer and runs consume → async transform → produce as Kafka transactions, so
//! that each input record's outputs are written exactly once, together with the input offsets.
//!
//! The user supplies the transform (one input record → any number of output records); the
//! pipeline does the rest of what `examples/exactly_once.rs` does by hand, and what that loop
//! leaves to the reader:
//!
//! - **Commits** when the open transaction is `commit_interval` old or holds `commit_records`
//!   input records (checked between polls: up to one poll's records more), with the input
//!   offsets in the transaction
//!   ([`Producer::send_offsets_to_transaction`](crate::producer::Producer::send_offsets_to_transaction)
//!   with the member's generation, so a member that lost its partitions cannot commit them:
//!   KIP-447).
//! - **Order and concurrency**: records of one input partition are transformed one after the
//!   other and their outputs sent in that order; up to `max_in_flight_partitions` partitions are
//!   transformed at the same time, each on its own task.
//! - **Failures**: an abortable error aborts the transaction and rewinds every partition to the
//!   group's committed offset; a commit whose call timed out is resumed, never abandoned (its
//!   outcome is unknown until it ends). Being fenced by another process with the same
//!   `transactional.id` ends the pipeline with that error ([`ErrorClass::Fatal`](crate::ErrorClass)).
//! - **Rebalances**: a transaction open when partitions are revoked or lost is aborted and
//!   everything rewound (see `rebalance` and ARCHITECTURE.md for why abort, not commit).
//! - **Transform errors**: stop ([`TransformErrorPolicy::Fail`]) or write the input record to a
//!   dead-letter topic inside the same transaction ([`TransformErrorPolicy::DeadLetter`]).
//! - **Missing topics**: an output or dead-letter topic that metadata still does not know after
//!   the producer's `max.block.ms` stops the pipeline at once with an
//!   [`ErrorClass::Rejected`](crate::ErrorClass) `UNKNOWN_TOPIC_OR_PARTITION` error naming the
//!   topic (create output topics before running a pipeline).
//! - **Transactions the coordinator aborted for running past `transaction.timeout.ms`** (a slow
//!   transform) are recovered on both transaction protocols: where the producer can go on (v2,
//!   EndTxn) it aborts and goes on; where the producer is left fatally fenced (v2 at
//!   TxnOffsetCommit, any v1 abort) the pipeline replaces it with a new one with the same
//!   `transactional.id` and rewinds.
//! - **Shutdown**: [`ShutdownHandle::shutdown`] lets the batch being transformed finish, commits
//!   the open transaction, leaves the group and closes both clients.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> josefk::Result<()> {
//! use std::time::Duration;
//! use josefk::pipeline::{Pipeline, PipelineConfig, TransformErrorPolicy};
//! use josefk::{ClientConfig, ProducerRecord};
//!
//! let client = ClientConfig::new("127.0.0.1:9092");
//! let config = PipelineConfig::new(client, "uppercaser", "uppercaser-1", &["words"])
//!     .commit_interval(Duration::from_millis(100))
//!     .commit_records(1_000)
//!     .on_transform_error(TransformErrorPolicy::DeadLetter("words-dlq".into()));
//! let pipeline = Pipeline::connect(config).await?;
//! let shutdown = pipeline.shutdown_handle();
//! tokio::spawn(async move {
//!     tokio::time::sleep(Duration::from_secs(600)).await; // or on a signal
//!     shutdown.shutdown();
//! });
//! let stats = pipeline
//!     .run(|record| async move {
//!         let text = std::str::from_utf8(record.value.as_deref().unwrap_or_default())?;
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(vec![ProducerRecord::new(
//!             "WORDS",
//!             text.to_uppercase(),
//!         )])
//!     })
//!     .await?;
//! println!("{} transactions committed", stats.transactions_committed);
//! # Ok(()) }
//! ```
//!
//! # `transaction.timeout.ms`
//!
//! The pipeline's producer runs with `transaction.timeout.ms` = 10 s, as Kafka Streams sets it
//! under exactly-once (the producer's own default is 60 s; change it with
//! [`PipelineConfig::producer`]; `commit_interval` must stay below it). It bounds how long an
//! instance that dies with a transaction open (a crash, a kill, a dropped [`Pipeline::run`])
//! holds up `read_committed` readers of its output partitions: they read nothing past the open
//! transaction's first record until the coordinator aborts it after this timeout, unless an
//! instance with the same `transactional.id` starts sooner (its `init_transactions` aborts it at
//! once). A shorter timeout also aborts sooner a transaction whose transform is stuck, which the
//! pipeline then recovers from (see above); so it must exceed the longest a batch of
//! transforms plus a commit may take.
//!
//! # Cancellation
//!
//! Dropping the future of [`Pipeline::run`] is a crash, not a shutdown: the open transaction is
//! neither committed nor aborted (the coordinator aborts it after `transaction.timeout.ms`, or at
//! once when a new instance with the same `transactional.id` starts) and the member stays in the
//! group until `session.timeout.ms`. Nothing is written twice either way.

mod config;
mod outputs;
mod rebalance;
mod runner;
mod transform;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

pub use config::{PipelineConfig, TransformErrorPolicy};
pub use transform::TransformError;

use crate::consumer::Consumer;
use crate::error::Result;
use crate::producer::Producer;
use rebalance::Recorder;

/// A running exactly-once copy from input topics through a transform to output topics. See
/// the module docs.
#[derive(Debug)]
pub struct Pipeline {
    config: PipelineConfig,
    consumer: Consumer,
    producer: Producer,
    recorder: Recorder,
    shutdown: ShutdownHandle,
}

/// Asks a running [`Pipeline`] to stop gracefully. Cheap to clone; get one from
/// [`Pipeline::shutdown_handle`].
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    requested: AtomicBool,
    notify: Notify,
}

impl ShutdownHandle {
    /// Requests the stop: the pipeline finishes the records it is transforming, commits the open
    /// transaction, leaves the group and closes; [`Pipeline::run`] then returns its stats.
    pub fn shutdown(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested.
    async fn requested(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

/// What a [`Pipeline::run`] did, counting committed transactions only (aborted work is redone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Transactions committed.
    pub transactions_committed: u64,
    /// Transactions aborted (failures, rebalances, timeouts).
    pub transactions_aborted: u64,
    /// Of those, aborted because partitions were revoked or lost.
    pub rebalance_aborts: u64,
    /// Input records whose outputs were committed.
    pub records_in: u64,
    /// Output records committed.
    pub records_out: u64,
    /// Dead letters committed.
    pub dead_letters: u64,
    /// Times the producer was replaced after the coordinator fenced a timed-out transaction.
    pub producers_recreated: u64,
}

impl Pipeline {
    /// Validates `config`, connects the consumer (subscribed to the input topics; it joins the
    /// group at the first poll) and the producer, and initializes transactions: this fences any
    /// earlier process with the same `transactional.id` and ends its open transaction.
    ///
    /// Bounded by the producer's `max.block.ms` for the transactional set-up. Cancellation:
    /// dropping the future leaves nothing running.
    pub async fn connect(config: PipelineConfig) -> Result<Pipeline> {
        let config = config.validated()?;
        let mut consumer = Consumer::connect(config.consumer.clone()).await?;
        let recorder = Recorder::default();
        consumer.set_rebalance_listener(recorder.clone());
        consumer.subscribe(&config.input)?;
        let producer = Producer::connect(config.producer.clone()).await?;
        producer.init_transactions().await?;
        Ok(Pipeline {
            config,
            consumer,
            producer,
            recorder,
            shutdown: ShutdownHandle {
                inner: Arc::default(),
            },
        })
    }

    /// A handle that stops [`Pipeline::run`] gracefully from another task.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs until [`ShutdownHandle::shutdown`] (then returns the stats) or an error that ends
    /// the pipeline: a transform failure under [`TransformErrorPolicy::Fail`]
    /// ([`Error::Transform`](crate::Error::Transform)), an output or dead-letter topic that does
    /// not exist, being fenced by another process, a non-retriable consumer error, or failures that keep every transaction from committing
    /// (10 in a row). The open transaction is aborted before an error is returned.
    ///
    /// `transform` gets each input record and returns the records to write for it (none to drop
    /// it). It runs on tokio tasks, one per input partition at a time.
    ///
    /// Cancellation: see the module docs (dropping the future is a crash, not a shutdown).
    pub async fn run<F, Fut, E>(self, transform: F) -> Result<PipelineStats>
    where
        F: Fn(crate::consumer::ConsumerRecord) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::result::Result<Vec<crate::ProducerRecord>, E>>
            + Send
            + 'static,
        E: Into<TransformError> + 'static,
    {
        runner::Runner::new(self).run(Arc::new(transform)).await
    }
}

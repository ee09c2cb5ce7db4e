//! The producer role: [`Producer`], a cloneable handle whose [`Producer::send`] queues a record and
//! returns a [`DeliveryFuture`], and a sender task (one per producer, like the Java client's
//! `Sender` thread) that drains batches to partition leaders.
//!
//! Delivery guarantees, per configuration:
//!
//! - `acks=0` (at-most-once): a record is reported delivered once its request is written to the
//!   socket; the broker never answers, nothing is retried, and the offset is unknown.
//! - `acks=all`, idempotence off (at-least-once): failed batches are retried with backoff until
//!   `delivery.timeout.ms`; a retry after a lost connection may write a record twice.
//! - idempotence on (the default): the broker de-duplicates retries by producer id, epoch and
//!   per-partition sequence, so each record is written once and in send order per partition
//!   (`state::sequence` holds the rules).
//!
//! Every [`DeliveryFuture`] settles by `delivery.timeout.ms` plus at most one
//! `request.timeout.ms` (the request in flight then). A record given up on fails with
//! [`Error::Undelivered`], whose `outcome_unknown` says whether a send of it may have been written;
//! the idempotent producer then moves to a new epoch before sending more on that partition, so the
//! records after it are still written once and in order.
//!
//! The IO-free parts live in `state`: the accumulator, the partitioner, the sequence tracker. This
//! module owns the tasks, the clock and the network.

mod config;
mod delivery;
mod metrics;
mod request;
mod send;
pub(crate) use send::estimated_record_size;
mod sender;
mod transaction;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, Instrument};

pub use crate::state::partitioner::{partition_for_key, DefaultPartitioner, Partitioner};
pub use config::{Acks, Compression, ProducerConfig};
pub use delivery::DeliveryFuture;
pub use transaction::ConsumerGroupMetadata;

use crate::cluster::Cluster;
use crate::error::{Error, ErrorClass, Result};
use crate::metrics::ProducerMetrics;
use crate::record::{Header, TopicPartition};
use crate::state::accumulator::AccumulatorConfig;
use crate::state::transaction::TxnState;
use delivery::Settler;
use sender::{ProducerState, Shared};
use transaction::txn_error;

/// What `send` keeps of a record until it is encoded.
#[derive(Debug)]
pub(crate) struct RecordData {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

/// A record waiting in the accumulator: its data, its batch's settler and its index in that
/// batch (where its outcome goes).
#[derive(Debug)]
pub(crate) struct PendingRecord {
    data: RecordData,
    settler: Arc<Settler>,
    index: u32,
}

/// A Kafka producer. Cheap to clone; every clone shares one accumulator, sender task and
/// producer id. When the last clone is dropped the sender finishes delivering what is queued and
/// stops; call [`Producer::close`] to wait for that.
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// Dropping the last handle starts a graceful close of the sender task.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    /// The KIP-714 push task (`enable.metrics.push`); dropping it ends the task.
    telemetry: Option<crate::cluster::telemetry::TelemetryHandle>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

impl Producer {
    /// Validates `config`, connects to the cluster, obtains a producer id when idempotent, and
    /// starts the sender task, with a small thread (`josefk-linger`) that wakes it at linger
    /// deadlines more precisely than tokio's millisecond timer; both end with the producer.
    ///
    /// Bounded by `max.block.ms`: while no bootstrap broker answers it asks again after the
    /// backoff, as Java's producer waits for its first metadata, then fails with the last cause
    /// (a retriable [`Error::Connect`] naming each address), or [`Error::Timeout`] naming the
    /// request waited for (InitProducerId while getting a producer id). A `bootstrap.servers` of
    /// which no address resolves, refused credentials, TLS failures and a peer that is not Kafka
    /// fail at once.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// let config = ProducerConfig::new("127.0.0.1:9092").linger(std::time::Duration::from_millis(10));
    /// let producer = Producer::connect(config).await?;
    /// # drop(producer);
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future drops the connections opened so far; no record is sent
    /// (an idempotent or transactional producer's InitProducerId may have been).
    pub async fn connect(config: ProducerConfig) -> Result<Producer> {
        let mut config = config.resolved()?;
        // Java names a transactional producer after its id, any other by its number.
        let tid = config.transactional_id.clone();
        crate::config::default_client_id(
            &mut config.client,
            crate::config::ClientKind::Producer,
            tid.as_deref(),
            None,
        );
        let deadline = crate::clock::from_now(config.max_block);
        let compression = config.compression.codec();
        let max_block = config.max_block;
        let timed_out = |api| Error::Timeout {
            api: Some(api),
            broker: None,
            after: max_block,
            outcome_unknown: false,
        };
        let cluster = Cluster::connect_by(config.client.clone(), deadline).await?;
        let accumulator = AccumulatorConfig {
            batch_size: config.batch_size,
            linger: config.linger,
            buffer_memory: config.buffer_memory,
            delivery_timeout: config.delivery_timeout,
            retry_backoff: config.client.retry_backoff,
            retry_backoff_max: config.client.retry_backoff_max,
            linger_slack: sender::LINGER_SLACK,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(ProducerState::new(
                accumulator,
                config.enable_idempotence,
                config.transactional_id.is_some(),
            )),
            wake: Arc::new(Notify::new()),
            progress: Notify::new(),
            txn_wake: Notify::new(),
            cluster,
            compression,
            config,
            stop: tokio::sync::watch::channel(false).0,
            live_tasks: 0.into(),
            tasks_ended: Notify::new(),
            metadata_refresh: Mutex::default(),
        });
        if shared.config.transactional_id.is_some() {
            shared.spawn_until_stopped(transaction::driver(shared.clone()));
        } else if shared.config.enable_idempotence {
            let producer = tokio::time::timeout_at(deadline, sender::init_producer_id(&shared))
                .await
                .map_err(|_| timed_out(crate::error::ApiKey::InitProducerId))??;
            shared.lock().set_producer_id(producer);
        }
        shared.spawn(sender::run(shared.clone()));
        let weak = Arc::downgrade(&shared);
        let exported = weak.clone();
        crate::metrics::spawn_exporter(shared.registry().enabled, move || {
            let shared = exported.upgrade()?;
            Some(shared.metrics_snapshot().to_metrics())
        });
        let telemetry = crate::cluster::telemetry::spawn(shared.cluster.clone(), move || {
            let shared = weak.upgrade()?;
            Some(shared.metrics_snapshot().to_metrics())
        });
        Ok(Producer {
            handle: Arc::new(Handle { shared, telemetry }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    internal_fn! {
        /// The cluster view this producer uses (shared with an admin client via
        /// `Admin::from_cluster`).
        fn cluster(&self) -> &Cluster {
            &self.shared().cluster
        }
    }

    /// A snapshot of this producer's metrics (Java names; see [`crate::metrics`]). Takes the
    /// producer's lock once, for the buffer values.
    pub fn metrics(&self) -> ProducerMetrics {
        self.shared().metrics_snapshot()
    }

    /// Sends everything queued now and waits until every record queued before this call has an
    /// outcome (Java `flush`).
    ///
    /// Cancellation: dropping the future stops waiting; the records are still delivered.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("127.0.0.1:9092")).await?;
    /// let delivery = producer.send(ProducerRecord::new("events", "last")).await?;
    /// producer.flush().await?; // every record queued so far has an outcome now
    /// delivery.await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<()> {
        let shared = self.shared();
        shared.lock().begin_flush();
        shared.wake.notify_one();
        let result = shared.wait_until_idle(None).await;
        shared.lock().end_flush();
        result
    }

    /// The transaction manager of a transactional producer, or an error saying it is not one.
    fn with_txn<R>(&self, f: impl FnOnce(&mut sender::ProducerState) -> Result<R>) -> Result<R> {
        let shared = self.shared();
        shared.check_usable()?;
        let mut state = shared.lock();
        if state.txn.is_none() {
            return Err(Error::InvalidState(
                "not a transactional producer: set `transactional.id`".into(),
            ));
        }
        f(&mut state)
    }

    /// Java `initTransactions`: finds the transaction coordinator and gets a producer id and epoch
    /// for `transactional.id` (InitProducerId with `transaction.timeout.ms`). This fences every
    /// earlier producer with the same id and completes (aborts) its open transaction. Retries
    /// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS and CONCURRENT_TRANSACTIONS with backoff.
    /// Must succeed before any other transactional call.
    ///
    /// Bounded by `max.block.ms` ([`Error::Timeout`]). Cancellation or timeout does not stop the
    /// request: the producer keeps initializing in the background, and calling this again waits
    /// for that same initialization.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// let config = ProducerConfig::new("127.0.0.1:9092").transactional_id("orders-copier-1");
    /// let producer = Producer::connect(config).await?;
    /// producer.init_transactions().await?; // fences an older instance with the same id
    /// # Ok(()) }
    /// ```
    pub async fn init_transactions(&self) -> Result<()> {
        let started = Instant::now();
        let call = self.init_transactions_inner();
        self.traced("init_transactions", call).await?;
        self.shared().registry().producer.txn_init.record(started);
        Ok(())
    }

    async fn init_transactions_inner(&self) -> Result<()> {
        let shared = self.shared();
        let deadline = crate::clock::from_now(shared.config.max_block);
        self.with_txn(|_| Ok(()))?;
        // Learn the coordinator's capabilities first: they choose the protocol.
        match tokio::time::timeout_at(deadline, shared.txn_coordinator()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    api: Some(crate::error::ApiKey::FindCoordinator),
                    broker: None,
                    after: shared.config.max_block,
                    outcome_unknown: false,
                })
            }
            Ok(Err(e)) if !e.is_retriable() => return Err(e),
            Ok(_) => {}
        }
        self.with_txn(|state| {
            let txn = state.txn.as_mut().expect("checked");
            if txn.state() != TxnState::Initializing {
                txn.begin_init()?;
            }
            Ok(())
        })?;
        shared.wake_txn();
        shared
            .wait_txn(deadline, ApiKey::InitProducerId, |state| {
                match state.txn.as_ref()?.state() {
                    TxnState::Ready => Some(Ok(())),
                    TxnState::AbortableError | TxnState::FatalError => txn_error(state).map(Err),
                    _ => None,
                }
            })
            .await
    }

    /// Java `beginTransaction`: opens a transaction. Local only (nothing is sent until a record or
    /// offsets are). The protocol (KIP-890 v1 or v2) is chosen now from the coordinator's
    /// ApiVersions and kept until the transaction ends.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("k:9092").transactional_id("copier-1")).await?;
    /// # producer.init_transactions().await?;
    /// producer.begin_transaction()?;
    /// drop(producer.send(ProducerRecord::new("out", "a")).await?);
    /// drop(producer.send(ProducerRecord::new("out", "b")).await?);
    /// producer.commit_transaction().await?; // both become visible to read_committed readers, or neither
    /// # Ok(()) }
    /// ```
    pub fn begin_transaction(&self) -> Result<()> {
        let started = Instant::now();
        self.with_txn(|state| {
            state.txn.as_mut().expect("checked").begin_transaction()?;
            state.txn_began = Some(started);
            Ok(())
        })?;
        debug!(transactional_id = self.txn_id(), "transaction begun");
        self.shared().registry().producer.txn_begin.record(started);
        Ok(())
    }

    /// Java `sendOffsetsToTransaction`: commits `offsets` (partition, next offset to consume,
    /// metadata) for `group` as part of the open transaction: they become the group's committed
    /// offsets if and only if the transaction commits. Under v1 this sends AddOffsetsToTxn to the
    /// transaction coordinator, then TxnOffsetCommit to the group coordinator; under v2 only
    /// TxnOffsetCommit v5. UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and FENCED_INSTANCE_ID make the
    /// transaction abortable.
    ///
    /// Bounded by `max.block.ms`. Cancellation or timeout does not withdraw the offsets: they are
    /// still sent and are part of the transaction if that succeeds. A call made while an earlier
    /// call's offsets are still being committed (from a clone of this producer) is refused.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// use std::time::Duration;
    /// use josefk::consumer::{Consumer, ConsumerConfig};
    /// use josefk::Guarantee;
    /// # async fn demo() -> josefk::Result<()> {
    /// let producer = Producer::connect(
    ///     ProducerConfig::new("k:9092").transactional_id("copier-1"),
    /// )
    /// .await?;
    /// producer.init_transactions().await?;
    /// // ExactlyOnce: read_committed, and no commits of the consumer's own (the default
    /// // auto-commit would mark input done even when its transaction aborts).
    /// let mut consumer = Consumer::connect(
    ///     ConsumerConfig::new("k:9092")
    ///         .group_id("copier")
    ///         .guarantee(Guarantee::ExactlyOnce),
    /// )
    /// .await?;
    /// # consumer.subscribe(&["in"])?;
    /// // Consume-transform-produce: the input offsets commit with the output, exactly once.
    /// producer.begin_transaction()?;
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// let mut next = std::collections::BTreeMap::new();
    /// for r in &records {
    ///     drop(producer.send(ProducerRecord::new("out", r.value.clone().unwrap_or_default())).await?);
    ///     next.insert(r.topic_partition(), r.offset + 1); // the next offset to read
    /// }
    /// let offsets: Vec<_> = next.into_iter().map(|(tp, o)| (tp, o, None)).collect();
    /// let group = consumer.group_metadata().expect("a group is configured");
    /// producer.send_offsets_to_transaction(&offsets, &group).await?;
    /// producer.commit_transaction().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64, Option<String>)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let started = Instant::now();
        let call = self.send_offsets_inner(offsets, group);
        self.traced("send_offsets_to_transaction", call).await?;
        let txn = &self.shared().registry().producer;
        txn.txn_send_offsets.record(started);
        Ok(())
    }

    async fn send_offsets_inner(
        &self,
        offsets: &[(TopicPartition, i64, Option<String>)],
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let shared = self.shared();
        let deadline = crate::clock::from_now(shared.config.max_block);
        let target = self.with_txn(|state| {
            if offsets.is_empty() {
                return Ok(None);
            }
            let txn = state.txn.as_ref().expect("checked");
            // Offsets the manager no longer holds were dropped with their aborted transaction.
            if state.pending_offsets.is_some() && txn.offsets_pending() {
                // Replacing them would drop the earlier call's offsets from the transaction
                // (Java refuses a call while another is pending too: `throwIfPendingState`).
                return Err(Error::InvalidState(
                    "send_offsets_to_transaction: offsets from an earlier call are still being \
                     committed; await that call before sending more"
                        .into(),
                ));
            }
            state
                .txn
                .as_mut()
                .expect("checked")
                .begin_send_offsets(&group.group_id)?;
            state.pending_offsets = Some(transaction::PendingOffsets {
                offsets: offsets.to_vec(),
                group: group.clone(),
            });
            Ok(Some(state.offsets_committed + 1))
        })?;
        let Some(target) = target else {
            return Ok(());
        };
        shared.wake_txn();
        shared
            .wait_txn(deadline, ApiKey::TxnOffsetCommit, |state| {
                if state.offsets_committed >= target {
                    return Some(Ok(()));
                }
                txn_error(state).map(Err)
            })
            .await
    }

    /// Java `commitTransaction`: flushes every record of the transaction, then sends
    /// EndTxn(commit). If a send in the transaction failed, or the coordinator refused the
    /// transaction, this fails with an [`ErrorClass::Abortable`] error: call
    /// [`Producer::abort_transaction`] and begin again. A [`ErrorClass::Fatal`] error (fenced by a
    /// newer producer with the same `transactional.id`, not authorized) means the producer is
    /// unusable. Under v2 the producer takes the epoch EndTxn returns for the next transaction.
    ///
    /// Bounded by `max.block.ms` ([`Error::Timeout`], retriable). Cancellation or timeout does
    /// not stop the commit: it goes on in the background, and calling this again waits for it.
    /// Until it has ended, aborting or beginning a transaction is refused.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// use josefk::ErrorClass;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("k:9092").transactional_id("copier-1")).await?;
    /// # producer.init_transactions().await?;
    /// producer.begin_transaction()?;
    /// drop(producer.send(ProducerRecord::new("out", "x")).await?);
    /// match producer.commit_transaction().await {
    ///     Ok(()) => {}
    ///     // Abortable: abort, rewind the input, and try again in a new transaction.
    ///     Err(e) if e.class() == ErrorClass::Abortable => producer.abort_transaction().await?,
    ///     // Fatal (fenced by a newer instance, not authorized): this producer is done.
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn commit_transaction(&self) -> Result<()> {
        let started = Instant::now();
        let call = self.commit_transaction_inner();
        self.traced("commit_transaction", call).await?;
        self.shared().registry().producer.txn_commit.record(started);
        Ok(())
    }

    async fn commit_transaction_inner(&self) -> Result<()> {
        let shared = self.shared();
        let deadline = crate::clock::from_now(shared.config.max_block);
        self.with_txn(|state| {
            state.txn.as_mut().expect("checked").begin_commit()?;
            if !state.txn_flush {
                state.txn_flush = true;
                state.begin_flush();
            }
            Ok(())
        })?;
        shared.wake.notify_one();
        shared.wake_txn();
        self.wait_for_end(deadline).await
    }

    /// Java `abortTransaction`: drops the transaction's records not yet sent (their delivery
    /// futures fail), waits for those in flight, and sends EndTxn(abort). Works after an abortable
    /// error; a new transaction can then begin. After a client-side failure under v1 the epoch is
    /// bumped with InitProducerId (KIP-360/588) before the producer is ready again.
    ///
    /// Bounded by `max.block.ms`. Cancellation or timeout does not stop the abort (nor the epoch
    /// bump that ends it); calling this again waits for it. Until it has ended, committing or
    /// beginning a transaction is refused.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("k:9092").transactional_id("copier-1")).await?;
    /// # producer.init_transactions().await?;
    /// producer.begin_transaction()?;
    /// drop(producer.send(ProducerRecord::new("out", "draft")).await?);
    /// producer.abort_transaction().await?; // read_committed readers never see "draft"
    /// producer.begin_transaction()?;
    /// # Ok(()) }
    /// ```
    pub async fn abort_transaction(&self) -> Result<()> {
        let started = Instant::now();
        let call = self.abort_transaction_inner();
        self.traced("abort_transaction", call).await?;
        self.shared().registry().producer.txn_abort.record(started);
        Ok(())
    }

    async fn abort_transaction_inner(&self) -> Result<()> {
        let shared = self.shared();
        let deadline = crate::clock::from_now(shared.config.max_block);
        let dropped = self.with_txn(|state| {
            state.txn.as_mut().expect("checked").begin_abort()?;
            Ok(state.accumulator.abort_undrained())
        })?;
        for batch in dropped {
            shared.fail_batch(batch, &|| Error::Broker {
                api: crate::error::ApiKey::Produce,
                broker: None,
                code: crate::error::ErrorCode::TransactionAbortable,
                message: Some("the transaction was aborted before this record was sent".into()),
                class: ErrorClass::Abortable,
            });
        }
        shared.wake.notify_one();
        shared.wake_txn();
        self.wait_for_end(deadline).await
    }

    fn txn_id(&self) -> &str {
        self.shared()
            .config
            .transactional_id
            .as_deref()
            .unwrap_or_default()
    }

    /// Runs a transactional call in a `debug` span named for it, with a `debug` event when it
    /// starts and when it ends (how long it took, or its error).
    async fn traced(
        &self,
        call: &'static str,
        run: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let span = tracing::debug_span!(
            "kafka.transaction",
            call,
            transactional_id = self.txn_id(),
            error = tracing::field::Empty,
        );
        let started = Instant::now();
        debug!(parent: &span, "{call} started");
        let result = run.instrument(span.clone()).await;
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        match &result {
            Ok(()) => debug!(parent: &span, took_ms, "{call} done"),
            Err(e) => {
                span.record("error", tracing::field::display(e));
                debug!(parent: &span, took_ms, error = %e, "{call} failed");
            }
        }
        result
    }

    /// Waits until the transaction being committed or aborted has ended.
    async fn wait_for_end(&self, deadline: Instant) -> Result<()> {
        self.shared()
            .wait_txn(deadline, ApiKey::EndTxn, |state| {
                match state.txn.as_ref()?.state() {
                    TxnState::Ready => Some(Ok(())),
                    TxnState::AbortableError | TxnState::FatalError => txn_error(state).map(Err),
                    _ => None,
                }
            })
            .await
    }

    /// Delivers what is queued, waiting at most `timeout`, then stops the producer for good.
    /// Further sends fail with [`Error::Closed`].
    ///
    /// When it returns nothing more is sent: the sender, the per-broker sinks, metadata refreshes
    /// and the transaction driver have all stopped, the producer's connections are closed (a
    /// request not yet fully written is cut off), and every [`DeliveryFuture`] has its outcome.
    /// Records still undelivered fail with [`Error::Undelivered`]: not written if they were never
    /// sent, outcome unknown if a request carrying them was in flight. The returned
    /// [`Error::CloseTimedOut`] counts both.
    ///
    /// Cancellation: dropping the future before `timeout` leaves the producer closing gracefully
    /// (delivering what is queued) without stopping it.
    ///
    /// ```no_run
    /// use josefk::producer::{Producer, ProducerConfig};
    /// use josefk::ProducerRecord;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let producer = Producer::connect(ProducerConfig::new("127.0.0.1:9092")).await?;
    /// drop(producer.send(ProducerRecord::new("events", "bye")).await?);
    /// // Delivers what is queued, waiting at most 10 s; then every delivery future has its outcome.
    /// producer.close(std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let shared = &self.handle.shared;
        let deadline = crate::clock::from_now(timeout);
        shared.begin_close();
        let flushed = shared.wait_until_idle(Some(deadline)).await;
        if let Some(telemetry) = &self.handle.telemetry {
            // The last metrics push (KIP-714), with what the flush delivered counted, within
            // what is left of `timeout`.
            telemetry
                .close(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        let (unsent, unknown) = shared.shut_down().await;
        match flushed {
            Ok(()) if unsent + unknown == 0 => Ok(()),
            Ok(()) | Err(Error::Timeout { .. }) => Err(Error::CloseTimedOut {
                after: timeout,
                unsent,
                unknown,
            }),
            Err(e) => Err(e),
        }
    }
}

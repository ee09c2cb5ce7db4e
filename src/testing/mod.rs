//! An in-process mock Kafka cluster for your own tests (cargo feature `testing`, off by default).
//!
//! [`MockCluster`] starts 1–N fake brokers on loopback TCP ports that speak the real Kafka wire
//! protocol, so josefk's [`Producer`](crate::producer::Producer),
//! [`Consumer`](crate::consumer::Consumer) and [`Admin`](crate::admin::Admin) connect to it as to a
//! real cluster, with no Java, Docker or network. It covers what josefk uses:
//!
//! - topics and partitions (CreateTopics, DeleteTopics, Metadata; auto-creation optional), leaders
//!   spread over the brokers;
//! - Produce with idempotent sequence and epoch checks, and transactional batches;
//! - Fetch (read_uncommitted, and read_committed with the last stable offset and aborted
//!   transactions), long polls, ListOffsets;
//! - classic consumer groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, session and rebalance
//!   timeouts, static members) and committed offsets (OffsetCommit, OffsetFetch);
//! - transactions: InitProducerId (fencing), AddPartitionsToTxn (or `transaction.version` 2
//!   implicit adds), AddOffsetsToTxn, TxnOffsetCommit, EndTxn writing commit and abort markers;
//! - faults: an error code, a delay, a dropped connection or a lost response for chosen requests
//!   ([`Fault`]), moving partition leaders and coordinators, cutting every connection.
//!
//! **It is a test double, not a broker.** Nothing is persisted or replicated; each partition has
//! one replica; fetch sessions, quotas, ACLs, SASL/TLS, compaction, retention, KIP-848 groups,
//! most configuration and the admin calls beyond topics, offsets and the cluster description
//! (groups, configs, partitions, record deletion: josefk reports them as unsupported) are absent. Record batches are stored exactly as the client sent them (after checking their CRC),
//! with the offsets the mock assigned. Use it for fast tests of your own code; keep a few tests
//! against a real Kafka for what only a broker does.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> josefk::Result<()> {
//! use std::time::Duration;
//! use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
//! use josefk::producer::{Producer, ProducerConfig};
//! use josefk::testing::MockCluster;
//! use josefk::{ClientConfig, ProducerRecord, TopicPartition};
//!
//! let cluster = MockCluster::start(3).await?;
//! cluster.create_topic("events", 2)?;
//! let client = ClientConfig::new(&cluster.bootstrap_servers());
//!
//! let producer = Producer::connect(ProducerConfig::with_client(client.clone())).await?;
//! let ack = producer.send(ProducerRecord::new("events", "hello").partition(1)).await?;
//! assert_eq!(ack.await?.offset, Some(0));
//!
//! let config = ConsumerConfig::with_client(client).auto_offset_reset(AutoOffsetReset::Earliest);
//! let mut consumer = Consumer::connect(config).await?;
//! consumer.assign(&[TopicPartition::new("events", 1)]).await?;
//! let mut values = Vec::new();
//! while values.is_empty() {
//!     for r in consumer.poll(Duration::from_millis(200)).await? {
//!         values.push(r.value.unwrap_or_default());
//!     }
//! }
//! assert_eq!(values, ["hello"]);
//! # Ok(()) }
//! ```

mod faults;
mod fetch;
mod groups;
mod log;
mod meta;
mod produce;
mod server;
mod state;
mod txn;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use faults::{Api, Fault};

use crate::error::{BrokerRef, Error, Result};
use server::Shared;
use state::State;

/// How often group sessions, rebalance deadlines and transaction timeouts are checked.
const TICK: Duration = Duration::from_millis(50);

/// Settings for [`MockCluster::builder`].
#[derive(Debug, Clone)]
pub struct MockClusterBuilder {
    brokers: usize,
    auto_create_topics: bool,
    default_partitions: i32,
    transaction_version: i16,
}

impl MockClusterBuilder {
    /// Number of brokers (at least 1; default 1). Node ids are 1..=N.
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n.max(1);
        self
    }

    /// Whether Metadata requests that allow it create unknown topics (Kafka's
    /// `auto.create.topics.enable`; default true, as Kafka).
    pub fn auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }

    /// Partitions of auto-created topics and of CreateTopics with -1 (Kafka's `num.partitions`;
    /// default 1).
    pub fn default_partitions(mut self, n: i32) -> Self {
        self.default_partitions = n.max(1);
        self
    }

    /// The finalized `transaction.version` feature: 2 (default, as Kafka 4; KIP-890: partitions
    /// and groups added implicitly, an epoch bump with every EndTxn) or 0 (AddPartitionsToTxn and
    /// AddOffsetsToTxn, as before Kafka 4).
    pub fn transaction_version(mut self, version: i16) -> Self {
        self.transaction_version = if version >= 2 { 2 } else { 0 };
        self
    }

    /// Binds one loopback port per broker and starts serving. Must be called within a tokio
    /// runtime; the brokers stop when the [`MockCluster`] is dropped.
    ///
    /// Cancellation: dropping the future before it resolves stops nothing that outlives it.
    pub async fn start(self) -> Result<MockCluster> {
        let mut state = State::new(
            self.auto_create_topics,
            self.default_partitions,
            self.transaction_version,
        );
        let mut listeners = Vec::new();
        for id in 1..=self.brokers as i32 {
            let listener =
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| Error::Connect {
                        broker: BrokerRef {
                            node_id: Some(id),
                            addr: "127.0.0.1:0".into(),
                        },
                        source,
                    })?;
            let addr = listener.local_addr().map_err(|source| Error::Connect {
                broker: BrokerRef {
                    node_id: Some(id),
                    addr: "127.0.0.1:0".into(),
                },
                source,
            })?;
            state.brokers.insert(id, addr.port());
            listeners.push((id, addr, listener));
        }
        let (kill, _) = watch::channel((0, -1));
        let shared = Arc::new(Shared {
            state: std::sync::Mutex::new(state),
            appended: Notify::new(),
            kill,
        });
        let mut tasks = Vec::new();
        let mut addrs = BTreeMap::new();
        for (id, addr, listener) in listeners {
            addrs.insert(id, addr);
            tasks.push(tokio::spawn(server::accept_loop(
                listener,
                shared.clone(),
                id,
            )));
        }
        let ticker = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                let aborted = {
                    let mut st = ticker.lock();
                    groups::tick(&mut st);
                    txn::tick(&mut st)
                };
                if aborted {
                    ticker.appended.notify_waiters();
                }
            }
        }));
        Ok(MockCluster {
            shared,
            tasks,
            addrs,
        })
    }
}

/// An in-process mock Kafka cluster; see the [module docs](self). Stops when dropped.
#[derive(Debug)]
pub struct MockCluster {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    addrs: BTreeMap<i32, SocketAddr>,
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl MockCluster {
    /// Settings for a cluster: 1 broker, topic auto-creation on, 1 partition by default,
    /// `transaction.version` 2 (as Kafka 4 clusters).
    pub fn builder() -> MockClusterBuilder {
        MockClusterBuilder {
            brokers: 1,
            auto_create_topics: true,
            default_partitions: 1,
            transaction_version: 2,
        }
    }

    /// Starts a cluster of `brokers` brokers (at least 1) with the default settings.
    ///
    /// Cancellation: dropping the future before it resolves stops nothing that outlives it.
    pub async fn start(brokers: usize) -> Result<MockCluster> {
        MockCluster::builder().brokers(brokers).start().await
    }

    /// `host:port` of every broker, comma-separated: the `bootstrap.servers` to give clients.
    pub fn bootstrap_servers(&self) -> String {
        let all: Vec<String> = self.addrs.values().map(|a| a.to_string()).collect();
        all.join(",")
    }

    /// The node ids of the brokers (1..=N).
    pub fn broker_ids(&self) -> Vec<i32> {
        self.addrs.keys().copied().collect()
    }

    /// Creates a topic (as CreateTopics would). Fails if it exists or the name is invalid.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        match self.shared.lock().create_topic(name, partitions) {
            0 => Ok(()),
            code => Err(Error::InvalidArgument(format!(
                "mock cluster cannot create topic `{name}` with {partitions} partitions \
                 (Kafka error code {code})"
            ))),
        }
    }

    /// Adds a fault for the next matching request(s); see [`Fault`].
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// How many requests of `api` the brokers received so far (faulted ones included).
    pub fn requests(&self, api: Api) -> u64 {
        let key = api.key() as i16;
        self.shared
            .lock()
            .request_counts
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// How many injected faults have catches left (0 once every fault has fired).
    pub fn pending_faults(&self) -> usize {
        self.shared.lock().faults.len()
    }

    /// Removes every fault not yet used.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Closes every open client connection to every broker (clients reconnect).
    pub fn drop_connections(&self) {
        self.close(-1);
    }

    /// Closes every open client connection to broker `node_id`.
    pub fn drop_connections_to(&self, node_id: i32) {
        self.close(node_id);
    }

    fn close(&self, target: i32) {
        self.shared.kill.send_modify(|(generation, t)| {
            *generation += 1;
            *t = target;
        });
    }

    fn check_broker(&self, node_id: i32) -> Result<()> {
        if self.addrs.contains_key(&node_id) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "mock cluster has no broker {node_id} (brokers: {:?})",
                self.broker_ids()
            )))
        }
    }

    /// Makes `node_id` the leader of a partition and bumps its leader epoch; the old leader
    /// answers NOT_LEADER_OR_FOLLOWER from now on.
    pub fn move_leader(&self, topic: &str, partition: i32, node_id: i32) -> Result<()> {
        self.check_broker(node_id)?;
        let mut state = self.shared.lock();
        let log = state.partition_mut(topic, partition).ok_or_else(|| {
            Error::InvalidArgument(format!("mock cluster has no partition {topic}-{partition}"))
        })?;
        log.leader = node_id;
        log.leader_epoch += 1;
        Ok(())
    }

    /// The leader of a partition, if it exists.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.shared
            .lock()
            .partition(topic, partition)
            .map(|p| p.leader)
    }

    /// Makes `node_id` the coordinator of consumer group `group`; the old one answers
    /// NOT_COORDINATOR from now on. The group's members and offsets move with it.
    pub fn move_group_coordinator(&self, group: &str, node_id: i32) -> Result<()> {
        self.check_broker(node_id)?;
        let mut state = self.shared.lock();
        state
            .coordinator_overrides
            .insert((0, group.to_owned()), node_id);
        Ok(())
    }

    /// Makes `node_id` the transaction coordinator of `transactional_id`; the old one answers
    /// NOT_COORDINATOR from now on. Open transactions move with it.
    pub fn move_transaction_coordinator(&self, transactional_id: &str, node_id: i32) -> Result<()> {
        self.check_broker(node_id)?;
        let mut state = self.shared.lock();
        state
            .coordinator_overrides
            .insert((1, transactional_id.to_owned()), node_id);
        Ok(())
    }

    /// The broker coordinating consumer group `group`.
    pub fn group_coordinator(&self, group: &str) -> i32 {
        self.shared.lock().coordinator(0, group)
    }

    /// The broker coordinating `transactional_id`.
    pub fn transaction_coordinator(&self, transactional_id: &str) -> i32 {
        self.shared.lock().coordinator(1, transactional_id)
    }

    /// The log end offset (high watermark) of a partition, if it exists.
    pub fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.shared
            .lock()
            .partition(topic, partition)
            .map(|p| p.high_watermark())
    }

    /// The committed offset of a group for a partition (transactional offsets count once their
    /// transaction commits).
    pub fn committed_offset(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let state = self.shared.lock();
        let g = state.groups.get(group)?;
        g.offsets
            .get(&(topic.to_owned(), partition))
            .map(|(o, _)| *o)
    }
}

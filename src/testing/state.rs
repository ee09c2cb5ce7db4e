//! Everything the mock cluster remembers, behind one lock: brokers, topics and their partition
//! logs, producer ids and sequence state, consumer groups, transactions, faults to inject.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::faults::Fault;
use super::groups::Group;
use super::log::PartitionLog;
use super::txn::Txn;

/// Kafka error codes the mock answers with (Java's `Errors`).
pub(crate) mod code {
    pub(crate) const NONE: i16 = 0;
    pub(crate) const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub(crate) const CORRUPT_MESSAGE: i16 = 2;
    pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub(crate) const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub(crate) const NOT_COORDINATOR: i16 = 16;
    pub(crate) const INVALID_TOPIC: i16 = 17;
    pub(crate) const ILLEGAL_GENERATION: i16 = 22;
    pub(crate) const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
    pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
    pub(crate) const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub(crate) const INVALID_PARTITIONS: i16 = 37;
    pub(crate) const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub(crate) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub(crate) const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub(crate) const INVALID_TXN_STATE: i16 = 48;
    pub(crate) const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;
    pub(crate) const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    pub(crate) const PRODUCER_FENCED: i16 = 90;
}

/// A topic: its partitions' logs.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) partitions: Vec<PartitionLog>,
}

/// What one partition remembers of one idempotent producer.
#[derive(Debug, Default)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) last_sequence: i32,
    /// The last five batches: (first sequence, last sequence, base offset), for duplicates.
    pub(crate) recent: VecDeque<(i32, i32, i64)>,
}

/// The whole cluster's state.
#[derive(Debug)]
pub(crate) struct State {
    /// Broker id → listening port.
    pub(crate) brokers: BTreeMap<i32, u16>,
    pub(crate) cluster_id: String,
    pub(crate) topics: BTreeMap<String, Topic>,
    pub(crate) auto_create_topics: bool,
    pub(crate) default_partitions: i32,
    /// `transaction.version` the mock finalizes (0 or 2).
    pub(crate) transaction_version: i16,
    /// (topic, partition, producer id) → sequence state.
    pub(crate) producers: HashMap<(String, i32, i64), ProducerEntry>,
    pub(crate) next_producer_id: i64,
    /// Producer id → epoch for idempotent producers (no transactional id), for KIP-360 bumps.
    pub(crate) idempotent_epochs: HashMap<i64, i16>,
    pub(crate) groups: HashMap<String, Group>,
    pub(crate) txns: HashMap<String, Txn>,
    /// Coordinators moved by the test: (key type, key) → broker.
    pub(crate) coordinator_overrides: HashMap<(i8, String), i32>,
    /// Faults waiting for their request, in the order they were added.
    pub(crate) faults: Vec<Fault>,
    pub(crate) next_member: u64,
    /// Requests received, by API key (faulted ones included).
    pub(crate) request_counts: HashMap<i16, u64>,
}

impl State {
    pub(crate) fn new(auto_create_topics: bool, default_partitions: i32, tv: i16) -> Self {
        State {
            brokers: BTreeMap::new(),
            cluster_id: "josefk-mock-cluster".into(),
            topics: BTreeMap::new(),
            auto_create_topics,
            default_partitions,
            transaction_version: tv,
            producers: HashMap::new(),
            next_producer_id: 1000,
            idempotent_epochs: HashMap::new(),
            groups: HashMap::new(),
            txns: HashMap::new(),
            coordinator_overrides: HashMap::new(),
            faults: Vec::new(),
            next_member: 1,
            request_counts: HashMap::new(),
        }
    }

    /// The broker ids, in order.
    pub(crate) fn broker_ids(&self) -> Vec<i32> {
        self.brokers.keys().copied().collect()
    }

    /// Creates a topic whose partition leaders are spread over the brokers.
    pub(crate) fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        if self.topics.contains_key(name) {
            return code::TOPIC_ALREADY_EXISTS;
        }
        if !valid_topic_name(name) {
            return code::INVALID_TOPIC;
        }
        if partitions < 1 {
            return code::INVALID_PARTITIONS;
        }
        let ids = self.broker_ids();
        let start = (hash(name) as usize) % ids.len();
        let partitions = (0..partitions as usize)
            .map(|p| PartitionLog::new(ids[(start + p) % ids.len()]))
            .collect();
        self.topics.insert(name.to_owned(), Topic { partitions });
        code::NONE
    }

    /// The partition, if the topic and partition exist.
    pub(crate) fn partition_mut(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Option<&mut PartitionLog> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get_mut(topic)?.partitions.get_mut(p)
    }

    /// The partition, if the topic and partition exist.
    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionLog> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(p)
    }

    /// The broker coordinating `key` (key type 0: group, 1: transaction).
    pub(crate) fn coordinator(&self, key_type: i8, key: &str) -> i32 {
        if let Some(&b) = self.coordinator_overrides.get(&(key_type, key.to_owned())) {
            return b;
        }
        let ids = self.broker_ids();
        ids[(hash(key) as usize) % ids.len()]
    }

    /// A fresh member id for `client_id`.
    pub(crate) fn member_id(&mut self, client_id: &str) -> String {
        self.next_member += 1;
        format!("{client_id}-mock-{}", self.next_member)
    }
}

/// Kafka's topic name rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A stable hash (FNV-1a) so placement does not change from run to run.
pub(crate) fn hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A monotonic instant, for deadlines.
pub(crate) fn now() -> Instant {
    Instant::now()
}

//! A one-broker, one-partition cluster on a [`ScriptedBroker`] for consumer fault tests: Metadata
//! names node 1 (the scripted broker) as leader of `t-0` (and of the partitions a test adds with
//! [`FetchCluster::partition_count`]), and every Fetch is answered by the test's [`FetchAnswer`]
//! for `t-0`. Each Fetch is logged with when it arrived and the offset asked
//! for, so tests count requests over a window (bounds, never exact timings).
//!
//! It also answers what a consumer with `group.id` and a position reset need: FindCoordinator
//! (itself), OffsetCommit (as [`FetchCluster::answer_commits_with`] says) and ListOffsets (the
//! offset [`FetchCluster::list_offsets_answer`] says, without error), logging when each arrived,
//! and OffsetFetch (the offset [`FetchCluster::committed_answer`] says). [`FetchCluster::hold`]
//! keeps one of those unanswered until the test releases it.
//!
//! Also builds the record batches the tests serve: plain ones, and gzip batches that inflate to
//! a chosen size from a few KiB of wire bytes (concatenated gzip members, which Kafka's and
//! josefk's gzip readers accept).

#![allow(dead_code)] // each test binary uses part of it

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, FindCoordinatorResponse, GroupId,
    ListOffsetsResponse, MetadataResponse, OffsetCommitResponse, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::consumer::{Consumer, ConsumerConfig, ConsumerRecord};
use josefk::protocol::records::{
    encode_batch, rewrite_producer_state, set_base_offset, BatchOptions, RecordInput,
};
use josefk::protocol::Compression;
use josefk::{ClientConfig, Header, TopicPartition};
use protocol_tests::{Action, ScriptedBroker};
use tokio::sync::Notify;

/// The only topic; it has one partition.
pub const TOPIC: &str = "t";

/// One Fetch as the broker saw it.
#[derive(Debug, Clone, Copy)]
pub struct FetchSeen {
    /// When it arrived.
    pub at: Instant,
    /// The fetch offset of `t-0`.
    pub offset: i64,
    /// How many Fetch requests arrived before this one.
    pub nth: usize,
}

/// How the broker answers one Fetch.
#[derive(Debug, Clone)]
pub enum FetchAnswer {
    /// These bytes as `t-0`'s records, at once.
    Records(Bytes),
    /// No records, after holding the fetch for its `max_wait_ms` (a healthy broker).
    EmptyAfterWait,
    /// No records, at once (a broker that does not wait).
    EmptyAtOnce,
    /// A partition error code for `t-0`, at once.
    PartitionError(i16),
    /// These bytes as the records of `t-1`, a partition the fetch did not ask for, at once.
    UnaskedPartition(Bytes),
    /// The connection is closed without an answer.
    Close,
}

/// How the broker answers an OffsetCommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitAnswer {
    /// Every partition committed.
    Commit,
    /// An answer without error that names no partition.
    LeaveOut,
}

type Answer = dyn Fn(&FetchSeen) -> FetchAnswer + Send + Sync;

/// How a test answers the APIs this module does not (the group APIs, for example).
type Others = dyn Fn(&kafka_protocol::messages::RequestHeader, Bytes) -> Action + Send + Sync;

struct Script {
    port: Mutex<i32>,
    fetches: Mutex<Vec<FetchSeen>>,
    answer: Mutex<Arc<Answer>>,
    commits: Mutex<Vec<Instant>>,
    commit_answer: Mutex<CommitAnswer>,
    list_offsets: Mutex<Vec<Instant>>,
    list_offsets_answer: Mutex<i64>,
    offset_fetches: Mutex<Vec<Instant>>,
    committed_answer: Mutex<i64>,
    /// Requests of this API wait for the gate's permit.
    hold: Mutex<Option<(ApiKey, Arc<Notify>)>>,
    others: Mutex<Option<Arc<Others>>>,
    /// How many partitions Metadata gives `t`.
    partitions: Arc<AtomicI32>,
}

/// The scripted one-partition cluster.
pub struct FetchCluster {
    broker: ScriptedBroker,
    script: Arc<Script>,
}

impl FetchCluster {
    /// Starts the broker; `answer` decides every Fetch.
    pub async fn start(
        answer: impl Fn(&FetchSeen) -> FetchAnswer + Send + Sync + 'static,
    ) -> FetchCluster {
        let script = Arc::new(Script {
            port: Mutex::new(0),
            fetches: Mutex::new(Vec::new()),
            answer: Mutex::new(Arc::new(answer)),
            commits: Mutex::new(Vec::new()),
            commit_answer: Mutex::new(CommitAnswer::Commit),
            list_offsets: Mutex::new(Vec::new()),
            list_offsets_answer: Mutex::new(0),
            offset_fetches: Mutex::new(Vec::new()),
            committed_answer: Mutex::new(-1),
            hold: Mutex::new(None),
            others: Mutex::new(None),
            partitions: Arc::new(AtomicI32::new(1)),
        });
        let broker = {
            let script = script.clone();
            ScriptedBroker::start(move |header, body| script.handle(header, body)).await
        };
        let port: i32 = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
        *script.port.lock().unwrap() = port;
        FetchCluster { broker, script }
    }

    /// Replaces how Fetch requests are answered from now on.
    pub fn answer_with(&self, answer: impl Fn(&FetchSeen) -> FetchAnswer + Send + Sync + 'static) {
        *self.script.answer.lock().unwrap() = Arc::new(answer);
    }

    /// Answers every API this module does not (JoinGroup, SyncGroup, Heartbeat, ...) with
    /// `answer` from now on; at first they get [`Action::Default`].
    pub fn answer_others_with(
        &self,
        answer: impl Fn(&kafka_protocol::messages::RequestHeader, Bytes) -> Action
            + Send
            + Sync
            + 'static,
    ) {
        *self.script.others.lock().unwrap() = Some(Arc::new(answer));
    }

    /// How many partitions Metadata gives `t` (at first 1, all led by the scripted broker);
    /// changing it changes the next Metadata answers. Fetch still answers for `t-0` only.
    pub fn partition_count(&self) -> Arc<AtomicI32> {
        self.script.partitions.clone()
    }

    /// Answers OffsetCommit requests like this from now on (at first: [`CommitAnswer::Commit`]).
    pub fn answer_commits_with(&self, answer: CommitAnswer) {
        *self.script.commit_answer.lock().unwrap() = answer;
    }

    /// Answers ListOffsets with this offset, without error, from now on (at first: 0).
    pub fn list_offsets_answer(&self, offset: i64) {
        *self.script.list_offsets_answer.lock().unwrap() = offset;
    }

    /// Answers OffsetFetch with this committed offset for `t-0` from now on (at first: -1,
    /// nothing committed).
    pub fn committed_answer(&self, offset: i64) {
        *self.script.committed_answer.lock().unwrap() = offset;
    }

    /// Leaves requests of `api` (ListOffsets, OffsetFetch or OffsetCommit) unanswered until
    /// [`FetchCluster::release`]; the connection stays open.
    pub fn hold(&self, api: ApiKey) {
        *self.script.hold.lock().unwrap() = Some((api, Arc::new(Notify::new())));
    }

    /// Answers the held request (one) and stops holding.
    pub fn release(&self) {
        if let Some((_, gate)) = self.script.hold.lock().unwrap().take() {
            gate.notify_one();
        }
    }

    /// When each OffsetFetch arrived.
    pub fn offset_fetches(&self) -> Vec<Instant> {
        self.script.offset_fetches.lock().unwrap().clone()
    }

    /// When each OffsetCommit arrived.
    pub fn commits(&self) -> Vec<Instant> {
        self.script.commits.lock().unwrap().clone()
    }

    /// When each ListOffsets arrived.
    pub fn list_offsets(&self) -> Vec<Instant> {
        self.script.list_offsets.lock().unwrap().clone()
    }

    /// Every Fetch so far.
    pub fn fetches(&self) -> Vec<FetchSeen> {
        self.script.fetches.lock().unwrap().clone()
    }

    /// Fetches that arrived at or after `since`.
    pub fn fetches_since(&self, since: Instant) -> usize {
        self.fetches().iter().filter(|f| f.at >= since).count()
    }

    /// Consumer settings for this cluster: josefk's defaults (retry.backoff.ms 100,
    /// retry.backoff.max.ms 1000, fetch.max.wait.ms 500) but a short request timeout.
    pub fn config(&self) -> ConsumerConfig {
        let client = ClientConfig::new(&self.broker.addr())
            .client_id("consumer-faults")
            .request_timeout(Duration::from_secs(5));
        ConsumerConfig::with_client(client)
    }

    /// A consumer with `config`, assigned `t-0` at offset `start`.
    pub async fn consumer(&self, config: ConsumerConfig, start: i64) -> Consumer {
        let mut consumer = self.consumer_without_position(config).await;
        let tp = TopicPartition::new(TOPIC, 0);
        consumer.seek(&tp, start).expect("seek");
        consumer
    }

    /// A consumer with `config`, assigned `t-0` without a position (`auto.offset.reset` or the
    /// group's commit gives it one).
    pub async fn consumer_without_position(&self, config: ConsumerConfig) -> Consumer {
        let mut consumer = Consumer::connect(config).await.expect("connect");
        let tp = TopicPartition::new(TOPIC, 0);
        consumer
            .assign(std::slice::from_ref(&tp))
            .await
            .expect("assign");
        consumer
    }
}

impl Script {
    fn handle(&self, header: &kafka_protocol::messages::RequestHeader, body: Bytes) -> Action {
        let action = self.answer(header, body);
        let api = ApiKey::try_from(header.request_api_key).ok();
        match &*self.hold.lock().unwrap() {
            Some((held, gate)) if Some(*held) == api => {
                Action::WaitFor(gate.clone(), Box::new(action))
            }
            _ => action,
        }
    }

    fn answer(&self, header: &kafka_protocol::messages::RequestHeader, mut body: Bytes) -> Action {
        let version = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::Metadata) => self.metadata(version),
            Ok(ApiKey::Fetch) => {
                let request = FetchRequest::decode(&mut body, version).expect("a Fetch request");
                let offset = request
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| p.fetch_offset)
                    .next()
                    .unwrap_or(-1);
                let seen = {
                    let mut fetches = self.fetches.lock().unwrap();
                    let seen = FetchSeen {
                        at: Instant::now(),
                        offset,
                        nth: fetches.len(),
                    };
                    fetches.push(seen);
                    seen
                };
                let answer = self.answer.lock().unwrap().clone();
                let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
                match answer(&seen) {
                    FetchAnswer::Records(records) => fetch_reply(version, 0, Some(records)),
                    FetchAnswer::EmptyAfterWait => {
                        Action::Delay(wait, Box::new(fetch_reply(version, 0, None)))
                    }
                    FetchAnswer::EmptyAtOnce => fetch_reply(version, 0, None),
                    FetchAnswer::PartitionError(code) => fetch_reply(version, code, None),
                    FetchAnswer::UnaskedPartition(records) => {
                        fetch_reply_for(version, 1, 0, Some(records))
                    }
                    FetchAnswer::Close => Action::Close,
                }
            }
            Ok(ApiKey::FindCoordinator) => self.find_coordinator(version),
            Ok(ApiKey::OffsetCommit) => {
                self.commits.lock().unwrap().push(Instant::now());
                let partitions = match *self.commit_answer.lock().unwrap() {
                    CommitAnswer::Commit => {
                        vec![OffsetCommitResponsePartition::default().with_partition_index(0)]
                    }
                    CommitAnswer::LeaveOut => Vec::new(),
                };
                let topics = if partitions.is_empty() {
                    Vec::new()
                } else {
                    vec![OffsetCommitResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                        .with_partitions(partitions)]
                };
                Action::reply(
                    &OffsetCommitResponse::default().with_topics(topics),
                    version,
                )
            }
            Ok(ApiKey::ListOffsets) => {
                self.list_offsets.lock().unwrap().push(Instant::now());
                let offset = *self.list_offsets_answer.lock().unwrap();
                let topic = ListOffsetsTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partitions(vec![ListOffsetsPartitionResponse::default()
                        .with_partition_index(0)
                        .with_offset(offset)]);
                Action::reply(
                    &ListOffsetsResponse::default().with_topics(vec![topic]),
                    version,
                )
            }
            Ok(ApiKey::OffsetFetch) => {
                self.offset_fetches.lock().unwrap().push(Instant::now());
                let offset = *self.committed_answer.lock().unwrap();
                Action::reply(&offset_fetch_reply(version, offset), version)
            }
            _ => match self.others.lock().unwrap().clone() {
                Some(others) => others(header, body),
                None => Action::Default,
            },
        }
    }

    fn find_coordinator(&self, version: i16) -> Action {
        let port = *self.port.lock().unwrap();
        let host = StrBytes::from_static_str("127.0.0.1");
        let mut response = FindCoordinatorResponse::default();
        if version >= 4 {
            response.coordinators = vec![Coordinator::default()
                .with_key(StrBytes::from_static_str("g"))
                .with_node_id(BrokerId(1))
                .with_host(host)
                .with_port(port)];
        } else {
            response = response
                .with_node_id(BrokerId(1))
                .with_host(host)
                .with_port(port);
        }
        Action::reply(&response, version)
    }

    fn metadata(&self, version: i16) -> Action {
        let port = *self.port.lock().unwrap();
        let partitions = (0..self.partitions.load(Ordering::SeqCst))
            .map(|i| {
                MetadataResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])
            })
            .collect();
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
            .with_partitions(partitions);
        let response = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(port)])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![topic]);
        Action::reply(&response, version)
    }
}

/// An OffsetFetch answer committing `offset` for `t-0` in group `g` (v8+ per group).
fn offset_fetch_reply(version: i16, offset: i64) -> OffsetFetchResponse {
    use kafka_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    let name = || TopicName(StrBytes::from_static_str(TOPIC));
    if version >= 8 {
        let partition = OffsetFetchResponsePartitions::default()
            .with_partition_index(0)
            .with_committed_offset(offset);
        let topic = OffsetFetchResponseTopics::default()
            .with_name(name())
            .with_partitions(vec![partition]);
        let group = OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![topic]);
        return OffsetFetchResponse::default().with_groups(vec![group]);
    }
    let partition = OffsetFetchResponsePartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset);
    let topic = OffsetFetchResponseTopic::default()
        .with_name(name())
        .with_partitions(vec![partition]);
    OffsetFetchResponse::default().with_topics(vec![topic])
}

/// A Fetch response (no session) with `t-0`'s error code and records.
fn fetch_reply(version: i16, error_code: i16, records: Option<Bytes>) -> Action {
    fetch_reply_for(version, 0, error_code, records)
}

/// A Fetch response (no session) with one partition of `t`: its error code and records.
fn fetch_reply_for(
    version: i16,
    partition: i32,
    error_code: i16,
    records: Option<Bytes>,
) -> Action {
    let partition = PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(error_code)
        .with_high_watermark(1 << 40)
        .with_last_stable_offset(1 << 40)
        .with_log_start_offset(0)
        .with_records(Some(records.unwrap_or_default()));
    let topic = FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    Action::reply(
        &FetchResponse::default()
            .with_session_id(0)
            .with_responses(vec![topic]),
        version,
    )
}

/// An uncompressed batch of `n` records at `base_offset`; record `i`'s value is `v{offset}`.
pub fn plain_batch(base_offset: i64, n: usize) -> Bytes {
    let values: Vec<String> = (0..n as i64)
        .map(|i| format!("v{}", base_offset + i))
        .collect();
    let records: Vec<RecordInput<'_, Header>> = values
        .iter()
        .map(|v| RecordInput {
            timestamp: 1,
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
        })
        .collect();
    let mut out = BytesMut::new();
    let options = BatchOptions {
        base_offset,
        ..Default::default()
    };
    encode_batch(&mut out, &options, records).expect("encodes");
    out.freeze()
}

/// A gzip batch at `base_offset` holding one record whose value is `value_len` zero bytes,
/// built from concatenated gzip members so that it stays a few KiB on the wire however large
/// `value_len` is (`value_len + 1` must be a multiple of 1 MiB: the value and the record's
/// zero header count are all zeros).
pub fn gzip_bomb_batch(base_offset: i64, value_len: usize) -> Bytes {
    const MEMBER: usize = 1 << 20;
    assert_eq!(
        (value_len + 1) % MEMBER,
        0,
        "value_len + 1 must be whole MiB"
    );
    // The record up to its value: attributes, timestamp delta, offset delta, null key, value
    // length (varints, zig-zag encoded).
    let mut prefix = vec![0u8, 0, 0, 1];
    put_varlong(&mut prefix, value_len as i64);
    let body_len = prefix.len() + value_len + 1;
    let mut record_start = Vec::new();
    put_varlong(&mut record_start, body_len as i64);
    record_start.extend_from_slice(&prefix);

    let mut payload = BytesMut::new();
    Compression::Gzip
        .compress(&record_start, &mut payload)
        .expect("compress prefix");
    let mut zeros = BytesMut::new();
    Compression::Gzip
        .compress(&vec![0u8; MEMBER], &mut zeros)
        .expect("compress zeros");
    for _ in 0..(value_len + 1) / MEMBER {
        payload.extend_from_slice(&zeros);
    }

    // The header of an uncompressed one-record batch, switched to gzip over the new payload.
    let template = {
        let mut out = BytesMut::new();
        let records = [RecordInput::<Header> {
            timestamp: 1,
            key: None,
            value: Some(b"x"),
            headers: &[],
        }];
        encode_batch(&mut out, &BatchOptions::default(), records).expect("encodes");
        out
    };
    const RECORDS_AT: usize = 61;
    let mut batch = template[..RECORDS_AT].to_vec();
    batch.extend_from_slice(&payload);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = Compression::Gzip.id();
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    rewrite_producer_state(&mut batch, -1, -1, -1).expect("recompute the CRC");
    set_base_offset(&mut batch, base_offset).expect("base offset");
    Bytes::from(batch)
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Joins batches into one records buffer.
pub fn concat(parts: &[Bytes]) -> Bytes {
    let mut all = BytesMut::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    all.freeze()
}

/// Polls until `until` passes, collecting records and error texts.
pub async fn poll_for(
    consumer: &mut Consumer,
    window: Duration,
) -> (Vec<ConsumerRecord>, Vec<String>) {
    let end = Instant::now() + window;
    let mut records = Vec::new();
    let mut errors = Vec::new();
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        match consumer.poll(left.min(Duration::from_millis(200))).await {
            Ok(batch) => records.extend(batch),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (records, errors)
}

//! Follower fetching (KIP-392) against two scripted brokers: node 1 leads `t-0`, node 2 holds a
//! replica. A consumer with `client.rack` names its rack in each Fetch; the leader answers a fetch
//! from rack `b` with no records and `preferred_read_replica = 2`, and the consumer then reads
//! from node 2 until that replica errs or `metadata.max.age.ms` passes (Java's behaviour).
//!
//! Counts are bounds with wide margins (the machine is shared and loaded), never exact timings.

mod consumer_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::{ClientConfig, TopicPartition};
use protocol_tests::{Action, ScriptedBroker};

use consumer_support::{plain_batch, poll_for};

const OFFSET_OUT_OF_RANGE: i16 = 1;

/// How the follower answers a fetch at some offset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follower {
    /// Records 0..3 at offset 0, nothing (after the wait) beyond.
    Serves,
    /// OFFSET_OUT_OF_RANGE (a follower that lags the leader).
    OutOfRange,
}

/// One Fetch as a broker saw it: the offset and whether it named a rack.
#[derive(Debug, Clone, Copy)]
struct Seen {
    offset: i64,
    rack: bool,
}

#[derive(Default)]
struct Log {
    ports: [i32; 2],
    leader: Vec<Seen>,
    follower: Vec<Seen>,
    list_offsets: usize,
}

struct TwoNodes {
    _leader: ScriptedBroker,
    _follower: ScriptedBroker,
    leader_addr: String,
    log: Arc<Mutex<Log>>,
}

impl TwoNodes {
    async fn start(follower: Follower) -> TwoNodes {
        let log = Arc::new(Mutex::new(Log::default()));
        let l = log.clone();
        let leader = ScriptedBroker::start(move |h, b| answer(&l, 1, follower, h, b)).await;
        let l = log.clone();
        let follower = ScriptedBroker::start(move |h, b| answer(&l, 2, follower, h, b)).await;
        let port = |b: &ScriptedBroker| b.addr().rsplit(':').next().unwrap().parse().unwrap();
        log.lock().unwrap().ports = [port(&leader), port(&follower)];
        TwoNodes {
            leader_addr: leader.addr(),
            _leader: leader,
            _follower: follower,
            log,
        }
    }

    async fn consumer(&self, rack: &str, metadata_max_age: Duration) -> Consumer {
        let mut client = ClientConfig::new(&self.leader_addr)
            .client_id("follower-fetch")
            .request_timeout(Duration::from_secs(5));
        client.metadata_max_age = metadata_max_age;
        let mut config =
            ConsumerConfig::with_client(client).fetch_max_wait(Duration::from_millis(100));
        config.client_rack = rack.into();
        let mut consumer = Consumer::connect(config).await.expect("connect");
        let tp = TopicPartition::new("t", 0);
        consumer
            .assign(std::slice::from_ref(&tp))
            .await
            .expect("assign");
        consumer.seek(&tp, 0).expect("seek");
        consumer
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
}

fn answer(
    log: &Mutex<Log>,
    node: i32,
    follower: Follower,
    header: &RequestHeader,
    mut body: Bytes,
) -> Action {
    let version = header.request_api_version;
    match ApiKey::try_from(header.request_api_key) {
        Ok(ApiKey::Metadata) => metadata(log.lock().unwrap().ports, version),
        Ok(ApiKey::ListOffsets) => {
            log.lock().unwrap().list_offsets += 1;
            Action::Close
        }
        Ok(ApiKey::Fetch) => {
            let request = FetchRequest::decode(&mut body, version).expect("a Fetch request");
            let offset = request
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.fetch_offset)
                .next()
                .unwrap_or(-1);
            let seen = Seen {
                offset,
                rack: !request.rack_id.is_empty(),
            };
            let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
            let mut log = log.lock().unwrap();
            if node == 1 {
                log.leader.push(seen);
                if request.rack_id.as_str() == "b" {
                    return fetch_reply(version, 0, None, 2);
                }
            } else {
                log.follower.push(seen);
                if follower == Follower::OutOfRange {
                    return fetch_reply(version, OFFSET_OUT_OF_RANGE, None, -1);
                }
            }
            match offset {
                0 => fetch_reply(version, 0, Some(plain_batch(0, 3)), -1),
                _ => Action::Delay(wait, Box::new(fetch_reply(version, 0, None, -1))),
            }
        }
        _ => Action::Default,
    }
}

/// Metadata: nodes 1 and 2 on their scripted brokers; node 1 leads `t-0`, both hold it.
fn metadata(ports: [i32; 2], version: i16) -> Action {
    let broker = |id: i32, port: i32| {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(port)
    };
    let partition = MetadataResponsePartition::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(1))
        .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
        .with_isr_nodes(vec![BrokerId(1), BrokerId(2)]);
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
        .with_partitions(vec![partition]);
    let response = MetadataResponse::default()
        .with_brokers(vec![broker(1, ports[0]), broker(2, ports[1])])
        .with_controller_id(BrokerId(1))
        .with_topics(vec![topic]);
    Action::reply(&response, version)
}

fn fetch_reply(version: i16, error_code: i16, records: Option<Bytes>, preferred: i32) -> Action {
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_error_code(error_code)
        .with_high_watermark(3)
        .with_last_stable_offset(3)
        .with_log_start_offset(0)
        .with_preferred_read_replica(BrokerId(preferred))
        .with_records(Some(records.unwrap_or_default()));
    let topic = FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![partition]);
    Action::reply(
        &FetchResponse::default()
            .with_session_id(0)
            .with_responses(vec![topic]),
        version,
    )
}

fn values(records: &[josefk::consumer::ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

/// Rack `b`: the leader points at node 2 once, and the records come from node 2.
#[tokio::test]
async fn the_consumer_reads_from_the_replica_the_leader_names() {
    let nodes = TwoNodes::start(Follower::Serves).await;
    let mut consumer = nodes.consumer("b", Duration::from_secs(300)).await;
    let (records, errors) = poll_for(&mut consumer, Duration::from_secs(2)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(values(&records), ["v0", "v1", "v2"]);
    let log = nodes.log();
    assert_eq!(
        log.leader.len(),
        1,
        "asked the leader once: {:?}",
        log.leader
    );
    assert!(log.leader[0].rack, "the fetch named the rack");
    assert!(
        log.follower.len() >= 2 && log.follower[0].offset == 0 && log.follower[1].offset == 3,
        "read from the replica, then fetched on from it: {:?}",
        log.follower
    );
}

/// Rack `a` (the leader's own): no replica is named, every fetch goes to the leader.
#[tokio::test]
async fn without_a_preferred_replica_the_leader_serves() {
    let nodes = TwoNodes::start(Follower::Serves).await;
    let mut consumer = nodes.consumer("a", Duration::from_secs(300)).await;
    let (records, errors) = poll_for(&mut consumer, Duration::from_secs(1)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(values(&records), ["v0", "v1", "v2"]);
    assert!(nodes.log().follower.is_empty());
}

/// The replica answers OFFSET_OUT_OF_RANGE (it lags): the consumer goes back to the leader
/// without resetting its position (no ListOffsets), and keeps going back and forth at a bounded
/// rate (the leader names the replica again each time, as Kafka's would).
#[tokio::test]
async fn an_out_of_range_replica_sends_the_consumer_back_to_the_leader_without_a_reset() {
    let nodes = TwoNodes::start(Follower::OutOfRange).await;
    let mut consumer = nodes.consumer("b", Duration::from_secs(300)).await;
    let window = Duration::from_secs(3);
    let since = Instant::now();
    let (records, errors) = poll_for(&mut consumer, window).await;
    assert!(records.is_empty() && errors.is_empty(), "{errors:?}");
    let log = nodes.log();
    eprintln!(
        "{} leader, {} follower fetches in {:?}",
        log.leader.len(),
        log.follower.len(),
        since.elapsed()
    );
    assert_eq!(log.list_offsets, 0, "the position was not reset");
    assert!(
        log.leader.len() >= 2,
        "back to the leader: {:?}",
        log.leader
    );
    assert!(log.follower.iter().all(|s| s.offset == 0));
    assert!(
        log.leader.len() + log.follower.len() <= 40,
        "{} fetches in {window:?}",
        log.leader.len() + log.follower.len()
    );
}

/// The replica is followed only for `metadata.max.age.ms`: then the leader is asked again.
#[tokio::test]
async fn the_replica_is_asked_again_of_the_leader_after_metadata_max_age() {
    let nodes = TwoNodes::start(Follower::Serves).await;
    let mut consumer = nodes.consumer("b", Duration::from_millis(500)).await;
    let (records, errors) = poll_for(&mut consumer, Duration::from_secs(3)).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(values(&records), ["v0", "v1", "v2"]);
    let log = nodes.log();
    assert!(
        log.leader.len() >= 2,
        "the leader was asked again once the choice expired: {:?}",
        log.leader
    );
}

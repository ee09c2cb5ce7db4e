//! A KIP-848 `consumer` group member against a scripted coordinator that moves and fences it,
//! answers a real broker gives only under failures: NOT_COORDINATOR must send the member to
//! FindCoordinator again and make its next heartbeat carry every field; FENCED_MEMBER_EPOCH must
//! make the next `poll` report the partitions *lost* (not revoked) and the member rejoin with
//! epoch 0 under the same member id, then take its new assignment; and an auto-commit still
//! retrying when the member is fenced must end there, not go on under the next epoch.
//!
//! Every ConsumerGroupHeartbeat is logged with what it carried; the test asserts what was sent
//! and what the listener heard, not how long anything took.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
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
    ApiKey, BrokerId, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FetchRequest,
    FetchResponse, FindCoordinatorResponse, ListOffsetsResponse, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::consumer::{
    AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol, RebalanceListener,
};
use josefk::{ClientConfig, TopicPartition};
use protocol_tests::{default_versions, Action, ScriptedBroker};

const TOPIC: &str = "t";
const TOPIC_ID: [u8; 16] = [7; 16];
const NOT_COORDINATOR: i16 = 16;
const FENCED_MEMBER_EPOCH: i16 = 110;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

/// One heartbeat as the coordinator saw it.
#[derive(Debug, Clone)]
struct Beat {
    member_id: String,
    epoch: i32,
    subscribed: Option<Vec<String>>,
    regex: Option<String>,
    owned: Option<Vec<i32>>,
}

#[derive(Default)]
struct Script {
    port: Mutex<i32>,
    beats: Mutex<Vec<Beat>>,
    find_coordinators: Mutex<usize>,
    /// Error codes for the next heartbeats, in order; then the model's answer.
    faults: Mutex<Vec<i16>>,
    /// (member epoch, offset) of every OffsetCommit, as sent.
    commits: Mutex<Vec<(i32, i64)>>,
    /// The error every OffsetCommit is answered with, if any.
    commit_error: Mutex<Option<i16>>,
    /// The offset ListOffsets answers (the position a partition without a commit starts at).
    reset_offset: Mutex<i64>,
}

impl Script {
    fn handle(&self, header: &RequestHeader, mut body: Bytes) -> Action {
        let v = header.request_api_version;
        let sb = |s: &str| StrBytes::from_string(s.to_owned());
        let port = *self.port.lock().unwrap();
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::Metadata) => {
                let partition = MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)]);
                let topic = MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(TOPIC))))
                    .with_topic_id(uuid::Uuid::from_bytes(TOPIC_ID))
                    .with_partitions(vec![partition]);
                let response = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port)])
                    .with_controller_id(BrokerId(1))
                    .with_topics(vec![topic]);
                Action::reply(&response, v)
            }
            Ok(ApiKey::FindCoordinator) => {
                *self.find_coordinators.lock().unwrap() += 1;
                let mut r = FindCoordinatorResponse::default();
                if v >= 4 {
                    r.coordinators = vec![Coordinator::default()
                        .with_key(sb("g"))
                        .with_node_id(BrokerId(1))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port)];
                } else {
                    r = r
                        .with_node_id(BrokerId(1))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port);
                }
                Action::reply(&r, v)
            }
            Ok(ApiKey::ConsumerGroupHeartbeat) => {
                let r = ConsumerGroupHeartbeatRequest::decode(&mut body, v).unwrap();
                let beat = Beat {
                    member_id: r.member_id.to_string(),
                    epoch: r.member_epoch,
                    subscribed: r
                        .subscribed_topic_names
                        .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
                    regex: r.subscribed_topic_regex.map(|r| r.to_string()),
                    owned: r
                        .topic_partitions
                        .map(|ts| ts.iter().flat_map(|t| t.partitions.clone()).collect()),
                };
                self.beats.lock().unwrap().push(beat.clone());
                let mut response =
                    ConsumerGroupHeartbeatResponse::default().with_heartbeat_interval_ms(100);
                let fault = {
                    let mut faults = self.faults.lock().unwrap();
                    (!faults.is_empty()).then(|| faults.remove(0))
                };
                if let Some(code) = fault {
                    return Action::reply(&response.with_error_code(code), v);
                }
                // The model: a joining member gets epoch (joins so far) and `t-0`.
                if beat.epoch == 0 {
                    let joins = self
                        .beats
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|b| b.epoch == 0)
                        .count() as i32;
                    response = response.with_member_epoch(joins * 10).with_assignment(Some(
                        Assignment::default().with_topic_partitions(vec![
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(TOPIC_ID))
                                .with_partitions(vec![0]),
                        ]),
                    ));
                } else {
                    // Steady heartbeats and leaves keep the epoch they carry.
                    response = response.with_member_epoch(beat.epoch);
                }
                Action::reply(&response, v)
            }
            // Nothing committed: an answer without the partition.
            Ok(ApiKey::OffsetFetch) => Action::reply(&OffsetFetchResponse::default(), v),
            Ok(ApiKey::OffsetCommit) => {
                let r = OffsetCommitRequest::decode(&mut body, v).unwrap();
                let mut topics = Vec::new();
                for t in &r.topics {
                    let mut partitions = Vec::new();
                    for p in &t.partitions {
                        let epoch = r.generation_id_or_member_epoch;
                        self.commits
                            .lock()
                            .unwrap()
                            .push((epoch, p.committed_offset));
                        partitions.push(
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(self.commit_error.lock().unwrap().unwrap_or(0)),
                        );
                    }
                    topics.push(
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(partitions),
                    );
                }
                Action::reply(&OffsetCommitResponse::default().with_topics(topics), v)
            }
            Ok(ApiKey::ListOffsets) => Action::reply(
                &ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(TopicName(sb(TOPIC)))
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(0)
                            .with_offset(*self.reset_offset.lock().unwrap())]),
                ]),
                v,
            ),
            Ok(ApiKey::Fetch) => {
                let request = FetchRequest::decode(&mut body, v).unwrap();
                let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
                let partition = PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(0)
                    .with_last_stable_offset(0)
                    .with_log_start_offset(0)
                    .with_records(Some(Bytes::new()));
                let topic = FetchableTopicResponse::default()
                    .with_topic(TopicName(sb(TOPIC)))
                    .with_partitions(vec![partition]);
                let response = FetchResponse::default()
                    .with_session_id(0)
                    .with_responses(vec![topic]);
                Action::Delay(wait, Box::new(Action::reply(&response, v)))
            }
            _ => Action::Default,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

struct Listener(Arc<Mutex<Vec<Heard>>>);

impl RebalanceListener for Listener {
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(Heard::Assigned(p.to_vec()));
    }
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(Heard::Revoked(p.to_vec()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(Heard::Lost(p.to_vec()));
    }
}

/// Polls until `done` holds, failing the test after a generous guard.
async fn poll_until(consumer: &mut Consumer, what: &str, mut done: impl FnMut() -> bool) {
    let guard = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < guard, "never: {what}");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_moves_and_fencing_are_survived() {
    let script = Arc::new(Script::default());
    let broker = {
        let script = script.clone();
        ScriptedBroker::start(move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let client = ClientConfig::new(&broker.addr())
        .client_id("kip848-faults")
        .request_timeout(Duration::from_secs(5));
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(client)
            .group_id("g")
            .group_protocol(GroupProtocol::Consumer)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .commit_mode(CommitMode::Manual)
            .fetch_max_wait(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let heard: Arc<Mutex<Vec<Heard>>> = Arc::default();
    consumer.set_rebalance_listener(Listener(heard.clone()));
    consumer.subscribe(&[TOPIC]).unwrap();
    let tp = TopicPartition::new(TOPIC, 0);
    let beats = |s: &Script| s.beats.lock().unwrap().clone();

    // Join, reconcile, acknowledge.
    poll_until(&mut consumer, "assigned and acknowledged", || {
        beats(&script).iter().any(|b| b.owned == Some(vec![0]))
    })
    .await;
    assert_eq!(consumer.assignment(), vec![tp.clone()]);
    assert_eq!(consumer.group_metadata().unwrap().generation_id, 10);
    let member_id = beats(&script)[0].member_id.clone();
    assert!(!member_id.is_empty(), "the member generates its id");
    assert_eq!(beats(&script)[0].subscribed, Some(vec![TOPIC.to_owned()]));

    // The coordinator moves: FindCoordinator again, then a heartbeat with every field.
    let finds = *script.find_coordinators.lock().unwrap();
    let sent = beats(&script).len();
    script.faults.lock().unwrap().push(NOT_COORDINATOR);
    poll_until(&mut consumer, "a heartbeat after NOT_COORDINATOR", || {
        beats(&script).len() >= sent + 2
    })
    .await;
    assert!(*script.find_coordinators.lock().unwrap() > finds);
    let after = &beats(&script)[sent + 1];
    assert_eq!(after.epoch, 10);
    assert_eq!(after.subscribed, Some(vec![TOPIC.to_owned()]));
    assert_eq!(after.owned, Some(vec![0]));
    assert_eq!(consumer.assignment(), vec![tp.clone()], "nothing moved");

    // Fenced: the partitions are lost, the member rejoins with epoch 0 and the same id.
    let sent = beats(&script).len();
    script.faults.lock().unwrap().push(FENCED_MEMBER_EPOCH);
    poll_until(&mut consumer, "reassigned after fencing", || {
        heard.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(
        *heard.lock().unwrap(),
        vec![
            Heard::Assigned(vec![tp.clone()]),
            Heard::Lost(vec![tp.clone()]),
            Heard::Assigned(vec![tp.clone()]),
        ]
    );
    let rejoin = beats(&script)[sent..]
        .iter()
        .find(|b| b.epoch == 0)
        .cloned()
        .expect("a rejoin with epoch 0");
    assert_eq!(rejoin.member_id, member_id);
    assert_eq!(rejoin.owned, Some(vec![]));
    assert_eq!(consumer.group_metadata().unwrap().generation_id, 20);

    // Close: a leave heartbeat (epoch -1) after revoking.
    consumer.close().await.unwrap();
    assert_eq!(beats(&script).last().unwrap().epoch, -1);
    assert_eq!(
        heard.lock().unwrap().last(),
        Some(&Heard::Revoked(vec![tp]))
    );
}

/// An auto-commit still retrying when the member is fenced must not go on under the member's
/// next epoch: its offsets were read before the partitions were lost, and under the new epoch the
/// coordinator would accept them over what the partitions' new owner commits. Every commit is
/// refused retriably, so without the abort the old auto-commit keeps retrying past the rejoin
/// and is the first commit sent with epoch 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_commit_retrying_when_the_member_is_fenced_is_not_sent_under_the_next_epoch() {
    let script = Arc::new(Script::default());
    let broker = {
        let script = script.clone();
        ScriptedBroker::start(move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    *script.commit_error.lock().unwrap() = Some(COORDINATOR_LOAD_IN_PROGRESS);
    *script.reset_offset.lock().unwrap() = 7;
    let client = ClientConfig::new(&broker.addr())
        .client_id("kip848-auto-commit")
        .request_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(50));
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(client)
            .group_id("g")
            .group_protocol(GroupProtocol::Consumer)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .commit_mode(CommitMode::AutoAfterPoll)
            .auto_commit_interval(Duration::from_millis(50))
            .fetch_max_wait(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let heard: Arc<Mutex<Vec<Heard>>> = Arc::default();
    consumer.set_rebalance_listener(Listener(heard.clone()));
    consumer.subscribe(&[TOPIC]).unwrap();
    let commits = |s: &Script| s.commits.lock().unwrap().clone();

    // Epoch 10, position 7: the auto-commit of 7 is refused and retried.
    poll_until(&mut consumer, "an auto-commit retried at epoch 10", || {
        commits(&script).iter().filter(|c| **c == (10, 7)).count() >= 2
    })
    .await;

    // Fenced: lost, rejoined at epoch 20, where the partition starts at 11.
    *script.reset_offset.lock().unwrap() = 11;
    script.faults.lock().unwrap().push(FENCED_MEMBER_EPOCH);
    poll_until(&mut consumer, "a commit at epoch 20", || {
        commits(&script).iter().any(|(epoch, _)| *epoch == 20)
    })
    .await;
    assert_eq!(
        heard.lock().unwrap()[..2],
        [
            Heard::Assigned(vec![TopicPartition::new(TOPIC, 0)]),
            Heard::Lost(vec![TopicPartition::new(TOPIC, 0)]),
        ]
    );
    let at_20: Vec<i64> = commits(&script)
        .iter()
        .filter(|(epoch, _)| *epoch == 20)
        .map(|(_, offset)| *offset)
        .collect();
    assert!(
        at_20.iter().all(|offset| *offset == 11),
        "the lost partition's old offset went out under the new epoch: {at_20:?}"
    );
    *script.commit_error.lock().unwrap() = None;
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_the_consumer_protocol_is_a_clear_error_not_a_retry_loop() {
    let script = Arc::new(Script::default());
    let versions = default_versions()
        .into_iter()
        .filter(|(api, _, _)| *api != ApiKey::ConsumerGroupHeartbeat)
        .collect();
    let broker = {
        let script = script.clone();
        ScriptedBroker::start_with_versions(versions, move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let client = ClientConfig::new(&broker.addr()).request_timeout(Duration::from_secs(5));
    let mut consumer = Consumer::connect(
        ConsumerConfig::with_client(client)
            .group_id("g")
            .group_protocol(GroupProtocol::Consumer),
    )
    .await
    .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let guard = Instant::now() + Duration::from_secs(30);
    let e = loop {
        match consumer.poll(Duration::from_millis(100)).await {
            Err(e) => break e,
            Ok(_) => assert!(
                Instant::now() < guard,
                "no error from a broker without KIP-848"
            ),
        }
    };
    assert!(e.to_string().contains("ConsumerGroupHeartbeat"), "{e}");
    // No retry loop: the coordinator was looked up a few times at most.
    let finds = *script.find_coordinators.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*script.find_coordinators.lock().unwrap(), finds);
    assert!(finds <= 2, "{finds} FindCoordinator requests");
}

/// A consumer on `broker` in group `g` with `group.protocol=consumer`.
async fn pattern_consumer(broker: &ScriptedBroker) -> Consumer {
    let client = ClientConfig::new(&broker.addr()).request_timeout(Duration::from_secs(5));
    Consumer::connect(
        ConsumerConfig::with_client(client)
            .group_id("g")
            .group_protocol(GroupProtocol::Consumer)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .commit_mode(CommitMode::Manual)
            .fetch_max_wait(Duration::from_millis(50)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_goes_to_the_broker_and_is_removed_with_an_empty_regex() {
    let script = Arc::new(Script::default());
    let broker = {
        let script = script.clone();
        ScriptedBroker::start(move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut consumer = pattern_consumer(&broker).await;
    consumer.subscribe_pattern("t|u.*").unwrap();
    let beats = |s: &Script| s.beats.lock().unwrap().clone();
    // The broker resolves the pattern (the script assigns `t-0`); the member resolves the
    // assigned topic id by listing every topic.
    poll_until(&mut consumer, "assigned and acknowledged", || {
        beats(&script).iter().any(|b| b.owned == Some(vec![0]))
    })
    .await;
    assert_eq!(consumer.assignment(), vec![TopicPartition::new(TOPIC, 0)]);
    let join = beats(&script)[0].clone();
    assert_eq!(join.regex.as_deref(), Some("t|u.*"));
    assert_eq!(join.subscribed, Some(vec![]));
    assert!(
        beats(&script)[1..].iter().all(|b| b.regex.is_none()),
        "sent once while unchanged: {:?}",
        beats(&script)
    );

    // Back to names: the regex is removed with "".
    let sent = beats(&script).len();
    consumer.subscribe(&[TOPIC]).unwrap();
    poll_until(&mut consumer, "a heartbeat with the names", || {
        beats(&script).len() > sent
    })
    .await;
    let change = beats(&script)[sent].clone();
    assert_eq!(change.regex.as_deref(), Some(""));
    assert_eq!(change.subscribed, Some(vec![TOPIC.to_owned()]));
    assert_eq!(consumer.subscription_pattern(), None);
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_on_a_broker_without_heartbeat_v1_is_a_clear_error() {
    let script = Arc::new(Script::default());
    let versions = default_versions()
        .into_iter()
        .map(|(api, min, max)| {
            if api == ApiKey::ConsumerGroupHeartbeat {
                (api, 0, 0)
            } else {
                (api, min, max)
            }
        })
        .collect();
    let broker = {
        let script = script.clone();
        ScriptedBroker::start_with_versions(versions, move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut consumer = pattern_consumer(&broker).await;
    consumer.subscribe_pattern("t.*").unwrap();
    let guard = Instant::now() + Duration::from_secs(30);
    let e = loop {
        match consumer.poll(Duration::from_millis(100)).await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < guard, "no error for a v0-only broker"),
        }
    };
    assert!(
        e.to_string().contains("pattern subscriptions need v1"),
        "{e}"
    );
    assert!(
        script.beats.lock().unwrap().is_empty(),
        "no heartbeat without the regex was sent"
    );
}

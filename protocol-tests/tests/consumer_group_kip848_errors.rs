//! A KIP-848 `consumer` group member against a scripted coordinator that refuses it in ways a
//! real broker does only under misconfiguration or bugs: fatal heartbeat answers (the member must
//! release its partitions as lost and every later poll fail, never fetch on without heartbeats),
//! TOPIC_AUTHORIZATION_FAILED (reported, the member kept, the heartbeat retried), a success answer
//! with a negative epoch (taken as fencing, not adopted), a leave the coordinator refuses,
//! refused commits (the consumer stays usable) and an assigned topic id metadata never resolves.

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
use josefk::{ClientConfig, Error, ErrorClass, TopicPartition};
use protocol_tests::{Action, ScriptedBroker};

const TOPIC: &str = "t";
const TOPIC_ID: [u8; 16] = [7; 16];
const UNKNOWN_TOPIC_ID: [u8; 16] = [9; 16];

/// One heartbeat as the coordinator saw it.
#[derive(Debug, Clone)]
struct Beat {
    epoch: i32,
    owned: Option<Vec<i32>>,
}

#[derive(Default)]
struct Script {
    port: Mutex<i32>,
    beats: Mutex<Vec<Beat>>,
    /// Error codes for the next heartbeats, in order; then the model's answer.
    faults: Mutex<Vec<i16>>,
    /// The epoch the next steady heartbeat is answered with (no error), once.
    epoch_override: Mutex<Option<i32>>,
    fetches: Mutex<usize>,
    /// The error leave heartbeats (epoch < 0) are answered with.
    leave_fault: Mutex<Option<i16>>,
    /// The error every OffsetCommit is answered with.
    commit_error: Mutex<i16>,
    /// Whether the assignment also names a topic id metadata never knows.
    unknown_topic: Mutex<bool>,
    /// Whether Metadata answers topic `t` with UNKNOWN_TOPIC_OR_PARTITION.
    hide_topic: Mutex<bool>,
    /// Whether the next steady heartbeat is answered with a new target: `t-0` and an unknown id.
    reassign: Mutex<bool>,
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
                let topic = if *self.hide_topic.lock().unwrap() {
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(TOPIC))))
                        .with_error_code(3)
                } else {
                    topic
                };
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
                    epoch: r.member_epoch,
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
                if beat.epoch < 0 {
                    if let Some(code) = *self.leave_fault.lock().unwrap() {
                        return Action::reply(&response.with_error_code(code), v);
                    }
                }
                if beat.epoch == 0 {
                    let mut tps = vec![TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_bytes(TOPIC_ID))
                        .with_partitions(vec![0])];
                    if *self.unknown_topic.lock().unwrap() {
                        tps.push(
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(UNKNOWN_TOPIC_ID))
                                .with_partitions(vec![0]),
                        );
                    }
                    response = response
                        .with_member_epoch(10)
                        .with_assignment(Some(Assignment::default().with_topic_partitions(tps)));
                } else if std::mem::take(&mut *self.reassign.lock().unwrap()) {
                    response = response.with_member_epoch(11).with_assignment(Some(
                        Assignment::default().with_topic_partitions(vec![
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(TOPIC_ID))
                                .with_partitions(vec![0]),
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(UNKNOWN_TOPIC_ID))
                                .with_partitions(vec![0]),
                        ]),
                    ));
                } else {
                    let e = self.epoch_override.lock().unwrap().take();
                    response = response.with_member_epoch(e.unwrap_or(beat.epoch));
                }
                Action::reply(&response, v)
            }
            Ok(ApiKey::OffsetCommit) => {
                let r = OffsetCommitRequest::decode(&mut body, v).unwrap();
                let code = *self.commit_error.lock().unwrap();
                let topics = r
                    .topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                Action::reply(&OffsetCommitResponse::default().with_topics(topics), v)
            }
            Ok(ApiKey::OffsetFetch) => Action::reply(&OffsetFetchResponse::default(), v),
            Ok(ApiKey::ListOffsets) => Action::reply(
                &ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(TopicName(sb(TOPIC)))
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(0)
                            .with_offset(0)]),
                ]),
                v,
            ),
            Ok(ApiKey::Fetch) => {
                *self.fetches.lock().unwrap() += 1;
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

    fn beats_since(&self, from: usize) -> Vec<i32> {
        self.beats.lock().unwrap()[from..]
            .iter()
            .map(|b| b.epoch)
            .collect()
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

struct Setup {
    script: Arc<Script>,
    _broker: ScriptedBroker,
    consumer: Consumer,
    heard: Arc<Mutex<Vec<Heard>>>,
}

/// A consumer in group `g` that owns `t-0` and has acknowledged it.
async fn setup(script: Script) -> Setup {
    let script = Arc::new(script);
    let broker = {
        let script = script.clone();
        ScriptedBroker::start(move |h, b| script.handle(h, b)).await
    };
    *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let client = ClientConfig::new(&broker.addr()).request_timeout(Duration::from_secs(5));
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
    let guard = Instant::now() + Duration::from_secs(30);
    while !script
        .beats
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.owned == Some(vec![0]))
    {
        assert!(Instant::now() < guard, "never acknowledged t-0");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    Setup {
        script,
        _broker: broker,
        consumer,
        heard,
    }
}

/// Polls until one fails, failing the test after a guard.
async fn first_error(consumer: &mut Consumer) -> Error {
    let guard = Instant::now() + Duration::from_secs(10);
    loop {
        if let Err(e) = consumer.poll(Duration::from_millis(100)).await {
            return e;
        }
        assert!(Instant::now() < guard, "no poll failed");
    }
}

fn t0() -> TopicPartition {
    TopicPartition::new(TOPIC, 0)
}

fn code_of(e: &Error) -> Option<i16> {
    match e {
        Error::Broker { code, .. } => Some(code.code()),
        _ => None,
    }
}

/// A fatal heartbeat answer: the first poll reports it and releases `t-0` as lost; every later
/// poll fails, nothing more is fetched or sent, and a new subscription does not bring the member
/// back (Java's member in FATAL stays there). Before the fix later polls were Ok and went on
/// fetching `t-0` without heartbeats (20/20 polls Ok, fetches growing, no `on_partitions_lost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_heartbeat_answer_releases_the_partitions_and_later_polls_fail() {
    // GROUP_AUTHORIZATION_FAILED, UNKNOWN_SERVER_ERROR (fatal in Java 4.x too), INVALID_REQUEST.
    for code in [30i16, -1, 42] {
        let Setup {
            script,
            _broker,
            mut consumer,
            heard,
        } = setup(Script::default()).await;
        script.faults.lock().unwrap().push(code);
        let e = first_error(&mut consumer).await;
        assert_eq!(code_of(&e), Some(code), "{e}");
        assert_eq!(e.class(), ErrorClass::Fatal, "{e}");
        assert!(consumer.assignment().is_empty(), "code {code}");
        assert_eq!(
            heard.lock().unwrap().last(),
            Some(&Heard::Lost(vec![t0()])),
            "code {code}"
        );
        let beats = script.beats.lock().unwrap().len();
        // A fetch sent before the release may still be answered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let fetches = *script.fetches.lock().unwrap();
        for _ in 0..10 {
            let e = consumer.poll(Duration::from_millis(50)).await.unwrap_err();
            assert_eq!(e.class(), ErrorClass::Fatal, "{e}");
        }
        assert_eq!(*script.fetches.lock().unwrap(), fetches, "code {code}");
        assert_eq!(script.beats_since(beats), Vec::<i32>::new(), "code {code}");
        consumer.unsubscribe().await.unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        let e = consumer.poll(Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(e, Error::Failed(_)), "{e}");
        assert!(
            script.beats_since(beats).is_empty(),
            "code {code}: rejoined"
        );
    }
}

/// TOPIC_AUTHORIZATION_FAILED on a heartbeat is reported by the next poll (class Rejected), but
/// the member keeps `t-0`, polls go on and the heartbeat is retried. Before the fix it was
/// Fatal and heartbeats stopped for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_authorization_failed_is_reported_and_the_heartbeat_retried() {
    let Setup {
        script,
        _broker,
        mut consumer,
        heard,
    } = setup(Script::default()).await;
    let beats = script.beats.lock().unwrap().len();
    script.faults.lock().unwrap().push(29);
    let e = first_error(&mut consumer).await;
    assert_eq!(code_of(&e), Some(29), "{e}");
    assert_eq!(e.class(), ErrorClass::Rejected, "{e}");
    for _ in 0..5 {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    let after = script.beats_since(beats);
    assert!(after.len() >= 3, "heartbeats after the refusal: {after:?}");
    assert!(after.iter().all(|e| *e == 10), "{after:?}");
    assert_eq!(consumer.assignment(), vec![t0()]);
    assert!(!heard
        .lock()
        .unwrap()
        .iter()
        .any(|h| matches!(h, Heard::Lost(_))));
}

/// A heartbeat answered without an error but with member epoch -1: the member takes it as
/// fencing (`t-0` lost) and rejoins with epoch 0. Before the fix it adopted -1, so every later
/// heartbeat was a leave (epochs sent: 10, -1, -1, ...), still owning `t-0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_epoch_in_a_success_answer_makes_the_member_rejoin() {
    let Setup {
        script,
        _broker,
        mut consumer,
        heard,
    } = setup(Script::default()).await;
    let beats = script.beats.lock().unwrap().len();
    *script.epoch_override.lock().unwrap() = Some(-1);
    let guard = Instant::now() + Duration::from_secs(10);
    while !script.beats_since(beats).contains(&0) {
        assert!(Instant::now() < guard, "{:?}", script.beats_since(beats));
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    for _ in 0..5 {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    let after = script.beats_since(beats);
    assert!(!after.iter().any(|e| *e < 0), "{after:?}");
    assert_eq!(*after.last().unwrap(), 10, "{after:?}");
    assert!(heard.lock().unwrap().contains(&Heard::Lost(vec![t0()])));
    assert_eq!(consumer.assignment(), vec![t0()]);
}

/// OffsetCommit refused because the member was fenced (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID,
/// ILLEGAL_GENERATION) or for the partition (TOPIC_AUTHORIZATION_FAILED,
/// OFFSET_METADATA_TOO_LARGE): the commit fails with class Rejected and the consumer stays
/// usable. Before the fix the class was Fatal ("close the client") while the message said
/// "Poll again to rejoin".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_is_rejected_not_fatal() {
    let Setup {
        script,
        _broker,
        mut consumer,
        ..
    } = setup(Script::default()).await;
    for (i, code) in [110i16, 25, 22, 29, 12].into_iter().enumerate() {
        *script.commit_error.lock().unwrap() = code;
        consumer.seek(&t0(), 100 + i as i64).unwrap();
        let e = consumer.commit().await.unwrap_err();
        assert_eq!(code_of(&e), Some(code), "{e}");
        assert_eq!(e.class(), ErrorClass::Rejected, "code {code}: {e}");
        consumer.poll(Duration::from_millis(50)).await.unwrap();
    }
    *script.commit_error.lock().unwrap() = 0;
    consumer.seek(&t0(), 7).unwrap();
    consumer.commit().await.unwrap();
}

/// The assignment names `t-0` and a topic id metadata never resolves. The member consumes `t-0`
/// and the listener hears one `on_partitions_assigned`, not one at every heartbeat that brings
/// the same target back. Before the fix each heartbeat re-ran the reconciliation and the listener
/// heard `on_partitions_assigned([])` about every 100 ms (dozens in 3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_topic_id_does_not_rerun_the_listener_at_every_heartbeat() {
    let script = Script::default();
    *script.unknown_topic.lock().unwrap() = true;
    let Setup {
        script,
        _broker,
        mut consumer,
        heard,
    } = setup(script).await;
    let beats = script.beats.lock().unwrap().len();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(2) {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert!(
        script.beats_since(beats).len() >= 5,
        "the member kept heartbeating"
    );
    assert_eq!(*heard.lock().unwrap(), vec![Heard::Assigned(vec![t0()])]);
    assert_eq!(consumer.assignment(), vec![t0()]);
}

/// The coordinator answers the leave heartbeat NOT_COORDINATOR: `unsubscribe` still completes
/// (the member released its partitions and stopped heartbeating; the group drops it after its
/// session timeout), and the consumer can subscribe again and rejoin with epoch 0. Before the fix
/// `unsubscribe` failed with NOT_COORDINATOR after the subscription was gone, so it could not be
/// retried (the second call was Ok without sending anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_leave_still_completes_unsubscribe() {
    let Setup {
        script,
        _broker,
        mut consumer,
        heard,
    } = setup(Script::default()).await;
    *script.leave_fault.lock().unwrap() = Some(16);
    let beats = script.beats.lock().unwrap().len();
    consumer.unsubscribe().await.unwrap();
    assert_eq!(script.beats_since(beats).last(), Some(&-1));
    assert!(consumer.assignment().is_empty());
    assert_eq!(
        heard.lock().unwrap().last(),
        Some(&Heard::Revoked(vec![t0()]))
    );
    *script.leave_fault.lock().unwrap() = None;
    let beats = script.beats.lock().unwrap().len();
    consumer.subscribe(&[TOPIC]).unwrap();
    let guard = Instant::now() + Duration::from_secs(10);
    while consumer.assignment().is_empty() {
        assert!(Instant::now() < guard, "never rejoined");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(script.beats_since(beats).first(), Some(&0));
    consumer.close().await.unwrap();
}

/// A new target arrives (`t-0` again plus a topic id metadata does not know) while metadata
/// answers `t` with UNKNOWN_TOPIC_OR_PARTITION: `t-0`, still assigned, must be kept by the name it
/// was resolved with (Java's assignedTopicNamesCache), not revoked. Before the fix the lookup for
/// the unknown id dropped `t` from the snapshot and the listener heard Revoked([t-0]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_topic_missing_from_metadata_for_a_moment_is_not_revoked() {
    let Setup {
        script,
        _broker,
        mut consumer,
        heard,
    } = setup(Script::default()).await;
    *script.hide_topic.lock().unwrap() = true;
    *script.reassign.lock().unwrap() = true;
    let guard = Instant::now() + Duration::from_secs(10);
    while !script.beats.lock().unwrap().iter().any(|b| b.epoch == 11) {
        assert!(
            Instant::now() < guard,
            "the new target was never acknowledged"
        );
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    for _ in 0..3 {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(consumer.assignment(), vec![t0()]);
    assert_eq!(*heard.lock().unwrap(), vec![Heard::Assigned(vec![t0()])]);
}

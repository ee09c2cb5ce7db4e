//! A classic consumer group member (JoinGroup/SyncGroup/Heartbeat) against answers a healthy
//! coordinator rarely gives: an unexpected Heartbeat error, GROUP_AUTHORIZATION_FAILED on a
//! heartbeat, commits racing a cooperative rebalance, a SyncGroup assignment that cannot be read,
//! and a partition added while the join runs. The first three run on
//! `josefk::testing::MockCluster` with injected faults; the others on the scripted broker, which
//! answers the group APIs itself.
//!
//! Each test asserts what the application sees (poll errors, rebalance listener calls, the
//! assignment) and that the member keeps its place in the group: heartbeats keep going, or a new
//! JoinGroup is sent.

mod consumer_support;

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use josefk::consumer::{Assignor, CommitMode, Consumer, ConsumerConfig, RebalanceListener};
use josefk::testing::{Api, Fault, MockCluster};
use josefk::TopicPartition;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupResponse,
    RequestHeader, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use protocol_tests::Action;

use consumer_support::{FetchAnswer, FetchCluster, TOPIC};

const UNKNOWN_SERVER_ERROR: i16 = -1;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;

/// A manual-commit member of group `g` on `cluster`, heartbeating every 100 ms.
fn member_config(cluster: &MockCluster) -> ConsumerConfig {
    ConsumerConfig::new(&cluster.bootstrap_servers())
        .group_id("g")
        .commit_mode(CommitMode::Manual)
        .heartbeat_interval(Duration::from_millis(100))
        .session_timeout(Duration::from_secs(6))
}

/// Polls until `consumer` holds `n` partitions.
async fn poll_until_assigned(consumer: &mut Consumer, n: usize) {
    for _ in 0..100 {
        if consumer.assignment().len() == n {
            return;
        }
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(consumer.assignment().len(), n, "never assigned");
}

/// Polls for `window`, returning the errors' texts.
async fn poll_errors(consumer: &mut Consumer, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut errors = Vec::new();
    while Instant::now() < end {
        if let Err(e) = consumer.poll(Duration::from_millis(100)).await {
            errors.push(e.to_string());
        }
    }
    errors
}

/// One UNKNOWN_SERVER_ERROR answer to a Heartbeat used to end the heartbeat task for good: the
/// member kept its partitions while the coordinator dropped it every session timeout. Java's
/// heartbeat thread only counts it as a failed heartbeat and tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unexpected_heartbeat_error_is_retried_and_heartbeats_go_on() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let mut consumer = Consumer::connect(member_config(&cluster)).await.unwrap();
    consumer.subscribe(&["t"]).unwrap();
    poll_until_assigned(&mut consumer, 1).await;

    cluster.inject(Fault::error(Api::Heartbeat, UNKNOWN_SERVER_ERROR));
    let mut errors = poll_errors(&mut consumer, Duration::from_secs(1)).await;
    assert_eq!(cluster.pending_faults(), 0, "the fault never fired");

    let before = cluster.requests(Api::Heartbeat);
    errors.extend(poll_errors(&mut consumer, Duration::from_secs(2)).await);
    let sent = cluster.requests(Api::Heartbeat) - before;
    // Every 100 ms, or 1 s apart at the very least; none at all once the task has ended.
    assert!(
        sent >= 3,
        "heartbeats stopped: {sent} in 2 s after the error"
    );
    assert!(
        errors.is_empty(),
        "a retried heartbeat is no poll error: {errors:?}"
    );
    assert_eq!(consumer.assignment().len(), 1);
    consumer.close().await.unwrap();
}

/// GROUP_AUTHORIZATION_FAILED on a heartbeat reaches the application from `poll`, and the
/// heartbeat task is still alive afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_authorization_failure_on_heartbeat_is_reported_and_heartbeats_go_on() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let mut consumer = Consumer::connect(member_config(&cluster)).await.unwrap();
    consumer.subscribe(&["t"]).unwrap();
    poll_until_assigned(&mut consumer, 1).await;

    cluster.inject(Fault::error(Api::Heartbeat, GROUP_AUTHORIZATION_FAILED));
    let errors = poll_errors(&mut consumer, Duration::from_secs(1)).await;
    assert_eq!(cluster.pending_faults(), 0, "the fault never fired");
    assert_eq!(errors.len(), 1, "reported once: {errors:?}");
    assert!(
        errors[0].contains("GROUP_AUTHORIZATION_FAILED")
            || errors[0].contains("GroupAuthorizationFailed"),
        "{errors:?}"
    );

    let before = cluster.requests(Api::Heartbeat);
    let errors = poll_errors(&mut consumer, Duration::from_secs(2)).await;
    let sent = cluster.requests(Api::Heartbeat) - before;
    assert!(
        sent >= 3,
        "heartbeats stopped: {sent} in 2 s after the error"
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(consumer.assignment().len(), 1);
    consumer.close().await.unwrap();
}

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("revoked {}", p.len()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("assigned {}", p.len()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("lost {}", p.len()));
    }
}

/// A cooperative member committing after every poll while a second member joins. Commits used
/// to be sent with whatever generation the member had, also mid-join; an ILLEGAL_GENERATION
/// answer for the old generation, read after JoinGroup had moved the member on, reset it:
/// a healthy rebalance ended in `on_partitions_lost` and more rebalances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_during_a_cooperative_rebalance_lose_nothing() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 4).unwrap();
    let config =
        || member_config(&cluster).partition_assignment_strategy(vec![Assignor::CooperativeSticky]);
    let events = Events::default();
    let mut a = Consumer::connect(config()).await.unwrap();
    a.set_rebalance_listener(events.clone());
    a.subscribe(&["t"]).unwrap();
    poll_until_assigned(&mut a, 4).await;
    a.commit().await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = tokio::spawn({
        let (config, stop) = (config(), stop.clone());
        async move {
            let mut b = Consumer::connect(config).await.unwrap();
            b.subscribe(&["t"]).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let _ = b.poll(Duration::from_millis(100)).await;
            }
            b
        }
    });
    let mut commit_errors = Vec::new();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        a.poll(Duration::from_millis(100)).await.unwrap();
        if let Err(e) = a.commit().await {
            commit_errors.push((e.is_retriable(), e.to_string()));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let b = b.await.unwrap();
    let events = events.0.lock().unwrap().clone();
    assert!(
        !events.iter().any(|e| e.starts_with("lost")),
        "a healthy rebalance lost partitions: {events:?}; commit errors {commit_errors:?}"
    );
    assert_eq!(
        (a.assignment().len(), b.assignment().len()),
        (2, 2),
        "{events:?}"
    );
    // Refused while rebalancing (REBALANCE_IN_PROGRESS), to be tried again after the next poll.
    assert!(
        commit_errors.iter().all(|(retriable, _)| *retriable),
        "{commit_errors:?}"
    );
    b.close().await.unwrap();
    a.close().await.unwrap();
}

/// The scripted coordinator of group `g` (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), counting
/// joins and syncs.
struct Group {
    joins: AtomicUsize,
    syncs: AtomicUsize,
    /// The first SyncGroup answer carries bytes that are no assignment.
    unreadable_first: bool,
    /// The first SyncGroup adds a partition to `t` (after the leader computed its assignment).
    grow_at_first_sync: Option<Arc<AtomicI32>>,
}

impl Group {
    /// One member, `m-1`, leads every generation; SyncGroup answers with the leader's own
    /// assignment, but see the fields.
    fn answer(&self, header: &RequestHeader, mut body: Bytes) -> Action {
        let v = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::JoinGroup) => {
                let request = JoinGroupRequest::decode(&mut body, v).expect("JoinGroup");
                let generation = self.joins.fetch_add(1, Ordering::SeqCst) as i32 + 1;
                let protocol = &request.protocols[0];
                let member = JoinGroupResponseMember::default()
                    .with_member_id(StrBytes::from_static_str("m-1"))
                    .with_metadata(protocol.metadata.clone());
                let response = JoinGroupResponse::default()
                    .with_generation_id(generation)
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(protocol.name.clone()))
                    .with_leader(StrBytes::from_static_str("m-1"))
                    .with_member_id(StrBytes::from_static_str("m-1"))
                    .with_members(vec![member]);
                Action::reply(&response, v)
            }
            Ok(ApiKey::SyncGroup) => {
                let request = SyncGroupRequest::decode(&mut body, v).expect("SyncGroup");
                let first = self.syncs.fetch_add(1, Ordering::SeqCst) == 0;
                if let (true, Some(partitions)) = (first, &self.grow_at_first_sync) {
                    partitions.fetch_add(1, Ordering::SeqCst);
                }
                let assignment = if first && self.unreadable_first {
                    // Version 1, then a topic count of 5 and nothing more.
                    Bytes::from_static(&[0, 1, 0, 0, 0, 5])
                } else {
                    request.assignments[0].assignment.clone()
                };
                let response = SyncGroupResponse::default()
                    .with_protocol_type(request.protocol_type)
                    .with_protocol_name(request.protocol_name)
                    .with_assignment(assignment);
                Action::reply(&response, v)
            }
            Ok(ApiKey::Heartbeat) => Action::reply(&HeartbeatResponse::default(), v),
            Ok(ApiKey::LeaveGroup) => Action::reply(&LeaveGroupResponse::default(), v),
            _ => Action::Default,
        }
    }
}

/// A SyncGroup assignment that cannot be decoded failed one poll, after which the member counted
/// as stable with no partitions: it heartbeated and never joined again. Now it joins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_assignment_fails_the_poll_and_the_member_joins_again() {
    let cluster = FetchCluster::start(|_| FetchAnswer::EmptyAfterWait).await;
    let group = Arc::new(Group {
        joins: AtomicUsize::new(0),
        syncs: AtomicUsize::new(0),
        unreadable_first: true,
        grow_at_first_sync: None,
    });
    cluster.answer_others_with({
        let group = group.clone();
        move |header, body| group.answer(header, body)
    });
    let config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::Manual)
        .heartbeat_interval(Duration::from_millis(100));
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();

    let mut errors = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && consumer.assignment().is_empty() {
        if let Err(e) = consumer.poll(Duration::from_millis(100)).await {
            errors.push(e.to_string());
        }
    }
    assert_eq!(
        errors.len(),
        1,
        "the bad assignment fails one poll: {errors:?}"
    );
    assert!(
        group.joins.load(Ordering::SeqCst) >= 2,
        "no JoinGroup after the unreadable assignment; errors {errors:?}"
    );
    assert_eq!(
        consumer.assignment(),
        vec![TopicPartition::new(TOPIC, 0)],
        "the next generation's assignment is taken"
    );
    consumer.close().await.unwrap();
}

/// A partition added while the leader's join ran, after it computed the assignment, used to be
/// taken as the baseline of the next partition-count check: the member never rejoined for it
/// and the partition stayed unassigned. The leader now compares with the counts it assigned
/// from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_added_during_the_join_makes_the_leader_rejoin() {
    let cluster = FetchCluster::start(|_| FetchAnswer::EmptyAfterWait).await;
    let group = Arc::new(Group {
        joins: AtomicUsize::new(0),
        syncs: AtomicUsize::new(0),
        unreadable_first: false,
        grow_at_first_sync: Some(cluster.partition_count()),
    });
    cluster.answer_others_with({
        let group = group.clone();
        move |header, body| group.answer(header, body)
    });
    let config = cluster
        .config()
        .group_id("g")
        .commit_mode(CommitMode::Manual)
        .heartbeat_interval(Duration::from_millis(100));
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();

    // metadata.max.age.ms (5 minutes) is far beyond this loop: only the check right after the
    // join can notice the new partition.
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && consumer.assignment().len() < 2 {
        let _ = consumer.poll(Duration::from_millis(100)).await;
    }
    assert_eq!(
        consumer.assignment(),
        vec![TopicPartition::new(TOPIC, 0), TopicPartition::new(TOPIC, 1)],
        "JoinGroups sent: {}",
        group.joins.load(Ordering::SeqCst)
    );
    assert_eq!(group.joins.load(Ordering::SeqCst), 2);
    consumer.close().await.unwrap();
}

//! A classic consumer group member (JoinGroup/SyncGroup/Heartbeat) against answers a healthy
//! coordinator rarely gives: an unexpected Heartbeat error, GROUP_AUTHORIZATION_FAILED on a
//! heartbeat, and commits racing a cooperative rebalance, on `josefk::testing::MockCluster` with
//! injected faults.
//!
//! Each test asserts what the application sees (poll errors, rebalance listener calls, the
//! assignment) and that the member keeps its place in the group: heartbeats keep going.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josefk::consumer::{Assignor, CommitMode, Consumer, ConsumerConfig, RebalanceListener};
use josefk::testing::{Api, Fault, MockCluster};
use josefk::TopicPartition;

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

//! A classic consumer group member (JoinGroup/SyncGroup/Heartbeat) against answers a healthy
//! coordinator rarely gives: an unexpected Heartbeat error and GROUP_AUTHORIZATION_FAILED on a
//! heartbeat, on `josefk::testing::MockCluster` with injected faults.
//!
//! Each test asserts what the application sees (poll errors, the assignment) and that the member
//! keeps its place in the group: heartbeats keep going.

use std::time::{Duration, Instant};

use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
use josefk::testing::{Api, Fault, MockCluster};

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

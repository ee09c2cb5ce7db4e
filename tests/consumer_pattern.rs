//! Live tests of pattern subscriptions (`Consumer::subscribe_pattern`) on both group protocols
//! against a real Kafka 4.x: a matching topic created after subscribing is picked up and read,
//! a deleted one is revoked, a topic whose name only partly matches is never read.
//!
//! On a classic group josefk matches topic names itself every `metadata.max.age.ms` (1 s here);
//! on a `consumer` group the broker resolves the regex, at most every 10 s after topics are
//! created (Kafka's REGEX_BATCH_REFRESH_MIN_INTERVAL_MS) and tells the member with its next
//! heartbeat (5 s by default): waits are generous for that.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::members::{create_topic, produce};
use josefk::admin::Admin;
use josefk::consumer::{
    AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol, RebalanceListener,
};
use josefk::TopicPartition;
use tokio::time::Instant;

const PHASE: Duration = Duration::from_secs(90);

#[derive(Default)]
struct Calls {
    assigned: Vec<TopicPartition>,
    revoked: Vec<TopicPartition>,
    lost: Vec<TopicPartition>,
    /// `on_partitions_assigned` calls, empty ones included.
    joins: usize,
}

struct Listener(Arc<Mutex<Calls>>);

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().revoked.extend_from_slice(partitions);
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let mut calls = self.0.lock().unwrap();
        calls.joins += 1;
        calls.assigned.extend_from_slice(partitions);
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().lost.extend_from_slice(partitions);
    }
}

/// Records read per topic, as (partition, offset) with repeats kept.
type Reads = BTreeMap<String, Vec<(i32, i64)>>;

/// Polls (committing what was read, so a rebalance does not re-deliver it) until `done` holds
/// or `PHASE` passes. Commit errors are returned to the caller's judgement via `strict`.
async fn poll_until(
    consumer: &mut Consumer,
    reads: &mut Reads,
    strict: bool,
    what: &str,
    done: impl Fn(&Consumer, &Reads) -> bool,
) {
    let started = Instant::now();
    let deadline = started + PHASE;
    while !done(consumer, reads) {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {PHASE:?}; read {:?}, assignment {:?}",
            reads
                .iter()
                .map(|(t, r)| (t.clone(), r.len()))
                .collect::<Vec<_>>(),
            consumer.assignment()
        );
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll");
        for r in &records {
            reads
                .entry(r.topic.to_string())
                .or_default()
                .push((r.partition, r.offset));
        }
        if !records.is_empty() {
            if let Err(e) = consumer.commit().await {
                assert!(!strict, "commit: {e}");
            }
        }
    }
    // For the record only (timings are not asserted): how long the broker or the metadata
    // check took to act.
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
}

fn distinct(reads: &Reads, topic: &str) -> BTreeSet<(i32, i64)> {
    reads.get(topic).into_iter().flatten().copied().collect()
}

fn count(reads: &Reads, topic: &str) -> usize {
    reads.get(topic).map_or(0, Vec::len)
}

async fn picks_up_new_topics_and_drops_deleted_ones(protocol: GroupProtocol) {
    let bootstrap = common::bootstrap();
    let base = common::unique_topic("pattern");
    let (a, b, partial) = (
        format!("{base}-a"),
        format!("{base}-b"),
        format!("{base}-ab"),
    );
    create_topic(&bootstrap, &a, 2).await;
    create_topic(&bootstrap, &partial, 1).await;
    produce(&bootstrap, &a, "a", 10).await;
    produce(&bootstrap, &partial, "partial", 5).await;

    let mut client = common::config(&bootstrap);
    client.metadata_max_age = Duration::from_secs(1);
    let config = ConsumerConfig::with_client(client)
        .group_id(format!("{base}-group"))
        .group_protocol(protocol)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .commit_mode(CommitMode::Manual);
    let mut consumer = Consumer::connect(config).await.expect("connect");
    let calls = Arc::new(Mutex::new(Calls::default()));
    consumer.set_rebalance_listener(Listener(calls.clone()));
    // `{base}-ab` contains a match of the pattern but is not one: the whole name must match.
    let pattern = format!("{base}-[ab]");
    consumer
        .subscribe_pattern(&pattern)
        .expect("subscribe_pattern");
    assert_eq!(consumer.subscription_pattern(), Some(pattern.as_str()));

    let mut reads = Reads::new();
    poll_until(&mut consumer, &mut reads, true, "topic a read", |_, r| {
        count(r, &a) >= 10
    })
    .await;

    // A matching topic created after subscribing.
    create_topic(&bootstrap, &b, 3).await;
    produce(&bootstrap, &b, "b", 15).await;
    poll_until(
        &mut consumer,
        &mut reads,
        true,
        "new topic b read",
        |_, r| count(r, &b) >= 15,
    )
    .await;

    // A matching topic deleted: its partitions leave the assignment.
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    admin.delete_topics(&[a.as_str()]).await.expect("delete a");
    poll_until(
        &mut consumer,
        &mut reads,
        false,
        "deleted topic a revoked",
        |c, _| c.assignment().iter().all(|tp| tp.topic != a),
    )
    .await;
    // A few more polls: nothing of the deleted topic comes back, b stays.
    for _ in 0..4 {
        consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll");
    }

    let expected_b: BTreeSet<TopicPartition> = (0..3).map(|p| TopicPartition::new(&b, p)).collect();
    let held: BTreeSet<TopicPartition> = consumer.assignment().into_iter().collect();
    assert_eq!(
        held, expected_b,
        "only the remaining matching topic is held"
    );
    assert_eq!(count(&reads, &a), 10, "topic a: every record once");
    assert_eq!(distinct(&reads, &a).len(), 10, "topic a: no duplicates");
    assert_eq!(count(&reads, &b), 15, "topic b: every record once");
    assert_eq!(distinct(&reads, &b).len(), 15, "topic b: no duplicates");
    assert_eq!(
        count(&reads, &partial),
        0,
        "a partly matching name is never read"
    );

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    let given_up: BTreeSet<&TopicPartition> = calls.revoked.iter().chain(&calls.lost).collect();
    for p in 0..2 {
        let tp = TopicPartition::new(&a, p);
        assert!(calls.assigned.contains(&tp), "{tp} was assigned");
        assert!(given_up.contains(&tp), "{tp} was revoked");
    }
    for tp in &expected_b {
        assert!(calls.assigned.contains(tp), "{tp} was assigned");
    }
    assert!(
        calls.assigned.iter().all(|tp| tp.topic != partial),
        "a partly matching name is never assigned"
    );
    consumer.close().await.expect("close");
    admin
        .delete_topics(&[b.as_str(), partial.as_str()])
        .await
        .expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_pattern_picks_up_new_topics_and_drops_deleted_ones() {
    picks_up_new_topics_and_drops_deleted_ones(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_pattern_picks_up_new_topics_and_drops_deleted_ones() {
    picks_up_new_topics_and_drops_deleted_ones(GroupProtocol::Consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_pattern_is_checked_when_subscribing() {
    let bootstrap = common::bootstrap();
    let config = ConsumerConfig::with_client(common::config(&bootstrap))
        .group_id(common::unique_topic("pattern-bad"))
        .commit_mode(CommitMode::Manual);
    let mut consumer = Consumer::connect(config).await.expect("connect");
    let e = consumer.subscribe_pattern("orders-(").unwrap_err();
    assert!(e.to_string().contains("orders-("), "{e}");
    assert_eq!(consumer.subscription_pattern(), None);
    assert!(consumer.subscribe_pattern("").is_err());
}

/// A pattern that matches nothing yet still joins the group (with no partitions), and the first
/// matching topic created later is read from its start.
async fn a_pattern_matching_nothing_yet_waits_for_its_first_topic(protocol: GroupProtocol) {
    let bootstrap = common::bootstrap();
    let base = common::unique_topic("pattern-empty");
    let mut client = common::config(&bootstrap);
    client.metadata_max_age = Duration::from_secs(1);
    let config = ConsumerConfig::with_client(client)
        .group_id(format!("{base}-group"))
        .group_protocol(protocol)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .commit_mode(CommitMode::Manual);
    let mut consumer = Consumer::connect(config).await.expect("connect");
    let calls = Arc::new(Mutex::new(Calls::default()));
    consumer.set_rebalance_listener(Listener(calls.clone()));
    consumer
        .subscribe_pattern(&format!("{base}-.+"))
        .expect("subscribe_pattern");
    // Joined with nothing to consume: the listener hears an empty assignment.
    let deadline = Instant::now() + PHASE;
    while !joined_empty(&calls) {
        assert!(Instant::now() < deadline, "never joined");
        let records = consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll");
        assert!(records.is_empty());
    }
    assert!(consumer.assignment().is_empty());

    let topic = format!("{base}-first");
    create_topic(&bootstrap, &topic, 2).await;
    produce(&bootstrap, &topic, "first", 8).await;
    let mut reads = Reads::new();
    poll_until(
        &mut consumer,
        &mut reads,
        true,
        "first topic read",
        |_, r| count(r, &topic) >= 8,
    )
    .await;
    assert_eq!(distinct(&reads, &topic).len(), 8);
    assert_eq!(count(&reads, &topic), 8, "every record once");
    consumer.close().await.expect("close");
    let admin = Admin::connect(common::config(&bootstrap)).await.unwrap();
    admin
        .delete_topics(&[topic.as_str()])
        .await
        .expect("clean up");
}

/// Whether the listener heard an assignment at all (an empty one counts: `joins` is recorded).
fn joined_empty(calls: &Arc<Mutex<Calls>>) -> bool {
    calls.lock().unwrap().joins > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_pattern_matching_nothing_yet_waits_for_its_first_topic() {
    a_pattern_matching_nothing_yet_waits_for_its_first_topic(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_pattern_matching_nothing_yet_waits_for_its_first_topic() {
    a_pattern_matching_nothing_yet_waits_for_its_first_topic(GroupProtocol::Consumer).await;
}

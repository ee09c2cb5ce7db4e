//! Live tests of KIP-848 `consumer` group membership (`group.protocol=consumer`) against a real
//! Kafka 4.x: members sharing partitions, a member leaving, one killed (dropped without close),
//! one joining; static member restart; a topic created after subscribing.
//!
//! Member epochs are per member under KIP-848, so "no partition delivered to two members in one
//! epoch" is checked as something stronger: every member logs its listener calls and deliveries
//! to one log, in the order they happened, and replaying the log never finds a partition
//! assigned to a member while another still holds it, nor a record delivered from a partition
//! its member did not hold. The listener order (revoked before assigned, lost for a fenced
//! member) falls out of the same replay.
//!
//! The broker's `group.consumer.session.timeout.ms` decides when a killed member's partitions
//! move: 45 s by default; the test that kills a member runs on a private broker where it is
//! [`KILL_TEST_SESSION`], so that it does not wait out the default.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::members::{create_topic, produce};
use josefk::consumer::{
    AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol, RebalanceListener,
};
use josefk::TopicPartition;
use josefk_harness::ClusterSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The session of the private broker of the test that kills a member: a third of the default.
/// A live member on a loaded machine still keeps its partitions: it would have to miss every
/// heartbeat for 13 s (the heartbeat interval there is [`KILL_TEST_HEARTBEAT`]).
const KILL_TEST_SESSION: Duration = Duration::from_secs(15);
/// The heartbeat interval there (5 s by default): a member learns of a leave or join at its next
/// heartbeat, so each rebalance of that test takes about this long.
const KILL_TEST_HEARTBEAT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(usize, Vec<TopicPartition>),
    Revoked(usize, Vec<TopicPartition>),
    Lost(usize, Vec<TopicPartition>),
    /// A poll returned records of these (partition, offset)s.
    Delivered(usize, Vec<(TopicPartition, i64)>),
    /// The member was dropped without close: it holds nothing any more (a dead process fetches
    /// nothing), though the broker only notices at its session timeout.
    Killed(usize),
    /// The test stops polling the member: it fetches nothing until its next poll, which first
    /// reports its partitions lost (they may be someone else's by then).
    StoppedPolling(usize),
}

#[derive(Default)]
struct Log {
    events: Vec<Event>,
    /// member → its assignment after its last poll.
    assignments: BTreeMap<usize, BTreeSet<TopicPartition>>,
}

type SharedLog = Arc<Mutex<Log>>;

struct Listener(usize, SharedLog);

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let mut l = self.1.lock().unwrap();
        l.events.push(Event::Revoked(self.0, partitions.to_vec()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let mut l = self.1.lock().unwrap();
        l.events.push(Event::Assigned(self.0, partitions.to_vec()));
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        let mut l = self.1.lock().unwrap();
        l.events.push(Event::Lost(self.0, partitions.to_vec()));
    }
}

fn config(bootstrap: &str, group: &str, id: usize) -> ConsumerConfig {
    let mut c = ConsumerConfig::with_client(common::config(bootstrap))
        .group_id(group)
        .group_protocol(GroupProtocol::Consumer)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .commit_mode(CommitMode::Manual);
    c.client.client_id = format!("m{id}");
    c
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctl {
    Run,
    Close,
    Kill,
}

struct Member {
    ctl: watch::Sender<Ctl>,
    task: JoinHandle<()>,
}

impl Member {
    async fn stop(self, how: Ctl) {
        self.ctl.send(how).unwrap();
        self.task.await.expect("member task");
    }
}

/// A member polling in its own task, committing after each poll, logging to `log`.
async fn start(id: usize, config: ConsumerConfig, topics: &[&str], log: SharedLog) -> Member {
    let mut consumer = Consumer::connect(config).await.expect("connect");
    consumer.subscribe(topics).expect("subscribe");
    consumer.set_rebalance_listener(Listener(id, log.clone()));
    let (ctl, mut rx) = watch::channel(Ctl::Run);
    let task = tokio::spawn(async move {
        loop {
            let ctl = *rx.borrow_and_update();
            match ctl {
                Ctl::Run => {}
                Ctl::Close => {
                    consumer.close().await.expect("close");
                    let mut l = log.lock().unwrap();
                    l.assignments.remove(&id);
                    return;
                }
                Ctl::Kill => {
                    drop(consumer);
                    let mut l = log.lock().unwrap();
                    l.events.push(Event::Killed(id));
                    l.assignments.remove(&id);
                    return;
                }
            }
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll");
            {
                let mut l = log.lock().unwrap();
                if !records.is_empty() {
                    let got = records
                        .iter()
                        .map(|r| (TopicPartition::new(&*r.topic, r.partition), r.offset))
                        .collect();
                    l.events.push(Event::Delivered(id, got));
                }
                l.assignments
                    .insert(id, consumer.assignment().into_iter().collect());
            }
            if !records.is_empty() {
                // A reassignment between poll and commit may fail the commit: redelivery by
                // the next owner is allowed, double ownership is not.
                let _ = consumer.commit().await;
            }
        }
    });
    Member { ctl, task }
}

/// Replays the log: a partition is held by one member at a time, records come only from held
/// partitions, and each member's listener calls make sense (nothing revoked or lost that it
/// did not hold, nothing assigned twice).
fn assert_single_owner(log: &SharedLog) {
    let l = log.lock().unwrap();
    let mut owner: BTreeMap<TopicPartition, usize> = BTreeMap::new();
    for (i, e) in l.events.iter().enumerate() {
        match e {
            Event::Assigned(m, tps) => {
                for tp in tps {
                    if let Some(other) = owner.insert(tp.clone(), *m) {
                        panic!("event {i}: {tp} assigned to {m} while {other} holds it: {e:?}");
                    }
                }
            }
            Event::Lost(m, tps) => {
                // Lost partitions may already be another member's: only drop this member's
                // hold, if it still has one.
                for tp in tps {
                    if owner.get(tp) == Some(m) {
                        owner.remove(tp);
                    }
                }
            }
            Event::Revoked(m, tps) => {
                for tp in tps {
                    assert_eq!(
                        owner.remove(tp),
                        Some(*m),
                        "event {i}: {m} released {tp} it did not hold"
                    );
                }
            }
            Event::Delivered(m, records) => {
                for (tp, offset) in records {
                    assert_eq!(
                        owner.get(tp),
                        Some(m),
                        "event {i}: {m} got {tp}@{offset} without holding it"
                    );
                }
            }
            Event::Killed(m) | Event::StoppedPolling(m) => owner.retain(|_, holder| holder != m),
        }
    }
}

/// Waits until `members` hold disjoint sets covering `partitions` of `topic`, sizes within one.
async fn wait_balanced(
    log: &SharedLog,
    members: &[usize],
    topic: &str,
    partitions: i32,
    within: Duration,
) -> BTreeMap<usize, BTreeSet<TopicPartition>> {
    let deadline = Instant::now() + within;
    let all: BTreeSet<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    loop {
        {
            let l = log.lock().unwrap();
            let current: Vec<&BTreeSet<TopicPartition>> = members
                .iter()
                .filter_map(|m| l.assignments.get(m))
                .collect();
            if current.len() == members.len() {
                let union: BTreeSet<TopicPartition> =
                    current.iter().flat_map(|s| s.iter().cloned()).collect();
                let total: usize = current.iter().map(|s| s.len()).sum();
                let min = current.iter().map(|s| s.len()).min().unwrap();
                let max = current.iter().map(|s| s.len()).max().unwrap();
                if union == all && total == all.len() && max - min <= 1 {
                    return members
                        .iter()
                        .map(|m| (*m, l.assignments[m].clone()))
                        .collect();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "assignments not balanced within {within:?}: {:?}",
            log.lock().unwrap().assignments
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every (partition, offset) of `expected` records was delivered to someone.
async fn wait_delivered(log: &SharedLog, expected: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let distinct: BTreeSet<(TopicPartition, i64)> = log
            .lock()
            .unwrap()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered(_, r) => Some(r.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        if distinct.len() >= expected {
            assert_eq!(distinct.len(), expected, "more records than were produced");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} records delivered within {within:?}",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_share_partitions_and_take_over_from_leaving_killed_and_joining_members() {
    // Fail, never skip, without a broker: the shared one must exist even for this test.
    let _ = common::bootstrap();
    let session = KILL_TEST_SESSION.as_millis().to_string();
    let heartbeat = KILL_TEST_HEARTBEAT.as_millis().to_string();
    let cluster = common::PrivateCluster::start(
        ClusterSpec::single()
            .broker_property("group.consumer.min.session.timeout.ms", &session)
            .broker_property("group.consumer.session.timeout.ms", &session)
            .broker_property("group.consumer.min.heartbeat.interval.ms", &heartbeat)
            .broker_property("group.consumer.heartbeat.interval.ms", &heartbeat),
    )
    .await;
    let bootstrap = cluster.bootstrap_servers();
    let result = tokio::spawn(share_take_over_kill_join(bootstrap)).await;
    cluster.shutdown().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn share_take_over_kill_join(bootstrap: String) {
    let topic = common::unique_topic("kip848-share");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    produce(&bootstrap, &topic, "a", 300).await;
    let log = SharedLog::default();
    let mut members = BTreeMap::new();
    for id in 0..3 {
        let c = config(&bootstrap, &group, id);
        members.insert(id, start(id, c, &[&topic], log.clone()).await);
    }
    let three = wait_balanced(&log, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
    assert!(three.values().all(|s| s.len() == 2), "{three:?}");
    wait_delivered(&log, 300, Duration::from_secs(60)).await;

    // Member 0 leaves: the others take its partitions.
    let t = Instant::now();
    members.remove(&0).unwrap().stop(Ctl::Close).await;
    let two = wait_balanced(&log, &[1, 2], &topic, 6, Duration::from_secs(60)).await;
    eprintln!("after leave ({:?}): {two:?}", t.elapsed());
    // Incremental: the members that stayed kept what they had.
    for m in [1, 2] {
        assert!(three[&m].is_subset(&two[&m]), "member {m} lost partitions");
    }
    produce(&bootstrap, &topic, "b", 300).await;
    wait_delivered(&log, 600, Duration::from_secs(60)).await;

    // Member 3 joins: it gets a fair share, taken from the others, revoked before assigned.
    let t = Instant::now();
    members.insert(
        3,
        start(3, config(&bootstrap, &group, 3), &[&topic], log.clone()).await,
    );
    let joined = wait_balanced(&log, &[1, 2, 3], &topic, 6, Duration::from_secs(60)).await;
    eprintln!("after join ({:?}): {joined:?}", t.elapsed());
    assert_eq!(joined[&3].len(), 2);

    // Member 1 is killed: after the broker's session timeout the others have everything.
    let t = Instant::now();
    members.remove(&1).unwrap().stop(Ctl::Kill).await;
    let after_kill = wait_balanced(
        &log,
        &[2, 3],
        &topic,
        6,
        KILL_TEST_SESSION + Duration::from_secs(60),
    )
    .await;
    eprintln!("after kill ({:?}): {after_kill:?}", t.elapsed());
    produce(&bootstrap, &topic, "c", 300).await;
    wait_delivered(&log, 900, Duration::from_secs(60)).await;
    for (_, m) in std::mem::take(&mut members) {
        m.stop(Ctl::Close).await;
    }
    assert_single_owner(&log);
    let events = log.lock().unwrap().events.clone();
    // The leaving member revoked its partitions (close), never lost them.
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Revoked(0, tps) if !tps.is_empty())));
    assert!(!events.iter().any(|e| matches!(e, Event::Lost(..))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_restarting_within_its_session_keeps_its_partitions() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-static");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 4).await;
    let log = SharedLog::default();
    let cfg =
        |id: usize, instance: &str| config(&bootstrap, &group, id).group_instance_id(instance);
    let a = start(0, cfg(0, "a"), &[&topic], log.clone()).await;
    let b = start(1, cfg(1, "b"), &[&topic], log.clone()).await;
    let before = wait_balanced(&log, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    let a_events = |log: &SharedLog| {
        log.lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| matches!(e, Event::Assigned(0, _) | Event::Revoked(0, _)))
            .count()
    };
    let a_before = a_events(&log);

    // "b" closes (a static member's close keeps its place: epoch -2) and a new consumer with
    // the same instance id takes over its partitions, without touching "a".
    b.stop(Ctl::Close).await;
    let b = start(1, cfg(1, "b"), &[&topic], log.clone()).await;
    let after = wait_balanced(&log, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    assert_eq!(after, before, "same partitions after a static restart");
    assert_eq!(
        a_events(&log),
        a_before,
        "the other member did not rebalance"
    );
    for m in [a, b] {
        m.stop(Ctl::Close).await;
    }
    assert_single_owner(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_created_after_subscribing_gets_assigned() {
    let bootstrap = common::bootstrap();
    let present = common::unique_topic("kip848-present");
    let later = common::unique_topic("kip848-later");
    let group = format!("{present}-g");
    create_topic(&bootstrap, &present, 2).await;
    let log = SharedLog::default();
    let m = start(
        0,
        config(&bootstrap, &group, 0),
        &[&present, &later],
        log.clone(),
    )
    .await;
    wait_balanced(&log, &[0], &present, 2, Duration::from_secs(60)).await;

    create_topic(&bootstrap, &later, 3).await;
    produce(&bootstrap, &later, "late", 30).await;
    wait_delivered(&log, 30, Duration::from_secs(60)).await;
    let held = log.lock().unwrap().assignments[&0].clone();
    assert_eq!(held.len(), 5, "{held:?}");
    m.stop(Ctl::Close).await;
    assert_single_owner(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_carry_the_member_epoch_and_group_metadata_names_it() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-commit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 2).await;
    produce(&bootstrap, &topic, "a", 20).await;
    let mut c = Consumer::connect(config(&bootstrap, &group, 0))
        .await
        .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < 20 {
        assert!(Instant::now() < deadline, "only {got} of 20 records");
        got += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    let meta = c.group_metadata().unwrap();
    assert!(meta.generation_id > 0, "member epoch: {meta:?}");
    assert!(!meta.member_id.is_empty());
    // The broker accepts OffsetCommit only for this member at its current epoch.
    c.commit().await.expect("commit with the member epoch");
    let committed = c
        .committed(&[
            TopicPartition::new(&topic, 0),
            TopicPartition::new(&topic, 1),
        ])
        .await
        .unwrap();
    let total: i64 = committed.iter().map(|(_, o)| o.unwrap_or(0)).sum();
    assert_eq!(total, 20);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_stops_polling_leaves_loses_its_partitions_and_rejoins() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-pollgap");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 2).await;
    let log = SharedLog::default();
    let other = start(1, config(&bootstrap, &group, 1), &[&topic], log.clone()).await;

    let mut slow =
        Consumer::connect(config(&bootstrap, &group, 0).max_poll_interval(Duration::from_secs(3)))
            .await
            .unwrap();
    slow.subscribe(&[&topic]).unwrap();
    slow.set_rebalance_listener(Listener(0, log.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "no 1/1 split");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    let held = slow.assignment();
    log.lock().unwrap().events.push(Event::StoppedPolling(0));

    // No poll for longer than max.poll.interval.ms: the heartbeat task leaves the group and the
    // other member takes both partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log
        .lock()
        .unwrap()
        .assignments
        .get(&1)
        .map_or(0, |s| s.len())
        != 2
    {
        assert!(Instant::now() < deadline, "the idle member never left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next poll reports the partitions lost (not revoked), then the member rejoins and gets
    // one back once the other has revoked it.
    let lost_events = |log: &SharedLog| {
        log.lock()
            .unwrap()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Lost(0, tps) => Some(tps.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        slow.poll(Duration::from_millis(200)).await.unwrap();
        let theirs = log
            .lock()
            .unwrap()
            .assignments
            .get(&1)
            .map_or(0, |s| s.len());
        if slow.assignment().len() == 1 && theirs == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the member never got a partition back"
        );
    }
    assert_eq!(lost_events(&log), vec![held]);
    // Since it stopped polling, nothing of member 0 was revoked (the first split may have
    // revoked one partition, if it joined first).
    let events = log.lock().unwrap().events.clone();
    let stopped = events
        .iter()
        .position(|e| *e == Event::StoppedPolling(0))
        .unwrap();
    assert!(
        !events[stopped..]
            .iter()
            .any(|e| matches!(e, Event::Revoked(0, tps) if !tps.is_empty())),
        "{events:?}"
    );
    slow.close().await.unwrap();
    other.stop(Ctl::Close).await;
    assert_single_owner(&log);
}

/// Partition numbers in one VerifiableConsumer JSON event line.
fn json_partitions(line: &str) -> BTreeSet<i32> {
    line.split("\"partition\":")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn josefk_and_java_consumers_share_one_consumer_group() {
    use std::io::BufRead;

    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-java");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    let log = SharedLog::default();
    let member = start(0, config(&bootstrap, &group, 0), &[&topic], log.clone()).await;
    wait_balanced(&log, &[0], &topic, 6, Duration::from_secs(60)).await;

    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &topic,
        "--group-id",
        &group,
        "--group-protocol",
        "consumer",
    ]
    .map(str::to_owned);
    let mut java = tokio::task::spawn_blocking(move || {
        let dist = josefk_harness::KafkaDist::provision().expect("provision Kafka's tools");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        josefk_harness::spawn_java_tool(&dist, "org.apache.kafka.tools.VerifiableConsumer", &args)
            .expect("spawn VerifiableConsumer")
    })
    .await
    .unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = java.take_stdout().expect("stdout");
    let sink = events.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let stderr = java.take_stderr().expect("stderr");
    std::thread::spawn(move || {
        std::io::copy(&mut std::io::BufReader::new(stderr), &mut std::io::sink())
    });
    // Java's current assignment, replayed from its incremental events.
    let java_assigned = |events: &Arc<Mutex<Vec<String>>>| {
        let mut held = BTreeSet::new();
        for line in events.lock().unwrap().iter() {
            if line.contains("\"name\":\"partitions_assigned\"") {
                held.extend(json_partitions(line));
            } else if line.contains("\"name\":\"partitions_revoked\"")
                || line.contains("\"name\":\"partitions_lost\"")
            {
                for p in json_partitions(line) {
                    held.remove(&p);
                }
            }
        }
        held
    };
    // Java joins: josefk gives up three partitions (revoked, not lost), Java gets them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mine: BTreeSet<i32> = log
            .lock()
            .unwrap()
            .assignments
            .get(&0)
            .map(|s| s.iter().map(|tp| tp.partition).collect())
            .unwrap_or_default();
        let theirs = java_assigned(&events);
        if mine.len() == 3 && theirs.len() == 3 {
            assert!(
                mine.is_disjoint(&theirs),
                "josefk {mine:?}, Java {theirs:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 3/3 split: josefk {mine:?}, Java {theirs:?}: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Java leaves: josefk takes over everything and reads records of every partition.
    tokio::task::spawn_blocking(move || java.stop(Duration::from_secs(20)).expect("stop Java"))
        .await
        .unwrap();
    wait_balanced(&log, &[0], &topic, 6, Duration::from_secs(60)).await;
    produce(&bootstrap, &topic, "a", 60).await;
    wait_delivered(&log, 60, Duration::from_secs(60)).await;
    member.stop(Ctl::Close).await;
    assert_single_owner(&log);
    assert!(!log
        .lock()
        .unwrap()
        .events
        .iter()
        .any(|e| matches!(e, Event::Lost(..))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_assignor_is_used_and_an_unknown_one_is_a_fatal_error() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-assignor");
    create_topic(&bootstrap, &topic, 4).await;

    // `range` on the broker: two members get two consecutive partitions each.
    let group = format!("{topic}-range");
    let log = SharedLog::default();
    let cfg = |id| config(&bootstrap, &group, id).group_remote_assignor("range");
    let a = start(0, cfg(0), &[&topic], log.clone()).await;
    let b = start(1, cfg(1), &[&topic], log.clone()).await;
    let split = wait_balanced(&log, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    let mut layouts: Vec<Vec<i32>> = split
        .values()
        .map(|s| s.iter().map(|tp| tp.partition).collect())
        .collect();
    layouts.sort();
    assert_eq!(layouts, vec![vec![0, 1], vec![2, 3]]);
    a.stop(Ctl::Close).await;
    b.stop(Ctl::Close).await;
    assert_single_owner(&log);

    // An assignor the broker does not have: poll reports the broker's fatal refusal.
    let group = format!("{topic}-unknown");
    let mut c = Consumer::connect(config(&bootstrap, &group, 2).group_remote_assignor("nonesuch"))
        .await
        .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let e = loop {
        match c.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(_) => assert!(
                Instant::now() < deadline,
                "no error for an unknown assignor"
            ),
        }
    };
    assert!(e.to_string().contains("UnsupportedAssignor"), "{e}");
    assert_eq!(e.class(), josefk::ErrorClass::Fatal, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manually_assigned_partitions_are_committed_without_membership() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("kip848-manual");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 5).await;
    let mut c = Consumer::connect(config(&bootstrap, &group, 0))
        .await
        .unwrap();
    let tp = TopicPartition::new(&topic, 0);
    c.assign(std::slice::from_ref(&tp)).await.unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 5 {
        assert!(Instant::now() < deadline, "only {got} of 5");
        got += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    let meta = c.group_metadata().unwrap();
    assert_eq!((meta.generation_id, meta.member_id.as_str()), (-1, ""));
    c.commit().await.expect("a commit outside the group");
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(5))]
    );
    c.close().await.unwrap();
}

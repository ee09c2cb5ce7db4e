//! Live tests of consumer groups against a real Kafka: members sharing partitions under each
//! assignor, partitions moving when a member leaves or is killed, cooperative rebalances moving
//! only what must move, static membership, and the commit semantics of at-least-once and
//! at-most-once consumers killed mid-stream.
//!
//! "Killed" means the consumer is dropped without `close`: its tasks stop, no LeaveGroup is sent,
//! and the coordinator only notices when its session times out — what a crashed process does.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{
    AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener,
};
use josefk::producer::{Producer, ProducerConfig};
use josefk::state::assignor::Assignor;
use josefk::{ProducerRecord, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SESSION: Duration = Duration::from_secs(6);

fn group_config(bootstrap: &str, group: &str, assignors: Vec<Assignor>) -> ConsumerConfig {
    ConsumerConfig::with_client(common::config(bootstrap))
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .session_timeout(SESSION)
        .heartbeat_interval(Duration::from_millis(500))
        .partition_assignment_strategy(assignors)
        .commit_mode(CommitMode::Manual)
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::connect(common::config(bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(topic, partitions, 1)])
        .await
        .expect("create topic");
}

/// Writes `count` records with values `prefix-i`, spread over the partitions by key.
async fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(common::config(bootstrap)))
        .await
        .unwrap();
    let mut acks = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).key(format!("k{i}"));
        acks.push(producer.send(record).await.expect("send"));
    }
    for ack in acks {
        ack.await.expect("acked");
    }
    producer.close(Duration::from_secs(30)).await.unwrap();
}

/// What the members report.
#[derive(Default)]
struct Board {
    /// (member, generation, partition, offset) per delivered record.
    deliveries: Vec<(usize, i32, TopicPartition, i64)>,
    /// member → (generation, assignment) after its last poll.
    assignments: BTreeMap<usize, (i32, BTreeSet<TopicPartition>)>,
    /// member → every revoked set the listener heard.
    revoked: BTreeMap<usize, Vec<BTreeSet<TopicPartition>>>,
}

type SharedBoard = Arc<Mutex<Board>>;

struct RevokeLog(usize, SharedBoard);

impl RebalanceListener for RevokeLog {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let mut b = self.1.lock().unwrap();
        b.revoked
            .entry(self.0)
            .or_default()
            .push(partitions.iter().cloned().collect());
    }
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

/// A member polling in its own task, committing after each poll, reporting to `board`.
async fn start_member(
    id: usize,
    config: ConsumerConfig,
    topic: &str,
    board: SharedBoard,
) -> Member {
    let mut consumer = Consumer::connect(config).await.expect("connect");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer.set_rebalance_listener(RevokeLog(id, board.clone()));
    let (ctl, mut rx) = watch::channel(Ctl::Run);
    let task = tokio::spawn(async move {
        loop {
            let ctl = *rx.borrow_and_update();
            match ctl {
                Ctl::Run => {}
                Ctl::Close => {
                    consumer.close().await.expect("close");
                    return;
                }
                Ctl::Kill => {
                    drop(consumer);
                    return;
                }
            }
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll");
            let generation = consumer.group_metadata().unwrap().generation_id;
            {
                let mut b = board.lock().unwrap();
                for r in &records {
                    b.deliveries.push((
                        id,
                        generation,
                        TopicPartition::new(&*r.topic, r.partition),
                        r.offset,
                    ));
                }
                b.assignments.insert(
                    id,
                    (generation, consumer.assignment().into_iter().collect()),
                );
            }
            if !records.is_empty() {
                // A rebalance between poll and commit fails the commit: redelivery is allowed.
                let _ = consumer.commit().await;
            }
        }
    });
    Member { ctl, task }
}

/// Waits until the live members' assignments are stable: one generation, disjoint, covering all
/// `partitions`, each member holding `sizes[member]` partitions. Returns them.
async fn wait_stable(
    board: &SharedBoard,
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
            let b = board.lock().unwrap();
            let current: Vec<&(i32, BTreeSet<TopicPartition>)> = members
                .iter()
                .filter_map(|m| b.assignments.get(m))
                .collect();
            if current.len() == members.len() {
                let generations: BTreeSet<i32> = current.iter().map(|(g, _)| *g).collect();
                let union: BTreeSet<TopicPartition> = current
                    .iter()
                    .flat_map(|(_, s)| s.iter().cloned())
                    .collect();
                let total: usize = current.iter().map(|(_, s)| s.len()).sum();
                let min = current.iter().map(|(_, s)| s.len()).min().unwrap();
                let max = current.iter().map(|(_, s)| s.len()).max().unwrap();
                if generations.len() == 1
                    && *generations.iter().next().unwrap() > 0
                    && union == all
                    && total == all.len()
                    && max - min <= 1
                {
                    return members
                        .iter()
                        .map(|m| (*m, b.assignments[m].1.clone()))
                        .collect();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "assignments not stable within {within:?}: {:?}",
            board.lock().unwrap().assignments
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every (partition, offset) in `expected` was delivered.
async fn wait_delivered(board: &SharedBoard, expected: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let distinct: BTreeSet<(TopicPartition, i64)> = board
            .lock()
            .unwrap()
            .deliveries
            .iter()
            .map(|(_, _, tp, o)| (tp.clone(), *o))
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

/// No partition was delivered to two members within one generation.
fn assert_single_owner_per_generation(board: &SharedBoard) {
    let b = board.lock().unwrap();
    let mut owners: BTreeMap<(i32, TopicPartition), BTreeSet<usize>> = BTreeMap::new();
    for (member, generation, tp, _) in &b.deliveries {
        owners
            .entry((*generation, tp.clone()))
            .or_default()
            .insert(*member);
    }
    for ((generation, tp), members) in owners {
        assert_eq!(
            members.len(),
            1,
            "{tp} consumed by members {members:?} in generation {generation}"
        );
    }
}

fn partitions_of(set: &BTreeSet<TopicPartition>) -> Vec<i32> {
    set.iter().map(|tp| tp.partition).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_share_partitions_under_each_assignor() {
    let bootstrap = common::bootstrap();
    for assignor in [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ] {
        let topic = common::unique_topic(&format!("share-{}", assignor.name()));
        let group = format!("{topic}-g");
        create_topic(&bootstrap, &topic, 6).await;
        produce(&bootstrap, &topic, "a", 600).await;
        let board = SharedBoard::default();
        let mut members = Vec::new();
        for id in 0..3 {
            let config =
                group_config(&bootstrap, &group, vec![assignor]).client_id(&format!("m{id}"));
            members.push(start_member(id, config, &topic, board.clone()).await);
        }
        let stable = wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
        wait_delivered(&board, 600, Duration::from_secs(60)).await;
        let mut layouts: Vec<Vec<i32>> = stable.values().map(partitions_of).collect();
        layouts.sort();
        match assignor {
            // Members ordered by member id get consecutive ranges.
            Assignor::Range => assert_eq!(layouts, vec![vec![0, 1], vec![2, 3], vec![4, 5]]),
            // Partitions dealt round the members in member-id order.
            Assignor::RoundRobin => assert_eq!(layouts, vec![vec![0, 3], vec![1, 4], vec![2, 5]]),
            Assignor::CooperativeSticky => {
                assert!(layouts.iter().all(|l| l.len() == 2), "{layouts:?}")
            }
        }
        assert_single_owner_per_generation(&board);
        for m in members {
            m.stop(Ctl::Close).await;
        }
        eprintln!("{}: {layouts:?}", assignor.name());
    }
}

/// ConsumerConfig has no client-id shortcut; tests name members through the client config.
trait ClientId {
    fn client_id(self, id: &str) -> Self;
}

impl ClientId for ConsumerConfig {
    fn client_id(mut self, id: &str) -> Self {
        self.client.client_id = id.to_owned();
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_of_leaving_and_killed_members_move_to_the_others() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("move");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    produce(&bootstrap, &topic, "a", 300).await;
    let board = SharedBoard::default();
    let mut members = BTreeMap::new();
    for id in 0..3 {
        let config = group_config(&bootstrap, &group, vec![Assignor::Range]);
        members.insert(id, start_member(id, config, &topic, board.clone()).await);
    }
    wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
    wait_delivered(&board, 300, Duration::from_secs(60)).await;

    // Member 0 leaves: the others take its partitions.
    let t = Instant::now();
    members.remove(&0).unwrap().stop(Ctl::Close).await;
    board.lock().unwrap().assignments.remove(&0);
    let after_leave = wait_stable(&board, &[1, 2], &topic, 6, Duration::from_secs(60)).await;
    eprintln!("after leave ({:?}): {after_leave:?}", t.elapsed());
    produce(&bootstrap, &topic, "b", 300).await;
    wait_delivered(&board, 600, Duration::from_secs(60)).await;

    // Member 1 is killed: after its session times out, member 2 has everything.
    let t = Instant::now();
    members.remove(&1).unwrap().stop(Ctl::Kill).await;
    board.lock().unwrap().assignments.remove(&1);
    let after_kill = wait_stable(&board, &[2], &topic, 6, SESSION * 5).await;
    eprintln!("after kill ({:?}): {after_kill:?}", t.elapsed());
    assert_eq!(after_kill[&2].len(), 6);
    produce(&bootstrap, &topic, "c", 300).await;
    wait_delivered(&board, 900, Duration::from_secs(60)).await;
    assert_single_owner_per_generation(&board);
    members.remove(&2).unwrap().stop(Ctl::Close).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_sticky_moves_only_what_must_move() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("coop");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    let board = SharedBoard::default();
    let config = || group_config(&bootstrap, &group, vec![Assignor::CooperativeSticky]);
    let m0 = start_member(0, config(), &topic, board.clone()).await;
    let m1 = start_member(1, config(), &topic, board.clone()).await;
    let before = wait_stable(&board, &[0, 1], &topic, 6, Duration::from_secs(60)).await;
    board.lock().unwrap().revoked.clear();

    let m2 = start_member(2, config(), &topic, board.clone()).await;
    let after = wait_stable(&board, &[0, 1, 2], &topic, 6, Duration::from_secs(60)).await;
    for old in [0, 1] {
        assert!(
            after[&old].is_subset(&before[&old]),
            "member {old} gained partitions: {:?} → {:?}",
            before[&old],
            after[&old]
        );
        assert_eq!(
            after[&old].len(),
            2,
            "member {old} gave up exactly one partition"
        );
        // Cooperative: only the moving partition was ever revoked, never the whole assignment.
        let moved: BTreeSet<TopicPartition> =
            before[&old].difference(&after[&old]).cloned().collect();
        let revoked: BTreeSet<TopicPartition> = board
            .lock()
            .unwrap()
            .revoked
            .get(&old)
            .map(|sets| sets.iter().flatten().cloned().collect())
            .unwrap_or_default();
        assert_eq!(revoked, moved, "member {old} revoked more than moved");
    }
    for m in [m0, m1, m2] {
        m.stop(Ctl::Close).await;
    }
}

/// Polls `consumer` until `n` records came.
async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(
            consumer
                .poll(Duration::from_millis(300))
                .await
                .expect("poll"),
        );
    }
    out
}

fn single_partition_config(bootstrap: &str, group: &str, mode: CommitMode) -> ConsumerConfig {
    group_config(bootstrap, group, vec![Assignor::Range])
        .commit_mode(mode)
        .max_poll_records(100)
}

/// A group member subscribed to `topic`, polling at most 100 records at a time.
async fn subscribed(bootstrap: &str, group: &str, mode: CommitMode, topic: &str) -> Consumer {
    let mut c = Consumer::connect(single_partition_config(bootstrap, group, mode))
        .await
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_redelivers_what_a_killed_consumer_had_not_committed() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("alo");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 1000).await;

    // Process 300 records, commit, process 200 more, get killed before committing them.
    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let first = poll_n(&mut c, 300).await;
    let committed_at = first[299].offset + 1;
    c.commit_offsets(&[(TopicPartition::new(&topic, 0), committed_at)])
        .await
        .unwrap();
    let processed_uncommitted: Vec<i64> =
        poll_n(&mut c, 200).await.iter().map(|r| r.offset).collect();
    drop(c); // killed: no commit, no LeaveGroup

    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let rest = poll_n(&mut c, 1000 - committed_at as usize).await;
    let redelivered: Vec<i64> = rest
        .iter()
        .map(|r| r.offset)
        .filter(|o| processed_uncommitted.contains(o))
        .collect();
    assert_eq!(
        rest[0].offset, committed_at,
        "restarts at the committed offset"
    );
    assert_eq!(
        redelivered.len(),
        processed_uncommitted.len(),
        "every processed-but-uncommitted record comes again"
    );
    let all: BTreeSet<i64> = first.iter().chain(&rest).map(|r| r.offset).collect();
    assert_eq!(all.len(), 1000, "nothing lost");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_once_skips_exactly_what_a_killed_consumer_had_not_processed() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("amo");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 1000).await;

    let mut c = subscribed(&bootstrap, &group, CommitMode::BeforeProcessing, &topic).await;
    // Process whole polls until at least 400 records, then take one more poll and process only
    // 10 of its records before being killed.
    let mut processed: Vec<i64> = Vec::new();
    while processed.len() < 400 {
        processed.extend(poll_n(&mut c, 1).await.iter().map(|r| r.offset));
    }
    let last_batch = poll_n(&mut c, 1).await;
    let batch_len = last_batch.len();
    assert!(batch_len > 10, "a poll returned {batch_len} records");
    processed.extend(last_batch.iter().take(10).map(|r| r.offset));
    let unprocessed = batch_len - 10;
    drop(c);

    let mut c = subscribed(&bootstrap, &group, CommitMode::BeforeProcessing, &topic).await;
    let resume_at = last_batch.last().unwrap().offset + 1;
    let rest = poll_n(&mut c, 1000 - resume_at as usize).await;
    assert_eq!(
        rest[0].offset, resume_at,
        "resumes after the whole last batch"
    );
    processed.extend(rest.iter().map(|r| r.offset));
    let distinct: BTreeSet<i64> = processed.iter().copied().collect();
    assert_eq!(distinct.len(), processed.len(), "no record processed twice");
    assert_eq!(
        processed.len(),
        1000 - unprocessed,
        "exactly the unprocessed rest of the killed consumer's last batch is skipped"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_static_member_restarting_within_its_session_keeps_its_partitions() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("static");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 4).await;
    let board = SharedBoard::default();
    let config = |instance: &str| {
        group_config(&bootstrap, &group, vec![Assignor::Range]).group_instance_id(instance)
    };
    let a = start_member(0, config("a"), &topic, board.clone()).await;
    let b = start_member(1, config("b"), &topic, board.clone()).await;
    let before = wait_stable(&board, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    let generation = board.lock().unwrap().assignments[&1].0;

    // Restart "b" (killed, not left) and let it rejoin with the same instance id.
    b.stop(Ctl::Kill).await;
    board.lock().unwrap().assignments.remove(&1);
    let b = start_member(1, config("b"), &topic, board.clone()).await;
    let after = wait_stable(&board, &[0, 1], &topic, 4, Duration::from_secs(60)).await;
    assert_eq!(after, before, "same partitions after a static restart");
    let b_generation = board.lock().unwrap().assignments[&1].0;
    assert_eq!(
        b_generation, generation,
        "no rebalance: the generation did not move"
    );
    for m in [a, b] {
        m.stop(Ctl::Close).await;
    }
}

/// The next item of a stream (no futures-util needed).
async fn next_item<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_yields_records_one_at_a_time_and_commit_async_lands() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("stream");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 100).await;

    let mut c = subscribed(&bootstrap, &group, CommitMode::Manual, &topic).await;
    let mut offsets = Vec::new();
    {
        let mut stream = c.stream();
        while offsets.len() < 30 {
            let record = next_item(&mut stream)
                .await
                .expect("endless")
                .expect("record");
            offsets.push(record.offset);
        }
    } // dropped between items: nothing it took is lost, nothing is skipped
    let tp = TopicPartition::new(&topic, 0);
    assert_eq!(c.position(&tp).await.unwrap(), 30);
    let rest = poll_n(&mut c, 70).await;
    offsets.extend(rest.iter().map(|r| r.offset));
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());

    c.commit_offsets_async(&[(tp.clone(), 90)])
        .unwrap()
        .await
        .expect("async commit of given offsets");
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp.clone(), Some(90))]
    );
    c.commit_async().unwrap().await.expect("async commit");
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(100))]
    );
    c.close().await.unwrap();
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
async fn josefk_and_java_consumers_share_one_group() {
    for (assignor, java_class) in [
        (
            Assignor::Range,
            "org.apache.kafka.clients.consumer.RangeAssignor",
        ),
        (
            Assignor::CooperativeSticky,
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        ),
    ] {
        // The first member to join leads the group and runs the assignor for both.
        for java_leads in [true, false] {
            share_one_group_with_java(assignor, java_class, java_leads).await;
        }
    }
}

/// Java's own consumer and josefk in one group, both offering only `assignor`; the first to join
/// (Java if `java_leads`) is the leader.
async fn share_one_group_with_java(assignor: Assignor, java_class: &str, java_leads: bool) {
    use std::io::BufRead;

    let bootstrap = common::bootstrap();
    let topic = common::unique_topic(&format!("java-group-{}", assignor.name()));
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 6).await;
    let board = SharedBoard::default();
    let config = group_config(&bootstrap, &group, vec![assignor]);
    let mut member = None;
    if !java_leads {
        member = Some(start_member(0, config.clone(), &topic, board.clone()).await);
        wait_stable(&board, &[0], &topic, 6, Duration::from_secs(60)).await;
    }

    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &topic,
        "--group-id",
        &group,
        "--session-timeout",
        "6000",
        "--assignment-strategy",
        java_class,
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
    // Java's current assignment, replayed from its events (eager: revoke all, assign all;
    // cooperative: assigned and revoked are the increments).
    let java_assigned = |events: &Arc<Mutex<Vec<String>>>| {
        let mut held: Option<BTreeSet<i32>> = None;
        for line in events.lock().unwrap().iter() {
            if line.contains("\"name\":\"partitions_assigned\"") {
                held.get_or_insert_with(BTreeSet::new)
                    .extend(json_partitions(line));
            } else if line.contains("\"name\":\"partitions_revoked\"")
                || line.contains("\"name\":\"partitions_lost\"")
            {
                if let Some(h) = held.as_mut() {
                    for p in json_partitions(line) {
                        h.remove(&p);
                    }
                }
            }
        }
        held
    };
    if java_leads {
        let deadline = Instant::now() + Duration::from_secs(60);
        while java_assigned(&events).is_none_or(|p| p.len() != 6) {
            assert!(
                Instant::now() < deadline,
                "Java never got the 6 partitions: {:?}",
                events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        member = Some(start_member(0, config, &topic, board.clone()).await);
    }
    let member = member.expect("started");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mine = board
            .lock()
            .unwrap()
            .assignments
            .get(&0)
            .map(|(_, s)| partitions_of(s))
            .unwrap_or_default();
        let theirs = java_assigned(&events).unwrap_or_default();
        if mine.len() == 3 && theirs.len() == 3 {
            let mine: BTreeSet<i32> = mine.into_iter().collect();
            assert!(
                mine.is_disjoint(&theirs),
                "josefk {mine:?}, Java {theirs:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 3/3 split: josefk {mine:?}, Java {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Records on every partition: josefk reads exactly its three partitions' records.
    produce(&bootstrap, &topic, "a", 600).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (mine, got) = {
            let b = board.lock().unwrap();
            let mine: BTreeSet<i32> = b.assignments[&0].1.iter().map(|tp| tp.partition).collect();
            let got: BTreeSet<i32> = b
                .deliveries
                .iter()
                .map(|(_, _, tp, _)| tp.partition)
                .collect();
            (mine, got)
        };
        assert!(
            got.is_subset(&mine),
            "josefk read {got:?} but owns {mine:?}"
        );
        if got == mine {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "josefk did not read its partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Java leaves: josefk takes over everything.
    tokio::task::spawn_blocking(move || java.stop(Duration::from_secs(20)).expect("stop Java"))
        .await
        .unwrap();
    let all = wait_stable(&board, &[0], &topic, 6, Duration::from_secs(60)).await;
    assert_eq!(all[&0].len(), 6);
    member.stop(Ctl::Close).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_created_after_subscribing_gets_assigned() {
    let bootstrap = common::bootstrap();
    let present = common::unique_topic("sub-present");
    let later = common::unique_topic("sub-later");
    let group = format!("{present}-g");
    create_topic(&bootstrap, &present, 2).await;
    let mut config = group_config(&bootstrap, &group, vec![Assignor::Range]);
    config.client.metadata_max_age = Duration::from_millis(500);
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&present, &later]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "never assigned {present}");
        c.poll(Duration::from_millis(200)).await.unwrap();
    }

    create_topic(&bootstrap, &later, 3).await;
    produce(&bootstrap, &later, "late", 30).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = BTreeSet::new();
    while got.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "records of the new topic: {} of 30, assignment {:?}",
            got.len(),
            c.assignment()
        );
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            assert_eq!(&*r.topic, later.as_str());
            got.insert((r.partition, r.offset));
        }
    }
    assert_eq!(c.assignment().len(), 5, "2 + 3 partitions");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_timeout_the_broker_refuses_is_a_clear_fatal_error() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("bad-session");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    // The broker's group.min.session.timeout.ms is 6 s.
    let config = group_config(&bootstrap, &group, vec![Assignor::Range])
        .session_timeout(Duration::from_millis(1000))
        .heartbeat_interval(Duration::from_millis(200));
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&topic]).unwrap();
    let e = c.poll(Duration::from_secs(20)).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(josefk::kafka_protocol::error::ResponseError::InvalidSessionTimeout),
        "{e}"
    );
    assert_eq!(e.class(), josefk::ErrorClass::Fatal);
    assert!(
        e.to_string().contains(&group),
        "the error names the group: {e}"
    );
}

/// Records the partitions the listener was told were lost.
struct LostLog(Arc<Mutex<Vec<TopicPartition>>>);

impl RebalanceListener for LostLog {
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().extend_from_slice(partitions);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_commit_commits_what_earlier_polls_returned_and_on_close() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("autocommit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 300).await;
    let tp = TopicPartition::new(&topic, 0);

    let config = single_partition_config(&bootstrap, &group, CommitMode::AutoAfterPoll)
        .auto_commit_interval(Duration::from_millis(100));
    let mut c = Consumer::connect(config).await.unwrap();
    c.subscribe(&[&topic]).unwrap();
    let first = poll_n(&mut c, 100).await;
    let reached = first.last().unwrap().offset + 1;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // This poll commits what the earlier ones returned (processed by now), not what it returns.
    let more = c.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp.clone(), Some(reached))]
    );
    let end = more.last().map_or(reached, |r| r.offset + 1);
    c.close().await.unwrap();
    let c = Consumer::connect(single_partition_config(
        &bootstrap,
        &group,
        CommitMode::Manual,
    ))
    .await
    .unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(end))],
        "close commits the positions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_stops_polling_leaves_and_its_partitions_are_lost_not_revoked() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("pollgap");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 2).await;
    let board = SharedBoard::default();
    let other = start_member(
        1,
        group_config(&bootstrap, &group, vec![Assignor::Range]),
        &topic,
        board.clone(),
    )
    .await;

    let lost: Arc<Mutex<Vec<TopicPartition>>> = Arc::default();
    let mut slow = Consumer::connect(
        group_config(&bootstrap, &group, vec![Assignor::Range])
            .max_poll_interval(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    slow.subscribe(&[&topic]).unwrap();
    slow.set_rebalance_listener(LostLog(lost.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "no 1/1 split");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    let held = slow.assignment();
    let generation = slow.group_metadata().unwrap().generation_id;

    // No poll for longer than max.poll.interval.ms: the heartbeat task leaves the group and the
    // other member takes both partitions in a later generation.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let other_now = board.lock().unwrap().assignments.get(&1).cloned();
        if other_now.is_some_and(|(g, set)| g > generation && set.len() == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the idle member never left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The next poll finds the partitions gone: lost (they may be someone else's), then rejoins.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lost.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "partitions never reported lost");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    assert_eq!(*lost.lock().unwrap(), held);
    wait_until_split(&mut slow, &board).await;
    slow.close().await.unwrap();
    other.stop(Ctl::Close).await;
}

/// Polls `slow` until it and member 1 hold one partition each.
async fn wait_until_split(slow: &mut Consumer, board: &SharedBoard) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        slow.poll(Duration::from_millis(200)).await.unwrap();
        let theirs = board
            .lock()
            .unwrap()
            .assignments
            .get(&1)
            .map_or(0, |(_, s)| s.len());
        if slow.assignment().len() == 1 && theirs == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rejoined member never got a partition back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manually_assigned_partitions_are_auto_committed_with_a_group_id() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("assign-commit");
    let group = format!("{topic}-g");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, "a", 150).await;
    let tp = TopicPartition::new(&topic, 0);
    let config = single_partition_config(&bootstrap, &group, CommitMode::AutoAfterPoll);
    let mut c = Consumer::connect(config.clone()).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).await.unwrap();
    let got = poll_n(&mut c, 150).await;
    assert_eq!(got.len(), 150);
    c.close().await.unwrap();
    let c = Consumer::connect(config).await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap(),
        vec![(tp, Some(150))]
    );
}

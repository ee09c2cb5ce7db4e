//! Consumer-group test helpers: members polling in their own tasks and reporting to a shared
//! board (deliveries with their generation, assignments, revocations), and waits on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::Assignor;
use josefk::consumer::{
    AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener,
};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ProducerRecord, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const SESSION: Duration = Duration::from_secs(6);

pub fn group_config(bootstrap: &str, group: &str, assignors: Vec<Assignor>) -> ConsumerConfig {
    ConsumerConfig::with_client(super::config(bootstrap))
        .group_id(group)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100))
        .session_timeout(SESSION)
        .heartbeat_interval(Duration::from_millis(500))
        .partition_assignment_strategy(assignors)
        .commit_mode(CommitMode::Manual)
}

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::connect(super::config(bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(topic, partitions, 1)])
        .await
        .expect("create topic");
}

/// Writes `count` records with values `prefix-i`, spread over the partitions by key.
pub async fn produce(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer = Producer::connect(ProducerConfig::with_client(super::config(bootstrap)))
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
pub struct Board {
    /// (member, generation, partition, offset) per delivered record.
    pub deliveries: Vec<(usize, i32, TopicPartition, i64)>,
    /// member → (generation, assignment) after its last poll.
    pub assignments: BTreeMap<usize, (i32, BTreeSet<TopicPartition>)>,
    /// member → every revoked set the listener heard.
    pub revoked: BTreeMap<usize, Vec<BTreeSet<TopicPartition>>>,
}

pub type SharedBoard = Arc<Mutex<Board>>;

pub struct RevokeLog(pub usize, pub SharedBoard);

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
pub enum Ctl {
    Run,
    Close,
    Kill,
}

pub struct Member {
    ctl: watch::Sender<Ctl>,
    task: JoinHandle<()>,
}

impl Member {
    pub async fn stop(self, how: Ctl) {
        self.ctl.send(how).unwrap();
        self.task.await.expect("member task");
    }
}

/// A member polling in its own task, committing after each poll, reporting to `board`.
pub async fn start_member(
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
pub async fn wait_stable(
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
pub async fn wait_delivered(board: &SharedBoard, expected: usize, within: Duration) {
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
pub fn assert_single_owner_per_generation(board: &SharedBoard) {
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

pub fn partitions_of(set: &BTreeSet<TopicPartition>) -> Vec<i32> {
    set.iter().map(|tp| tp.partition).collect()
}

/// ConsumerConfig has no client-id shortcut; tests name members through the client config.
pub trait ClientId {
    fn client_id(self, id: &str) -> Self;
}

impl ClientId for ConsumerConfig {
    fn client_id(mut self, id: &str) -> Self {
        self.client.client_id = id.to_owned();
        self
    }
}

/// Polls `consumer` until `n` records came.
pub async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
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

pub fn single_partition_config(bootstrap: &str, group: &str, mode: CommitMode) -> ConsumerConfig {
    group_config(bootstrap, group, vec![Assignor::Range])
        .commit_mode(mode)
        .max_poll_records(100)
}

/// A group member subscribed to `topic`, polling at most 100 records at a time.
pub async fn subscribed(bootstrap: &str, group: &str, mode: CommitMode, topic: &str) -> Consumer {
    let mut c = Consumer::connect(single_partition_config(bootstrap, group, mode))
        .await
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

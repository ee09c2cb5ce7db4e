//! Rebalance time of josefk's group protocols (issue #12's benchmark, josefk rows only): 3 → 4 → 3
//! members over 12 partitions while records keep arriving on every partition, for classic eager
//! (`range`), classic cooperative (`cooperative-sticky`) and KIP-848 `consumer` (the broker's
//! `uniform`) groups, same broker, same run.
//!
//! Run: `cargo bench --bench rebalance_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else
//! starts a private single-node broker with josefk-harness.
//!
//! Members are consumers polling in tasks of this process (poll timeout 100 ms,
//! `fetch.max.wait.ms` 100, Java's default session and heartbeat settings; the `consumer`
//! protocol's heartbeat interval is the broker's, 5 s by default). A producer writes one record
//! to every partition every 20 ms. For each step (a 4th member joins; it leaves with `close`):
//! - **settled**: from the step until the members' assignments are balanced and disjoint and
//!   every partition has delivered a record to its owner after that;
//! - **pause of staying members**: the longest time, from the step until settled, that a member
//!   present before and after the step went without records of partitions it kept throughout
//!   (0 would be "no pause for members whose partitions did not move").
//!
//! Java's consumer rows (classic and `consumer`) are not run by this bench yet.

mod common;
#[path = "../peers/common/worker.rs"]
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol};
use josefk::producer::{Producer, ProducerConfig};
use josefk::state::assignor::Assignor;
use josefk::{ClientConfig, ProducerRecord};

const PARTITIONS: i32 = 12;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Eager,
    Cooperative,
    Kip848,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Eager => "josefk classic (range, eager)",
            Mode::Cooperative => "josefk classic (cooperative-sticky)",
            Mode::Kip848 => "josefk consumer (KIP-848)",
        }
    }

    fn config(self, bootstrap: &str, group: &str) -> ConsumerConfig {
        let c = ConsumerConfig::with_client(ClientConfig::new(bootstrap))
            .group_id(group)
            .auto_offset_reset(AutoOffsetReset::Latest)
            .commit_mode(CommitMode::AutoAfterPoll)
            .fetch_max_wait(Duration::from_millis(100));
        match self {
            Mode::Eager => c.partition_assignment_strategy(vec![Assignor::Range]),
            Mode::Cooperative => c.partition_assignment_strategy(vec![Assignor::CooperativeSticky]),
            Mode::Kip848 => c.group_protocol(GroupProtocol::Consumer),
        }
    }
}

/// Deliveries (member, partition, when) and each member's assignment after its last poll.
#[derive(Default)]
struct Board {
    deliveries: Vec<(usize, i32, Instant)>,
    assignments: BTreeMap<usize, BTreeSet<i32>>,
}

type Shared = Arc<Mutex<Board>>;

struct Member {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(id: usize, config: ConsumerConfig, topic: &str, board: Shared) -> Member {
    let mut consumer = Consumer::connect(config).await.expect("connect");
    consumer.subscribe(&[topic]).expect("subscribe");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        while !*rx.borrow() {
            let records = consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
            let now = Instant::now();
            let mut b = board.lock().unwrap();
            for r in &records {
                b.deliveries.push((id, r.partition, now));
            }
            let held = consumer
                .assignment()
                .iter()
                .map(|tp| tp.partition)
                .collect();
            b.assignments.insert(id, held);
        }
        consumer.close().await.expect("close");
        board.lock().unwrap().assignments.remove(&id);
    });
    Member { stop, task }
}

impl Member {
    async fn close(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap();
    }
}

/// Waits until `members` hold a balanced partition of all partitions and each partition
/// delivered to its owner after that moment; returns that moment.
async fn settled(board: &Shared, members: &[usize]) -> Instant {
    let guard = Instant::now() + Duration::from_secs(180);
    let balanced_at = loop {
        {
            let b = board.lock().unwrap();
            let sets: Vec<&BTreeSet<i32>> = members
                .iter()
                .filter_map(|m| b.assignments.get(m))
                .collect();
            let total: usize = sets.iter().map(|s| s.len()).sum();
            let union: BTreeSet<i32> = sets.iter().flat_map(|s| s.iter().copied()).collect();
            let (min, max) = (
                sets.iter().map(|s| s.len()).min().unwrap_or(0),
                sets.iter().map(|s| s.len()).max().unwrap_or(0),
            );
            if sets.len() == members.len()
                && total == PARTITIONS as usize
                && union.len() == PARTITIONS as usize
                && max - min <= 1
            {
                break (Instant::now(), b.assignments.clone());
            }
        }
        assert!(Instant::now() < guard, "never balanced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (at, owners) = balanced_at;
    loop {
        {
            let b = board.lock().unwrap();
            let fetching: BTreeSet<i32> = b
                .deliveries
                .iter()
                .filter(|(m, p, when)| *when >= at && owners.get(m).is_some_and(|s| s.contains(p)))
                .map(|(_, p, _)| *p)
                .collect();
            if fetching.len() == PARTITIONS as usize {
                return b
                    .deliveries
                    .iter()
                    .map(|(_, _, when)| *when)
                    .max()
                    .unwrap_or(at);
            }
        }
        assert!(Instant::now() < guard, "partitions not all fetching again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The longest gap in deliveries of kept partitions for members in `staying`, between `from`
/// and `to`.
fn pause(
    board: &Shared,
    staying: &[usize],
    before: &BTreeMap<usize, BTreeSet<i32>>,
    from: Instant,
    to: Instant,
) -> Duration {
    let b = board.lock().unwrap();
    let mut worst = Duration::ZERO;
    for m in staying {
        let kept: BTreeSet<i32> = before[m]
            .intersection(b.assignments.get(m).unwrap_or(&BTreeSet::new()))
            .copied()
            .collect();
        let mut last = from;
        for (_, _, when) in b
            .deliveries
            .iter()
            .filter(|(who, p, when)| who == m && kept.contains(p) && *when >= from && *when <= to)
        {
            worst = worst.max(when.saturating_duration_since(last));
            last = *when;
        }
        worst = worst.max(to.saturating_duration_since(last));
    }
    worst
}

async fn run(
    mode: Mode,
    bootstrap: &str,
    admin: &Admin,
) -> (Duration, Duration, Duration, Duration) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let topic = format!("josefk-rebalance-{stamp}");
    let group = format!("{topic}-g");
    admin
        .create_topics(&[NewTopic::new(&topic, PARTITIONS, 1)])
        .await
        .expect("create topic");
    let producer = Producer::connect(ProducerConfig::with_client(ClientConfig::new(bootstrap)))
        .await
        .expect("producer");
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (producer, topic, writing) = (producer.clone(), topic.clone(), writing.clone());
        tokio::spawn(async move {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                for p in 0..PARTITIONS {
                    let r = ProducerRecord::new(&topic, "x").partition(p);
                    drop(producer.send(r).await.expect("send"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let board = Shared::default();
    let mut members = BTreeMap::new();
    for id in 0..3 {
        members.insert(
            id,
            start(id, mode.config(bootstrap, &group), &topic, board.clone()).await,
        );
    }
    settled(&board, &[0, 1, 2]).await;

    let before = board.lock().unwrap().assignments.clone();
    let joiner = mode.config(bootstrap, &group);
    let t0 = Instant::now();
    members.insert(3, start(3, joiner, &topic, board.clone()).await);
    let done = settled(&board, &[0, 1, 2, 3]).await;
    let join = (done - t0, pause(&board, &[0, 1, 2], &before, t0, done));

    let before = board.lock().unwrap().assignments.clone();
    let t0 = Instant::now();
    members.remove(&3).unwrap().close().await;
    let done = settled(&board, &[0, 1, 2]).await;
    let leave = (done - t0, pause(&board, &[0, 1, 2], &before, t0, done));

    for (_, m) in members {
        m.close().await;
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    producer
        .close(Duration::from_secs(30))
        .await
        .expect("close producer");
    (join.0, join.1, leave.0, leave.1)
}

fn main() {
    let broker = common::Broker::acquire().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let admin = Admin::connect(ClientConfig::new(&broker.bootstrap))
            .await
            .expect("admin");
        let mut rows = Vec::new();
        for mode in [Mode::Eager, Mode::Cooperative, Mode::Kip848] {
            let r = run(mode, &broker.bootstrap, &admin).await;
            println!("{}: {r:?}", mode.name());
            rows.push((mode, r));
        }
        rows
    });
    println!();
    println!("| client, protocol | 3→4 settled | 3→4 pause of staying members | 4→3 settled | 4→3 pause of staying members |");
    println!("|---|---:|---:|---:|---:|");
    for (mode, (js, jp, ls, lp)) in rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            mode.name(),
            js.as_secs_f64(),
            jp.as_secs_f64(),
            ls.as_secs_f64(),
            lp.as_secs_f64()
        );
    }
}

//! Rebalance time of josefk's and Java's group protocols (issue #12's benchmark): 3 → 4 → 3
//! members over 12 partitions while records keep arriving on every partition, for classic eager
//! (`range`), classic cooperative (`cooperative-sticky`) and KIP-848 `consumer` (the broker's
//! `uniform`) groups, same broker, same run. Java's rows are its `VerifiableConsumer` processes
//! (classic with Java's default assignors, which rebalance eagerly, and `consumer`); their
//! deliveries and assignments are read from its JSON events as they arrive, and a joining Java
//! member's step starts at its `startup_complete` event (JVM start excluded).
//!
//! Run: `cargo bench --bench rebalance_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else
//! starts a private single-node broker with josefk-harness. `JOSEFK_BENCH_ROUNDS` (default 3):
//! rounds over all clients; the table shows each column's median. Single rounds vary a lot: where
//! a step falls in the members' heartbeat cycles decides much of the settle time.
//! `JOSEFK_BENCH_MODES` (default all): a comma-separated subset of `eager`, `cooperative`,
//! `kip848`, `java-classic`, `java-consumer`. `JOSEFK_BENCH_TRACE=1` prints, per step, each
//! staying josefk member's polls that took long, changed its assignment or ended a gap in its
//! kept partitions' records (times from the step), to attribute a pause.
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

mod common;
#[path = "../peers/common/worker.rs"]
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic};
use josefk::consumer::Assignor;
use josefk::consumer::{AutoOffsetReset, CommitMode, Consumer, ConsumerConfig, GroupProtocol};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, ProducerRecord};

const PARTITIONS: i32 = 12;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Eager,
    Cooperative,
    Kip848,
    JavaClassic,
    JavaConsumer,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Eager => "josefk classic (range, eager)",
            Mode::Cooperative => "josefk classic (cooperative-sticky)",
            Mode::Kip848 => "josefk consumer (KIP-848)",
            Mode::JavaClassic => "Java classic (default assignors, eager)",
            Mode::JavaConsumer => "Java consumer (KIP-848)",
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
            Mode::Kip848 | Mode::JavaClassic | Mode::JavaConsumer => {
                c.group_protocol(GroupProtocol::Consumer)
            }
        }
    }
}

/// Deliveries (member, partition, when) and each member's assignment after its last poll.
#[derive(Default)]
struct Board {
    deliveries: Vec<(usize, i32, Instant)>,
    assignments: BTreeMap<usize, BTreeSet<i32>>,
    polls: Vec<Poll>,
    /// When each round of the writer's records (one per partition) was acknowledged.
    acked: Vec<Instant>,
}

/// One josefk member's poll: (member, started, ended, partitions delivered, assignment after).
type Poll = (usize, Instant, Instant, BTreeSet<i32>, BTreeSet<i32>);

type Shared = Arc<Mutex<Board>>;

enum Member {
    Josefk {
        stop: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    },
    Java(josefk_harness::JavaProcess),
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

/// A VerifiableConsumer member; returns once it reported `startup_complete`, with that moment.
async fn start_java(
    id: usize,
    dist: &josefk_harness::KafkaDist,
    bootstrap: &str,
    topic: &str,
    group: &str,
    protocol: &str,
    board: Shared,
) -> (Member, Instant) {
    use std::io::BufRead;
    let args: Vec<String> = [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group-id",
        group,
        "--group-protocol",
        protocol,
        "--reset-policy",
        "latest",
    ]
    .map(str::to_owned)
    .to_vec();
    let dist = dist.clone();
    let mut java = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        josefk_harness::spawn_java_tool(&dist, "org.apache.kafka.tools.VerifiableConsumer", &args)
            .expect("spawn VerifiableConsumer")
    })
    .await
    .unwrap();
    let stdout = java.take_stdout().expect("stdout");
    let stderr = java.take_stderr().expect("stderr");
    std::thread::spawn(move || {
        std::io::copy(&mut std::io::BufReader::new(stderr), &mut std::io::sink())
    });
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut started_tx = Some(started_tx);
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let now = Instant::now();
            let mut b = board.lock().unwrap();
            if line.contains("\"name\":\"startup_complete\"") {
                if let Some(tx) = started_tx.take() {
                    let _ = tx.send(now);
                }
            } else if line.contains("\"name\":\"records_consumed\"") {
                for p in json_partitions(&line) {
                    b.deliveries.push((id, p, now));
                }
            } else if line.contains("\"name\":\"partitions_assigned\"") {
                b.assignments
                    .entry(id)
                    .or_default()
                    .extend(json_partitions(&line));
            } else if line.contains("\"name\":\"partitions_revoked\"")
                || line.contains("\"name\":\"partitions_lost\"")
            {
                let held = b.assignments.entry(id).or_default();
                for p in json_partitions(&line) {
                    held.remove(&p);
                }
            } else if line.contains("\"name\":\"shutdown_complete\"") {
                b.assignments.remove(&id);
            }
        }
        board.lock().unwrap().assignments.remove(&id);
    });
    let started = started_rx.await.expect("VerifiableConsumer started");
    (Member::Java(java), started)
}

async fn start(id: usize, config: ConsumerConfig, topic: &str, board: Shared) -> Member {
    let mut consumer = Consumer::connect(config).await.expect("connect");
    consumer.subscribe(&[topic]).expect("subscribe");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        while !*rx.borrow() {
            let started = Instant::now();
            let records = consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
            let now = Instant::now();
            let mut b = board.lock().unwrap();
            for r in &records {
                b.deliveries.push((id, r.partition, now));
            }
            let held: BTreeSet<i32> = consumer
                .assignment()
                .iter()
                .map(|tp| tp.partition)
                .collect();
            let delivered = records.iter().map(|r| r.partition).collect();
            b.polls.push((id, started, now, delivered, held.clone()));
            b.assignments.insert(id, held);
        }
        consumer.close().await.expect("close");
        board.lock().unwrap().assignments.remove(&id);
    });
    Member::Josefk { stop, task }
}

impl Member {
    async fn close(self) {
        match self {
            Member::Josefk { stop, task } => {
                stop.send(true).unwrap();
                task.await.unwrap();
            }
            Member::Java(mut java) => {
                tokio::task::spawn_blocking(move || java.stop(Duration::from_secs(30)))
                    .await
                    .unwrap()
                    .expect("stop VerifiableConsumer");
            }
        }
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

/// With `JOSEFK_BENCH_TRACE`: the staying josefk members' notable polls between `from` and `to`
/// (ms from `from`): slow ones (30 ms beyond the 100 ms poll timeout, or returning records
/// after 30 ms), assignment changes, and the first delivery of kept partitions after a gap of
/// 60 ms or more.
fn trace(
    label: &str,
    board: &Shared,
    staying: &[usize],
    before: &BTreeMap<usize, BTreeSet<i32>>,
    from: Instant,
    to: Instant,
) {
    if std::env::var_os("JOSEFK_BENCH_TRACE").is_none() {
        return;
    }
    let b = board.lock().unwrap();
    let ms = |t: Instant| t.saturating_duration_since(from).as_secs_f64() * 1e3;
    println!("trace {label}: settled at {:.0} ms", ms(to));
    let mut last = from;
    for at in b.acked.iter().filter(|t| **t >= from && **t <= to) {
        if at.saturating_duration_since(last) > Duration::from_millis(60) {
            println!(
                "  writer: records acknowledged at {:.0} ms after a {:.0} ms gap",
                ms(*at),
                at.saturating_duration_since(last).as_secs_f64() * 1e3
            );
        }
        last = *at;
    }
    for m in staying {
        let kept: BTreeSet<i32> = before[m]
            .intersection(b.assignments.get(m).unwrap_or(&BTreeSet::new()))
            .copied()
            .collect();
        let mut held = before[m].clone();
        let mut last_kept = from;
        for (_, start, end, delivered, after) in b
            .polls
            .iter()
            .filter(|(who, _, end, _, _)| who == m && *end >= from && *end <= to)
        {
            let took = end.saturating_duration_since(*start);
            let got_kept = delivered.iter().any(|p| kept.contains(p));
            let mut notes = Vec::new();
            if took > Duration::from_millis(130)
                || (!delivered.is_empty() && took > Duration::from_millis(30))
            {
                notes.push(format!("slow poll {:.0} ms", took.as_secs_f64() * 1e3));
            }
            if *after != held {
                notes.push(format!("assignment {held:?} → {after:?}"));
                held = after.clone();
            }
            if got_kept {
                let gap = end.saturating_duration_since(last_kept);
                if gap > Duration::from_millis(60) {
                    notes.push(format!(
                        "kept records after a {:.0} ms gap",
                        gap.as_secs_f64() * 1e3
                    ));
                }
                last_kept = *end;
            }
            if !notes.is_empty() {
                println!(
                    "  m{m} poll {:.0}–{:.0} ms: {}",
                    ms(*start),
                    ms(*end),
                    notes.join("; ")
                );
            }
        }
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
    dist: &josefk_harness::KafkaDist,
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
    let board = Shared::default();
    let writer = {
        let (producer, topic, writing) = (producer.clone(), topic.clone(), writing.clone());
        let board = board.clone();
        tokio::spawn(async move {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let mut acks = Vec::with_capacity(PARTITIONS as usize);
                for p in 0..PARTITIONS {
                    let r = ProducerRecord::new(&topic, "x").partition(p);
                    acks.push(producer.send(r).await.expect("send"));
                }
                // When the records were acknowledged: a gap here is a gap for every member.
                let board = board.clone();
                tokio::spawn(async move {
                    for ack in acks {
                        let _ = ack.await;
                    }
                    board.lock().unwrap().acked.push(Instant::now());
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let java = match mode {
        Mode::JavaClassic => Some("classic"),
        Mode::JavaConsumer => Some("consumer"),
        _ => None,
    };
    let mut members = BTreeMap::new();
    for id in 0..3 {
        let member = match java {
            Some(protocol) => {
                start_java(id, dist, bootstrap, &topic, &group, protocol, board.clone())
                    .await
                    .0
            }
            None => start(id, mode.config(bootstrap, &group), &topic, board.clone()).await,
        };
        members.insert(id, member);
    }
    settled(&board, &[0, 1, 2]).await;

    let before = board.lock().unwrap().assignments.clone();
    let t0 = match java {
        Some(protocol) => {
            let (member, started) =
                start_java(3, dist, bootstrap, &topic, &group, protocol, board.clone()).await;
            members.insert(3, member);
            started
        }
        None => {
            let joiner = mode.config(bootstrap, &group);
            let t0 = Instant::now();
            members.insert(3, start(3, joiner, &topic, board.clone()).await);
            t0
        }
    };
    let done = settled(&board, &[0, 1, 2, 3]).await;
    let join = (done - t0, pause(&board, &[0, 1, 2], &before, t0, done));
    trace("3→4", &board, &[0, 1, 2], &before, t0, done);

    let before = board.lock().unwrap().assignments.clone();
    let t0 = Instant::now();
    members.remove(&3).unwrap().close().await;
    let done = settled(&board, &[0, 1, 2]).await;
    let leave = (done - t0, pause(&board, &[0, 1, 2], &before, t0, done));
    trace("4→3", &board, &[0, 1, 2], &before, t0, done);

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
    let rounds = common::env_u64("JOSEFK_BENCH_ROUNDS").unwrap_or(3).max(1) as usize;
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
        let all = [
            ("eager", Mode::Eager),
            ("cooperative", Mode::Cooperative),
            ("kip848", Mode::Kip848),
            ("java-classic", Mode::JavaClassic),
            ("java-consumer", Mode::JavaConsumer),
        ];
        let wanted = std::env::var("JOSEFK_BENCH_MODES").unwrap_or_default();
        let modes: Vec<Mode> = all
            .iter()
            .filter(|(name, _)| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == *name))
            .map(|(_, mode)| *mode)
            .collect();
        assert!(
            !modes.is_empty(),
            "JOSEFK_BENCH_MODES={wanted}: no such mode"
        );
        let mut runs: Vec<Vec<[Duration; 4]>> = vec![Vec::new(); modes.len()];
        // Rounds interleave the clients so that a slow phase of the machine hits all of them.
        for round in 0..rounds {
            for (i, mode) in modes.iter().enumerate() {
                let (a, b, c, d) = run(*mode, &broker.bootstrap, &broker.dist, &admin).await;
                println!("round {round}, {}: {:?}", mode.name(), [a, b, c, d]);
                runs[i].push([a, b, c, d]);
            }
        }
        modes
            .iter()
            .zip(runs)
            .map(|(mode, r)| {
                let median = |k: usize| {
                    let mut v: Vec<Duration> = r.iter().map(|x| x[k]).collect();
                    v.sort();
                    v[v.len() / 2]
                };
                (*mode, (median(0), median(1), median(2), median(3)))
            })
            .collect::<Vec<_>>()
    });
    println!();
    println!("medians of {rounds} rounds:");
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

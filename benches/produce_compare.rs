//! Producer throughput, ack latency and CPU: josefk against Java's ProducerPerformance,
//! rust-rdkafka (librdkafka) and krafka, on the same broker, same topic settings, same run.
//!
//! Run: `cargo bench --bench produce_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts
//! a private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_RECORDS`: records per 100 B run (default 3,000,000, about 5-15 s per client
//!   on a 2-core machine); 1 KiB runs send a third of it.
//! - `JOSEFK_BENCH_CLIENTS`: comma list among `josefk,java,rdkafka,krafka` (default all).
//! - `JOSEFK_BENCH_SCENARIOS`: comma list among `100-none,100-lz4,1024-none,1024-lz4`.
//!
//! Scenarios: 100 B and 1 KiB keyless records of random uppercase letters (as Java's tool sends),
//! compression none and lz4; every client runs with acks=all, enable.idempotence=true,
//! linger.ms=5, batch.size=16384, 32 MiB of buffer. Each scenario gets a fresh 6-partition topic.
//!
//! Every client runs as a child process, one at a time, so its CPU (user+sys, from this process's
//! waited-for-children times in `/proc/self/stat`, i.e. `RUSAGE_CHILDREN`) is its own, not the
//! broker's. josefk runs as this binary re-executed with `--josefk-worker`; rdkafka and krafka are
//! binaries in `peers/` built on demand (outside the workspace, so the normal build never
//! compiles C). Throughput counts only records the broker acknowledged, and each run is checked
//! against the topic's end offsets (ListOffsets) before and after. CPU includes process start
//! (a JVM's start and JIT); the `net` column subtracts each client's 1-record run.
//!
//! MiB/s is payload MiB as Java's tool prints it. Broker and clients share this machine's cores,
//! so throughput can hit the broker's ceiling; CPU per million records is the cleaner comparison.

#[path = "../peers/common/worker.rs"]
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::producer::{Acks, DeliveryFuture, Producer, ProducerConfig};
use josefk::{ClientConfig, IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::{ClusterSpec, KafkaCluster, KafkaDist};

use worker::{Latencies, WorkerArgs, WorkerResult};

const PARTITIONS: i32 = 6;
const LINGER_MS: u64 = 5;
const BATCH_SIZE: usize = 16_384;
const BUFFER_MEMORY: usize = 32 * 1024 * 1024;
const PERF_CLASS: &str = "org.apache.kafka.tools.ProducerPerformance";
/// Peers built from `peers/<name>/`, binary `peers/<name>/target/release/<name>`.
const PEERS: [(&str, &str); 2] = [("rdkafka", "rdkafka-bench"), ("krafka", "krafka-bench")];

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--josefk-worker") {
        josefk_worker(&argv[2..]);
        return;
    }
    if let Err(e) = orchestrate() {
        eprintln!("produce_compare: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The josefk worker (child process).

/// Delivery futures waiting for the collector; only needs to exceed what buffer.memory lets be
/// unacknowledged (32 MiB / 100 B records ≈ 210k after per-record overhead).
const WINDOW: usize = 1 << 18;

fn josefk_worker(argv: &[String]) {
    let args = WorkerArgs::parse(argv).unwrap_or_else(|e| {
        eprintln!("josefk worker: {e}");
        std::process::exit(2)
    });
    let ticks = worker::clock_ticks();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(josefk_run(args));
    drop(runtime);
    let cpu_s = worker::cpu_seconds(ticks).0;
    println!("{}", WorkerResult { cpu_s, ..result }.line());
}

async fn josefk_run(args: WorkerArgs) -> WorkerResult {
    let mut config = ProducerConfig::new(&args.bootstrap)
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size)
        .compression(&args.compression);
    config.buffer_memory = args.buffer_memory;
    let producer = Producer::connect(config).await.expect("josefk connect");
    let payloads: Vec<Bytes> = worker::payload_pool(args.size)
        .into_iter()
        .map(Bytes::from)
        .collect();

    // Futures are awaited in send order by one task. With one broker every produce response
    // arrives on one connection in request order, so FIFO order is ack order and the measured
    // latency is not inflated by a slow head.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, DeliveryFuture)>(WINDOW);
    let records = args.records as usize;
    let collector = tokio::spawn(async move {
        let mut latencies = Latencies::with_capacity(records);
        let (mut acked, mut failed) = (0u64, 0u64);
        let mut last_ack = None;
        while let Some((sent, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(_) => {
                    let now = Instant::now();
                    latencies.record(now - sent);
                    acked += 1;
                    last_ack = Some(now);
                }
                Err(e) => {
                    if failed == 0 {
                        eprintln!("josefk worker: first delivery failure: {e}");
                    }
                    failed += 1;
                }
            }
        }
        (acked, failed, last_ack, latencies)
    });

    let start = Instant::now();
    let mut not_queued = 0u64;
    for i in 0..records {
        let record = ProducerRecord::new(args.topic.as_str(), payloads[i % payloads.len()].clone());
        let sent = Instant::now();
        match producer.send(record).await {
            Ok(delivery) => {
                if tx.send((sent, delivery)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if not_queued == 0 {
                    eprintln!("josefk worker: send failed: {e}");
                }
                not_queued += 1;
            }
        }
    }
    drop(tx);
    if let Err(e) = producer.flush().await {
        eprintln!("josefk worker: flush: {e}");
    }
    let (acked, failed, last_ack, mut latencies) = collector.await.expect("collector");
    let _ = producer.close(Duration::from_secs(10)).await;
    let (p50_ms, p99_ms) = latencies.p50_p99_ms();
    WorkerResult {
        acked,
        failed: failed + not_queued,
        bytes: acked * args.size as u64,
        elapsed_s: last_ack.map_or(0.0, |t| (t - start).as_secs_f64()),
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// One client's way of producing a scenario.
enum Client {
    Josefk,
    Java { bootstrap_flag: bool },
    Peer { name: &'static str, binary: PathBuf },
}

impl Client {
    fn name(&self) -> &'static str {
        match self {
            Client::Josefk => "josefk",
            Client::Java { .. } => "java",
            Client::Peer { name, .. } => name,
        }
    }
}

/// One client run as measured from outside.
#[derive(Debug, Clone)]
struct Measured {
    result: WorkerResult,
    /// user+sys of the child (and its waited-for descendants), from RUSAGE_CHILDREN deltas.
    cpu_s: f64,
    /// Sum over partitions of the end-offset change during the run.
    log_delta: i64,
}

fn orchestrate() -> Result<(), String> {
    let ticks = worker::clock_ticks();
    let records_100 = env_u64("JOSEFK_BENCH_RECORDS").unwrap_or(3_000_000);
    let wanted_clients = env_list("JOSEFK_BENCH_CLIENTS");
    let wanted_scenarios = env_list("JOSEFK_BENCH_SCENARIOS");
    let wants = |list: &Option<Vec<String>>, name: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
    };

    // The broker: an existing one, or a private single node kept alive until the end.
    let mut _cluster = None;
    let (bootstrap, dist) = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(s) if !s.trim().is_empty() => (
            s.trim().to_string(),
            KafkaDist::provision().map_err(|e| e.to_string())?,
        ),
        _ => {
            println!("starting a private single-node Kafka broker (josefk-harness)...");
            let cluster = KafkaCluster::start(ClusterSpec::single()).map_err(|e| e.to_string())?;
            let out = (cluster.bootstrap_servers(), cluster.dist().clone());
            _cluster = Some(cluster);
            out
        }
    };
    println!(
        "broker {bootstrap} (Kafka {}), tools {}",
        dist.version(),
        dist.tools_version()
    );

    // Which clients run; every one skipped says why.
    let mut clients = Vec::new();
    if wants(&wanted_clients, "josefk") {
        clients.push(Client::Josefk);
    }
    if wants(&wanted_clients, "java") {
        let help = josefk_harness::run_java_tool(&dist, PERF_CLASS, &["--help"], secs(120))
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&help.stdout),
            String::from_utf8_lossy(&help.stderr)
        );
        clients.push(Client::Java {
            bootstrap_flag: text.contains("--bootstrap-server"),
        });
    }
    for (name, dir) in PEERS {
        if !wants(&wanted_clients, name) {
            continue;
        }
        match build_peer(dir) {
            Ok(binary) => clients.push(Client::Peer { name, binary }),
            Err(why) => println!("SKIPPING {name}: {why}"),
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let admin = runtime
        .block_on(Admin::connect(ClientConfig::new(&bootstrap)))
        .map_err(|e| format!("admin connect: {e}"))?;

    println!(
        "settings for every client: acks=all enable.idempotence=true linger.ms={LINGER_MS} \
         batch.size={BATCH_SIZE} buffer.memory={BUFFER_MEMORY}, keyless records, \
         {PARTITIONS} partitions, replication 1"
    );
    let mut baseline_cpu: HashMap<&'static str, f64> = HashMap::new();
    // A fresh broker's first produce runs are slower (its JIT is cold); an unmeasured josefk run
    // keeps that cost off whichever client happens to go first.
    {
        let topic = format!("produce-compare-warmup-{}", std::process::id());
        runtime.block_on(create_topic(&admin, &topic))?;
        let warm = WorkerArgs {
            bootstrap: bootstrap.clone(),
            topic: topic.clone(),
            records: (records_100 / 5).max(1),
            size: 100,
            compression: "none".into(),
            linger_ms: LINGER_MS,
            batch_size: BATCH_SIZE,
            buffer_memory: BUFFER_MEMORY,
        };
        println!(
            "warming the broker up ({} records, unmeasured)...",
            warm.records
        );
        measure(&Client::Josefk, &warm, &dist, &admin, &runtime, ticks)?;
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()]));
    }
    for (size, codec) in [
        (100usize, "none"),
        (100, "lz4"),
        (1024, "none"),
        (1024, "lz4"),
    ] {
        let label = format!("{size}-{codec}");
        if !wants(&wanted_scenarios, &label) {
            continue;
        }
        let records = if size == 100 {
            records_100
        } else {
            (records_100 / 3).max(1)
        };
        let topic = format!("produce-compare-{label}-{}", std::process::id());
        runtime.block_on(create_topic(&admin, &topic))?;
        println!("\n=== {records} records x {size} B, compression {codec}, topic {topic} ===");
        let base = WorkerArgs {
            bootstrap: bootstrap.clone(),
            topic: topic.clone(),
            records,
            size,
            compression: codec.to_string(),
            linger_ms: LINGER_MS,
            batch_size: BATCH_SIZE,
            buffer_memory: BUFFER_MEMORY,
        };
        let mut rows = Vec::new();
        for client in &clients {
            // Process start-up cost, once per client: a 1-record run.
            if !baseline_cpu.contains_key(client.name()) {
                let one = WorkerArgs {
                    records: 1,
                    ..base.clone()
                };
                match measure(client, &one, &dist, &admin, &runtime, ticks) {
                    Ok(m) => {
                        println!("  {:8} 1-record run: {:.2} s CPU", client.name(), m.cpu_s);
                        baseline_cpu.insert(client.name(), m.cpu_s);
                    }
                    Err(e) => println!("  {:8} 1-record run failed: {e}", client.name()),
                }
            }
            match measure(client, &base, &dist, &admin, &runtime, ticks) {
                Ok(m) => {
                    println!(
                        "  {:8} acked {} failed {} log delta {}{}  ({:.1} s, CPU {:.2} s, self-reported {:.2} s)",
                        client.name(),
                        m.result.acked,
                        m.result.failed,
                        m.log_delta,
                        if m.log_delta == m.result.acked as i64 { " (match)" } else { " (MISMATCH)" },
                        m.result.elapsed_s,
                        m.cpu_s,
                        m.result.cpu_s
                    );
                    rows.push((client.name(), m));
                }
                Err(e) => println!("  {:8} FAILED: {e}", client.name()),
            }
        }
        print_table(&rows, records, &baseline_cpu);
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()]));
    }
    Ok(())
}

/// Runs one client once and measures it from outside.
fn measure(
    client: &Client,
    args: &WorkerArgs,
    dist: &KafkaDist,
    admin: &Admin,
    runtime: &tokio::runtime::Runtime,
    ticks: f64,
) -> Result<Measured, String> {
    let before_log = runtime.block_on(end_offsets(admin, &args.topic))?;
    let before_cpu = worker::cpu_seconds(ticks).1;
    let result = match client {
        Client::Josefk => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut argv = vec!["--josefk-worker".to_string()];
            argv.extend(args.to_args());
            run_worker(&exe, &argv)?
        }
        Client::Peer { binary, .. } => run_worker(binary, &args.to_args())?,
        Client::Java { bootstrap_flag } => run_java(dist, args, *bootstrap_flag)?,
    };
    let cpu_s = worker::cpu_seconds(ticks).1 - before_cpu;
    let after_log = runtime.block_on(end_offsets(admin, &args.topic))?;
    Ok(Measured {
        result,
        cpu_s,
        log_delta: after_log - before_log,
    })
}

/// Runs a worker binary to completion and parses its result line; its stderr passes through.
fn run_worker(exe: &Path, argv: &[String]) -> Result<WorkerResult, String> {
    let out = Command::new(exe)
        .args(argv)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    WorkerResult::parse(&stdout)
        .ok_or_else(|| format!("no result line (exit {}); stdout: {stdout}", out.status))
}

/// Runs Java's ProducerPerformance and reads its final summary line.
fn run_java(
    dist: &KafkaDist,
    args: &WorkerArgs,
    bootstrap_flag: bool,
) -> Result<WorkerResult, String> {
    let records = args.records.to_string();
    let size = args.size.to_string();
    let props = [
        "acks=all".to_string(),
        "enable.idempotence=true".to_string(),
        format!("linger.ms={}", args.linger_ms),
        format!("batch.size={}", args.batch_size),
        format!("buffer.memory={}", args.buffer_memory),
        format!("compression.type={}", args.compression),
        format!("bootstrap.servers={}", args.bootstrap),
    ];
    let mut argv: Vec<&str> = vec![
        "--topic",
        &args.topic,
        "--num-records",
        &records,
        "--record-size",
        &size,
        "--throughput",
        "-1",
    ];
    if bootstrap_flag {
        argv.extend(["--bootstrap-server", args.bootstrap.as_str()]);
    }
    argv.push("--producer-props");
    // With --bootstrap-server the property is redundant but harmless; without it, required.
    argv.extend(props.iter().map(String::as_str));
    let out = josefk_harness::run_java_tool(dist, PERF_CLASS, &argv, secs(900))
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_java_summary(&stdout, args.size).ok_or_else(|| {
        format!(
            "no summary line (exit {}); stdout: {stdout}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Parses `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
/// P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.` Java counts a record on its callback;
/// the end-offset check in the table shows whether those were all acknowledged.
fn parse_java_summary(stdout: &str, size: usize) -> Option<WorkerResult> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("99th"))?;
    let nums: Vec<f64> = line
        .split([',', '(', ')'])
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    // nums: sent, rec/s, MB/s, avg, max, p50, p95, p99, p999
    if nums.len() < 9 {
        return None;
    }
    let acked = nums[0] as u64;
    Some(WorkerResult {
        acked,
        failed: 0,
        bytes: acked * size as u64,
        elapsed_s: if nums[1] > 0.0 {
            nums[0] / nums[1]
        } else {
            0.0
        },
        p50_ms: nums[5],
        p99_ms: nums[7],
        cpu_s: f64::NAN,
    })
}

fn print_table(rows: &[(&'static str, Measured)], records: u64, baseline: &HashMap<&str, f64>) {
    if rows.is_empty() {
        return;
    }
    let per_m = 1_000_000.0 / records as f64;
    println!(
        "\n  {:8} {:>12} {:>8} {:>8} {:>8} {:>11} {:>11} {:>10} {:>10}",
        "client",
        "records/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "CPU s/M",
        "net CPU s/M",
        "josefk tp×",
        "josefk CPU×"
    );
    let rate = |m: &Measured| m.result.acked as f64 / m.result.elapsed_s.max(1e-9);
    let net =
        |name: &str, m: &Measured| (m.cpu_s - baseline.get(name).copied().unwrap_or(0.0)) * per_m;
    let josefk = rows.iter().find(|(n, _)| *n == "josefk");
    for (name, m) in rows {
        let (tp_ratio, cpu_ratio) = match josefk {
            Some((_, j)) if *name != "josefk" => (
                format!("{:.2}", rate(j) / rate(m)),
                format!("{:.2}", net("josefk", j) / net(name, m)),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "  {:8} {:>12.0} {:>8.2} {:>8.1} {:>8.1} {:>11.2} {:>11.2} {:>10} {:>10}",
            name,
            rate(m),
            m.result.bytes as f64 / m.result.elapsed_s.max(1e-9) / (1024.0 * 1024.0),
            m.result.p50_ms,
            m.result.p99_ms,
            m.cpu_s * per_m,
            net(name, m),
            tp_ratio,
            cpu_ratio
        );
    }
    println!("  (josefk tp× = josefk records/s ÷ peer's; josefk CPU× = josefk net CPU ÷ peer's, lower is better)");
}

/// Builds a peer with cargo (a no-op when up to date) and returns its binary.
fn build_peer(dir: &str) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(dir);
    let target = root.join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building peers/{dir} (release)...");
    let out = Command::new(cargo)
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("`cargo build` failed:\n{}", tail.join("\n")));
    }
    Ok(target.join("release").join(dir))
}

async fn create_topic(admin: &Admin, topic: &str) -> Result<(), String> {
    admin
        .create_topics(&[NewTopic::new(topic, PARTITIONS, 1)])
        .await
        .map_err(|e| format!("create topic {topic}: {e}"))?;
    // Leaders may take a moment; ListOffsets answering for all partitions means they are there.
    let deadline = Instant::now() + secs(30);
    loop {
        match end_offsets(admin, topic).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The sum of the topic's partitions' end offsets.
async fn end_offsets(admin: &Admin, topic: &str) -> Result<i64, String> {
    let specs: Vec<_> = (0..PARTITIONS)
        .map(|p| (TopicPartition::new(topic, p), OffsetSpec::Latest))
        .collect();
    let offsets = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await
        .map_err(|e| format!("list offsets of {topic}: {e}"))?;
    if offsets.len() != PARTITIONS as usize {
        return Err(format!(
            "list offsets of {topic}: {} partitions answered",
            offsets.len()
        ));
    }
    Ok(offsets.values().map(|o| o.offset).sum())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .replace('_', "")
        .parse()
        .ok()
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let v = std::env::var(name).ok()?;
    let list: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then_some(list)
}

//! Consumer throughput and CPU: josefk against Java's ConsumerPerformance, rust-rdkafka
//! (librdkafka), krafka and franz-go (Go), reading the same topics on the same broker in the same
//! run.
//!
//! Run: `cargo bench --bench consume_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts
//! a private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_RECORDS`: records of the 100 B topics (default 3,000,000); the 1 KiB topics
//!   hold a third of it.
//! - `JOSEFK_BENCH_CLIENTS`: comma list among `josefk,java,rdkafka,krafka,franz-go` (default
//!   all, josefk first), run in the order given.
//! - `JOSEFK_BENCH_SCENARIOS`: comma list among `100-ru,100-rc,1024-ru,1024-rc`.
//! - `JOSEFK_BENCH_SECURITY=sasl_ssl`: the private broker gets a SASL_SSL listener (SCRAM-SHA-512,
//!   a certificate from a CA made at start) next to PLAINTEXT, and every client runs each
//!   scenario over both, one right after the other; a last table puts each client's two figures
//!   side by side with its TLS cost (net CPU per record over SASL_SSL ÷ over PLAINTEXT). Workers
//!   get the settings in their environment (`worker::Security`), Java in its config file.
//!
//! Topics (6 partitions, replication 1, keyless records of random uppercase letters), filled
//! unmeasured by josefk's producer (acks=all, idempotent, linger 5 ms, batch.size 16384):
//! - `ru` scenarios read a plain topic with `isolation.level=read_uncommitted`;
//! - `rc` scenarios read a topic filled by josefk's transactional producer in transactions of
//!   [`TXN_RECORDS`] records, every [`ABORT_EVERY`]th aborted, with `read_committed`. Values of
//!   committed records start with b'c', of aborted ones with b'a', so a worker can tell whether
//!   the filter let an aborted record through.
//!
//! Every client reads from the beginning to the end: josefk, rdkafka, krafka and franz-go assign
//! all partitions by hand (no group; rdkafka `BaseConsumer::assign` at `Offset::Beginning`,
//! franz-go `ConsumePartitions` at the start); Java's
//! ConsumerPerformance always joins a group, and its `fetch.*` columns (used here) exclude the join
//! time. Fetch settings for all: fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB,
//! fetch.min.bytes 1, fetch.max.wait.ms 500, max.poll.records 500 (Java, josefk, krafka,
//! franz-go's `PollRecords`).
//!
//! Every client runs as a child process, one at a time, so its CPU (user+sys from this process's
//! waited-for-children times in `/proc/self/stat`, i.e. `RUSAGE_CHILDREN`) is its own, not the
//! broker's. josefk runs as this binary re-executed with `--josefk-worker`; rdkafka and krafka are
//! `peers/rdkafka-consume` and `peers/krafka-consume`, built on demand outside the workspace;
//! franz-go is `peers/franz-go/cmd/franz-go-consume`, built with `go build` into the target dir
//! (a "not run" row when there is no Go toolchain).
//! Throughput is records (and key+value MiB, as Java's tool counts) from the first poll to the
//! poll that returned the last expected record. CPU includes process start (a JVM's start and
//! JIT); the `net` column subtracts each client's 1-record run. Each run is checked: exactly the
//! expected count, no record of an aborted transaction (Rust and Go workers), offsets strictly
//! rising per partition (Rust and Go workers).
//!
//! `RSS MiB` is each client process's peak resident set: its own `ru_maxrss`, read when this
//! process reaps it with `wait4` (`common::children_usage`); Java's tool runs as a direct child
//! for that, so the figure is the JVM's.
//!
//! `broker s/M`, `busy %` and `other %`: the broker's CPU per million records read, the whole
//! machine's busy share and the part of it neither client nor broker, while the client ran
//! (`common::machine`; see produce_compare for `JOSEFK_BENCH_BROKER_PID`).

mod common;
#[path = "../peers/common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../peers/common/worker.rs"]
mod worker;

#[path = "../peers/rdkafka-consume/src/protocol.rs"]
mod protocol;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Acks, DeliveryFuture, Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord, TopicPartition};
use josefk_harness::KafkaDist;

use common::{create_topic, end_offsets, env_list, env_u64, secs, wants, Broker, Wire, PARTITIONS};
use protocol::{ConsumeArgs, ConsumeResult, Tally};

/// Records per transaction when filling the read_committed topics.
const TXN_RECORDS: u64 = 1_000;
/// Every this-many-th transaction is aborted (10 %).
const ABORT_EVERY: u64 = 10;
const PERF_CLASS: &str = "org.apache.kafka.tools.ConsumerPerformance";
/// Peers built on demand (see [`common::Peer`]).
const PEERS: [common::Peer; 3] = [
    common::Peer::cargo("rdkafka", "rdkafka-consume"),
    common::Peer::cargo("krafka", "krafka-consume"),
    common::Peer::go("franz-go", "franz-go-consume"),
];

fn main() {
    common::main("consume_compare", josefk_worker, orchestrate);
}

// ---------------------------------------------------------------------------------------------
// The josefk worker (child process).

fn josefk_worker(argv: &[String]) {
    let args = worker::parse_or_exit("josefk worker", ConsumeArgs::parse(argv));
    let (result, cpu_s) = tokio_worker::block_on_measured(josefk_run(&args));
    println!("{}", ConsumeResult { cpu_s, ..result }.line());
}

async fn josefk_run(args: &ConsumeArgs) -> ConsumeResult {
    let isolation = if args.read_committed() {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let config = ConsumerConfig::with_client(common::josefk_client(&args.bootstrap))
        .isolation_level(isolation)
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .fetch_max_bytes(protocol::FETCH_MAX_BYTES)
        .max_partition_fetch_bytes(protocol::MAX_PARTITION_FETCH_BYTES)
        .fetch_min_bytes(protocol::FETCH_MIN_BYTES)
        .fetch_max_wait(Duration::from_millis(protocol::FETCH_MAX_WAIT_MS))
        .max_poll_records(protocol::MAX_POLL_RECORDS);
    let mut consumer = Consumer::connect(config).await.expect("josefk connect");
    let tps: Vec<TopicPartition> = (0..args.partitions)
        .map(|p| TopicPartition::new(args.topic.as_str(), p))
        .collect();
    consumer.assign(&tps).await.expect("assign");

    let mut tally = Tally::new(args.partitions);
    let mut errors = 0u64;
    tally.start();
    while !tally.done(args.expected) {
        match consumer.poll(Duration::from_millis(100)).await {
            Ok(records) => {
                if records.is_empty() {
                    continue;
                }
                for r in &records {
                    tally.record(
                        r.partition,
                        r.offset,
                        r.key.as_ref().map_or(0, |k| k.len()),
                        r.value.as_deref(),
                    );
                }
                tally.polled();
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("josefk worker: {e}");
                }
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally.result()
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// One client's way of consuming a topic: Java is ConsumerPerformance, whose flag for the record
/// count is `records_flag`.
type Client = common::Client<&'static str>;

/// One client run as measured from outside.
#[derive(Debug, Clone)]
struct Measured {
    result: ConsumeResult,
    /// user+sys of the child (and its waited-for descendants), from RUSAGE_CHILDREN deltas.
    cpu_s: f64,
    /// The child's peak RSS.
    usage: common::Usage,
}

/// A filled topic and what a full read of it must return.
struct Filled {
    topic: String,
    expected: u64,
    size: usize,
}

fn orchestrate() -> Result<(), String> {
    let ticks = worker::clock_ticks();
    let records_100 = env_u64("JOSEFK_BENCH_RECORDS").unwrap_or(3_000_000);
    let wanted_scenarios = env_list("JOSEFK_BENCH_SCENARIOS");

    let setup = common::setup(&PEERS, true, |dist| {
        let text = common::java_help(dist, PERF_CLASS)?;
        Ok(Some(if text.contains("--num-records") {
            "--num-records"
        } else {
            "--messages"
        }))
    })?;
    let common::Setup {
        broker,
        clients,
        not_run,
        runtime,
        admin,
    } = setup;
    let bootstrap = &broker.bootstrap;
    let wires = broker.wires();
    let pid = std::process::id();
    let scratch = std::env::temp_dir().join(format!("consume-compare-{pid}"));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;

    println!(
        "fetch settings for every client: fetch.max.bytes={} max.partition.fetch.bytes={} \
         fetch.min.bytes={} fetch.max.wait.ms={} max.poll.records={}; {PARTITIONS} partitions",
        protocol::FETCH_MAX_BYTES,
        protocol::MAX_PARTITION_FETCH_BYTES,
        protocol::FETCH_MIN_BYTES,
        protocol::FETCH_MAX_WAIT_MS,
        protocol::MAX_POLL_RECORDS
    );
    let mut baseline_cpu: HashMap<Wire, HashMap<&'static str, f64>> = HashMap::new();
    let mut run_no = 0u32;
    let mut summary = Vec::new();
    for (size, level) in [(100usize, "ru"), (100, "rc"), (1024, "ru"), (1024, "rc")] {
        let label = format!("{size}-{level}");
        if !wants(&wanted_scenarios, &label) {
            continue;
        }
        let records = if size == 100 {
            records_100
        } else {
            (records_100 / 3).max(1)
        };
        let topic = format!("consume-compare-{label}-{pid}");
        runtime.block_on(create_topic(&admin, &topic))?;
        let started = Instant::now();
        let filled = if level == "ru" {
            runtime.block_on(fill_plain(bootstrap, &topic, records, size))?
        } else {
            runtime.block_on(fill_transactional(bootstrap, &topic, records, size))?
        };
        let isolation = if level == "ru" {
            "read_uncommitted"
        } else {
            "read_committed"
        };
        let log_end = runtime.block_on(end_offsets(&admin, &topic))?;
        println!(
            "\n=== {} B records, {isolation}: topic {topic}, {records} written, {} to read \
             (log end offsets sum {log_end}; filled in {:.1} s) ===",
            filled.size,
            filled.expected,
            started.elapsed().as_secs_f64()
        );
        let args = ConsumeArgs {
            bootstrap: bootstrap.clone(),
            topic: filled.topic.clone(),
            partitions: PARTITIONS,
            expected: filled.expected,
            isolation: isolation.to_string(),
        };
        let mut rows: HashMap<Wire, Vec<(&'static str, Measured)>> = HashMap::new();
        for client in &clients {
            // A client's runs over every wire back to back (see produce_compare).
            for &wire in &wires {
                let args = ConsumeArgs {
                    bootstrap: broker.bootstrap_for(wire).to_string(),
                    ..args.clone()
                };
                let baseline = baseline_cpu.entry(wire).or_default();
                common::record_baseline(
                    baseline,
                    client.name(),
                    &format!("{} 1-record run", wire.name()),
                    || {
                        let one = ConsumeArgs {
                            expected: 1,
                            ..args.clone()
                        };
                        run_no += 1;
                        Ok(measure(client, &one, &broker, wire, &scratch, run_no, ticks)?.cpu_s)
                    },
                );
                run_no += 1;
                match measure(client, &args, &broker, wire, &scratch, run_no, ticks) {
                    Ok(m) => {
                        let r = &m.result;
                        let ok = r.records == filled.expected && r.aborted == 0 && r.disorder == 0;
                        println!(
                        "  {:8} {:9} read {} of {} expected, aborted-txn records {}, out of order {} {}  \
                         ({:.2} s, CPU {:.2} s, self-reported {})",
                        client.name(),
                        wire.name(),
                        r.records,
                        filled.expected,
                        r.aborted,
                        r.disorder,
                        if ok { "(OK)" } else { "(MISMATCH)" },
                        r.elapsed_s,
                        m.cpu_s,
                        if r.cpu_s.is_nan() {
                            "-".to_string()
                        } else {
                            format!("{:.2} s", r.cpu_s)
                        }
                    );
                        rows.entry(wire).or_default().push((client.name(), m));
                    }
                    Err(e) => println!("  {:8} {:9} FAILED: {e}", client.name(), wire.name()),
                }
            }
        }
        let no_baseline = HashMap::new();
        let mut text = String::new();
        for &wire in &wires {
            if wires.len() > 1 {
                text += &format!("\n  -- {} --", wire.name());
            }
            let rows = rows.get(&wire).map_or(&[][..], Vec::as_slice);
            let baseline = baseline_cpu.get(&wire).unwrap_or(&no_baseline);
            text += &table(rows, filled.expected, baseline);
        }
        if wires.len() > 1 {
            text += &security_table(&rows, filled.expected, &baseline_cpu);
        }
        text += &common::not_run_rows(&not_run);
        println!("{text}");
        summary.push((label, filled.size, isolation, filled.expected, text));
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()]));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!("\n##### summary #####");
    for (label, size, isolation, expected, table) in summary {
        println!("\n[{label}] {expected} records of {size} B, {isolation}{table}");
    }
    Ok(())
}

/// Runs one client once and measures it from outside.
/// `args.bootstrap` must be `wire`'s listener.
fn measure(
    client: &Client,
    args: &ConsumeArgs,
    broker: &Broker,
    wire: Wire,
    scratch: &Path,
    run_no: u32,
    ticks: f64,
) -> Result<Measured, String> {
    let env = broker.child_env(wire);
    let (result, usage) = broker.usage(ticks, || match client {
        Client::Josefk => {
            let (exe, argv) = common::josefk_command(args.to_args())?;
            common::run_worker_env(&exe, &argv, &env, ConsumeResult::parse)
        }
        Client::Peer { binary, .. } => {
            common::run_worker_env(binary, &args.to_args(), &env, ConsumeResult::parse)
        }
        Client::Java(records_flag) => run_java(
            &broker.dist,
            args,
            records_flag,
            &broker.java_properties(wire),
            scratch,
            run_no,
        ),
    });
    Ok(Measured {
        result: result?,
        cpu_s: usage.cpu_s,
        usage,
    })
}

/// Runs Java's ConsumerPerformance (fresh group each run) and reads its result row.
fn run_java(
    dist: &KafkaDist,
    args: &ConsumeArgs,
    records_flag: &str,
    security_properties: &str,
    scratch: &Path,
    run_no: u32,
) -> Result<ConsumeResult, String> {
    let config = scratch.join(format!("consumer-{run_no}.properties"));
    let props = format!(
        "isolation.level={}\nauto.offset.reset=earliest\nfetch.max.bytes={}\n\
         max.partition.fetch.bytes={}\nfetch.min.bytes={}\nfetch.max.wait.ms={}\n\
         max.poll.records={}\nenable.auto.commit=false\n",
        args.isolation,
        protocol::FETCH_MAX_BYTES,
        protocol::MAX_PARTITION_FETCH_BYTES,
        protocol::FETCH_MIN_BYTES,
        protocol::FETCH_MAX_WAIT_MS,
        protocol::MAX_POLL_RECORDS
    ) + security_properties;
    std::fs::write(&config, props).map_err(|e| e.to_string())?;
    let expected = args.expected.to_string();
    let group = format!("consume-compare-java-{}-{run_no}", std::process::id());
    let config = config.to_string_lossy().into_owned();
    let argv = [
        "--bootstrap-server",
        args.bootstrap.as_str(),
        "--topic",
        args.topic.as_str(),
        records_flag,
        expected.as_str(),
        "--group",
        group.as_str(),
        "--timeout",
        "60000",
        "--consumer.config",
        config.as_str(),
    ];
    let out = common::run_java_tool(dist, PERF_CLASS, &argv, secs(900))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_java_row(&stdout).ok_or_else(|| {
        format!(
            "no result row (exit {}); stdout: {stdout}; stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Parses the row under `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
/// nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec`. Elapsed time is
/// `fetch.time.ms` (after the group join); bytes come back from the MiB column.
fn parse_java_row(stdout: &str) -> Option<ConsumeResult> {
    let mut lines = stdout.lines();
    lines.by_ref().find(|l| l.starts_with("start.time"))?;
    let row = lines.find(|l| !l.trim().is_empty())?;
    let cols: Vec<&str> = row.split(',').map(str::trim).collect();
    if cols.len() < 10 {
        return None;
    }
    let mib: f64 = cols[2].parse().ok()?;
    let records: u64 = cols[4].parse().ok()?;
    let fetch_ms: f64 = cols[7].parse().ok()?;
    Some(ConsumeResult {
        records,
        bytes: (mib * 1024.0 * 1024.0).round() as u64,
        aborted: 0,
        disorder: 0,
        elapsed_s: fetch_ms / 1000.0,
        cpu_s: f64::NAN,
    })
}

/// A results table as text.
fn table(rows: &[(&'static str, Measured)], records: u64, baseline: &HashMap<&str, f64>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if rows.is_empty() {
        return s;
    }
    let per_m = 1_000_000.0 / records.max(1) as f64;
    let _ = writeln!(
        s,
        "\n  {:8} {:>12} {:>8} {:>9} {:>11} {:>11} {:>10} {:>6} {:>7} {:>8} {:>10} {:>11}",
        "client",
        "records/s",
        "MiB/s",
        "elapsed s",
        "CPU s/M",
        "net CPU s/M",
        "broker s/M",
        "busy %",
        "other %",
        "RSS MiB",
        "josefk tp×",
        "josefk CPU×"
    );
    let rate = |m: &Measured| m.result.records as f64 / m.result.elapsed_s.max(1e-9);
    let net = |name: &str, m: &Measured| common::net_cpu(baseline, name, m.cpu_s) * per_m;
    for (name, m) in rows {
        let (tp_ratio, cpu_ratio) = common::josefk_ratios(rows, name, m, |j, m| {
            (rate(j) / rate(m), net("josefk", j) / net(name, m))
        });
        let _ = writeln!(
            s,
            "  {:8} {:>12.0} {:>8.2} {:>9.2} {:>11.2} {:>11.2} {:>10} {:>6} {:>7} {:>8} {:>10} {:>11}",
            name,
            rate(m),
            m.result.bytes as f64 / m.result.elapsed_s.max(1e-9) / (1024.0 * 1024.0),
            m.result.elapsed_s,
            m.cpu_s * per_m,
            net(name, m),
            m.usage.broker_s_per_m(records),
            m.usage.busy_pct(),
            m.usage.other_pct(),
            m.usage.rss_mib(),
            tp_ratio,
            cpu_ratio
        );
    }
    let _ = write!(
        s,
        "  (josefk tp× = josefk records/s ÷ peer's, higher is better; josefk CPU× = josefk net \
         CPU ÷ peer's, lower is better; RSS = the client process's peak resident set;\n  {})",
        common::MACHINE_LEGEND
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Filling topics (unmeasured).

fn producer_config(bootstrap: &str) -> ProducerConfig {
    ProducerConfig::new(bootstrap)
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(5))
        .batch_size(16_384)
}

/// Awaits delivery futures, counting failures.
async fn settle(pending: &mut Vec<DeliveryFuture>) -> u64 {
    let mut failed = 0;
    for f in pending.drain(..) {
        if f.await.is_err() {
            failed += 1;
        }
    }
    failed
}

/// `records` keyless records of `size` random uppercase letters.
async fn fill_plain(
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
) -> Result<Filled, String> {
    let producer = Producer::connect(producer_config(bootstrap))
        .await
        .map_err(|e| format!("fill connect: {e}"))?;
    let payloads = common::payloads(size);
    let mut pending = Vec::with_capacity(100_000);
    let mut failed = 0;
    for i in 0..records as usize {
        let record = ProducerRecord::new(topic, payloads[i % payloads.len()].clone());
        let delivery = producer
            .send(record)
            .await
            .map_err(|e| format!("fill send: {e}"))?;
        pending.push(delivery);
        if pending.len() == 100_000 {
            failed += settle(&mut pending).await;
        }
    }
    failed += settle(&mut pending).await;
    let _ = producer.close(secs(30)).await;
    if failed > 0 {
        return Err(format!("fill of {topic}: {failed} records failed"));
    }
    Ok(Filled {
        topic: topic.to_string(),
        expected: records,
        size,
    })
}

/// `records` records in transactions of [`TXN_RECORDS`], every [`ABORT_EVERY`]th aborted; values
/// start with b'c' (committed) or b'a' (aborted).
async fn fill_transactional(
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
) -> Result<Filled, String> {
    let config = producer_config(bootstrap)
        .transactional_id(format!("consume-compare-fill-{}", std::process::id()));
    let producer = Producer::connect(config)
        .await
        .map_err(|e| format!("fill connect: {e}"))?;
    producer
        .init_transactions()
        .await
        .map_err(|e| format!("init_transactions: {e}"))?;
    let pool = worker::payload_pool(size);
    let marked = |mark: u8| -> Vec<Bytes> {
        pool.iter()
            .map(|p| {
                let mut v = p.clone();
                if let Some(b) = v.first_mut() {
                    *b = mark;
                }
                Bytes::from(v)
            })
            .collect()
    };
    let (committed_pool, aborted_pool) = (marked(b'c'), marked(b'a'));
    let mut committed = 0u64;
    let mut written = 0u64;
    let mut txn = 0u64;
    let mut pending = Vec::with_capacity(TXN_RECORDS as usize);
    while written < records {
        txn += 1;
        let abort = txn.is_multiple_of(ABORT_EVERY);
        let n = TXN_RECORDS.min(records - written);
        let pool = if abort {
            &aborted_pool
        } else {
            &committed_pool
        };
        producer
            .begin_transaction()
            .map_err(|e| format!("begin_transaction: {e}"))?;
        for i in 0..n as usize {
            let record =
                ProducerRecord::new(topic, pool[(written as usize + i) % pool.len()].clone());
            let delivery = producer
                .send(record)
                .await
                .map_err(|e| format!("fill send: {e}"))?;
            pending.push(delivery);
        }
        if abort {
            producer
                .abort_transaction()
                .await
                .map_err(|e| format!("abort_transaction: {e}"))?;
            settle(&mut pending).await;
        } else {
            producer
                .commit_transaction()
                .await
                .map_err(|e| format!("commit_transaction: {e}"))?;
            let failed = settle(&mut pending).await;
            if failed > 0 {
                return Err(format!(
                    "{failed} records of a committed transaction failed"
                ));
            }
            committed += n;
        }
        written += n;
    }
    let _ = producer.close(secs(30)).await;
    Ok(Filled {
        topic: topic.to_string(),
        expected: committed,
        size,
    })
}

/// The SASL_SSL table of one topic: each client's PLAINTEXT and SASL_SSL figures side by side,
/// with its TLS cost (net CPU per record over SASL_SSL ÷ over PLAINTEXT; each wire's net CPU
/// subtracts that wire's 1-record run, so connection setup and SCRAM are not in it).
fn security_table(
    rows: &HashMap<Wire, Vec<(&'static str, Measured)>>,
    records: u64,
    baseline: &HashMap<Wire, HashMap<&'static str, f64>>,
) -> String {
    use std::fmt::Write;
    let per_m = 1_000_000.0 / records.max(1) as f64;
    let get = |wire: Wire, name: &str| {
        rows.get(&wire)?
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m)
    };
    let net = |wire: Wire, name: &str, m: &Measured| {
        let b = baseline.get(&wire).and_then(|b| b.get(name)).copied();
        (m.cpu_s - b.unwrap_or(0.0)) * per_m
    };
    let rate = |m: &Measured| m.result.records as f64 / m.result.elapsed_s.max(1e-9);
    let mut s = String::new();
    let _ = write!(
        s,
        "\n\n  -- PLAINTEXT vs SASL_SSL (SCRAM-SHA-512) --\n  {:8} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "client",
        "PT rec/s",
        "TLS rec/s",
        "PT CPU/M",
        "TLS CPU/M",
        "PT net/M",
        "TLS net/M",
        "TLS cost",
        "PT RSS",
        "TLS RSS"
    );
    for (name, pt) in rows.get(&Wire::Plaintext).map_or(&[][..], Vec::as_slice) {
        let Some(tls) = get(Wire::SaslSsl, name) else {
            let _ = write!(s, "\n  {name:8} (no SASL_SSL run)");
            continue;
        };
        let (pt_net, tls_net) = (
            net(Wire::Plaintext, name, pt),
            net(Wire::SaslSsl, name, tls),
        );
        let _ = write!(
            s,
            "\n  {:8} {:>11.0} {:>11.0} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.2} {:>8} {:>8}",
            name,
            rate(pt),
            rate(tls),
            pt.cpu_s * per_m,
            tls.cpu_s * per_m,
            pt_net,
            tls_net,
            tls_net / pt_net,
            pt.usage.rss_mib(),
            tls.usage.rss_mib()
        );
    }
    let _ = write!(
        s,
        "\n  (CPU/M: CPU s per million records read, whole process; net/M: less that wire's \
         1-record run; TLS cost = TLS net/M ÷ PT net/M, lower is better; RSS MiB: peak)"
    );
    s
}

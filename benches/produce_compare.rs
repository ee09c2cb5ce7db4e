//! Producer throughput, ack latency and CPU: josefk against Java's ProducerPerformance,
//! rust-rdkafka (librdkafka), krafka and franz-go (Go), on the same broker, same topic settings,
//! same run.
//!
//! Run: `cargo bench --bench produce_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts
//! a private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_RECORDS`: records per 100 B run (default 3,000,000, about 5-15 s per client
//!   on a 2-core machine); 1 KiB runs send a third of it.
//! - `JOSEFK_BENCH_CLIENTS`: comma list among `josefk,java,rdkafka,krafka,franz-go` (default
//!   all, josefk first), run in the order given.
//! - `JOSEFK_BENCH_SCENARIOS`: comma list among `100-none,100-lz4,1024-none,1024-lz4`.
//! - `JOSEFK_BENCH_SECURITY=sasl_ssl`: the private broker gets a SASL_SSL listener (SCRAM-SHA-512,
//!   a certificate from a CA made at start) next to PLAINTEXT, and every client runs each
//!   scenario over both, one right after the other; a last table puts each client's two figures
//!   side by side with its TLS cost (net CPU per record over SASL_SSL ÷ over PLAINTEXT). Workers
//!   get the settings in their environment (`worker::Security`), Java in its config file.
//!
//! Scenarios: 100 B and 1 KiB keyless records of random uppercase letters (as Java's tool sends),
//! compression none and lz4; every client runs with acks=all, enable.idempotence=true,
//! linger.ms=5, batch.size=16384, 32 MiB of buffer. Each scenario gets a fresh 6-partition topic.
//!
//! Every client runs as a child process, one at a time, so its CPU (user+sys, from this process's
//! waited-for-children times in `/proc/self/stat`, i.e. `RUSAGE_CHILDREN`) is its own, not the
//! broker's. josefk runs as this binary re-executed with `--josefk-worker`; rdkafka and krafka are
//! binaries in `peers/` built on demand (outside the workspace, so the normal build never
//! compiles C); franz-go is `peers/franz-go/cmd/franz-go-bench`, built with `go build` into the
//! target dir (a "not run" row when there is no Go toolchain). Throughput counts only records the broker acknowledged, and each run is checked
//! against the topic's end offsets (ListOffsets) before and after. CPU includes process start
//! (a JVM's start and JIT); the `net` column subtracts each client's 1-record run.
//!
//! Fixed-rate latency mode: `JOSEFK_BENCH_RATE=10000,100000` (records/s) replaces the throughput
//! scenarios with, for each rate, 100 B and 1 KiB records at linger.ms 0 and 5 (labels
//! `100-linger0`, `100-linger5`, `1024-linger0`, `1024-linger5` for `JOSEFK_BENCH_SCENARIOS`),
//! compression none, acks=all, idempotent, `JOSEFK_BENCH_RATE_SECS` (default 10) seconds' worth
//! of records per run. Each client sends on an open-loop schedule (record `i` at `i / rate` s
//! after the first; a client that falls behind sends what is overdue at once) and reports ack
//! latency p50 / p99 / p99.9, from the send call to the acknowledgement, over acknowledged
//! records only. Clients with the mode: josefk, franz-go, rdkafka and Java (ProducerPerformance's
//! own `--throughput` pacing, which sleeps when ahead of schedule); krafka has none yet and shows
//! as a "not run" row.
//!
//! MiB/s is payload MiB as Java's tool prints it. Broker and clients share this machine's cores,
//! so throughput can hit the broker's ceiling; CPU per million records is the cleaner comparison.
//! RSS is each client process's peak resident set (see `common::children_usage`).
//! `broker s/M`, `busy %` and `other %` say what bounds a rate (`common::machine`): the broker
//! process's CPU per million records while the client ran, the whole machine's busy share (100 =
//! both cores of a 2-core machine busy) and the part of it neither client nor broker. The broker
//! is the private node, or `JOSEFK_BENCH_BROKER_PID` (what `josefk-harness start` prints) with
//! `KAFKA_BOOTSTRAP_SERVERS`; without a pid the broker columns show `-`.

mod common;
#[path = "../peers/common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../peers/common/worker.rs"]
mod worker;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use josefk::admin::Admin;
use josefk::producer::{Acks, DeliveryFuture, Producer, ProducerConfig};
use josefk::ProducerRecord;

use common::{create_topic, end_offsets, env_list, env_u64, wants, Broker, Wire, PARTITIONS};
use tokio_worker::{spawn_collector, Handoff};
use worker::{WorkerArgs, WorkerResult};

const LINGER_MS: u64 = 5;
const BATCH_SIZE: usize = 16_384;
const BUFFER_MEMORY: usize = 32 * 1024 * 1024;
/// Peers built on demand (see [`common::Peer`]).
const PEERS: [common::Peer; 3] = [
    common::Peer::cargo("rdkafka", "rdkafka-bench"),
    common::Peer::cargo("krafka", "krafka-bench"),
    common::Peer::go("franz-go", "franz-go-bench"),
];

fn main() {
    common::main("produce_compare", josefk_worker, orchestrate);
}

// ---------------------------------------------------------------------------------------------
// The josefk worker (child process).

/// Delivery futures waiting for the collector; only needs to exceed what buffer.memory lets be
/// unacknowledged (32 MiB / 100 B records ≈ 210k after per-record overhead).
const WINDOW: usize = 1 << 18;
/// Futures per handoff to the collector in throughput runs.
const CHUNK: usize = 256;

fn josefk_worker(argv: &[String]) {
    let args = worker::parse_or_exit("josefk worker", WorkerArgs::parse(argv));
    let rate = args.rate;
    let ((result, p999_ms), cpu_s) = tokio_worker::block_on_measured(josefk_run(args));
    let line = WorkerResult { cpu_s, ..result }.line();
    if rate > 0 {
        println!("{line}{}", worker::p999_field(p999_ms));
    } else {
        println!("{line}");
    }
}

/// The run's result and its p99.9 ack latency (ms).
async fn josefk_run(args: WorkerArgs) -> (WorkerResult, f64) {
    let mut config = ProducerConfig::with_client(common::josefk_client(&args.bootstrap))
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size)
        .compression(args.compression.parse().expect("compression"));
    config.buffer_memory = args.buffer_memory;
    let producer = Producer::connect(config).await.expect("josefk connect");
    let payloads = common::payloads(args.size);

    // Futures are awaited in send order by one task (see `spawn_collector`), handed over in
    // chunks in throughput runs and one by one at a fixed rate (see `Handoff`).
    let chunk = if args.rate > 0 { 1 } else { CHUNK };
    let (mut handoff, rx) = Handoff::<(Instant, DeliveryFuture)>::new(chunk, WINDOW);
    let records = args.records as usize;
    let collector = spawn_collector(rx, |(t, d)| (Some(t), d), records, "josefk worker");

    let start = Instant::now();
    let mut not_queued = 0u64;
    for i in 0..records {
        if args.rate > 0 {
            let due = start + worker::due(i as u64, args.rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let record = ProducerRecord::new(args.topic.as_str(), payloads[i % payloads.len()].clone());
        let sent = Instant::now();
        match producer.send(record).await {
            Ok(delivery) => {
                if !handoff.push((sent, delivery)).await {
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
    handoff.finish().await;
    if let Err(e) = producer.flush().await {
        eprintln!("josefk worker: flush: {e}");
    }
    let mut c = collector.await.expect("collector");
    // What the requests looked like (stderr only: the result line stays the same for all clients).
    let m = producer.metrics();
    eprintln!(
        "josefk worker: {} batches of {:.0} B avg, {:.1} records per request avg ({} requests)",
        m.batch_size.count,
        m.batch_size.avg,
        m.records_per_request.avg,
        m.records_per_request.count
    );
    let _ = producer.close(Duration::from_secs(10)).await;
    let (p50_ms, p99_ms) = c.latencies.p50_p99_ms();
    let p999_ms = c.latencies.percentile_ms(0.999);
    let result = WorkerResult {
        acked: c.acked,
        failed: c.failed + not_queued,
        bytes: c.acked * args.size as u64,
        elapsed_s: c.last_ack.map_or(0.0, |t| (t - start).as_secs_f64()),
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    };
    (result, p999_ms)
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// One client's way of producing a scenario: Java is ProducerPerformance, which may or may not
/// know `--bootstrap-server`.
type Client = common::Client<JavaPerf>;

struct JavaPerf {
    bootstrap_flag: bool,
}

/// One client run as measured from outside.
#[derive(Debug, Clone)]
struct Measured {
    result: WorkerResult,
    /// user+sys of the child (and its waited-for descendants), from RUSAGE_CHILDREN deltas.
    cpu_s: f64,
    /// The child's peak RSS.
    usage: common::Usage,
    /// Sum over partitions of the end-offset change during the run.
    log_delta: i64,
    /// p99.9 ack latency (ms), from fixed-rate runs.
    p999_ms: f64,
}

fn orchestrate() -> Result<(), String> {
    let ticks = worker::clock_ticks();
    let records_100 = env_u64("JOSEFK_BENCH_RECORDS").unwrap_or(3_000_000);
    let wanted_scenarios = env_list("JOSEFK_BENCH_SCENARIOS");

    // The broker: an existing one, or a private single node kept alive until the end.
    let setup = common::setup(&PEERS, false, |dist| {
        let text = common::java_help(dist, common::PRODUCER_PERF_CLASS)?;
        Ok(Some(JavaPerf {
            bootstrap_flag: text.contains("--bootstrap-server"),
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

    println!(
        "settings for every client: acks=all enable.idempotence=true linger.ms={LINGER_MS} \
         batch.size={BATCH_SIZE} buffer.memory={BUFFER_MEMORY}, keyless records, \
         {PARTITIONS} partitions, replication 1"
    );
    let mut baseline_cpu: HashMap<Wire, HashMap<&'static str, f64>> = HashMap::new();
    // A fresh broker's first produce runs are slower (its JIT is cold); an unmeasured josefk run
    // keeps that cost off whichever client happens to go first. It takes millions of records: on
    // a quiet 2-core machine, 1.5M-record josefk runs on one broker went 0.9M → 1.2M → 1.6M →
    // 2.0M rec/s over the first ~8M records and then stayed level, so a warm-up of a fifth of a
    // run (the earlier default) left the first client at half speed.
    {
        let topic = format!("produce-compare-warmup-{}", std::process::id());
        runtime.block_on(create_topic(&admin, &topic))?;
        let warm = WorkerArgs {
            bootstrap: bootstrap.clone(),
            topic: topic.clone(),
            records: (records_100 * 3).max(8_000_000),
            size: 100,
            compression: "none".into(),
            linger_ms: LINGER_MS,
            batch_size: BATCH_SIZE,
            buffer_memory: BUFFER_MEMORY,
            rate: 0,
        };
        println!(
            "warming the broker up ({} records, unmeasured)...",
            warm.records
        );
        measure(
            &Client::Josefk,
            &warm,
            &broker,
            Wire::Plaintext,
            &admin,
            &runtime,
            ticks,
        )?;
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()]));
    }
    if let Some(rates) = env_list("JOSEFK_BENCH_RATE") {
        let ctx = RateRun {
            bootstrap,
            broker: &broker,
            admin: &admin,
            runtime: &runtime,
            ticks,
        };
        return fixed_rate(&ctx, &rates, &clients, &not_run, &wanted_scenarios);
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
            rate: 0,
        };
        let mut rows: HashMap<Wire, Vec<(&'static str, Measured)>> = HashMap::new();
        for client in &clients {
            // Each client's runs over every wire back to back, so a change in the machine's
            // load between clients does not land between one client's PLAINTEXT and SASL_SSL.
            for &wire in &wires {
                let base = WorkerArgs {
                    bootstrap: broker.bootstrap_for(wire).to_string(),
                    ..base.clone()
                };
                // Process start-up cost (with connection setup), once per client and wire: a
                // 1-record run.
                let baseline = baseline_cpu.entry(wire).or_default();
                common::record_baseline(
                    baseline,
                    client.name(),
                    &format!("{} 1-record run", wire.name()),
                    || {
                        let one = WorkerArgs {
                            records: 1,
                            ..base.clone()
                        };
                        Ok(measure(client, &one, &broker, wire, &admin, &runtime, ticks)?.cpu_s)
                    },
                );
                match measure(client, &base, &broker, wire, &admin, &runtime, ticks) {
                    Ok(m) => {
                        // Every record acknowledged, and the log grew by exactly that many.
                        let all_acked = m.result.acked == records && m.log_delta == records as i64;
                        println!(
                        "  {:8} {:9} acked {} of {records}, failed {}, log delta {}{}  ({:.1} s, CPU {:.2} s, self-reported {:.2} s)",
                        client.name(),
                        wire.name(),
                        m.result.acked,
                        m.result.failed,
                        m.log_delta,
                        if all_acked { " (match)" } else { " (MISMATCH)" },
                        m.result.elapsed_s,
                        m.cpu_s,
                        m.result.cpu_s
                    );
                        rows.entry(wire).or_default().push((client.name(), m));
                    }
                    Err(e) => println!("  {:8} {:9} FAILED: {e}", client.name(), wire.name()),
                }
            }
        }
        let no_baseline = HashMap::new();
        for &wire in &wires {
            if wires.len() > 1 {
                println!("\n  -- {} --", wire.name());
            }
            let rows = rows.get(&wire).map_or(&[][..], Vec::as_slice);
            print_table(
                rows,
                records,
                baseline_cpu.get(&wire).unwrap_or(&no_baseline),
            );
        }
        if wires.len() > 1 {
            print_security_table(&rows, records, &baseline_cpu);
        }
        common::print_not_run(&not_run);
        let _ = runtime.block_on(admin.delete_topics(&[topic.as_str()]));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fixed-rate latency mode.

/// What every fixed-rate run needs.
struct RateRun<'a> {
    bootstrap: &'a str,
    broker: &'a Broker,
    admin: &'a Admin,
    runtime: &'a tokio::runtime::Runtime,
    ticks: f64,
}

/// Clients that pace themselves to `--rate` (the others would send flat out).
fn has_rate_mode(client: &Client) -> bool {
    matches!(client.name(), "josefk" | "java" | "franz-go" | "rdkafka")
}

/// The fixed-rate tables: each rate × (100 B, 1 KiB) × (linger 0, 5 ms), every client on a
/// fresh topic.
fn fixed_rate(
    ctx: &RateRun,
    rates: &[String],
    clients: &[Client],
    not_run: &[common::NotRun],
    wanted_scenarios: &Option<Vec<String>>,
) -> Result<(), String> {
    let secs = env_u64("JOSEFK_BENCH_RATE_SECS").unwrap_or(10).max(1);
    let mut not_run = not_run.to_vec();
    for c in clients.iter().filter(|c| !has_rate_mode(c)) {
        not_run.push(common::NotRun {
            name: c.name(),
            why: "no fixed-rate mode in this peer yet".into(),
        });
    }
    for rate in rates {
        let rate: u64 = rate
            .replace('_', "")
            .parse()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(|| format!("JOSEFK_BENCH_RATE: {rate:?} is not a positive rate"))?;
        for (size, linger_ms) in [(100usize, 0u64), (100, 5), (1024, 0), (1024, 5)] {
            let label = format!("{size}-linger{linger_ms}");
            if !wants(wanted_scenarios, &label) {
                continue;
            }
            let records = rate * secs;
            println!(
                "\n=== fixed rate {rate} records/s, {records} records x {size} B, \
                 linger.ms={linger_ms}, compression none ==="
            );
            let mut rows = Vec::new();
            for client in clients.iter().filter(|c| has_rate_mode(c)) {
                let topic = format!(
                    "produce-rate-{rate}-{label}-{}-{}",
                    client.name(),
                    std::process::id()
                );
                ctx.runtime.block_on(create_topic(ctx.admin, &topic))?;
                let args = WorkerArgs {
                    bootstrap: ctx.bootstrap.to_string(),
                    topic: topic.clone(),
                    records,
                    size,
                    compression: "none".into(),
                    linger_ms,
                    batch_size: BATCH_SIZE,
                    buffer_memory: BUFFER_MEMORY,
                    rate,
                };
                match measure(
                    client,
                    &args,
                    ctx.broker,
                    Wire::Plaintext,
                    ctx.admin,
                    ctx.runtime,
                    ctx.ticks,
                ) {
                    Ok(m) => {
                        let all_acked = m.result.acked == records && m.log_delta == records as i64;
                        println!(
                            "  {:8} acked {} of {records}, failed {}, log delta {}{}",
                            client.name(),
                            m.result.acked,
                            m.result.failed,
                            m.log_delta,
                            if all_acked { " (match)" } else { " (MISMATCH)" },
                        );
                        rows.push((client.name(), m));
                    }
                    Err(e) => println!("  {:8} FAILED: {e}", client.name()),
                }
                let _ = ctx
                    .runtime
                    .block_on(ctx.admin.delete_topics(&[topic.as_str()]));
            }
            print_rate_table(&rows, rate, records);
            common::print_not_run(&not_run);
        }
    }
    Ok(())
}

fn print_rate_table(rows: &[(&'static str, Measured)], rate: u64, records: u64) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\n  {:8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "client",
        "target/s",
        "acked/s",
        "acked",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "CPU s",
        "RSS MiB"
    );
    for (name, m) in rows {
        println!(
            "  {:8} {:>10} {:>10.0} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>9}",
            name,
            rate,
            m.result.acked as f64 / m.result.elapsed_s.max(1e-9),
            if m.result.acked == records && m.log_delta == records as i64 {
                m.result.acked.to_string()
            } else {
                format!("{}!", m.result.acked)
            },
            m.result.p50_ms,
            m.result.p99_ms,
            m.p999_ms,
            m.cpu_s,
            m.usage.rss_mib()
        );
    }
    println!(
        "  (latency: send call to acknowledgement, acknowledged records only; acked/s: first \
         send to last ack; `!` after acked: not every record acknowledged or the log grew by \
         another count; CPU s: the whole process, start-up included)"
    );
}

/// Runs one client once and measures it from outside.
/// `args.bootstrap` must be `wire`'s listener.
fn measure(
    client: &Client,
    args: &WorkerArgs,
    broker: &Broker,
    wire: Wire,
    admin: &Admin,
    runtime: &tokio::runtime::Runtime,
    ticks: f64,
) -> Result<Measured, String> {
    let before_log = runtime.block_on(end_offsets(admin, &args.topic))?;
    let env = broker.child_env(wire);
    let (result, usage) = broker.usage(ticks, || match client {
        Client::Josefk => {
            let (exe, argv) = common::josefk_command(args.to_args())?;
            common::run_worker_env(&exe, &argv, &env, parse_worker)
        }
        Client::Peer { binary, .. } => {
            common::run_worker_env(binary, &args.to_args(), &env, parse_worker)
        }
        Client::Java(java) => run_java(broker, wire, args, java.bootstrap_flag),
    });
    let (result, p999_ms) = result?;
    let after_log = runtime.block_on(end_offsets(admin, &args.topic))?;
    Ok(Measured {
        result,
        p999_ms,
        cpu_s: usage.cpu_s,
        usage,
        log_delta: after_log - before_log,
    })
}

/// A worker's result line, with its p99.9 (NaN unless a fixed-rate run).
fn parse_worker(stdout: &str) -> Option<(WorkerResult, f64)> {
    let result = WorkerResult::parse(stdout)?;
    Some((result, worker::p999_ms(stdout).unwrap_or(f64::NAN)))
}

/// Runs Java's ProducerPerformance and reads its final summary line (and its p99.9).
fn run_java(
    broker: &Broker,
    wire: Wire,
    args: &WorkerArgs,
    bootstrap_flag: bool,
) -> Result<(WorkerResult, f64), String> {
    // Security settings go in a `--producer.config` file (the JAAS line holds spaces and quotes).
    let config = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("produce-compare-{}.properties", std::process::id()));
    let properties = broker.java_properties(wire);
    let config = config.to_string_lossy().into_owned();
    let mut extra = Vec::new();
    if !properties.is_empty() {
        std::fs::write(&config, properties).map_err(|e| format!("{config}: {e}"))?;
        extra.extend(["--producer.config", config.as_str()]);
    }
    common::ProducerPerf {
        bootstrap: &args.bootstrap,
        topic: &args.topic,
        records: args.records,
        size: args.size,
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        buffer_memory: args.buffer_memory,
        compression: Some(&args.compression),
        throughput: (args.rate > 0).then_some(args.rate),
        extra,
        bootstrap_flag,
    }
    .run(&broker.dist, |nums| {
        let p999 = *nums.get(8)?;
        java_summary(nums, args.size).map(|r| (r, p999))
    })
}

/// Reads the numbers of `N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max
/// latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.` Java counts a record on its
/// callback; the end-offset check in the table shows whether those were all acknowledged.
fn java_summary(nums: &[f64], size: usize) -> Option<WorkerResult> {
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
        "\n  {:8} {:>12} {:>8} {:>8} {:>8} {:>11} {:>11} {:>10} {:>6} {:>7} {:>8} {:>10} {:>10}",
        "client",
        "records/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "CPU s/M",
        "net CPU s/M",
        "broker s/M",
        "busy %",
        "other %",
        "RSS MiB",
        "josefk tp×",
        "josefk CPU×"
    );
    let rate = |m: &Measured| m.result.acked as f64 / m.result.elapsed_s.max(1e-9);
    let net = |name: &str, m: &Measured| common::net_cpu(baseline, name, m.cpu_s) * per_m;
    for (name, m) in rows {
        let (tp_ratio, cpu_ratio) = common::josefk_ratios(rows, name, m, |j, m| {
            (rate(j) / rate(m), net("josefk", j) / net(name, m))
        });
        println!(
            "  {:8} {:>12.0} {:>8.2} {:>8.1} {:>8.1} {:>11.2} {:>11.2} {:>10} {:>6} {:>7} {:>8} {:>10} {:>10}",
            name,
            rate(m),
            m.result.bytes as f64 / m.result.elapsed_s.max(1e-9) / (1024.0 * 1024.0),
            m.result.p50_ms,
            m.result.p99_ms,
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
    println!("  (josefk tp× = josefk records/s ÷ peer's; josefk CPU× = josefk net CPU ÷ peer's, lower is better; RSS = the client process's peak resident set;");
    println!("  {})", common::MACHINE_LEGEND);
}

/// The SASL_SSL table: each client's PLAINTEXT and SASL_SSL figures of one scenario side by side,
/// with its TLS cost (net CPU per record over SASL_SSL ÷ over PLAINTEXT; each wire's net CPU
/// subtracts that wire's 1-record run, so connection setup and SCRAM are not in it).
fn print_security_table(
    rows: &HashMap<Wire, Vec<(&'static str, Measured)>>,
    records: u64,
    baseline: &HashMap<Wire, HashMap<&'static str, f64>>,
) {
    let per_m = 1_000_000.0 / records as f64;
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
    let rate = |m: &Measured| m.result.acked as f64 / m.result.elapsed_s.max(1e-9);
    println!(
        "\n  -- PLAINTEXT vs SASL_SSL (SCRAM-SHA-512) --\n  {:8} {:>11} {:>11} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
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
    let Some(plain_rows) = rows.get(&Wire::Plaintext) else {
        return;
    };
    for (name, pt) in plain_rows {
        let Some(tls) = get(Wire::SaslSsl, name) else {
            println!("  {name:8} (no SASL_SSL run)");
            continue;
        };
        let (pt_net, tls_net) = (
            net(Wire::Plaintext, name, pt),
            net(Wire::SaslSsl, name, tls),
        );
        println!(
            "  {:8} {:>11.0} {:>11.0} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.2} {:>8} {:>8}",
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
    println!(
        "  (CPU/M: CPU s per million acknowledged records, whole process; net/M: less that wire's \
         1-record run; TLS cost = TLS net/M ÷ PT net/M, lower is better; RSS MiB: peak)"
    );
}

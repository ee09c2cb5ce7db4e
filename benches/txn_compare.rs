//! Transactional producer cost: josefk against Java's KafkaProducer, rust-rdkafka (librdkafka),
//! krafka and franz-go (Go), on the same broker, same settings, same run.
//!
//! Run: `cargo bench --bench txn_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts a
//! private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_SCALE`: multiplies every count below (default 1; 0.1 for a quick look).
//! - `JOSEFK_BENCH_CLIENTS`: comma list among `josefk,java,rdkafka,krafka,franz-go` (default
//!   all, josefk first), run in the order given.
//! - `JOSEFK_BENCH_PARTS`: comma list among `1,2` (default both).
//!
//! Every client runs acks=all, enable.idempotence=true, linger.ms=5, batch.size=16384, 32 MiB of
//! buffer, keyless 100 B records of random uppercase letters, into a fresh 6-partition topic per
//! run.
//!
//! Part 1, commit cost: 2000 transactions of 1 record, 500 of 100 and 20 of 10,000 (times the
//! scale). Each transaction is begin, send its records without waiting for them, commit; commit
//! latency is the commit call until it returns (it flushes the transaction's records, then
//! EndTxn). Reported: transactions/s and records/s over the whole run (first send to last
//! commit's return), commit p50/p99, and client CPU per million records and per transaction.
//!
//! Part 2, throughput cost: 1,000,000 records (times the scale) from the same client's
//! idempotent producer, and transactional with a commit every 100 ms (checked after each send,
//! as Java's ProducerPerformance `--transaction-duration-ms` does). Reported: records/s of each
//! and the ratio.
//!
//! Clients. josefk is this binary re-executed with `--josefk-worker`; rdkafka and krafka are
//! `peers/rdkafka-txn` and `peers/krafka-txn`, built on demand (outside the workspace, so the
//! normal build compiles no C); franz-go is `peers/franz-go/cmd/franz-go-txn`, built with `go
//! build` into the target dir (a "not run" row when there is no Go toolchain; its commit is
//! `Flush` then `EndTransaction`, timed together). All speak the protocol in
//! `peers/rdkafka-txn/src/txn_proto.rs`.
//! Java: ProducerPerformance cannot size a transaction by record count nor time a commit, so
//! part 1 uses a small KafkaProducer program embedded below (compiled with `javac` against the
//! tools classpath before any measurement, same loop as the Rust workers); part 2 uses
//! ProducerPerformance itself, with and without `--transactional-id --transaction-duration-ms
//! 100`. krafka 0.28 has a `TransactionalProducer` (`build_transactional`), so it takes part.
//!
//! CPU is each client process's user+sys, from this process's waited-for-children times
//! (`/proc/self/stat`, i.e. RUSAGE_CHILDREN) around the run: the broker's is not in it, process
//! start (a JVM's start and JIT) is. `net` subtracts each client's one-record, one-transaction
//! run.
//!
//! `RSS MiB` (part 1) and `idem RSS` / `txn RSS` (part 2) are each client process's peak resident
//! set: its own `ru_maxrss`, read when this process reaps it with `wait4`
//! (`common::children_usage`).
//!
//! Verification, per run (each on its own topic): once no transaction is open (the last stable
//! offset equals the high watermark on every partition), the topic is read from the beginning
//! by josefk's consumer at read_committed, which returns committed data records and neither
//! control markers nor aborted records. That count must equal the records the client reports
//! committed (idempotent runs: acknowledged). The high-watermark total minus that count is the
//! number of control markers (one per partition per transaction touching it), printed as a
//! cross-check: for a transactional run it lies between the transaction count and 6 × it.
//!
//! Broker and clients share this machine's cores; numbers are for comparison on one machine.

mod common;
#[path = "../peers/common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../peers/common/worker.rs"]
mod worker;

#[path = "../peers/rdkafka-txn/src/txn_proto.rs"]
mod txn_proto;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use josefk::admin::Admin;
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::producer::{Acks, DeliveryFuture, Producer, ProducerConfig};
use josefk::{IsolationLevel, ProducerRecord};
use josefk_harness::KafkaDist;

use common::{create_topic, env_list, offsets, partitions, secs, wants, PARTITIONS};
use tokio_worker::spawn_collector;
use txn_proto::{TxnArgs, TxnResult};
use worker::Latencies;

const RECORD_SIZE: usize = 100;
const LINGER_MS: u64 = 5;
const BATCH_SIZE: usize = 16_384;
const BUFFER_MEMORY: usize = 32 * 1024 * 1024;
const INTERVAL_MS: u64 = 100;
/// Peers built on demand (see [`common::Peer`]).
const PEERS: [common::Peer; 3] = [
    common::Peer::cargo("rdkafka", "rdkafka-txn"),
    common::Peer::cargo("krafka", "krafka-txn"),
    common::Peer::go("franz-go", "franz-go-txn"),
];
/// Delivery futures waiting for the collector task.
const WINDOW: usize = 1 << 18;

fn main() {
    common::main("txn_compare", josefk_worker, orchestrate);
}

// ---------------------------------------------------------------------------------------------
// The josefk worker (child process).

fn josefk_worker(argv: &[String]) {
    let args = worker::parse_or_exit("josefk worker", TxnArgs::parse(argv));
    let (result, cpu_s) = tokio_worker::block_on_measured(josefk_run(args));
    println!("{}", TxnResult { cpu_s, ..result }.line());
}

async fn josefk_run(args: TxnArgs) -> TxnResult {
    let mut config = ProducerConfig::new(&args.bootstrap)
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size);
    config.buffer_memory = args.buffer_memory;
    config.max_block = Duration::from_secs(60);
    if let Some(id) = &args.txn_id {
        config = config.transactional_id(id.clone());
    }
    let producer = Producer::connect(config).await.expect("josefk connect");
    let transactional = args.txn_id.is_some();
    if transactional {
        producer
            .init_transactions()
            .await
            .expect("josefk init_transactions");
    }
    let payloads = common::payloads(args.size);

    let (tx, rx) = tokio::sync::mpsc::channel::<[DeliveryFuture; 1]>(WINDOW);
    let collector = spawn_collector(rx, |d| (None, d), 0, "josefk worker");

    let mut commits = Latencies::with_capacity(1024);
    let (mut txns, mut committed, mut in_txn, mut not_queued) = (0u64, 0u64, 0u64, 0u64);
    let mut txn_began = Instant::now();
    let start = Instant::now();
    for i in 0..args.records {
        if transactional && in_txn == 0 {
            producer.begin_transaction().expect("begin_transaction");
            txn_began = Instant::now();
        }
        let record = ProducerRecord::new(
            args.topic.as_str(),
            payloads[i as usize % payloads.len()].clone(),
        );
        match producer.send(record).await {
            Ok(delivery) => {
                in_txn += 1;
                if tx.send([delivery]).await.is_err() {
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
        let last = i + 1 == args.records;
        if transactional && in_txn > 0 && (last || args.commit_due(in_txn, txn_began.elapsed())) {
            let t = Instant::now();
            match producer.commit_transaction().await {
                Ok(()) => {
                    commits.record(t.elapsed());
                    txns += 1;
                    committed += in_txn;
                }
                Err(e) => {
                    eprintln!("josefk worker: commit failed: {e}");
                    let _ = producer.abort_transaction().await;
                }
            }
            in_txn = 0;
        }
    }
    let mut elapsed_s = start.elapsed().as_secs_f64();
    drop(tx);
    if !transactional {
        if let Err(e) = producer.flush().await {
            eprintln!("josefk worker: flush: {e}");
        }
    }
    let c = collector.await.expect("collector");
    if !transactional {
        committed = c.acked;
        elapsed_s = c.last_ack.map_or(f64::NAN, |t| (t - start).as_secs_f64());
    }
    let _ = producer.close(Duration::from_secs(10)).await;
    let (p50_ms, p99_ms) = commits.p50_p99_ms();
    TxnResult {
        txns,
        records: committed,
        failed: c.failed + not_queued,
        elapsed_s,
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// The Java worker for part 1: the same loop over KafkaProducer, compiled at run time.

const JAVA_CLASS: &str = "TxnWorker";
const JAVA_SOURCE: &str = r#"
import java.lang.management.ManagementFactory;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class TxnWorker {
    public static void main(String[] a) throws Exception {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i + 1 < a.length; i += 2) m.put(a[i], a[i + 1]);
        String topic = m.get("--topic");
        String txnId = m.get("--txn-id");
        boolean txn = !txnId.equals("-");
        long records = Long.parseLong(m.get("--records"));
        long perTxn = Long.parseLong(m.get("--per-txn"));
        long intervalMs = Long.parseLong(m.get("--interval-ms"));
        int size = Integer.parseInt(m.get("--size"));
        Properties p = new Properties();
        p.put("bootstrap.servers", m.get("--bootstrap"));
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("linger.ms", m.get("--linger-ms"));
        p.put("batch.size", m.get("--batch-size"));
        p.put("buffer.memory", m.get("--buffer-memory"));
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        if (txn) p.put("transactional.id", txnId);
        // The payloads of peers/common/worker.rs: xorshift64, fixed seed, letters A-Z.
        byte[][] payloads = new byte[1024][size];
        long state = 0x9E3779B97F4A7C15L;
        for (byte[] payload : payloads) {
            for (int j = 0; j < size; j++) {
                state ^= state << 13;
                state ^= state >>> 7;
                state ^= state << 17;
                payload[j] = (byte) ('A' + Long.remainderUnsigned(state, 26));
            }
        }
        AtomicLong acked = new AtomicLong(), failed = new AtomicLong(), lastAck = new AtomicLong();
        Callback cb = (md, e) -> {
            if (e == null) {
                acked.incrementAndGet();
                lastAck.set(System.nanoTime());
            } else if (failed.getAndIncrement() == 0) {
                System.err.println("java worker: first delivery failure: " + e);
            }
        };
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        if (txn) producer.initTransactions();
        long[] lat = new long[16];
        int nlat = 0;
        long txns = 0, committed = 0, inTxn = 0, began = 0;
        long start = System.nanoTime();
        for (long i = 0; i < records; i++) {
            if (txn && inTxn == 0) {
                producer.beginTransaction();
                began = System.nanoTime();
            }
            producer.send(new ProducerRecord<>(topic, payloads[(int) (i % payloads.length)]), cb);
            inTxn++;
            boolean due = i + 1 == records || (perTxn > 0 && inTxn >= perTxn)
                || (intervalMs > 0 && (System.nanoTime() - began) / 1_000_000 >= intervalMs);
            if (txn && due) {
                long t = System.nanoTime();
                try {
                    producer.commitTransaction();
                    if (nlat == lat.length) lat = Arrays.copyOf(lat, nlat * 2);
                    lat[nlat++] = System.nanoTime() - t;
                    txns++;
                    committed += inTxn;
                } catch (Exception e) {
                    System.err.println("java worker: commit failed: " + e);
                    producer.abortTransaction();
                }
                inTxn = 0;
            }
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        if (!txn) {
            producer.flush();
            committed = acked.get();
            elapsed = (lastAck.get() - start) / 1e9;
        }
        producer.close();
        Arrays.sort(lat, 0, nlat);
        double p50 = nlat == 0 ? Double.NaN : lat[Math.min(nlat - 1, (int) (0.5 * nlat))] / 1e6;
        double p99 = nlat == 0 ? Double.NaN : lat[Math.min(nlat - 1, (int) (0.99 * nlat))] / 1e6;
        double cpu = ((com.sun.management.OperatingSystemMXBean)
            ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime() / 1e9;
        System.out.printf(Locale.ROOT,
            "TXN_COMPARE_RESULT txns=%d records=%d failed=%d elapsed_s=%.6f p50_ms=%.3f p99_ms=%.3f cpu_s=%.3f%n",
            txns, committed, failed.get(), elapsed, p50, p99, cpu);
        System.exit(0);
    }
}
"#;

/// Compiles [`JAVA_SOURCE`] into a class directory; returns that directory.
fn compile_java(dist: &KafkaDist) -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("txn_compare_java");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join(format!("{JAVA_CLASS}.java"));
    std::fs::write(&src, JAVA_SOURCE).map_err(|e| e.to_string())?;
    let javac = dist.java().with_file_name("javac");
    let javac = if javac.exists() {
        javac
    } else {
        PathBuf::from("javac")
    };
    let out = Command::new(&javac)
        .arg("-nowarn")
        .arg("-cp")
        .arg(dist.tools_classpath())
        .arg("-d")
        .arg(&dir)
        .arg(&src)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", javac.display()))?;
    if !out.status.success() {
        return Err(format!(
            "javac failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// Java: the compiled [`JAVA_SOURCE`] (part 1) and ProducerPerformance (part 2).
type Client = common::Client<JavaTxn>;

struct JavaTxn {
    classes: PathBuf,
    bootstrap_flag: bool,
}

#[derive(Debug, Clone)]
struct Measured {
    result: TxnResult,
    /// user+sys of the child, from RUSAGE_CHILDREN deltas.
    cpu_s: f64,
    /// The child's peak RSS.
    usage: common::Usage,
    /// Records read back at read_committed.
    read: u64,
    /// High-watermark total minus `read`: control markers (and, if any, aborted records).
    markers: u64,
}

impl Measured {
    fn verified(&self) -> bool {
        self.read == self.result.records
    }
}

struct Bench {
    bootstrap: String,
    dist: KafkaDist,
    admin: Admin,
    runtime: tokio::runtime::Runtime,
    ticks: f64,
    runs: u64,
}

fn orchestrate() -> Result<(), String> {
    let ticks = worker::clock_ticks();
    let scale: f64 = std::env::var("JOSEFK_BENCH_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1.0);
    let scaled = |n: u64| ((n as f64 * scale).round() as u64).max(1);
    let wanted_parts = env_list("JOSEFK_BENCH_PARTS");

    let common::Setup {
        broker:
            common::Broker {
                bootstrap,
                dist,
                cluster: _cluster,
                ..
            },
        clients,
        not_run,
        runtime,
        admin,
    } = common::setup(&PEERS, false, |dist| match compile_java(dist) {
        Ok(classes) => {
            let text = common::java_help(dist, common::PRODUCER_PERF_CLASS)?;
            Ok(Some(JavaTxn {
                classes,
                bootstrap_flag: text.contains("--bootstrap-server"),
            }))
        }
        Err(why) => {
            println!("SKIPPING java: {why}");
            Ok(None)
        }
    })?;

    let mut bench = Bench {
        bootstrap,
        dist,
        admin,
        runtime,
        ticks,
        runs: 0,
    };
    println!(
        "settings for every client: acks=all enable.idempotence=true linger.ms={LINGER_MS} \
         batch.size={BATCH_SIZE} buffer.memory={BUFFER_MEMORY}, keyless {RECORD_SIZE} B records, \
         {PARTITIONS} partitions, replication 1, fresh topic per run; scale {scale}"
    );

    // Warm the broker (JIT, transaction coordinator's log) with unmeasured josefk runs.
    println!("warming the broker up (unmeasured)...");
    bench.run(&Client::Josefk, None, scaled(200_000), 0, 0, false)?;
    bench.run(&Client::Josefk, Some(()), scaled(200), 1, 0, false)?;

    // Start-up cost per client: one record in one transaction.
    let mut baseline: HashMap<&'static str, f64> = HashMap::new();
    for client in &clients {
        common::record_baseline(
            &mut baseline,
            client.name(),
            "1-record transaction run",
            || Ok(bench.run(client, Some(()), 1, 1, 0, false)?.cpu_s),
        );
    }

    if wants(&wanted_parts, "1") {
        for (per_txn, txns) in [(1u64, 2000u64), (100, 500), (10_000, 20)] {
            let txns = scaled(txns);
            println!("\n=== part 1: {txns} transactions x {per_txn} records ===");
            let mut rows = Vec::new();
            for client in &clients {
                match bench.run(client, Some(()), txns * per_txn, per_txn, 0, true) {
                    Ok(m) => rows.push((client.name(), m)),
                    Err(e) => println!("  {:8} FAILED: {e}", client.name()),
                }
            }
            print_part1(&rows, &baseline);
            common::print_not_run(&not_run);
        }
    }

    if wants(&wanted_parts, "2") {
        let records = scaled(1_000_000);
        println!(
            "\n=== part 2: {records} records, idempotent vs transactional (commit every {INTERVAL_MS} ms) ==="
        );
        let mut rows = Vec::new();
        for client in &clients {
            let idem = bench.run(client, None, records, 0, 0, true);
            let txn = bench.run(client, Some(()), records, 0, INTERVAL_MS, true);
            match (idem, txn) {
                (Ok(i), Ok(t)) => rows.push((client.name(), i, t)),
                (i, t) => println!(
                    "  {:8} FAILED: idempotent {:?} / transactional {:?}",
                    client.name(),
                    i.err(),
                    t.err()
                ),
            }
        }
        print_part2(&rows, &baseline);
        common::print_not_run(&not_run);
    }
    Ok(())
}

impl Bench {
    /// One run of `client` on a fresh topic: `records` records, transactional when `txn` is
    /// `Some`, committing every `per_txn` records or `interval_ms`. Measured from outside and
    /// verified by reading the topic back.
    fn run(
        &mut self,
        client: &Client,
        txn: Option<()>,
        records: u64,
        per_txn: u64,
        interval_ms: u64,
        print: bool,
    ) -> Result<Measured, String> {
        self.runs += 1;
        let tag = format!("{}-{}-{}", client.name(), std::process::id(), self.runs);
        let topic = format!("txn-compare-{tag}");
        self.runtime.block_on(create_topic(&self.admin, &topic))?;
        let args = TxnArgs {
            bootstrap: self.bootstrap.clone(),
            topic: topic.clone(),
            txn_id: txn.map(|()| format!("txn-compare-{tag}")),
            records,
            per_txn,
            interval_ms,
            size: RECORD_SIZE,
            linger_ms: LINGER_MS,
            batch_size: BATCH_SIZE,
            buffer_memory: BUFFER_MEMORY,
        };
        let (result, usage) = common::children_usage(self.ticks, || match client {
            Client::Josefk => {
                let (exe, argv) = common::josefk_command(args.to_args())?;
                run_worker(&exe, &argv)
            }
            Client::Peer { binary, .. } => run_worker(binary, &args.to_args()),
            // Part 2 (time-based commits, or none): Java's own tool.
            Client::Java(java) if per_txn == 0 && records > 1 => {
                run_perf(&self.dist, &args, java.bootstrap_flag)
            }
            Client::Java(java) => {
                let cp = format!("{}:{}", java.classes.display(), self.dist.tools_classpath());
                let mut argv = vec!["-cp".to_string(), cp, JAVA_CLASS.to_string()];
                argv.extend(args.to_args());
                run_worker(self.dist.java(), &argv)
            }
        });
        let result = result?;
        let (read, hw) =
            self.runtime
                .block_on(read_committed(&self.bootstrap, &self.admin, &topic))?;
        let _ = self
            .runtime
            .block_on(self.admin.delete_topics(&[topic.as_str()]));
        let m = Measured {
            result,
            cpu_s: usage.cpu_s,
            usage,
            read,
            markers: hw.saturating_sub(read),
        };
        if print {
            println!(
                "  {:8} {} txns, {} records committed, {} failed; read_committed {} records{}; \
                 high watermark {} = records + {} markers ({:.1} s, CPU {:.2} s)",
                client.name(),
                m.result.txns,
                m.result.records,
                m.result.failed,
                m.read,
                if m.verified() {
                    " (match)"
                } else {
                    " (MISMATCH)"
                },
                hw,
                m.markers,
                m.result.elapsed_s,
                m.cpu_s
            );
        }
        if !m.verified() {
            println!(
                "  {:8} MISMATCH: reported {} committed, read {}",
                client.name(),
                m.result.records,
                m.read
            );
        }
        Ok(m)
    }
}

/// Runs a worker to completion and parses its result line. Its stderr is kept and shown only
/// when no result line comes (a JVM logs at INFO to stderr).
fn run_worker(exe: &Path, argv: &[String]) -> Result<TxnResult, String> {
    let mut cmd = Command::new(exe);
    cmd.args(argv).stderr(Stdio::piped());
    let out = common::run_child(&mut cmd, secs(900))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr
        .lines()
        .filter(|l| l.contains("failed") || l.contains("failure"))
    {
        eprintln!("    {line}");
    }
    TxnResult::parse(&stdout).ok_or_else(|| {
        format!(
            "no result line (exit {}); stdout: {stdout}; stderr tail:\n{}",
            out.status,
            common::tail(&out.stderr, 20)
        )
    })
}

/// Java's ProducerPerformance; transactional (`--transactional-id`, `--transaction-duration-ms`)
/// when `args.txn_id` is set. It reports neither transactions nor commit latency.
fn run_perf(dist: &KafkaDist, args: &TxnArgs, bootstrap_flag: bool) -> Result<TxnResult, String> {
    let interval = args.interval_ms.to_string();
    let extra = match &args.txn_id {
        Some(id) => vec![
            "--transactional-id",
            id.as_str(),
            "--transaction-duration-ms",
            &interval,
        ],
        None => Vec::new(),
    };
    common::ProducerPerf {
        bootstrap: &args.bootstrap,
        topic: &args.topic,
        records: args.records,
        size: args.size,
        linger_ms: args.linger_ms,
        batch_size: args.batch_size,
        buffer_memory: args.buffer_memory,
        compression: None,
        throughput: None,
        extra,
        bootstrap_flag,
    }
    // `N records sent, R records/sec (M MB/sec), ...`
    .run(dist, |nums| {
        (nums.len() >= 2).then(|| TxnResult {
            txns: 0,
            records: nums[0] as u64,
            failed: 0,
            elapsed_s: if nums[1] > 0.0 {
                nums[0] / nums[1]
            } else {
                f64::NAN
            },
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            cpu_s: f64::NAN,
        })
    })
}

fn print_part1(rows: &[(&'static str, Measured)], baseline: &HashMap<&str, f64>) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\n  {:8} {:>9} {:>11} {:>12} {:>12} {:>11} {:>10} {:>11} {:>8} {:>10} {:>10} {:>9}",
        "client",
        "tx/s",
        "commit p50",
        "commit p99",
        "records/s",
        "CPU s/M",
        "net s/M",
        "net ms/tx",
        "RSS MiB",
        "verified",
        "josefk tx×",
        "josefk CPU×"
    );
    let net = |name: &str, m: &Measured| common::net_cpu(baseline, name, m.cpu_s);
    let tps = |m: &Measured| m.result.txns as f64 / m.result.elapsed_s;
    for (name, m) in rows {
        let records = m.result.records.max(1) as f64;
        let (tx_ratio, cpu_ratio) = common::josefk_ratios(rows, name, m, |j, m| {
            (
                tps(j) / tps(m),
                (net("josefk", j) / j.result.records.max(1) as f64) / (net(name, m) / records),
            )
        });
        println!(
            "  {:8} {:>9.1} {:>8.2} ms {:>9.2} ms {:>12.0} {:>11.2} {:>10.2} {:>11.3} {:>8} {:>10} {:>10} {:>9}",
            name,
            tps(m),
            m.result.p50_ms,
            m.result.p99_ms,
            m.result.records as f64 / m.result.elapsed_s,
            m.cpu_s / records * 1e6,
            net(name, m) / records * 1e6,
            net(name, m) / m.result.txns.max(1) as f64 * 1e3,
            m.usage.rss_mib(),
            if m.verified() { "yes" } else { "NO" },
            tx_ratio,
            cpu_ratio
        );
    }
    println!(
        "  (tx/s and records/s: first send to last commit's return; net = CPU minus the client's \
         1-record run; josefk tx× = josefk tx/s ÷ peer's (higher is better for josefk); \
         josefk CPU× = josefk net CPU per record ÷ peer's (lower is better); RSS MiB = the \
         client process's peak resident set)"
    );
}

fn print_part2(rows: &[(&'static str, Measured, Measured)], baseline: &HashMap<&str, f64>) {
    if rows.is_empty() {
        return;
    }
    println!(
        "\n  {:8} {:>12} {:>14} {:>9} {:>13} {:>13} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "client",
        "idem rec/s",
        "txn100 rec/s",
        "txn/idem",
        "idem CPU s/M",
        "txn CPU s/M",
        "idem RSS",
        "txn RSS",
        "verified",
        "josefk idem×",
        "josefk txn×"
    );
    let rate = |m: &Measured| m.result.records as f64 / m.result.elapsed_s;
    let net = |name: &str, m: &Measured| {
        common::net_cpu(baseline, name, m.cpu_s) / m.result.records.max(1) as f64 * 1e6
    };
    let josefk = rows.iter().find(|(n, _, _)| *n == "josefk");
    for (name, i, t) in rows {
        let (ri, rt) = match josefk {
            Some((_, ji, jt)) if *name != "josefk" => (
                format!("{:.2}", rate(ji) / rate(i)),
                format!("{:.2}", rate(jt) / rate(t)),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!(
            "  {:8} {:>12.0} {:>14.0} {:>9.3} {:>13.2} {:>13.2} {:>9} {:>9} {:>9} {:>12} {:>12}",
            name,
            rate(i),
            rate(t),
            rate(t) / rate(i),
            net(name, i),
            net(name, t),
            i.usage.rss_mib(),
            t.usage.rss_mib(),
            if i.verified() && t.verified() {
                "yes"
            } else {
                "NO"
            },
            ri,
            rt
        );
    }
    println!(
        "  (CPU s/M: net of the 1-record run, per million records; josefk idem×/txn× = josefk \
         records/s ÷ peer's; RSS: peak resident set in MiB; java rows are ProducerPerformance)"
    );
}

/// Waits until no transaction is open on `topic` (LSO = high watermark everywhere), then reads it
/// from the beginning at read_committed. Returns (records read, high-watermark total).
async fn read_committed(bootstrap: &str, admin: &Admin, topic: &str) -> Result<(u64, u64), String> {
    let deadline = Instant::now() + secs(60);
    let hw = loop {
        let hw = offsets(admin, topic, IsolationLevel::ReadUncommitted).await?;
        let lso = offsets(admin, topic, IsolationLevel::ReadCommitted).await?;
        if hw == lso {
            break hw;
        }
        if Instant::now() > deadline {
            return Err(format!("{topic}: a transaction stays open"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut config = ConsumerConfig::new(bootstrap);
    config.isolation_level = IsolationLevel::ReadCommitted;
    config.max_poll_records = 10_000;
    config.fetch_max_wait = Duration::from_millis(100);
    let mut consumer = Consumer::connect(config)
        .await
        .map_err(|e| format!("consumer: {e}"))?;
    let tps = partitions(topic);
    consumer
        .assign(&tps)
        .await
        .map_err(|e| format!("assign: {e}"))?;
    consumer
        .seek_to_beginning(&tps)
        .await
        .map_err(|e| format!("seek: {e}"))?;
    let mut read = 0u64;
    let deadline = Instant::now() + secs(300);
    loop {
        let mut done = true;
        for tp in &tps {
            let pos = consumer
                .position(tp)
                .await
                .map_err(|e| format!("position: {e}"))?;
            if pos < hw[tp] {
                done = false;
            }
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{topic}: read back timed out after {read} records"));
        }
        let batch = consumer
            .poll(Duration::from_millis(500))
            .await
            .map_err(|e| format!("poll: {e}"))?;
        read += batch.len() as u64;
    }
    Ok((read, hw.values().sum::<i64>() as u64))
}

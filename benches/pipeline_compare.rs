//! Exactly-once copy throughput: josefk's [`Pipeline`] against Java's
//! `TransactionalMessageCopier` (kafka-tools, the copier of Kafka's `transactions_test.py`) and
//! franz-go's `GroupTransactSession` (`peers/franz-go/cmd/franz-go-copy`), on the same broker,
//! same run.
//!
//! Run: `cargo bench --bench pipeline_compare`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts
//! a private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_RECORDS`: input records (default 200,000).
//! - `JOSEFK_BENCH_CLIENTS`: comma list among `josefk,java,franz-go` (default all).
//!
//! Per client, fresh topics: input 2 partitions, output 3 (replication 1), and a fresh group.
//! The input (`JOSEFK_BENCH_RECORDS` × 100 B values, keys `k<i>`) is written by josefk's idempotent
//! producer before the copier starts, untimed. Then one copier process copies it all:
//! - josefk: this binary re-executed with `--josefk-worker`: a [`Pipeline`] with
//!   `commit_interval` 100 ms and `commit_records` 1,000, output partition from the key; it shuts
//!   down gracefully once it has transformed every input record.
//! - Java: `TransactionalMessageCopier --group-mode --use-group-metadata --transaction-size 1000
//!   --max-messages N` (it has no time bound; its output keeps the input partition number).
//! - franz-go: a transaction per 1,000 records or 100 ms, output partition from the key.
//!
//! Columns: `rec/s` is records over the time from the group's first committed offset to its
//! committed offsets covering the whole input (watched every 20 ms with OffsetFetch, so process
//! start, JVM warm-up and the group join are out of it); `wall s` is the copier process from
//! spawn to exit; `CPU s/M` is the copier process's user+sys per million records (start-up
//! included); `RSS MiB` its peak resident set (`ru_maxrss`, `common::children_usage`);
//! `committed` is the output read back from the beginning at read_committed by josefk's consumer
//! once no transaction is open (control markers and aborted records are not counted): it must
//! equal the input count.
//!
//! Broker and clients share this machine's cores; numbers are for comparison in one run.

mod common;
#[path = "../peers/common/worker.rs"]
mod worker;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::pipeline::{Pipeline, PipelineConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, IsolationLevel, ProducerRecord, TopicPartition};

use common::{env_list, env_u64, secs, wants};

const INPUT_PARTITIONS: i32 = 2;
const OUTPUT_PARTITIONS: i32 = 3;
const COMMIT_RECORDS: u64 = 1_000;
const COMMIT_MS: u64 = 100;
const VALUE_SIZE: usize = 100;
const RESULT: &str = "PIPELINE_COPY_RESULT";

fn main() {
    common::main("pipeline_compare", josefk_worker, orchestrate);
}

// ---------------------------------------------------------------------------------------------
// The josefk worker (child process).

fn josefk_worker(argv: &[String]) {
    let f = worker::Flags(argv);
    let parsed = (|| -> Result<_, String> {
        Ok((
            f.get("--bootstrap")?,
            f.get("--input")?,
            f.get("--output")?,
            f.get("--group")?,
            f.get("--txn-id")?,
            f.num("--records")?,
        ))
    })();
    let (bootstrap, input, output, group, tid, records) =
        worker::parse_or_exit("josefk worker", parsed);
    // `JOSEFK_BENCH_POLL_RECORDS`: the consumer's max.poll.records (default 500, Java's).
    let poll_records = env_u64("JOSEFK_BENCH_POLL_RECORDS").unwrap_or(500) as usize;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let stats = runtime.block_on(async move {
        let client = ClientConfig::new(&bootstrap).client_id(tid.clone());
        let config = PipelineConfig::new(client, group, tid, &[&input])
            .commit_interval(Duration::from_millis(COMMIT_MS))
            .commit_records(COMMIT_RECORDS as usize)
            .consumer(|mut c| {
                // Polls as large as a transaction, as franz-go's `PollRecords(ctx, 1000 - n)`.
                c.max_poll_records = poll_records;
                c.auto_offset_reset(AutoOffsetReset::Earliest)
            });
        let pipeline = Pipeline::connect(config).await?;
        let shutdown = pipeline.shutdown_handle();
        let transformed = Arc::new(AtomicU64::new(0));
        pipeline
            .run(move |record| {
                let output = output.clone();
                // Every input record transformed: a graceful shutdown commits them and ends.
                if transformed.fetch_add(1, Ordering::Relaxed) + 1 == records {
                    shutdown.shutdown();
                }
                async move {
                    let mut out =
                        ProducerRecord::new(output, record.value.clone().unwrap_or_default());
                    if let Some(key) = record.key {
                        out = out.key(key);
                    }
                    Ok::<_, std::convert::Infallible>(vec![out])
                }
            })
            .await
    });
    match stats {
        Ok(s) => println!(
            "{RESULT} committed_txns={} aborted_txns={} records_out={}",
            s.transactions_committed, s.transactions_aborted, s.records_out
        ),
        Err(e) => {
            eprintln!("josefk worker: {e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

struct Row {
    client: &'static str,
    rate: Option<f64>,
    wall_s: f64,
    usage: common::Usage,
    committed: Result<u64, String>,
    error: Option<String>,
}

fn orchestrate() -> Result<(), String> {
    let records = env_u64("JOSEFK_BENCH_RECORDS").unwrap_or(200_000);
    let filter = env_list("JOSEFK_BENCH_CLIENTS");
    let broker = common::Broker::acquire()?;
    let ticks = worker::clock_ticks();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let bootstrap = broker.bootstrap.clone();
    let franz = if wants(&filter, "franz-go") {
        Some(common::build_go_peer("franz-go-copy"))
    } else {
        None
    };
    let run_id = std::process::id();
    let mut rows = Vec::new();
    for client in ["josefk", "java", "franz-go"] {
        if !wants(&filter, client) {
            continue;
        }
        let input = format!("pipe-bench-in-{client}-{run_id}");
        let output = format!("pipe-bench-out-{client}-{run_id}");
        let group = format!("pipe-bench-{client}-{run_id}");
        let tid = format!("pipe-bench-{client}-{run_id}");
        println!("{client}: writing {records} input records...");
        runtime.block_on(prepare(&bootstrap, &input, &output, records))?;
        let n = records.to_string();
        let mut cmd = match client {
            "josefk" => {
                let args = worker::to_flags([
                    ("--bootstrap", bootstrap.clone()),
                    ("--input", input.clone()),
                    ("--output", output.clone()),
                    ("--group", group.clone()),
                    ("--txn-id", tid.clone()),
                    ("--records", n.clone()),
                ]);
                let (exe, argv) = common::josefk_command(args)?;
                let mut cmd = Command::new(exe);
                cmd.args(argv);
                cmd
            }
            "java" => {
                let mut cmd = Command::new(broker.dist.java());
                cmd.arg("-Xmx512m")
                    .arg("-cp")
                    .arg(broker.dist.tools_classpath())
                    .arg("org.apache.kafka.tools.TransactionalMessageCopier")
                    .args(["--broker-list", &bootstrap, "--input-topic", &input])
                    .args(["--input-partition", "0", "--output-topic", &output])
                    .args(["--consumer-group", &group, "--transactional-id", &tid])
                    .args(["--transaction-size", &COMMIT_RECORDS.to_string()])
                    .args(["--max-messages", &n, "--group-mode", "--use-group-metadata"]);
                cmd
            }
            _ => match &franz {
                Some(Ok(bin)) => {
                    let mut cmd = Command::new(bin);
                    cmd.args(["--bootstrap", &bootstrap, "--input", &input])
                        .args(["--output", &output, "--group", &group, "--txn-id", &tid])
                        .args(["--records", &n])
                        .args(["--commit-records", &COMMIT_RECORDS.to_string()])
                        .args(["--commit-ms", &COMMIT_MS.to_string()]);
                    cmd
                }
                Some(Err(e)) => {
                    println!("franz-go: not run: {e}");
                    continue;
                }
                None => continue,
            },
        };
        cmd.stderr(Stdio::piped());
        println!("{client}: copying...");
        let started = Instant::now();
        let child = std::thread::spawn(move || {
            common::children_usage(ticks, || common::run_child(&mut cmd, secs(900)))
        });
        let watched = runtime.block_on(watch(&bootstrap, &group, &input, records, &child));
        let (out, usage) = child.join().map_err(|_| "copier thread panicked")?;
        let wall_s = started.elapsed().as_secs_f64();
        let error = match &out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "exit {}: {}",
                o.status,
                common::tail(&o.stderr, 10)
            )),
            Err(e) => Some(e.clone()),
        };
        if let Ok(o) = &out {
            let stdout = String::from_utf8_lossy(&o.stdout);
            if let Some(line) = stdout.lines().rev().find(|l| l.starts_with(RESULT)) {
                println!("  {client}: {line}");
            }
        }
        let committed = runtime.block_on(read_committed(&bootstrap, &output));
        rows.push(Row {
            client: match client {
                "josefk" => "josefk",
                "java" => "java",
                _ => "franz-go",
            },
            rate: watched.map(|(from, at_first, to)| {
                (records - at_first) as f64 / to.duration_since(from).as_secs_f64()
            }),
            wall_s,
            usage,
            committed,
            error,
        });
    }
    print_table(records, &rows);
    drop(broker);
    Ok(())
}

/// Creates the client's topics and writes the input.
async fn prepare(bootstrap: &str, input: &str, output: &str, records: u64) -> Result<(), String> {
    let admin = Admin::connect(ClientConfig::new(bootstrap))
        .await
        .map_err(|e| e.to_string())?;
    admin
        .create_topics(&[
            NewTopic::new(input, INPUT_PARTITIONS, 1),
            NewTopic::new(output, OUTPUT_PARTITIONS, 1),
        ])
        .await
        .map_err(|e| format!("create topics: {e}"))?;
    let mut config = ProducerConfig::new(bootstrap);
    config.linger = Duration::from_millis(5);
    let producer = Producer::connect(config).await.map_err(|e| e.to_string())?;
    let payloads = common::payloads(VALUE_SIZE);
    let mut acks = Vec::with_capacity(records as usize);
    for i in 0..records {
        let value = payloads[i as usize % payloads.len()].clone();
        let r = ProducerRecord::new(input, value).key(format!("k{i}"));
        acks.push(producer.send(r).await.map_err(|e| e.to_string())?);
    }
    for a in acks {
        a.await.map_err(|e| format!("input write: {e}"))?;
    }
    producer.close(secs(30)).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Watches the group's committed offsets on `input` until they cover `records` or the copier
/// exits: (when the first offset was committed, what it covered, when all were).
async fn watch<T>(
    bootstrap: &str,
    group: &str,
    input: &str,
    records: u64,
    child: &std::thread::JoinHandle<T>,
) -> Option<(Instant, u64, Instant)> {
    let watcher = Consumer::connect(ConsumerConfig::new(bootstrap).group_id(group))
        .await
        .ok()?;
    let tps: Vec<TopicPartition> = (0..INPUT_PARTITIONS)
        .map(|p| TopicPartition::new(input, p))
        .collect();
    let mut first: Option<(Instant, u64)> = None;
    loop {
        // Read before asking for the offsets: a copier that exits right after its last commit
        // still gets its final offsets looked at once more.
        let exited = child.is_finished();
        let sum: i64 = match watcher.committed(&tps).await {
            Ok(c) => c.iter().filter_map(|(_, o)| *o).sum(),
            Err(_) => 0, // an open transaction's offsets (require_stable); ask again
        };
        let now = Instant::now();
        if sum > 0 && first.is_none() {
            first = Some((now, sum as u64));
        }
        if sum as u64 >= records {
            return first.map(|(at, covered)| (at, covered, now));
        }
        if exited {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `topic` from the beginning at read_committed once no transaction is open on it: the
/// number of committed records.
async fn read_committed(bootstrap: &str, topic: &str) -> Result<u64, String> {
    let admin = Admin::connect(ClientConfig::new(bootstrap))
        .await
        .map_err(|e| e.to_string())?;
    let tps: Vec<TopicPartition> = (0..OUTPUT_PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    let specs: Vec<_> = tps
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = |isolation| {
        let admin = &admin;
        let specs = &specs;
        async move {
            let got = admin
                .list_offsets(specs, isolation)
                .await
                .map_err(|e| format!("list offsets: {e}"))?;
            Ok::<HashMap<TopicPartition, i64>, String>(
                got.into_iter().map(|(tp, o)| (tp, o.offset)).collect(),
            )
        }
    };
    let deadline = Instant::now() + secs(120);
    let hw = loop {
        let hw = ends(IsolationLevel::ReadUncommitted).await?;
        if hw == ends(IsolationLevel::ReadCommitted).await? {
            break hw;
        }
        if Instant::now() > deadline {
            return Err(format!("{topic}: a transaction stays open"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut config = ConsumerConfig::new(bootstrap)
        .isolation_level(IsolationLevel::ReadCommitted)
        .auto_offset_reset(AutoOffsetReset::Earliest);
    config.max_poll_records = 10_000;
    let mut consumer = Consumer::connect(config).await.map_err(|e| e.to_string())?;
    consumer.assign(&tps).await.map_err(|e| e.to_string())?;
    let mut read = 0u64;
    let deadline = Instant::now() + secs(300);
    loop {
        let mut done = true;
        for tp in &tps {
            done &= consumer.position(tp).await.map_err(|e| e.to_string())? >= hw[tp];
        }
        if done {
            return Ok(read);
        }
        if Instant::now() > deadline {
            return Err(format!("{topic}: read back timed out after {read}"));
        }
        read += consumer
            .poll(Duration::from_millis(500))
            .await
            .map_err(|e| e.to_string())?
            .len() as u64;
    }
}

fn print_table(records: u64, rows: &[Row]) {
    println!();
    println!(
        "pipeline_compare: {records} records x {VALUE_SIZE} B, input {INPUT_PARTITIONS} partitions \
         -> output {OUTPUT_PARTITIONS}, commit every {COMMIT_MS} ms / {COMMIT_RECORDS} records \
         (java: {COMMIT_RECORDS} records only)"
    );
    println!("| client | rec/s | wall s | CPU s/M | RSS MiB | committed | ok |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let committed = match &r.committed {
            Ok(n) => n.to_string(),
            Err(e) => format!("? ({e})"),
        };
        let ok = match (&r.error, &r.committed) {
            (None, Ok(n)) if *n == records => "yes".to_string(),
            (Some(e), _) => format!("no: {e}"),
            _ => "no: committed != input".to_string(),
        };
        println!(
            "| {} | {} | {:.1} | {:.2} | {} | {committed} | {ok} |",
            r.client,
            r.rate.map_or("-".into(), |r| format!("{r:.0}")),
            r.wall_s,
            r.usage.cpu_s / records as f64 * 1e6,
            r.usage.rss_mib(),
        );
    }
}

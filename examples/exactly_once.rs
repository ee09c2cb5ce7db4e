//! The exactly-once demo: copy a topic through consume → transform → produce → send offsets →
//! commit, while the copying process is killed with SIGKILL and restarted, and show that the
//! output holds every input record exactly once, in order.
//!
//! ```text
//! cargo run --example exactly_once                      # 100,000 records, 3 kills
//! cargo run --example exactly_once -- --records 20000 --kills 5
//! cargo run --example exactly_once -- --group-protocol consumer   # a KIP-848 consumer group
//! ```
//!
//! It uses the broker named by `KAFKA_BOOTSTRAP_SERVERS`, or provisions Apache Kafka from Maven
//! Central and starts a local single-node broker. `JOSEFK_CLIENT_PROPERTIES=client.properties`
//! applies a Java-style properties file (`key=value` lines, `#` comments) to every client, e.g.
//! `security.protocol=SSL` and `ssl.*` for a TLS listener. Then:
//!
//! 1. writes `--records` input records with the idempotent producer (6 partitions);
//! 2. starts this program again as a **worker** child process: a [`josefk::pipeline::Pipeline`]
//!    (a `read_committed` group consumer and a transactional producer; static membership,
//!    `group.instance.id`, so a restart takes its place at once; on a KIP-848
//!    `--group-protocol consumer` group a dynamic member, see `worker`). The pipeline writes each
//!    batch of copies in one transaction together with the input offsets
//!    (`send_offsets_to_transaction`), and on an abortable error aborts and rewinds to the
//!    committed offsets: the loop of poll, `begin_transaction`, `send`,
//!    `send_offsets_to_transaction` and `commit_transaction` a user would otherwise write (and
//!    get wrong on rebalances and unknown commit outcomes) is the pipeline's;
//! 3. kills the worker with SIGKILL `--kills` times, at evenly spaced points of progress, which
//!    almost always lands inside an open transaction, and starts a new one with the same
//!    `transactional.id` each time (its `init_transactions` fences the dead one and aborts its
//!    transaction); once the group has committed the whole input it stops the last worker
//!    gracefully (closes its standard input);
//! 4. reads the output with a fresh `read_committed` consumer and prints records in, records out,
//!    duplicates, lost, out-of-order: the process exits non-zero unless the last three are 0.
//!
//! What the guarantee covers: records and offsets move together inside Kafka. Side effects
//! outside Kafka (an email sent while processing) are not undone by an abort.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig, GroupProtocol};
use josefk::pipeline::{Pipeline, PipelineConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, IsolationLevel, ProducerRecord, TopicPartition};

const PARTITIONS: i32 = 6;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.first().map(String::as_str) == Some("worker") {
        let get = |name: &str| arg(&args, name).ok_or(format!("worker needs {name}"));
        let names = WorkerNames {
            bootstrap: get("--bootstrap")?,
            input: get("--input")?,
            output: get("--output")?,
            group: get("--group")?,
            consumer_protocol: arg(&args, "--group-protocol").as_deref() == Some("consumer"),
        };
        return runtime.block_on(worker(names));
    }
    let records: usize = arg(&args, "--records").map_or(Ok(100_000), |v| v.parse())?;
    let kills: usize = arg(&args, "--kills").map_or(Ok(3), |v| v.parse())?;
    let consumer_protocol = match arg(&args, "--group-protocol").as_deref() {
        None | Some("classic") => false,
        Some("consumer") => true,
        Some(other) => return Err(format!("--group-protocol classic|consumer, got {other}").into()),
    };
    // Keep the broker (if we start one) alive until the end of main; dropping it stops it.
    let (bootstrap, _local_broker) = josefk_harness::bootstrap_or_local_broker()?;
    let ok = runtime.block_on(demo(&bootstrap, records, kills, consumer_protocol))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The client settings: `bootstrap`, `client_id`, then every `key=value` line of the file named by
/// `JOSEFK_CLIENT_PROPERTIES` (inherited by the worker processes).
fn client_config(bootstrap: &str, client_id: &str) -> AnyResult<ClientConfig> {
    let mut config = ClientConfig::new(bootstrap).client_id(client_id);
    if let Some(path) = std::env::var_os("JOSEFK_CLIENT_PROPERTIES") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("JOSEFK_CLIENT_PROPERTIES={}: {e}", path.to_string_lossy()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(format!("not key=value: {line}"))?;
            config.set(key.trim(), value.trim())?;
        }
        config.validate()?;
    }
    Ok(config)
}

struct WorkerNames {
    bootstrap: String,
    input: String,
    output: String,
    group: String,
    consumer_protocol: bool,
}

/// The driver: input, worker runs with kills, verification. Returns whether the check passed.
async fn demo(
    bootstrap: &str,
    records: usize,
    kills: usize,
    consumer_protocol: bool,
) -> AnyResult<bool> {
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let names = WorkerNames {
        bootstrap: bootstrap.to_owned(),
        input: format!("josefk-eos-in-{stamp}"),
        output: format!("josefk-eos-out-{stamp}"),
        group: format!("josefk-eos-copier-{stamp}"),
        consumer_protocol,
    };
    let client = client_config(bootstrap, "josefk-eos-demo")?;
    let admin = Admin::connect(client.clone()).await?;
    admin
        .create_topics(&[
            NewTopic::new(&names.input, PARTITIONS, 1),
            NewTopic::new(&names.output, PARTITIONS, 1),
        ])
        .await?;
    println!("input topic {}", names.input);
    println!("output topic {}", names.output);

    let producer = Producer::connect(ProducerConfig::with_client(client.clone())).await?;
    let mut acks = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(&names.input, format!("record-{i}")).key(format!("k{i}"));
        acks.push(producer.send(record).await?);
    }
    for ack in acks {
        ack.await?;
    }
    producer.close(Duration::from_secs(30)).await?;
    println!("wrote {records} input records");

    // Progress = the group's committed offsets, which only move when a transaction commits.
    let watcher =
        Consumer::connect(ConsumerConfig::with_client(client.clone()).group_id(&names.group))
            .await?;
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(&names.input, p))
        .collect();
    for round in 0..=kills {
        let mut child = spawn_worker(&names)?;
        let last = round == kills;
        let target = if last {
            records
        } else {
            records * (round + 1) / (kills + 1)
        };
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let done: i64 = watcher
                .committed(&all)
                .await?
                .iter()
                .filter_map(|(_, o)| *o)
                .sum();
            if done as usize >= target && last {
                // Everything is copied: the graceful stop (the worker's standard input closes).
                drop(child.stdin.take());
                let status = tokio::task::spawn_blocking(move || child.wait()).await??;
                if !status.success() {
                    return Err(format!("the last worker failed: {status}").into());
                }
                break;
            }
            if done as usize >= target {
                child.kill()?; // SIGKILL: no cleanup, no LeaveGroup, a transaction left open
                child.wait()?;
                println!(
                    "killed worker {} after {done} records were committed",
                    round + 1
                );
                break;
            }
            if let Some(status) = child.try_wait()? {
                return Err(format!("worker exited early: {status}").into());
            }
        }
    }
    verify(&client, &names.output, records).await
}

fn spawn_worker(names: &WorkerNames) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([
            "worker",
            "--bootstrap",
            &names.bootstrap,
            "--input",
            &names.input,
        ])
        .args(["--output", &names.output, "--group", &names.group])
        .args(if names.consumer_protocol {
            &["--group-protocol", "consumer"][..]
        } else {
            &[]
        })
        .stdin(Stdio::piped())
        .spawn()
}

/// Reads the output `read_committed` and prints the summary a reader can check.
async fn verify(client: &ClientConfig, output: &str, records: usize) -> AnyResult<bool> {
    let committed = read_all(client, output, IsolationLevel::ReadCommitted).await?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out_of_order = 0;
    let mut last_source: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, value, source_offset) in &committed {
        let source = value.strip_suffix(" (copied)").unwrap_or(value).to_owned();
        *seen.entry(source).or_default() += 1;
        let previous = last_source.insert(*partition, *source_offset);
        if previous.is_some_and(|p| p >= *source_offset) {
            out_of_order += 1;
        }
    }
    let expected: BTreeSet<String> = (0..records).map(|i| format!("record-{i}")).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let lost = expected.iter().filter(|v| !seen.contains_key(*v)).count();
    let unexpected = seen.keys().filter(|v| !expected.contains(*v)).count();
    // The aborted transactions are still in the log: a read_uncommitted reader sees them.
    let everything = read_all(client, output, IsolationLevel::ReadUncommitted).await?;
    println!(
        "read_uncommitted sees {} records: {} from transactions the killed workers left open, \
         aborted",
        everything.len(),
        everything.len() - committed.len()
    );
    println!(
        "records in {records}, records out {}, duplicates {duplicates}, lost {lost}, \
         out of order {out_of_order}, unexpected {unexpected}",
        committed.len()
    );
    Ok(duplicates == 0
        && lost == 0
        && out_of_order == 0
        && unexpected == 0
        && committed.len() == records)
}

/// Every record of `topic` up to its end under `isolation`: (partition, value, source offset).
async fn read_all(
    client: &ClientConfig,
    topic: &str,
    isolation: IsolationLevel,
) -> AnyResult<Vec<(i32, String, i64)>> {
    let config = ConsumerConfig::with_client(client.clone())
        .isolation_level(isolation)
        .auto_offset_reset(AutoOffsetReset::Earliest);
    let mut reader = Consumer::connect(config).await?;
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    reader.assign(&partitions).await?;
    let admin = Admin::connect(client.clone()).await?;
    let specs: Vec<_> = partitions
        .iter()
        .map(|tp| (tp.clone(), OffsetSpec::Latest))
        .collect();
    let ends = admin.list_offsets(&specs, isolation).await?;
    let mut out = Vec::new();
    loop {
        let mut at_end = true;
        for tp in &partitions {
            at_end &= reader.position(tp).await? >= ends[tp].offset;
        }
        if at_end {
            return Ok(out);
        }
        for r in reader.poll(Duration::from_millis(500)).await? {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
            let source_offset: i64 = r
                .headers
                .iter()
                .find(|h| h.key.as_ref() == b"josefk.source.offset")
                .and_then(|h| std::str::from_utf8(h.value.as_deref()?).ok()?.parse().ok())
                .unwrap_or(-1);
            out.push((r.partition, value, source_offset));
        }
    }
}

/// The copier, a [`Pipeline`]: transactions of at most 100 ms or 1,000 records, each with the
/// input offsets. Stops gracefully (commits, leaves the group) when its standard input closes.
async fn worker(names: WorkerNames) -> AnyResult<()> {
    let client = client_config(&names.bootstrap, "josefk-eos-worker")?;
    let consumer_protocol = names.consumer_protocol;
    let config = PipelineConfig::new(
        client,
        &names.group,
        format!("{}-copier-1", names.group),
        &[&names.input],
    )
    .consumer(move |c| {
        let c = c.auto_offset_reset(AutoOffsetReset::Earliest);
        if consumer_protocol {
            // On a KIP-848 group a SIGKILLed static member keeps its instance id until the
            // broker's session timeout, and a restart asking for it meanwhile is refused for good
            // (UNRELEASED_INSTANCE_ID, fatal as in Java). A dynamic member joins at once and gets
            // the partitions when the broker fences the dead one; the transactional id's fencing
            // is what keeps the dead worker's writes out.
            c.group_protocol(GroupProtocol::Consumer)
        } else {
            c.group_instance_id("copier-1")
        }
    });
    let pipeline = Pipeline::connect(config).await?;
    let shutdown = pipeline.shutdown_handle();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        shutdown.shutdown();
    });
    let output = names.output;
    let stats = pipeline
        .run(move |r| {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            let mut out = ProducerRecord::new(&output, format!("{value} (copied)"))
                .partition(r.partition)
                .header("josefk.source.offset", r.offset.to_string());
            if let Some(key) = r.key {
                out = out.key(key);
            }
            std::future::ready(Ok::<_, std::convert::Infallible>(vec![out]))
        })
        .await?;
    eprintln!(
        "worker stopped: {} transactions committed, {} aborted",
        stats.transactions_committed, stats.transactions_aborted
    );
    Ok(())
}

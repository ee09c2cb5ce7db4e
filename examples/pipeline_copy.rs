//! An exactly-once copier on [`josefk::pipeline`]: every record of the input topic is written to
//! the output topic (same partition number, value `"<value> (copied)"`, a
//! `josefk.source.offset` header), in transactions with the input offsets.
//!
//! ```text
//! cargo run --example pipeline_copy -- --bootstrap 127.0.0.1:9092 --input in --output out \
//!     --group copiers --transactional-id copier-1
//! ```
//!
//! Several copiers with the same `--group` and different `--transactional-id`s share the input
//! partitions; a copier restarted with the same `--transactional-id` fences its previous process.
//! It stops gracefully (commits what it has done, leaves the group) when its standard input
//! closes, and then prints its counts as one line of JSON. The live tests in `tests/pipeline.rs`
//! start copiers, kill them with SIGKILL and restart them, and check the output with Java's
//! `read_committed` console consumer. Optional: `--commit-ms` (default 100), `--commit-records`
//! (default 1000), `--record-delay-ms` (simulated work per record, default 0; fractions such as `0.2` are
//! kept as a per-partition debt slept off a whole millisecond at a time, since tokio's timer
//! rounds every sleep up to a millisecond), `--by-key`
//! (output partition from the key, for an output topic with other partition counts),
//! `--group-protocol classic|consumer` (a dynamic member of a classic or KIP-848 group; without
//! it a static classic member named after the transactional id; `tests/group_migration.rs` rolls
//! a group between the protocols with it).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use josefk::consumer::{AutoOffsetReset, GroupProtocol};
use josefk::pipeline::{Pipeline, PipelineConfig};
use josefk::{ClientConfig, ProducerRecord};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> AnyResult<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .ok_or_else(|| format!("missing {name}").into())
    };
    let bootstrap = get("--bootstrap")?;
    let input = get("--input")?;
    let output = get("--output")?;
    let group = get("--group")?;
    let tid = get("--transactional-id")?;
    // Output partition: the input's (default), or chosen from the key with `--by-key`.
    let by_key = args.iter().any(|a| a == "--by-key");
    let commit_ms: u64 = get("--commit-ms").map_or(Ok(100), |v| v.parse())?;
    let commit_records: usize = get("--commit-records").map_or(Ok(1000), |v| v.parse())?;
    // Simulated work per record (tests use it so that kills land mid-copy).
    let delay_ms: f64 = get("--record-delay-ms").map_or(Ok(0.0), |v| v.parse())?;
    if !(0.0..=60_000.0).contains(&delay_ms) {
        return Err(format!("--record-delay-ms 0..=60000, got {delay_ms}").into());
    }
    let delay_us = (delay_ms * 1000.0).round() as u64;
    // Per input partition, the simulated work owed but not yet slept (below a millisecond).
    let owed: Arc<Mutex<HashMap<i32, u64>>> = Arc::default();
    // A dynamic member of the named protocol: its graceful leave hands its partitions over at
    // once (a static member's leave keeps them until its session times out, so a replacement
    // with another instance id would wait for that).
    let protocol = match get("--group-protocol").ok().as_deref() {
        None => None,
        Some("classic") => Some(GroupProtocol::Classic),
        Some("consumer") => Some(GroupProtocol::Consumer),
        Some(other) => return Err(format!("--group-protocol classic|consumer, got {other}").into()),
    };

    // `RUST_LOG=josefk=debug` shows the copier's joins and reconciliations on standard error.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let client = ClientConfig::new(&bootstrap).client_id(tid.clone());
        let tid_for_member = tid.clone();
        let config = PipelineConfig::new(client, group, tid, &[&input])
            .commit_interval(Duration::from_millis(commit_ms))
            .commit_records(commit_records)
            // Static membership: a restarted copier takes its predecessor's place at once,
            // instead of waiting for its session to time out.
            .consumer(|c| {
                let c = c.auto_offset_reset(AutoOffsetReset::Earliest);
                match protocol {
                    Some(protocol) => c.group_protocol(protocol),
                    None => c.group_instance_id(tid_for_member),
                }
            });
        let pipeline = Pipeline::connect(config).await?;
        let shutdown = pipeline.shutdown_handle();
        // Standard input closing (the parent dropped its end) is the graceful stop.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            shutdown.shutdown();
        });
        println!("started");
        let stats = pipeline
            .run(move |record| {
                let output = output.clone();
                let sleep = owe(&owed, record.partition, delay_us);
                async move {
                    if !sleep.is_zero() {
                        tokio::time::sleep(sleep).await;
                    }
                    let value =
                        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default());
                    let mut out = ProducerRecord::new(output, format!("{value} (copied)"))
                        .header("josefk.source.offset", record.offset.to_string());
                    if !by_key {
                        out = out.partition(record.partition);
                    }
                    if let Some(key) = record.key {
                        out = out.key(key);
                    }
                    Ok::<_, std::convert::Infallible>(vec![out])
                }
            })
            .await?;
        println!(
            "{{\"transactions_committed\":{},\"transactions_aborted\":{},\"rebalance_aborts\":{},\
             \"records_in\":{},\"records_out\":{},\"producers_recreated\":{}}}",
            stats.transactions_committed,
            stats.transactions_aborted,
            stats.rebalance_aborts,
            stats.records_in,
            stats.records_out,
            stats.producers_recreated
        );
        Ok(())
    })
}

/// Adds `delay_us` to `partition`'s debt and returns the whole milliseconds of it to sleep now
/// (a partition's records are transformed one after another, so its debt is never slept twice).
fn owe(owed: &Mutex<HashMap<i32, u64>>, partition: i32, delay_us: u64) -> Duration {
    if delay_us == 0 {
        return Duration::ZERO;
    }
    let mut owed = owed.lock().unwrap();
    let debt = owed.entry(partition).or_default();
    *debt += delay_us;
    let whole_ms = *debt / 1000;
    *debt %= 1000;
    Duration::from_millis(whole_ms)
}

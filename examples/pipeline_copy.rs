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
//! (default 1000), `--record-delay-ms` (simulated work per record, default 0), `--by-key`
//! (output partition from the key, for an output topic with other partition counts),
//! `--group-protocol classic|consumer` (`group.protocol`, default `classic`; `consumer` is KIP-848).

use std::io::Read;
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
    let delay = Duration::from_millis(get("--record-delay-ms").map_or(Ok(0), |v| v.parse())?);
    let group_protocol = match get("--group-protocol").as_deref() {
        Err(_) | Ok("classic") => GroupProtocol::Classic,
        Ok("consumer") => GroupProtocol::Consumer,
        Ok(other) => {
            return Err(format!("--group-protocol: classic or consumer, not {other}").into())
        }
    };

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let client = ClientConfig::new(&bootstrap).client_id(tid.clone());
        let tid_for_member = tid.clone();
        let config = PipelineConfig::new(client, group, tid, &[&input])
            .commit_interval(Duration::from_millis(commit_ms))
            .commit_records(commit_records)
            .consumer(move |c| {
                let c = c
                    .group_protocol(group_protocol)
                    .auto_offset_reset(AutoOffsetReset::Earliest);
                // Static membership under `classic`: a restarted copier takes its predecessor's
                // place at once, instead of waiting for its session to time out. Under KIP-848 a
                // static member restarted after a SIGKILL is refused (UNRELEASED_INSTANCE_ID)
                // until the broker's session timeout drops its predecessor, so it stays dynamic.
                match group_protocol {
                    GroupProtocol::Classic => c.group_instance_id(tid_for_member),
                    _ => c,
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
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
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

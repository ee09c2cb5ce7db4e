//! What josefk's metrics cost the producer: CPU per record with `metrics.enabled` true and false,
//! alternating in the same run against the same broker (issue #14: at most 2 %).
//!
//! Run: `cargo bench --bench metrics_cost`. Uses `KAFKA_BOOTSTRAP_SERVERS` if set, else starts a
//! private single-node KRaft broker with josefk-harness. Environment:
//! - `JOSEFK_BENCH_RECORDS`: records per run (default 1,000,000 of 100 B);
//! - `JOSEFK_BENCH_ROUNDS`: rounds of one run per setting, the order swapped every round
//!   (default 4).
//!
//! Each run is this binary re-executed as a worker (`--josefk-worker`), producing to a fresh
//! 6-partition topic with the produce_compare settings (acks=all, idempotence, linger.ms=5,
//! batch.size=16384, 32 MiB buffer, no compression) and reporting its own user+sys CPU from
//! process start to exit. A run with metrics on also checks that `record-send-total` equals the
//! records acknowledged.

mod common;
#[path = "../peers/common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../peers/common/worker.rs"]
mod worker;

use std::time::{Duration, Instant};

use josefk::producer::{Acks, DeliveryFuture, Producer, ProducerConfig};
use josefk::{ClientConfig, ProducerRecord};

use common::{create_topic, env_u64};
use tokio_worker::spawn_collector;
use worker::{WorkerArgs, WorkerResult};

fn main() {
    common::main("metrics_cost", josefk_worker, orchestrate);
}

/// Delivery futures waiting for the collector (as in produce_compare).
const WINDOW: usize = 1 << 18;

fn josefk_worker(argv: &[String]) {
    let (metrics_on, rest) = match argv.split_first() {
        Some((mode, rest)) if mode == "on" => (true, rest),
        Some((mode, rest)) if mode == "off" => (false, rest),
        _ => {
            eprintln!("metrics_cost worker: first argument must be on or off");
            std::process::exit(2);
        }
    };
    let args = worker::parse_or_exit("metrics_cost worker", WorkerArgs::parse(rest));
    let (result, cpu_s) = tokio_worker::block_on_measured(run(args, metrics_on));
    println!("{}", WorkerResult { cpu_s, ..result }.line());
}

async fn run(args: WorkerArgs, metrics_on: bool) -> WorkerResult {
    let client = ClientConfig::new(&args.bootstrap).metrics(metrics_on);
    let mut config = ProducerConfig::with_client(client)
        .acks(Acks::All)
        .idempotence(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size)
        .compression(args.compression.parse().expect("compression"));
    config.buffer_memory = args.buffer_memory;
    let producer = Producer::connect(config).await.expect("josefk connect");
    let payloads = common::payloads(args.size);
    let (tx, rx) = tokio::sync::mpsc::channel::<[DeliveryFuture; 1]>(WINDOW);
    let records = args.records as usize;
    let collector = spawn_collector(rx, |d| (None, d), 0, "metrics_cost worker");
    let start = Instant::now();
    let mut not_queued = 0u64;
    for i in 0..records {
        let record = ProducerRecord::new(args.topic.as_str(), payloads[i % payloads.len()].clone());
        match producer.send(record).await {
            Ok(delivery) => {
                if tx.send([delivery]).await.is_err() {
                    break;
                }
            }
            Err(_) => not_queued += 1,
        }
    }
    drop(tx);
    let c = collector.await.expect("collector");
    let sent = producer.metrics().record_send_total;
    if metrics_on && sent != c.acked {
        eprintln!(
            "metrics_cost worker: record-send-total {sent} != {} acknowledged",
            c.acked
        );
    }
    let _ = producer.close(Duration::from_secs(10)).await;
    WorkerResult {
        acked: c.acked,
        failed: c.failed + not_queued,
        bytes: c.acked * args.size as u64,
        elapsed_s: c.last_ack.map_or(0.0, |t| (t - start).as_secs_f64()),
        p50_ms: 0.0,
        p99_ms: 0.0,
        cpu_s: 0.0,
    }
}

fn orchestrate() -> Result<(), String> {
    let records = env_u64("JOSEFK_BENCH_RECORDS").unwrap_or(1_000_000);
    let rounds = env_u64("JOSEFK_BENCH_ROUNDS").unwrap_or(4);
    let broker = common::Broker::acquire()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let admin = runtime
        .block_on(josefk::admin::Admin::connect(ClientConfig::new(
            &broker.bootstrap,
        )))
        .map_err(|e| format!("admin connect: {e}"))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis();
    println!("{records} records of 100 B per run, {rounds} rounds; CPU = the worker's user+sys");
    println!(
        "{:>5} {:>4} {:>10} {:>8} {:>12}",
        "round", "mode", "acked", "cpu s", "ns/record"
    );
    let mut per_record: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    // Per round, (on − off) / off: adjacent runs share the machine's load of the moment, so the
    // paired difference is steadier than either column.
    let mut paired: Vec<f64> = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            ["off", "on"]
        } else {
            ["on", "off"]
        };
        for mode in order {
            let topic = format!("metrics-cost-{stamp}-{round}-{mode}");
            runtime.block_on(create_topic(&admin, &topic))?;
            let args = WorkerArgs {
                bootstrap: broker.bootstrap.clone(),
                topic,
                records,
                size: 100,
                compression: "none".into(),
                linger_ms: 5,
                batch_size: 16_384,
                buffer_memory: 32 * 1024 * 1024,
                rate: 0,
            };
            let mut argv = vec![mode.to_string()];
            argv.extend(args.to_args());
            let (exe, argv) = common::josefk_command(argv)?;
            let result = common::run_worker(&exe, &argv, WorkerResult::parse)?;
            if result.acked != records || result.failed != 0 {
                return Err(format!("{mode} run: {result:?}"));
            }
            let ns = result.cpu_s * 1e9 / result.acked as f64;
            println!(
                "{round:>5} {mode:>4} {:>10} {:>8.2} {ns:>12.0}",
                result.acked, result.cpu_s
            );
            per_record[usize::from(mode == "on")].push(ns);
        }
        let (off, on) = (
            per_record[0].last().copied().unwrap_or(f64::NAN),
            per_record[1].last().copied().unwrap_or(f64::NAN),
        );
        paired.push((on / off - 1.0) * 100.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let paired_mean = mean(&paired);
    let stderr = if paired.len() > 1 {
        let var = paired
            .iter()
            .map(|d| (d - paired_mean).powi(2))
            .sum::<f64>()
            / (paired.len() - 1) as f64;
        (var / paired.len() as f64).sqrt()
    } else {
        f64::NAN
    };
    let (mean_off, mean_on) = (mean(&per_record[0]), mean(&per_record[1]));
    let (off, on) = (median(&mut per_record[0]), median(&mut per_record[1]));
    println!(
        "median ns/record: off {off:.0}, on {on:.0} ({:+.1} %); mean: off {mean_off:.0}, on \
         {mean_on:.0} ({:+.1} %)",
        (on / off - 1.0) * 100.0,
        (mean_on / mean_off - 1.0) * 100.0
    );
    println!(
        "paired per round (on - off) / off: {paired_mean:+.1} % ± {stderr:.1} % (standard error, \
         {} rounds)",
        paired.len()
    );
    Ok(())
}

//! krafka (a pure-Rust async Kafka client on crates.io) as a peer in
//! `benches/produce_compare.rs`: produces N keyless records of a given size as fast as it can and
//! prints one `PRODUCE_COMPARE_RESULT ...` line (protocol: `peers/common/worker.rs`).
//!
//! Same shape as josefk's worker in the bench: `enqueue` without awaiting, delivery handles go to
//! a collector task through a bounded channel, latency is enqueue call → handle resolved.
//!
//! Run through the bench (`cargo bench --bench produce_compare`), or by hand after
//! `cargo build --release --manifest-path peers/krafka-bench/Cargo.toml` with the flags
//! `--bootstrap --topic --records --size --compression --linger-ms --batch-size --buffer-memory`.

#[path = "../../common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../../common/worker.rs"]
mod worker;

use std::time::{Duration, Instant};

use krafka::producer::{Acks, DeliveryHandle};
use krafka::{Compression, Kafka, Record};

use tokio_worker::{spawn_collector, Handoff};
use worker::{WorkerArgs, WorkerResult};

/// Handles queued for the collector; only needs to exceed what buffer memory lets be in flight.
const WINDOW: usize = 1 << 18;
/// Handles per handoff to the collector (as the josefk worker).
const CHUNK: usize = 256;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("krafka-bench", WorkerArgs::parse(&argv));
    let (result, cpu_s) = tokio_worker::block_on_measured(run(args));
    println!("{}", WorkerResult { cpu_s, ..result }.line());
}

async fn run(args: WorkerArgs) -> WorkerResult {
    let compression = match args.compression.as_str() {
        "none" => Compression::None,
        "lz4" => Compression::Lz4,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        other => panic!("krafka-bench: unsupported compression {other}"),
    };
    let mut builder = Kafka::builder(args.bootstrap.clone());
    // SASL_SSL when the bench asks for it (see `worker::Security`).
    if let Some(s) = worker::parse_or_exit("krafka-bench", worker::Security::from_env()) {
        builder = builder.security(krafka_security(&s));
    }
    let kafka = builder
        .client_id("produce-compare-krafka")
        .connect()
        .await
        .expect("krafka connect");
    let producer = kafka
        .producer()
        .acks(Acks::All)
        .idempotent(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size)
        .buffer_memory(args.buffer_memory)
        .compression(compression)
        .build()
        .await
        .expect("krafka producer");
    let payloads: Vec<bytes::Bytes> = worker::payload_pool(args.size)
        .into_iter()
        .map(bytes::Bytes::from)
        .collect();

    // Handed to the collector as the josefk worker does: in chunks in throughput runs.
    let chunk = if args.rate > 0 { 1 } else { CHUNK };
    let (mut handoff, rx) = Handoff::<(Instant, DeliveryHandle)>::new(chunk, WINDOW);
    let records = args.records as usize;
    let collector = spawn_collector(rx, |(t, h)| (Some(t), h), records, "krafka-bench");

    let start = Instant::now();
    let mut not_queued = 0u64;
    for i in 0..records {
        let record = Record::new(args.topic.clone(), payloads[i % payloads.len()].clone());
        let sent = Instant::now();
        match producer.enqueue(record).await {
            Ok(handle) => {
                if !handoff.push((sent, handle)).await {
                    break;
                }
            }
            Err(e) => {
                if not_queued == 0 {
                    eprintln!("krafka-bench: enqueue failed: {e}");
                }
                not_queued += 1;
            }
        }
    }
    handoff.finish().await;
    if let Err(e) = producer.flush().await {
        eprintln!("krafka-bench: flush: {e}");
    }
    let mut c = collector.await.expect("collector");
    let _ = producer.close().await;
    let (p50_ms, p99_ms) = c.latencies.p50_p99_ms();
    WorkerResult {
        acked: c.acked,
        failed: c.failed + not_queued,
        bytes: c.acked * args.size as u64,
        elapsed_s: c.last_ack.map_or(0.0, |t| (t - start).as_secs_f64()),
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    }
}

/// krafka's form of the bench's SASL_SSL settings (SCRAM over rustls, trusting the test CA).
fn krafka_security(s: &worker::Security) -> krafka::auth::AuthConfig {
    use krafka::auth::{AuthConfig, TlsConfig};
    let sasl = match s.mechanism.as_str() {
        "SCRAM-SHA-512" => AuthConfig::sasl_scram_sha512(&s.username, &s.password),
        "SCRAM-SHA-256" => AuthConfig::sasl_scram_sha256(&s.username, &s.password),
        other => panic!("unsupported SASL mechanism {other}"),
    };
    sasl.with_tls(TlsConfig::new().with_ca_cert(&s.ca_pem))
}

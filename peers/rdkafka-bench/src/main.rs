//! rust-rdkafka (librdkafka, built from source) as a peer in `benches/produce_compare.rs`: produces
//! N keyless records of a given size as fast as it can and prints one
//! `PRODUCE_COMPARE_RESULT ...` line (protocol: `peers/common/worker.rs`).
//!
//! It uses `ThreadedProducer` with a delivery callback: librdkafka's fastest path, the one
//! `rdkafka_performance` uses, where each delivery report costs one callback and no future.
//! Latency is send call → delivery report, as in Java's tool. With `--rate R` (fixed-rate mode,
//! see `worker::due`) record `i` is sent no earlier than `i / R` s after the first and the result
//! line ends with ` p999_ms=..`.
//!
//! The clock starts once the producer is ready, as the other workers' do after their clients
//! connect: librdkafka's `create` returns at once and its idempotent producer gets its producer
//! id only on a timer (the first delivery took ~0.5 s, 1-record runs: 0.504-0.506 s), so record 0
//! is sent and flushed first. It is counted as acknowledged (it is in the log) but not in the
//! latencies or the timed window.
//!
//! Run through the bench (`cargo bench --bench produce_compare`), which builds this with
//! `cargo build --release --manifest-path peers/rdkafka-bench/Cargo.toml`, or by hand:
//! `peers/rdkafka-bench/target/release/rdkafka-bench --bootstrap 127.0.0.1:9092 --topic t
//! --records 100000 --size 100 --compression none --linger-ms 5 --batch-size 16384
//! --buffer-memory 33554432`.

#[path = "../../common/worker.rs"]
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use worker::{Latencies, WorkerArgs, WorkerResult};

/// Delivery bookkeeping, touched only by librdkafka's polling thread (the mutex is uncontended).
struct Ctx {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds since `start` of the last successful delivery report.
    last_ack_ns: AtomicU64,
    latencies: Mutex<Latencies>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    /// The send time, in nanoseconds since `start`: a plain integer, so no allocation per record.
    /// [`READINESS_PROBE`] marks record 0, sent before the clock starts.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.start.elapsed();
        match result {
            Ok(msg) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                let len = msg.payload().map_or(0, |p| p.len()) as u64;
                self.bytes.fetch_add(len, Ordering::Relaxed);
                if sent_ns == READINESS_PROBE {
                    return;
                }
                self.last_ack_ns
                    .store(now.as_nanos() as u64, Ordering::Relaxed);
                let latency = now.saturating_sub(Duration::from_nanos(sent_ns as u64));
                self.latencies.lock().unwrap().record(latency);
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("rdkafka-bench: first delivery failure: {e}");
                }
            }
        }
    }
}

/// The delivery opaque of record 0, which is sent and flushed before the clock starts.
const READINESS_PROBE: usize = usize::MAX;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("rdkafka-bench", WorkerArgs::parse(&argv));
    let ticks = worker::clock_ticks();
    let payloads = worker::payload_pool(args.size);
    let ctx = Ctx {
        start: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        latencies: Mutex::new(Latencies::with_capacity(args.records as usize)),
    };
    // The Java names where librdkafka has them. queue.buffering.max.kbytes stands in for
    // buffer.memory so all clients may hold the same amount unacknowledged.
    let mut config = ClientConfig::new();
    // SASL_SSL when the bench asks for it (see `worker::Security`).
    let security = worker::parse_or_exit("rdkafka-bench", worker::Security::from_env());
    for (k, v) in security.iter().flat_map(|s| s.librdkafka()) {
        config.set(k, v);
    }
    let producer: ThreadedProducer<Ctx> = config
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("compression.codec", &args.compression)
        .set(
            "queue.buffering.max.kbytes",
            (args.buffer_memory / 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "10000000")
        .create_with_context(ctx)
        .expect("create rdkafka producer");

    let mut not_queued = 0u64;
    // Ready: record 0 delivered (see the module docs).
    if args.records > 0 {
        let probe = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, READINESS_PROBE)
            .payload(payloads[0].as_slice());
        if let Err((e, _)) = producer.send(probe) {
            eprintln!("rdkafka-bench: send failed: {e}");
            not_queued += 1;
        }
        if let Err(e) = producer.flush(Duration::from_secs(60)) {
            eprintln!("rdkafka-bench: flush of record 0: {e}");
        }
    }
    let start_ns = producer.context().start.elapsed().as_nanos() as u64;
    let pace_from = Instant::now();
    for i in 1..args.records {
        if args.rate > 0 {
            let due = pace_from + worker::due(i - 1, args.rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let payload = &payloads[i as usize % payloads.len()];
        let sent_ns = producer.context().start.elapsed().as_nanos() as usize;
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, sent_ns)
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: wait for deliveries to drain it, as Java's send
                // blocks on buffer.memory.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    if not_queued == 0 {
                        eprintln!("rdkafka-bench: send failed: {e}");
                    }
                    not_queued += 1;
                    break;
                }
            }
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs(120)) {
        eprintln!("rdkafka-bench: flush: {e}");
    }
    let ctx = producer.context();
    let elapsed_ns = ctx
        .last_ack_ns
        .load(Ordering::Relaxed)
        .saturating_sub(start_ns);
    let (p50_ms, p99_ms, p999_ms) = {
        let mut latencies = ctx.latencies.lock().unwrap();
        let (p50, p99) = latencies.p50_p99_ms();
        (p50, p99, latencies.percentile_ms(0.999))
    };
    let result = WorkerResult {
        acked: ctx.acked.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed) + not_queued,
        bytes: ctx.bytes.load(Ordering::Relaxed),
        elapsed_s: elapsed_ns as f64 / 1e9,
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    };
    drop(producer);
    let cpu_s = worker::cpu_seconds(ticks).0;
    let line = WorkerResult { cpu_s, ..result }.line();
    if args.rate > 0 {
        println!("{line}{}", worker::p999_field(p999_ms));
    } else {
        println!("{line}");
    }
}

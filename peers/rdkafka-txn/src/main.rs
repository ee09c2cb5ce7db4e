//! rust-rdkafka (librdkafka) as a peer in `benches/txn_compare.rs`: a transactional (or plain
//! idempotent) `ThreadedProducer` run as the bench asks (protocol: `txn_proto.rs`), printing one
//! `TXN_COMPARE_RESULT ...` line.
//!
//! `ThreadedProducer` with a delivery callback (librdkafka's fastest path) and the blocking
//! transactional calls `init_transactions`, `begin_transaction`, `commit_transaction` (which, as
//! in Java, flushes the transaction's records first), each bounded by 60 s.
//!
//! Run through the bench (`cargo bench --bench txn_compare`), which builds this with
//! `cargo build --release --manifest-path peers/rdkafka-txn/Cargo.toml --target-dir
//! peers/rdkafka-txn/target`.

mod txn_proto;
#[path = "../../common/worker.rs"]
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use txn_proto::{TxnArgs, TxnResult};
use worker::Latencies;

const TIMEOUT: Duration = Duration::from_secs(60);

struct Ctx {
    start: Instant,
    acked: AtomicU64,
    failed: AtomicU64,
    last_ack_ns: AtomicU64,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_ns
                    .store(self.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("rdkafka-txn: first delivery failure: {e}");
                }
            }
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("rdkafka-txn", TxnArgs::parse(&argv));
    let ticks = worker::clock_ticks();
    let payloads = worker::payload_pool(args.size);
    let ctx = Ctx {
        start: Instant::now(),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
    };
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set(
            "queue.buffering.max.kbytes",
            (args.buffer_memory / 1024).to_string(),
        )
        .set("queue.buffering.max.messages", "10000000");
    if let Some(id) = &args.txn_id {
        config.set("transactional.id", id);
    }
    let producer: ThreadedProducer<Ctx> = config
        .create_with_context(ctx)
        .expect("create rdkafka producer");
    let transactional = args.txn_id.is_some();
    if transactional {
        producer
            .init_transactions(TIMEOUT)
            .expect("init_transactions");
    }

    let mut commits = Latencies::with_capacity(1024);
    let (mut txns, mut committed, mut in_txn, mut not_queued) = (0u64, 0u64, 0u64, 0u64);
    let mut txn_began = Instant::now();
    let start = Instant::now();
    let commit = |producer: &ThreadedProducer<Ctx>, commits: &mut Latencies| -> bool {
        let t = Instant::now();
        match producer.commit_transaction(TIMEOUT) {
            Ok(()) => {
                commits.record(t.elapsed());
                true
            }
            Err(e) => {
                eprintln!("rdkafka-txn: commit failed: {e}");
                let _ = producer.abort_transaction(TIMEOUT);
                false
            }
        }
    };
    for i in 0..args.records {
        if transactional && in_txn == 0 {
            producer.begin_transaction().expect("begin_transaction");
            txn_began = Instant::now();
        }
        let payload = &payloads[i as usize % payloads.len()];
        let mut record = BaseRecord::<(), [u8], ()>::to(&args.topic).payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => {
                    in_txn += 1;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => {
                    if not_queued == 0 {
                        eprintln!("rdkafka-txn: send failed: {e}");
                    }
                    not_queued += 1;
                    break;
                }
            }
        }
        if transactional && args.commit_due(in_txn, txn_began.elapsed()) {
            if commit(&producer, &mut commits) {
                txns += 1;
                committed += in_txn;
            }
            in_txn = 0;
        }
    }
    if transactional && in_txn > 0 && commit(&producer, &mut commits) {
        txns += 1;
        committed += in_txn;
    }
    let mut elapsed_s = start.elapsed().as_secs_f64();
    if !transactional {
        if let Err(e) = producer.flush(TIMEOUT) {
            eprintln!("rdkafka-txn: flush: {e}");
        }
        let ctx = producer.context();
        committed = ctx.acked.load(Ordering::Relaxed);
        let start_ns = (start - ctx.start).as_nanos() as u64;
        elapsed_s = ctx
            .last_ack_ns
            .load(Ordering::Relaxed)
            .saturating_sub(start_ns) as f64
            / 1e9;
    }
    let (p50_ms, p99_ms) = commits.p50_p99_ms();
    let failed = producer.context().failed.load(Ordering::Relaxed) + not_queued;
    drop(producer);
    let cpu_s = worker::cpu_seconds(ticks).0;
    println!(
        "{}",
        TxnResult {
            txns,
            records: committed,
            failed,
            elapsed_s,
            p50_ms,
            p99_ms,
            cpu_s,
        }
        .line()
    );
}

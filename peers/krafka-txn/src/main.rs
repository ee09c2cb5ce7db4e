//! krafka (a pure-Rust async Kafka client on crates.io) as a peer in `benches/txn_compare.rs`:
//! its `TransactionalProducer` (`build_transactional`, `begin`, `enqueue`, `commit`) or, without
//! a transactional id, its idempotent `Producer`, run as the bench asks (protocol:
//! `peers/rdkafka-txn/src/txn_proto.rs`), printing one `TXN_COMPARE_RESULT ...` line.
//!
//! Records are enqueued without awaiting; their delivery handles go to a collector task through
//! a bounded channel, as in `peers/krafka-bench`. `commit` sends what is buffered, waits for
//! every record of the transaction and then sends EndTxn.
//!
//! Run through the bench (`cargo bench --bench txn_compare`), which builds this with
//! `cargo build --release --manifest-path peers/krafka-txn/Cargo.toml --target-dir
//! peers/krafka-txn/target`.

#[path = "../../common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../../rdkafka-txn/src/txn_proto.rs"]
mod txn_proto;
#[path = "../../common/worker.rs"]
mod worker;

use std::time::{Duration, Instant};

use krafka::producer::{Acks, DeliveryHandle};
use krafka::{Compression, Kafka, Record};

use tokio_worker::spawn_collector;
use txn_proto::{TxnArgs, TxnResult};
use worker::Latencies;

const WINDOW: usize = 1 << 18;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("krafka-txn", TxnArgs::parse(&argv));
    let (result, cpu_s) = tokio_worker::block_on_measured(run(args));
    println!("{}", TxnResult { cpu_s, ..result }.line());
}

async fn run(args: TxnArgs) -> TxnResult {
    let kafka = Kafka::builder(args.bootstrap.clone())
        .client_id("txn-compare-krafka")
        .connect()
        .await
        .expect("krafka connect");
    let builder = kafka
        .producer()
        .acks(Acks::All)
        .idempotent(true)
        .linger(Duration::from_millis(args.linger_ms))
        .batch_size(args.batch_size)
        .buffer_memory(args.buffer_memory)
        .compression(Compression::None);
    let payloads: Vec<bytes::Bytes> = worker::payload_pool(args.size)
        .into_iter()
        .map(bytes::Bytes::from)
        .collect();

    let (tx, rx) = tokio::sync::mpsc::channel::<[DeliveryHandle; 1]>(WINDOW);
    let collector = spawn_collector(rx, |h| (None, h), 0, "krafka-txn");

    let record = |i: u64| {
        Record::new(
            args.topic.clone(),
            payloads[i as usize % payloads.len()].clone(),
        )
    };
    let mut commits = Latencies::with_capacity(1024);
    let (mut txns, mut committed, mut not_queued) = (0u64, 0u64, 0u64);
    let start;
    let mut elapsed_s;
    if let Some(id) = &args.txn_id {
        let producer = builder
            .build_transactional(id.clone())
            .await
            .expect("krafka transactional producer");
        let mut in_txn = 0u64;
        let mut txn_began = Instant::now();
        start = Instant::now();
        for i in 0..args.records {
            if in_txn == 0 {
                producer.begin().expect("begin");
                txn_began = Instant::now();
            }
            match producer.enqueue(record(i)).await {
                Ok(handle) => {
                    in_txn += 1;
                    if tx.send([handle]).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    if not_queued == 0 {
                        eprintln!("krafka-txn: enqueue failed: {e}");
                    }
                    not_queued += 1;
                }
            }
            let last = i + 1 == args.records;
            if in_txn > 0 && (last || args.commit_due(in_txn, txn_began.elapsed())) {
                let t = Instant::now();
                match producer.commit().await {
                    Ok(()) => {
                        commits.record(t.elapsed());
                        txns += 1;
                        committed += in_txn;
                    }
                    Err(e) => {
                        eprintln!("krafka-txn: commit failed: {e}");
                        let _ = producer.abort().await;
                    }
                }
                in_txn = 0;
            }
        }
        elapsed_s = start.elapsed().as_secs_f64();
        drop(tx);
        not_queued += collector.await.expect("collector").failed;
        let _ = producer.close().await;
    } else {
        let producer = builder.build().await.expect("krafka producer");
        start = Instant::now();
        for i in 0..args.records {
            match producer.enqueue(record(i)).await {
                Ok(handle) => {
                    if tx.send([handle]).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    if not_queued == 0 {
                        eprintln!("krafka-txn: enqueue failed: {e}");
                    }
                    not_queued += 1;
                }
            }
        }
        drop(tx);
        if let Err(e) = producer.flush().await {
            eprintln!("krafka-txn: flush: {e}");
        }
        let c = collector.await.expect("collector");
        committed = c.acked;
        not_queued += c.failed;
        elapsed_s = c.last_ack.map_or(0.0, |t| (t - start).as_secs_f64());
        let _ = producer.close().await;
    }
    if elapsed_s <= 0.0 {
        elapsed_s = f64::NAN;
    }
    let (p50_ms, p99_ms) = commits.p50_p99_ms();
    TxnResult {
        txns,
        records: committed,
        failed: not_queued,
        elapsed_s,
        p50_ms,
        p99_ms,
        cpu_s: 0.0,
    }
}

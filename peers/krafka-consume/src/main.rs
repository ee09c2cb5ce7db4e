//! krafka (a pure-Rust async Kafka client on crates.io) as a peer in `benches/consume_compare.rs`:
//! reads a topic from the beginning and prints one `CONSUME_COMPARE_RESULT ...` line (protocol:
//! `peers/rdkafka-consume/src/protocol.rs`, shared with the bench).
//!
//! A group-less consumer (`consumer_without_group`) with a manual `assign` of every partition and
//! `auto_offset_reset(Earliest)`, polled with `poll(timeout) -> Vec<ConsumerRecord>` as josefk's
//! worker is. Fetch settings as for every client (fetch.max.bytes 50 MiB,
//! max.partition.fetch.bytes 1 MiB, fetch.min.bytes 1, fetch.max.wait 500 ms, max.poll.records
//! 500); krafka's own cap on buffered records (`max_buffered_records`, default 500) is disabled
//! so it can prefetch as Java and josefk do.
//!
//! Run through the bench, or by hand after
//! `cargo build --release --manifest-path peers/krafka-consume/Cargo.toml` with the flags
//! `--bootstrap --topic --partitions --expected --isolation`.

#[path = "../../common/tokio_worker.rs"]
mod tokio_worker;
#[path = "../../common/worker.rs"]
mod worker;

#[path = "../../rdkafka-consume/src/protocol.rs"]
mod protocol;

use std::time::Duration;

use krafka::consumer::{AutoOffsetReset, IsolationLevel};
use krafka::Kafka;

use protocol::{ConsumeArgs, ConsumeResult, Tally};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("krafka-consume", ConsumeArgs::parse(&argv));
    let (result, cpu_s) = tokio_worker::block_on_measured(run(&args));
    println!("{}", ConsumeResult { cpu_s, ..result }.line());
}

async fn run(args: &ConsumeArgs) -> ConsumeResult {
    let mut builder = Kafka::builder(args.bootstrap.clone());
    // SASL_SSL when the bench asks for it (see `worker::Security`).
    if let Some(s) = worker::parse_or_exit("krafka-consume", worker::Security::from_env()) {
        builder = builder.security(krafka_security(&s));
    }
    let kafka = builder
        .client_id("consume-compare-krafka")
        .connect()
        .await
        .expect("krafka connect");
    let isolation = if args.read_committed() {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let consumer = kafka
        .consumer_without_group()
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .isolation_level(isolation)
        .fetch_max_bytes(protocol::FETCH_MAX_BYTES as i32)
        .max_partition_fetch_bytes(protocol::MAX_PARTITION_FETCH_BYTES as i32)
        .fetch_min_bytes(protocol::FETCH_MIN_BYTES as i32)
        .fetch_max_wait(Duration::from_millis(protocol::FETCH_MAX_WAIT_MS))
        .max_poll_records(protocol::MAX_POLL_RECORDS as i32)
        .max_buffered_records(0)
        .build()
        .await
        .expect("krafka consumer");
    consumer
        .assign(&args.topic, (0..args.partitions).collect())
        .await
        .expect("assign");

    let mut tally = Tally::new(args.partitions);
    let mut errors = 0u64;
    tally.start();
    while !tally.done(args.expected) {
        match consumer.poll(Duration::from_millis(100)).await {
            Ok(records) => {
                if records.is_empty() {
                    continue;
                }
                for r in &records {
                    tally.record(
                        r.partition,
                        r.offset,
                        r.key.as_ref().map_or(0, |k| k.len()),
                        r.value.as_deref(),
                    );
                }
                tally.polled();
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("krafka-consume: {e}");
                }
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let result = tally.result();
    let _ = consumer.close().await;
    result
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

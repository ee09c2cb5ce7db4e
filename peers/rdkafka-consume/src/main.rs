//! rust-rdkafka (librdkafka, built from source) as a peer in `benches/consume_compare.rs`: reads a
//! topic from the beginning and prints one `CONSUME_COMPARE_RESULT ...` line (protocol:
//! `src/protocol.rs`, shared with the bench and `peers/krafka-consume`).
//!
//! It uses `BaseConsumer` with a manual `assign` of every partition at `Offset::Beginning` (no
//! group join, no offset commits; `group.id` is set only because librdkafka wants one), and polls
//! one message at a time, the way rust-rdkafka consumers do. Fetch settings: fetch.max.bytes
//! 50 MiB, max.partition.fetch.bytes 1 MiB, fetch.min.bytes 1, fetch.wait.max.ms 500; librdkafka's
//! prefetch queue is tuned not to pause (`queued.min.messages` 1,000,000,
//! `fetch.queue.backoff.ms` 0; `queued.max.messages.kbytes` stays at 64 MiB).
//!
//! Run through the bench (`cargo bench --bench consume_compare`), or by hand after
//! `cargo build --release --manifest-path peers/rdkafka-consume/Cargo.toml`:
//! `rdkafka-consume --bootstrap 127.0.0.1:9092 --topic t --partitions 6 --expected 1000
//! --isolation read_uncommitted`.

#[path = "../../common/worker.rs"]
mod worker;

mod protocol;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use protocol::{ConsumeArgs, ConsumeResult, Tally};

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = worker::parse_or_exit("rdkafka-consume", ConsumeArgs::parse(&argv));
    let (result, cpu_s) = worker::with_own_cpu(|| run(&args));
    println!("{}", ConsumeResult { cpu_s, ..result }.line());
}

fn run(args: &ConsumeArgs) -> ConsumeResult {
    let mut config = ClientConfig::new();
    // SASL_SSL when the bench asks for it (see `worker::Security`).
    let security = worker::parse_or_exit("rdkafka-consume", worker::Security::from_env());
    for (k, v) in security.iter().flat_map(|s| s.librdkafka()) {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config
        .set("bootstrap.servers", &args.bootstrap)
        .set(
            "group.id",
            format!("consume-compare-rdkafka-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", &args.isolation)
        .set("fetch.max.bytes", protocol::FETCH_MAX_BYTES.to_string())
        .set(
            "max.partition.fetch.bytes",
            protocol::MAX_PARTITION_FETCH_BYTES.to_string(),
        )
        .set("fetch.min.bytes", protocol::FETCH_MIN_BYTES.to_string())
        .set("fetch.wait.max.ms", protocol::FETCH_MAX_WAIT_MS.to_string())
        .set("enable.partition.eof", "false")
        // librdkafka stops fetching a partition whose local queue holds `queued.min.messages`
        // (100,000) and then waits `fetch.queue.backoff.ms` (1 s) before asking again: with
        // 100 B records it sat idle most of a run (1M records in 2.86 s at 0.53 s of CPU on a
        // quiet machine). Java, josefk, krafka and franz-go prefetch without such a pause; with
        // these two settings the same run took 0.95 s.
        .set("queued.min.messages", "1000000")
        .set("fetch.queue.backoff.ms", "0")
        .create()
        .expect("rdkafka consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..args.partitions {
        list.add_partition_offset(&args.topic, p, Offset::Beginning)
            .expect("partition list");
    }
    consumer.assign(&list).expect("assign");

    let mut tally = Tally::new(args.partitions);
    let mut errors = 0u64;
    tally.start();
    while !tally.done(args.expected) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                tally.record(
                    m.partition(),
                    m.offset(),
                    m.key().map_or(0, <[u8]>::len),
                    m.payload(),
                );
                tally.polled();
            }
            Some(Err(e)) => {
                if errors == 0 {
                    eprintln!("rdkafka-consume: {e}");
                }
                errors += 1;
            }
            None => {}
        }
    }
    tally.result()
}

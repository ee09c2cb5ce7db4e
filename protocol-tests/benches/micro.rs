//! Micro-benchmarks of the produce and fetch paths' own CPU cost, no broker: what one record
//! costs josefk before and after the network, to set beside the fixed-rate ack latencies of
//! `produce_compare` (`JOSEFK_BENCH_RATE`).
//!
//! Run: `cargo bench -p protocol-tests --bench micro` (quick: `cargo bench -p protocol-tests --bench micro -- --warm-up-time 1
//! --measurement-time 3`; one group: `-- micro/encode_batch`). Every bench declares its
//! throughput in payload or frame bytes, so criterion prints bytes/s next to the time.
//!
//! - `micro/encode_batch/{100x100B,16x1KiB}/{none,lz4}`: `protocol::records::BatchBuilder`
//!   writing one 16 KiB-ish batch (100 records of 100 B, or 16 of 1 KiB; keyless, no headers) and
//!   finishing it (CRC, and the compression pass for lz4), the buffers reused between batches as
//!   the producer reuses them. Throughput: payload bytes.
//! - `micro/accumulator_append/10000x100B`: `state::accumulator::Accumulator::append` of 10,000
//!   records of 100 B round-robin over 6 partitions into a fresh accumulator (linger 5 ms,
//!   16 KiB batches): the queueing and `buffer.memory` bookkeeping per record, with a `u32` in
//!   place of the producer's queued record, so the record's own encoding is not in it.
//!   Throughput: payload bytes.
//! - `micro/decode_fetch/6x4x100x100B`: `protocol::decode_response` of a Fetch response frame
//!   (6 partitions, each 4 uncompressed batches of 100 records of 100 B, at josefk's highest
//!   Fetch version), then every batch's CRC check and every record decoded, as the consumer
//!   does before handing records out. Throughput: frame bytes.
//!
//! `criterion` is a dev-dependency already (benches/protocol.rs): statistics, warm-up and
//! outlier handling that a hand-written timing loop would get wrong.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use josefk::protocol::records::{BatchBuilder, BatchOptions, RecordBatches};
use josefk::protocol::{client_versions, decode_response, Compression};
use josefk::state::accumulator::{Accumulator, AccumulatorConfig, AppendResult};
use josefk::TopicPartition;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

const PARTITIONS: i32 = 6;

/// `n` payloads of `size` bytes of uppercase letters (as the compare benches send).
fn payloads(n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'A' + (state % 26) as u8
                })
                .collect()
        })
        .collect()
}

/// One batch of `values` built into `out` (cleared first), reusing `scratch`; returns the
/// batch's size in bytes.
fn build_batch(
    opts: BatchOptions,
    values: &[Vec<u8>],
    out: &mut BytesMut,
    scratch: &mut BytesMut,
) -> usize {
    out.clear();
    let mut builder =
        BatchBuilder::with_scratch(opts, std::mem::take(out), std::mem::take(scratch));
    for v in values {
        builder
            .append::<(&[u8], Option<&[u8]>)>(1_700_000_000_000, None, Some(v), &[])
            .expect("record appends");
    }
    let finished = builder.finish().expect("batch finishes");
    *out = finished.buf;
    *scratch = finished.scratch;
    finished.info.len
}

fn encode_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("micro/encode_batch");
    for (label, count, size) in [("100x100B", 100usize, 100usize), ("16x1KiB", 16, 1024)] {
        let values = payloads(count, size);
        for (codec, compression) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
            let opts = BatchOptions {
                compression,
                producer_id: 1,
                producer_epoch: 0,
                base_sequence: 0,
                ..BatchOptions::default()
            };
            g.throughput(Throughput::Bytes((count * size) as u64));
            let (mut out, mut scratch) = (BytesMut::new(), BytesMut::new());
            g.bench_function(BenchmarkId::new(label, codec), |b| {
                b.iter(|| build_batch(black_box(opts), &values, &mut out, &mut scratch))
            });
        }
    }
    g.finish();
}

fn accumulator_benches(c: &mut Criterion) {
    const RECORDS: usize = 10_000;
    const SIZE: usize = 100;
    let mut g = c.benchmark_group("micro/accumulator_append");
    g.throughput(Throughput::Bytes((RECORDS * SIZE) as u64));
    let tps: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("bench", p))
        .collect();
    let config = AccumulatorConfig {
        batch_size: 16_384,
        linger: Duration::from_millis(5),
        ..AccumulatorConfig::default()
    };
    let now = Instant::now();
    g.bench_function("10000x100B", |b| {
        b.iter_batched(
            || Accumulator::<u32>::new(config.clone()),
            |mut acc| {
                for i in 0..RECORDS {
                    // The producer's size estimate of a keyless 100 B record is about this.
                    match acc.append(&tps[i % tps.len()], i as u32, SIZE + 8, now) {
                        AppendResult::Appended(_) => {}
                        _ => panic!("append refused"),
                    }
                }
                acc
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A Fetch response frame (response header v1, then the body at `version`) whose partitions each
/// hold `batches` batches of `per_batch` records of `size` bytes.
fn fetch_frame(version: i16, batches: usize, per_batch: usize, size: usize) -> Bytes {
    let values = payloads(per_batch, size);
    let mut records = BytesMut::new();
    let (mut out, mut scratch) = (BytesMut::new(), BytesMut::new());
    for b in 0..batches {
        let opts = BatchOptions {
            base_offset: (b * per_batch) as i64,
            ..BatchOptions::default()
        };
        build_batch(opts, &values, &mut out, &mut scratch);
        records.extend_from_slice(&out);
    }
    let records = records.freeze();
    let fetch = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(
            (0..PARTITIONS)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark((batches * per_batch) as i64)
                        .with_last_stable_offset((batches * per_batch) as i64)
                        .with_records(Some(records.clone()))
                })
                .collect(),
        )]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&42i32.to_be_bytes());
    buf.extend_from_slice(&[0]); // no tagged fields in the header
    fetch
        .encode(&mut buf, version)
        .expect("fetch response encodes");
    buf.freeze()
}

/// Decodes the frame and every record in it; returns the records' value bytes.
fn decode_fetch(frame: Bytes, version: i16) -> usize {
    let response = decode_response::<FetchRequest>(frame, version, None).expect("decodes");
    let mut bytes = 0;
    for topic in &response.responses {
        for partition in &topic.partitions {
            let Some(records) = partition.records.clone() else {
                continue;
            };
            for batch in RecordBatches::new(records) {
                for record in batch.expect("batch").records().expect("records") {
                    bytes += record.expect("record").value.map_or(0, |v| v.len());
                }
            }
        }
    }
    bytes
}

fn fetch_benches(c: &mut Criterion) {
    let version = client_versions(ApiKey::Fetch).max;
    let frame = fetch_frame(version, 4, 100, 100);
    // The bench must decode what was encoded: every record's value, all partitions.
    assert_eq!(
        decode_fetch(frame.clone(), version),
        PARTITIONS as usize * 4 * 100 * 100
    );
    let mut g = c.benchmark_group("micro/decode_fetch");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("6x4x100x100B", |b| {
        b.iter(|| decode_fetch(black_box(frame.clone()), version))
    });
    g.finish();
}

criterion_group!(benches, encode_benches, accumulator_benches, fetch_benches);
criterion_main!(benches);

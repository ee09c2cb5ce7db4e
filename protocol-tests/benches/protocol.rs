//! Protocol benchmarks: josefk's encode/decode path with no broker, and Metadata round trips
//! against a real broker on loopback.
//!
//! Run: `cargo bench -p protocol-tests --bench protocol` (quick run:
//! `cargo bench -p protocol-tests --bench protocol -- --warm-up-time 1 --measurement-time 3`; one group:
//! `cargo bench -p protocol-tests --bench protocol -- codec/` or `-- loopback/`).
//!
//! `JOSEFK_BENCH_NO_LOOPBACK=1` runs the codec benches alone (no broker needed).
//!
//! The loopback benches use the broker in `KAFKA_BOOTSTRAP_SERVERS` if set; otherwise they start
//! a private single-node Kafka through `josefk-harness` (15–20 s, Java 17 + Maven needed) and stop
//! it at the end.
//!
//! What each bench measures (criterion prints time per iteration; `thrpt` where a throughput is
//! declared):
//!
//! - `codec/metadata_request_encode/100_topics`: `protocol::encode_request` of a Metadata request
//!   naming 100 topics at josefk's highest Metadata version: body, header and length prefix into
//!   one frame, as the caller's task does before handing it to the connection task.
//! - `codec/metadata_response_decode/100x6`: `protocol::decode_response` of a Metadata response
//!   with 3 brokers and 100 topics × 6 partitions (header skipped, body decoded, strings sliced
//!   from the frame). Throughput in bytes of frame.
//! - `codec/metadata_snapshot/100x6`: `cluster::MetadataSnapshot::from_response` on the decoded
//!   response: josefk's own work after decoding, per refresh.
//! - `codec/api_versions_response_decode/all_apis`, `codec/api_versions_from_response`: decoding
//!   the handshake answer for every API kafka-protocol knows, then building josefk's version table.
//! - `codec/produce_request_encode/100x100B`: building one uncompressed record batch of 100 records
//!   (8-byte key, 100-byte value) with kafka-protocol's encoder and encoding the Produce request
//!   around it. Throughput in records.
//! - `codec/record_batch_decode/100x100B`: decoding that batch back into records.
//! - `codec/decode_response/{metadata_100x6,fetch_100x64KiB,produce_100x10}` against
//!   `codec/decode_without_precheck/...`: josefk's decode (the bounds pre-check, then
//!   `kafka-protocol`) against `kafka-protocol` alone, on the Metadata response above, a Fetch
//!   response of 100 partitions with 64 KiB of records each (record bytes are skipped by the
//!   pre-check, not walked), and a Produce response acknowledging 100 topics x 10 partitions.
//!   The difference is the pre-check's cost.
//! - `loopback/metadata_one_topic/sequential`: latency of one `Connection::send(&MetadataRequest)`
//!   for one topic, each awaited before the next (encode, channel to the connection task, write,
//!   broker, read, decode).
//! - `loopback/metadata_one_topic/pipelined_100`: 100 such requests issued at once from 100 tasks on
//!   ONE connection; time per batch of 100, throughput in requests/s.
//!
//! After criterion, a plain summary is printed for the loopback case: p50/p99/max of 2 000
//! sequential round trips, and requests/s of 20 batches of 100 pipelined requests, so the figures
//! can be quoted without reading criterion's report.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use josefk::admin::{Admin, NewTopic};
use josefk::cluster::MetadataSnapshot;
use josefk::net::{Connection, ConnectionOptions};
use josefk::protocol::{client_versions, decode_response, encode_request, ApiVersions};
use josefk::ClientConfig;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A Metadata response as a 3-broker cluster would send it for `topics` × `partitions`.
fn metadata_response(topics: usize, partitions: i32) -> MetadataResponse {
    MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_static_str("bench-cluster-id-000000")))
        .with_controller_id(BrokerId(1))
        .with_brokers(
            (1..=3)
                .map(|id| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_static_str("broker.example.internal"))
                        .with_port(9092)
                })
                .collect(),
        )
        .with_topics(
            (0..topics)
                .map(|t| {
                    MetadataResponseTopic::default()
                        .with_name(Some(name(&format!("bench-topic-{t:04}"))))
                        .with_partitions(
                            (0..partitions)
                                .map(|p| {
                                    let leader = 1 + (t as i32 + p) % 3;
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(BrokerId(leader))
                                        .with_leader_epoch(7)
                                        .with_replica_nodes(vec![
                                            BrokerId(1),
                                            BrokerId(2),
                                            BrokerId(3),
                                        ])
                                        .with_isr_nodes(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn records(count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch: kafka-protocol splits batches where `offset - sequence` changes.
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i:04}"))),
            value: Some(Bytes::from(vec![b'v'; 100])),
            headers: Default::default(),
        })
        .collect()
}

fn encode_batch(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("batch encodes");
    buf.freeze()
}

fn codec_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let metadata_version = client_versions(ApiKey::Metadata).max;

    let request = MetadataRequest::default().with_topics(Some(
        (0..100)
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(name(&format!("bench-topic-{t:04}"))))
            })
            .collect(),
    ));
    g.bench_function(
        BenchmarkId::new("metadata_request_encode", "100_topics"),
        |b| b.iter(|| encode_request(black_box(&request), metadata_version, "bench").unwrap()),
    );

    let response = metadata_response(100, 6);
    let frame = wire::metadata_response_frame(&response, metadata_version);
    let decoded = decode_response::<MetadataRequest>(frame.clone(), metadata_version, None)
        .expect("the hand-encoded Metadata frame decodes");
    assert_eq!(
        decoded, response,
        "the hand-encoded Metadata frame round-trips"
    );
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(BenchmarkId::new("metadata_response_decode", "100x6"), |b| {
        b.iter(|| {
            decode_response::<MetadataRequest>(black_box(frame.clone()), metadata_version, None)
                .unwrap()
        })
    });
    g.throughput(Throughput::Elements(600));
    g.bench_function(BenchmarkId::new("metadata_snapshot", "100x6"), |b| {
        let now = std::time::Instant::now();
        b.iter(|| MetadataSnapshot::from_response(black_box(&decoded), now))
    });

    let api_versions_version = client_versions(ApiKey::ApiVersions).max;
    let api_versions = ApiVersionsResponse::default().with_api_keys(
        (0..200)
            .filter_map(|k| ApiKey::try_from(k).ok().map(|key| (k, key)))
            .map(|(k, key)| {
                ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(key.valid_versions().min)
                    .with_max_version(key.valid_versions().max)
            })
            .collect(),
    );
    let frame = wire::api_versions_response_frame(&api_versions, api_versions_version);
    let decoded = decode_response::<ApiVersionsRequest>(frame.clone(), api_versions_version, None)
        .expect("the hand-encoded ApiVersions frame decodes");
    assert_eq!(
        decoded, api_versions,
        "the hand-encoded ApiVersions frame round-trips"
    );
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(
        BenchmarkId::new("api_versions_response_decode", "all_apis"),
        |b| {
            b.iter(|| {
                decode_response::<ApiVersionsRequest>(
                    black_box(frame.clone()),
                    api_versions_version,
                    None,
                )
                .unwrap()
            })
        },
    );
    g.throughput(Throughput::Elements(api_versions.api_keys.len() as u64));
    g.bench_function("api_versions_from_response", |b| {
        b.iter(|| ApiVersions::from_response(black_box(&api_versions)))
    });

    precheck_benches(&mut g, &response, metadata_version);

    let batch_records = records(100);
    let produce_version = client_versions(ApiKey::Produce).max;
    g.throughput(Throughput::Elements(100));
    g.bench_function(
        BenchmarkId::new("produce_request_encode", "100x100B"),
        |b| {
            b.iter(|| {
                let batch = encode_batch(black_box(&batch_records));
                let request = ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(name("bench-topic"))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch))])]);
                encode_request(&request, produce_version, "bench").unwrap()
            })
        },
    );
    let batch = encode_batch(&batch_records);
    g.bench_function(BenchmarkId::new("record_batch_decode", "100x100B"), |b| {
        b.iter(|| {
            let mut buf = black_box(batch.clone());
            RecordBatchDecoder::decode(&mut buf).unwrap()
        })
    });
    g.finish();
}

/// A response frame: header v1 (correlation id, no tagged fields) and `body` encoded at `version`.
fn flexible_frame<M: Encodable>(body: &M, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&42i32.to_be_bytes());
    buf.extend_from_slice(&[0]);
    body.encode(&mut buf, version).expect("response encodes");
    buf.freeze()
}

/// `kafka-protocol`'s decode alone, as josefk did before the pre-check: header, then body.
fn decode_without_precheck<M: Decodable>(mut frame: Bytes, version: i16) -> M {
    ResponseHeader::decode(&mut frame, 1).unwrap();
    M::decode(&mut frame, version).unwrap()
}

/// The decode pre-check's cost: josefk's `decode_response` (pre-check, then `kafka-protocol`)
/// against `kafka-protocol` alone, on a large Metadata, Fetch and Produce response.
fn precheck_benches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    metadata: &MetadataResponse,
    metadata_version: i16,
) {
    let frame = flexible_frame(metadata, metadata_version);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(BenchmarkId::new("decode_response", "metadata_100x6"), |b| {
        b.iter(|| {
            decode_response::<MetadataRequest>(black_box(frame.clone()), metadata_version, None)
                .unwrap()
        })
    });
    g.bench_function(
        BenchmarkId::new("decode_without_precheck", "metadata_100x6"),
        |b| {
            b.iter(|| {
                decode_without_precheck::<MetadataResponse>(
                    black_box(frame.clone()),
                    metadata_version,
                )
            })
        },
    );

    // 10 topics x 10 partitions, 64 KiB of record bytes each: a full 6.4 MB fetch.
    let fetch_version = client_versions(ApiKey::Fetch).max;
    let records = Bytes::from(vec![0x5a; 64 << 10]);
    let fetch = FetchResponse::default().with_responses(
        (0..10)
            .map(|t| {
                FetchableTopicResponse::default()
                    .with_topic(name(&format!("bench-topic-{t:04}")))
                    .with_partitions(
                        (0..10)
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p)
                                    .with_high_watermark(1_000_000)
                                    .with_records(Some(records.clone()))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let frame = flexible_frame(&fetch, fetch_version);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(
        BenchmarkId::new("decode_response", "fetch_100x64KiB"),
        |b| {
            b.iter(|| {
                decode_response::<FetchRequest>(black_box(frame.clone()), fetch_version, None)
                    .unwrap()
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("decode_without_precheck", "fetch_100x64KiB"),
        |b| {
            b.iter(|| {
                decode_without_precheck::<FetchResponse>(black_box(frame.clone()), fetch_version)
            })
        },
    );

    // 100 topics x 10 partitions acknowledged in one Produce answer.
    let produce_version = client_versions(ApiKey::Produce).max;
    let produce = ProduceResponse::default().with_responses(
        (0..100)
            .map(|t| {
                TopicProduceResponse::default()
                    .with_name(name(&format!("bench-topic-{t:04}")))
                    .with_partition_responses(
                        (0..10)
                            .map(|p| {
                                PartitionProduceResponse::default()
                                    .with_index(p)
                                    .with_base_offset(123_456)
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    let frame = flexible_frame(&produce, produce_version);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function(BenchmarkId::new("decode_response", "produce_100x10"), |b| {
        b.iter(|| {
            decode_response::<ProduceRequest>(black_box(frame.clone()), produce_version, None)
                .unwrap()
        })
    });
    g.bench_function(
        BenchmarkId::new("decode_without_precheck", "produce_100x10"),
        |b| {
            b.iter(|| {
                decode_without_precheck::<ProduceResponse>(
                    black_box(frame.clone()),
                    produce_version,
                )
            })
        },
    );
}

/// The broker for the loopback benches, and the private cluster keeping it alive if one was
/// started.
fn broker() -> (String, Option<josefk_harness::KafkaCluster>) {
    if let Ok(servers) = josefk_harness::bootstrap_servers_from_env() {
        eprintln!("loopback benches: using KAFKA_BOOTSTRAP_SERVERS={servers}");
        return (servers, None);
    }
    eprintln!(
        "loopback benches: KAFKA_BOOTSTRAP_SERVERS unset; starting a private single-node Kafka"
    );
    let cluster = josefk_harness::KafkaCluster::start(josefk_harness::ClusterSpec::single())
        .unwrap_or_else(|e| panic!("cannot start a broker for the loopback benches: {e}"));
    (cluster.bootstrap_servers(), Some(cluster))
}

/// Sends `n` metadata requests at once from `n` tasks on one connection and waits for all.
async fn pipelined(conn: &Connection, request: &MetadataRequest, n: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let conn = conn.clone();
        let request = request.clone();
        tasks.spawn(async move { conn.send(&request).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("metadata request");
    }
}

fn loopback_benches(c: &mut Criterion, rt: &Runtime, conn: &Connection, topic: &str) {
    let request = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]));
    let mut g = c.benchmark_group("loopback/metadata_one_topic");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(conn.send(&request).await.expect("metadata request"));
                }
                start.elapsed()
            })
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("pipelined_100", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    pipelined(conn, &request, 100).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    // Plain figures, independent of criterion's statistics.
    rt.block_on(async {
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let t = Instant::now();
            conn.send(&request).await.expect("metadata request");
            samples.push(t.elapsed());
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "loopback metadata (1 topic), 2000 sequential round trips: p50 {:?}, p99 {:?}, max {:?}",
            at(0.50),
            at(0.99),
            samples[samples.len() - 1]
        );
        let start = Instant::now();
        for _ in 0..20 {
            pipelined(conn, &request, 100).await;
        }
        let elapsed = start.elapsed();
        println!(
            "loopback metadata (1 topic), 20 x 100 pipelined on one connection: {:.0} requests/s ({:?} per batch of 100)",
            2_000.0 / elapsed.as_secs_f64(),
            elapsed / 20
        );
    });
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    codec_benches(&mut c);
    if std::env::var_os("JOSEFK_BENCH_NO_LOOPBACK").is_some_and(|v| v != "0") {
        c.final_summary();
        return;
    }

    let (servers, cluster) = broker();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = ClientConfig::new(&servers).client_id("josefk-bench");
    let topic = format!("josefk-bench-metadata-{}", std::process::id());
    let (admin, conn) = rt.block_on(async {
        let admin = Admin::connect(config.clone()).await.expect("connect");
        admin
            .create_topics(&[NewTopic::new(&topic, 1, 1)])
            .await
            .expect("create bench topic");
        let addr = config.bootstrap_servers[0].clone();
        let conn = Connection::connect(
            &addr,
            None,
            ConnectionOptions::from_config(&config).unwrap(),
        )
        .await
        .expect("dial the broker");
        (admin, conn)
    });
    loopback_benches(&mut c, &rt, &conn, &topic);
    rt.block_on(async {
        let _ = admin.delete_topics(&[&topic]).await;
    });
    drop((conn, admin));
    drop(rt);
    drop(cluster);
    c.final_summary();
}

/// Response frames encoded by hand.
///
/// josefk builds `kafka-protocol` with its `client` feature only, which can decode responses but
/// not encode them (that is the `broker` feature). The decode benches need realistic frames
/// without a broker, so this writes the two responses they use in the flexible (KIP-482) wire
/// format, for the versions josefk speaks. Each frame is checked at start-up by decoding it and
/// comparing with the message it came from, so a mistake here stops the bench rather than
/// skewing it. With `kafka-protocol`'s `broker` feature as a dev-dependency this module could be
/// replaced by `Encodable::encode`.
mod wire {
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse};

    fn uvarint(buf: &mut BytesMut, mut v: u32) {
        while v >= 0x80 {
            buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        buf.put_u8(v as u8);
    }

    /// A compact array or string length: N + 1, with 0 for null.
    fn compact_len(buf: &mut BytesMut, len: Option<usize>) {
        uvarint(buf, len.map_or(0, |n| n as u32 + 1));
    }

    fn compact_str(buf: &mut BytesMut, s: Option<&str>) {
        compact_len(buf, s.map(str::len));
        if let Some(s) = s {
            buf.put_slice(s.as_bytes());
        }
    }

    fn compact_i32s(buf: &mut BytesMut, v: &[i32]) {
        compact_len(buf, Some(v.len()));
        for x in v {
            buf.put_i32(*x);
        }
    }

    /// An empty tagged-field section.
    fn no_tags(buf: &mut BytesMut) {
        uvarint(buf, 0);
    }

    /// Metadata response v12 or v13 (flexible; header v1: correlation id + tags).
    pub fn metadata_response_frame(r: &MetadataResponse, version: i16) -> Bytes {
        assert!((12..=13).contains(&version), "hand encoder covers v12-v13");
        let mut buf = BytesMut::new();
        buf.put_i32(42);
        no_tags(&mut buf);
        buf.put_i32(r.throttle_time_ms);
        compact_len(&mut buf, Some(r.brokers.len()));
        for b in &r.brokers {
            buf.put_i32(b.node_id.0);
            compact_str(&mut buf, Some(b.host.as_str()));
            buf.put_i32(b.port);
            compact_str(&mut buf, b.rack.as_ref().map(|r| r.as_str()));
            no_tags(&mut buf);
        }
        compact_str(&mut buf, r.cluster_id.as_ref().map(|c| c.as_str()));
        buf.put_i32(r.controller_id.0);
        compact_len(&mut buf, Some(r.topics.len()));
        for t in &r.topics {
            buf.put_i16(t.error_code);
            compact_str(&mut buf, t.name.as_ref().map(|n| n.0.as_str()));
            buf.put_slice(t.topic_id.as_bytes());
            buf.put_u8(t.is_internal as u8);
            compact_len(&mut buf, Some(t.partitions.len()));
            for p in &t.partitions {
                buf.put_i16(p.error_code);
                buf.put_i32(p.partition_index);
                buf.put_i32(p.leader_id.0);
                buf.put_i32(p.leader_epoch);
                let ids = |v: &[kafka_protocol::messages::BrokerId]| {
                    v.iter().map(|b| b.0).collect::<Vec<i32>>()
                };
                compact_i32s(&mut buf, &ids(&p.replica_nodes));
                compact_i32s(&mut buf, &ids(&p.isr_nodes));
                compact_i32s(&mut buf, &ids(&p.offline_replicas));
                no_tags(&mut buf);
            }
            buf.put_i32(t.topic_authorized_operations);
            no_tags(&mut buf);
        }
        if version >= 13 {
            buf.put_i16(r.error_code);
        }
        no_tags(&mut buf);
        buf.freeze()
    }

    /// ApiVersions response v3 or v4 without tagged features (header v0: correlation id only,
    /// as for every ApiVersions response).
    pub fn api_versions_response_frame(r: &ApiVersionsResponse, version: i16) -> Bytes {
        assert!((3..=4).contains(&version), "hand encoder covers v3-v4");
        let mut buf = BytesMut::new();
        buf.put_i32(42);
        buf.put_i16(r.error_code);
        compact_len(&mut buf, Some(r.api_keys.len()));
        for k in &r.api_keys {
            buf.put_i16(k.api_key);
            buf.put_i16(k.min_version);
            buf.put_i16(k.max_version);
            no_tags(&mut buf);
        }
        buf.put_i32(r.throttle_time_ms);
        no_tags(&mut buf);
        buf.freeze()
    }
}

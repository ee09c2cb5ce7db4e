//! Shared helpers for josefk's live-broker integration tests.
//!
//! - Where the broker is: [`bootstrap`] reads `KAFKA_BOOTSTRAP_SERVERS` through the harness and
//!   panics with the harness's explanation when it is unset. Live tests never skip: a green run
//!   must mean the client was exercised against a real Kafka. The project's test command
//!   (`cargo run -p josefk-harness -- test`) starts a broker and sets the variable.
//! - Private clusters: tests that stop, kill or restart brokers, or need three nodes, start their
//!   own [`PrivateCluster`] (free ports, temporary data) so they never disturb the shared broker
//!   other tests run against concurrently.
//! - Unique topic names ([`unique_topic`]), so tests can share one broker and be rerun against a
//!   long-lived one without colliding with leftovers.
//! - Tracing ([`init_tracing`]): josefk's logs go to the test output, filtered by `RUST_LOG`.
//! - Raw request builders for Produce and Fetch, so tests can put records on partitions and hold
//!   long polls open below the producer and consumer, and [`read_log`], an independent reader.
//! - `security` (with the `tls` feature): the counting proxy and OIDC token endpoint of the
//!   security tests.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod members;
pub mod pipeline;
pub mod raw;
#[cfg(feature = "tls")]
pub mod security;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use josefk::ClientConfig;
use josefk_harness::{ClusterSpec, KafkaCluster};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
pub use raw::{RawCluster, RawConnection};

/// The shared broker's bootstrap servers. Panics, with the harness's message on how to get a
/// broker, when `KAFKA_BOOTSTRAP_SERVERS` is not set.
pub fn bootstrap() -> String {
    match josefk_harness::bootstrap_servers_from_env() {
        Ok(servers) => servers,
        // The harness's message already says what is missing and how to get a broker.
        Err(e) => panic!("{e}"),
    }
}

/// Client settings for tests: defaults, except a shorter request timeout so a test that goes
/// wrong fails in seconds rather than hanging for Java's 30 s defaults.
pub fn config(bootstrap: &str) -> ClientConfig {
    init_tracing();
    ClientConfig::new(bootstrap)
        .client_id("josefk-it")
        .request_timeout(Duration::from_secs(15))
}

/// Sends josefk's `tracing` output to the captured test output, filtered by `RUST_LOG`
/// (default: warnings only). Safe to call from every test.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A topic name no other test or earlier run uses: `prefix-pid-counter-millis`.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("josefk-it-{prefix}-{}-{n}-{millis}", std::process::id())
}

/// The current time in ms since the epoch, as Kafka timestamps it.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A `TopicName` from a `&str`.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// A private cluster owned by one test. The harness calls block (they start JVMs and wait for
/// them), so every call runs on the blocking pool; the mutex lets the handle be shared by the
/// test and the closures it hands to `spawn_blocking`.
#[derive(Clone)]
pub struct PrivateCluster {
    inner: Arc<Mutex<Option<KafkaCluster>>>,
    bootstrap: String,
}

impl PrivateCluster {
    /// Starts a cluster (10–20 s per cluster) and waits until every node is ready.
    pub async fn start(spec: ClusterSpec) -> PrivateCluster {
        init_tracing();
        let cluster = tokio::task::spawn_blocking(move || KafkaCluster::start(spec))
            .await
            .expect("cluster start panicked")
            .unwrap_or_else(|e| panic!("cannot start a private Kafka cluster: {e}"));
        let bootstrap = cluster.bootstrap_servers();
        PrivateCluster {
            inner: Arc::new(Mutex::new(Some(cluster))),
            bootstrap,
        }
    }

    /// `127.0.0.1:p1,...` for every node.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// Runs `f` on the cluster on the blocking pool.
    pub async fn with<R, F>(&self, f: F) -> R
    where
        F: FnOnce(&mut KafkaCluster) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|e| e.into_inner());
            f(guard.as_mut().expect("cluster already shut down"))
        })
        .await
        .expect("harness call panicked")
    }

    /// Node ids.
    pub async fn node_ids(&self) -> Vec<i32> {
        self.with(|c| c.node_ids()).await
    }

    /// `127.0.0.1:port` of one node.
    pub async fn broker_address(&self, id: i32) -> String {
        self.with(move |c| c.broker_address(id)).await
    }

    /// SIGKILLs a node: a crash, as the broker and its peers see it.
    pub async fn kill_node(&self, id: i32) {
        self.with(move |c| c.kill_node(id))
            .await
            .unwrap_or_else(|e| panic!("cannot kill node {id}: {e}"));
    }

    /// Stops a node cleanly (controlled shutdown).
    pub async fn stop_node(&self, id: i32) {
        self.with(move |c| c.stop_node(id))
            .await
            .unwrap_or_else(|e| panic!("cannot stop node {id}: {e}"));
    }

    /// Freezes a node (SIGSTOP): it keeps its sockets but answers nothing until resumed.
    pub async fn pause_node(&self, id: i32) {
        self.with(move |c| c.pause_node(id))
            .await
            .unwrap_or_else(|e| panic!("cannot pause node {id}: {e}"));
    }

    /// Lets a paused node run again (SIGCONT).
    pub async fn resume_node(&self, id: i32) {
        self.with(move |c| c.resume_node(id))
            .await
            .unwrap_or_else(|e| panic!("cannot resume node {id}: {e}"));
    }

    /// Restarts a stopped or killed node on its old port and data, and waits until it is ready.
    pub async fn start_node(&self, id: i32) {
        self.with(move |c| c.start_node(id))
            .await
            .unwrap_or_else(|e| panic!("cannot restart node {id}: {e}"));
    }

    /// Stops every node and deletes the data, on the blocking pool (dropping a cluster waits for
    /// its JVMs, which must not stall a runtime worker).
    pub async fn shutdown(self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            drop(inner.lock().unwrap_or_else(|e| e.into_inner()).take());
        })
        .await;
    }
}

/// `count` records with values `"{prefix}-{i}"` and timestamps `first_ts + i`.
pub fn records(prefix: &str, count: usize, first_ts: i64) -> Vec<Record> {
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
            // kafka-protocol starts a new batch whenever `offset - sequence` changes, and a
            // Produce request may carry only one batch per partition (else INVALID_RECORD).
            // Counting up from -1 keeps one batch with base sequence -1 (no idempotence).
            sequence: i as i32 - 1,
            timestamp: first_ts + i as i64,
            key: Some(format!("key-{i}").into_bytes().into()),
            value: Some(format!("{prefix}-{i}").into_bytes().into()),
            headers: Default::default(),
        })
        .collect()
}

/// A non-idempotent Produce request (`acks`) carrying one uncompressed batch of `records` for one
/// partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    records: &[Record],
    acks: i16,
) -> ProduceRequest {
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("record batch encodes");
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.freeze()))])])
}

/// Produces `records` to a partition through `conn` (which must reach its leader) with
/// `acks=all`, and returns the base offset the broker assigned.
///
/// Retries NOT_LEADER_OR_FOLLOWER and UNKNOWN_TOPIC_OR_PARTITION for a few seconds: right after
/// a topic is created (or a leader moves) a broker's metadata can name it leader a moment before
/// its replica manager has taken leadership, and any producer retries through that window.
pub async fn produce(conn: &RawConnection, topic: &str, partition: i32, records: &[Record]) -> i64 {
    let request = produce_request(topic, partition, records, -1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = conn
            .send(&request)
            .await
            .unwrap_or_else(|e| panic!("produce to {topic}-{partition} failed: {e}"));
        let p = &response.responses[0].partition_responses[0];
        let retriable = matches!(p.error_code, 3 | 6);
        if p.error_code == 0 {
            return p.base_offset;
        }
        assert!(
            retriable && tokio::time::Instant::now() < deadline,
            "produce to {topic}-{partition} answered error {}: {:?}",
            p.error_code,
            p.error_message
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the broker behind `conn` acts as leader of `topic`'s partitions `0..partitions`
/// (ListOffsets answers without error), for the window described at [`produce`].
pub async fn await_leadership(conn: &RawConnection, topic: &str, partitions: i32) {
    for partition in 0..partitions {
        latest_offset(conn, topic, partition).await;
    }
}

/// The latest offset (high watermark) of `topic`-`partition`, asked of its leader `conn`; retries
/// for the leadership window described at [`produce`].
pub async fn latest_offset(conn: &RawConnection, topic: &str, partition: i32) -> i64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = conn
            .send(&list_latest(topic, partition))
            .await
            .unwrap_or_else(|e| panic!("ListOffsets {topic}-{partition} failed: {e}"));
        let p = &response.topics[0].partitions[0];
        if p.error_code == 0 {
            return p.offset;
        }
        assert!(
            matches!(p.error_code, 3 | 6) && tokio::time::Instant::now() < deadline,
            "{topic}-{partition}: ListOffsets error {}",
            p.error_code
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A ListOffsets request for the latest offset of one partition.
pub fn list_latest(topic: &str, partition: i32) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])])
}

/// A Fetch from offset `offset` of one partition that the broker holds for up to `max_wait_ms`
/// when there is nothing to return (a long poll).
pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])])
}

/// The error code of the single partition of a Fetch response.
pub fn fetch_partition_error(response: &FetchResponse) -> i16 {
    assert_eq!(response.error_code, 0, "fetch failed as a whole");
    response.responses[0].partitions[0].error_code
}

/// One batch as read back from a partition: its header fields and its records at or after the
/// position the fetch asked for (a fetch may start mid-batch).
#[derive(Debug)]
pub struct LoggedBatch {
    /// The batch's codec.
    pub compression: raw::RawCodec,
    /// Producer id (-1 without idempotence).
    pub producer_id: i64,
    /// Whether the batch is part of a transaction.
    pub transactional: bool,
    /// Whether it is a control batch (transaction marker).
    pub control: bool,
    /// Whether this read saw the batch from its first record (so each batch is counted once).
    pub whole: bool,
    /// The batch's first offset.
    pub base_offset: i64,
    /// The batch's last offset.
    pub last_offset: i64,
    /// For a control batch, the type in its control record's key (`[version: i16, type: i16]`,
    /// big-endian), decoded here from the raw key bytes: 0 = abort, 1 = commit. `None` for data
    /// batches.
    pub control_type: Option<i16>,
    /// Records at or after the fetch position, in offset order.
    pub records: Vec<raw::RawRecord>,
}

/// Every batch of `topic`'s partitions `0..partitions`, in log order, read with raw Fetch requests
/// (read_uncommitted) up to each partition's high watermark by the independent judge in
/// [`raw`] — what the broker stored, not any client's bookkeeping.
pub async fn read_log(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, Vec<LoggedBatch>> {
    let cluster = RawCluster::new(bootstrap);
    let mut log = std::collections::BTreeMap::new();
    for p in 0..partitions {
        let tp = format!("{topic}-{p}");
        let conn = cluster.leader_connection(topic, p).await;
        let end = latest_offset(&conn, topic, p).await;
        let mut batches = Vec::new();
        let mut offset = 0;
        while offset < end {
            let response = conn
                .send(&fetch_request(topic, p, offset, 100))
                .await
                .expect("fetch");
            assert_eq!(fetch_partition_error(&response), 0, "{tp}");
            let data = response.responses[0].partitions[0]
                .records
                .clone()
                .unwrap_or_default();
            let found = raw::batches(data).unwrap_or_else(|e| panic!("{tp}: invalid batch: {e}"));
            assert!(
                !found.is_empty(),
                "{tp}: no whole batch at offset {offset} below {end}"
            );
            for batch in found {
                let mut logged = LoggedBatch {
                    compression: batch.compression,
                    producer_id: batch.producer_id,
                    transactional: batch.transactional,
                    control: batch.control,
                    whole: batch.base_offset >= offset,
                    base_offset: batch.base_offset,
                    last_offset: batch.last_offset,
                    control_type: None,
                    records: Vec::new(),
                };
                if batch.control {
                    let marker = batch
                        .records
                        .first()
                        .unwrap_or_else(|| panic!("{tp}: control batch without a record"));
                    let key = marker
                        .key
                        .as_ref()
                        .unwrap_or_else(|| panic!("{tp}: control record without a key"));
                    assert!(key.len() >= 4, "{tp}: control key {key:?} too short");
                    logged.control_type = Some(i16::from_be_bytes([key[2], key[3]]));
                } else {
                    logged.records = batch
                        .records
                        .into_iter()
                        .filter(|r| r.offset >= offset)
                        .collect();
                }
                offset = offset.max(batch.last_offset + 1);
                batches.push(logged);
            }
        }
        log.insert(p, batches);
    }
    log
}

/// Builds example `name` into this test's target directory and profile and returns its path.
/// `cargo test --test X` alone does not build examples, so a stale binary would be tested
/// otherwise. Cargo does not hold the build lock while tests run, so this nested build works.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory layout");
    let target_dir = profile_dir.parent().expect("target directory layout");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    let mut build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--quiet", "--example", name])
        .args([
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build --example {name} failed");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing after the build",
        path.display()
    );
    path
}

/// Builds and runs example `name` with `args` against the shared broker; returns its stdout once
/// it exited successfully (its own checks passed), failing the test with its output otherwise.
pub fn run_example(name: &str, args: &[&str]) -> String {
    run_example_on(name, args, &bootstrap())
}

/// [`run_example`] against the broker(s) at `bootstrap`.
pub fn run_example_on(name: &str, args: &[&str], bootstrap: &str) -> String {
    let out = std::process::Command::new(example_binary(name))
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .output()
        .unwrap_or_else(|e| panic!("run the {name} example: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the {name} example failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the exactly-once demo (`examples/exactly_once.rs`) with `records` input records and
/// `kills` worker kills against `bootstrap`, with the client properties file `properties` (the
/// security settings), and fails the test unless it exited successfully and its own judgement says
/// output = input with no duplicate, loss, reordering or stray record. Returns how long it ran.
pub fn run_exactly_once_demo(
    label: &str,
    bootstrap: &str,
    properties: &std::path::Path,
    records: usize,
    kills: usize,
) -> std::time::Duration {
    let binary = example_binary("exactly_once");
    let started = std::time::Instant::now();
    let output = std::process::Command::new(binary)
        .args([
            "--records",
            &records.to_string(),
            "--kills",
            &kills.to_string(),
        ])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("JOSEFK_CLIENT_PROPERTIES", properties)
        .output()
        .expect("run the exactly_once example");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "{label}: exactly_once --records {records} --kills {kills} took {elapsed:.1?}\n{stdout}"
    );
    assert!(
        output.status.success(),
        "{label}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict = format!(
        "records in {records}, records out {records}, duplicates 0, lost 0, out of order 0, \
         unexpected 0"
    );
    assert!(stdout.contains(&verdict), "{label}: {stdout}");
    elapsed
}

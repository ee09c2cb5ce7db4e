//! Live tests of `josefk::net::Connection` and the pool behind `josefk::cluster::Cluster`, against
//! a real Kafka broker.
//!
//! - ApiVersions handshake and version choice: the capped versions (Produce ≤ 12, Fetch ≤ 12,
//!   AddPartitionsToTxn ≤ 3) are chosen, the finalized `transaction.version` is read, and a
//!   Produce and a Fetch at the chosen versions round-trip real records.
//! - Pipelining: 500 concurrent requests of two APIs on ONE connection each come back to the
//!   caller that sent them (checked by content, not just by count).
//! - Cancellation: a caller dropped while its long poll is in flight does not tear a frame or
//!   desynchronise correlation ids; the connection stays open and serves the next request.
//! - A broker killed mid-flight (private single-node cluster): the in-flight long poll fails as
//!   outcome-unknown promptly, dialling the dead broker fails fast, and after the broker restarts
//!   the pool reconnects. A clean stop (controlled shutdown) mid-flight is covered too.
//! - Unreachable bootstrap (no broker needed): `Cluster::connect` fails with `Error::Connect`
//!   naming the address, within the connection setup timeout, whether the port refuses or a peer
//!   accepts and never answers.
//!
//! The shared broker comes from `KAFKA_BOOTSTRAP_SERVERS` (see `common::bootstrap`); run the suite
//! with `cargo run -p josefk-harness -- test`. It lives in protocol-tests, not in josefk's own
//! tests/, because it drives the internal connection layer; it shares tests/common's builders.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use josefk::admin::{Admin, NewTopic, OffsetSpec};
use josefk::cluster::{Cluster, TopicsQuery};
use josefk::net::{Connection, ConnectionOptions, Lane};
use josefk::{Error, IsolationLevel, TopicPartition};
use josefk_harness::ClusterSpec;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, ApiVersionsRequest, FetchRequest, MetadataRequest,
    ProduceRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::task::JoinSet;
use tokio::time::Instant;

use common::{
    bootstrap, config, fetch_partition_error, fetch_request, init_tracing, list_latest, now_ms,
    produce_request, records, topic_name, unique_topic, PrivateCluster,
};

/// A connected cluster view plus a direct connection to the leader of `topic`-0, created here
/// with `partitions` partitions. Every partition of a fresh topic on the shared single broker has
/// the same leader; the code still looks the leader up so it works against any cluster.
async fn topic_and_leader_connection(
    prefix: &str,
    partitions: i32,
) -> (Cluster, String, Connection) {
    let config = config(&bootstrap());
    let cluster = Cluster::connect(config.clone())
        .await
        .expect("connect to the shared broker");
    let topic = unique_topic(prefix);
    Admin::from_cluster(cluster.clone())
        .create_topics(&[NewTopic::new(&topic, partitions, 1)])
        .await
        .expect("create topic");
    let snapshot = cluster
        .wait_for_topics(&[&topic], Duration::from_secs(15))
        .await
        .expect("topic has leaders");
    let leader = snapshot
        .leader(&TopicPartition::new(&topic, 0))
        .expect("partition 0 has a leader");
    for p in 0..partitions {
        assert_eq!(
            snapshot.leader(&TopicPartition::new(&topic, p)),
            Some(leader),
            "test assumes one leader for the whole topic (single-broker cluster)"
        );
    }
    let addr = snapshot.brokers[&leader].address();
    let conn = Connection::connect(
        &addr,
        Some(leader),
        ConnectionOptions::from_config(&config).unwrap(),
    )
    .await
    .expect("dial the leader");
    await_leadership(&conn, &topic, partitions).await;
    (cluster, topic, conn)
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
}

/// The handshake picks the highest common version with josefk's caps, reads the finalized
/// features, and the chosen Produce/Fetch versions carry real records by topic name.
#[tokio::test(flavor = "multi_thread")]
async fn api_versions_and_version_choice_against_real_broker() {
    let (_cluster, topic, conn) = topic_and_leader_connection("versions", 1).await;
    let v = conn.versions();

    let metadata_range = v
        .broker_range(ApiKey::Metadata)
        .expect("broker advertises Metadata");
    assert_eq!(
        conn.version_for::<MetadataRequest>().unwrap(),
        metadata_range.1.min(ApiKey::Metadata.valid_versions().max),
        "Metadata: highest version both sides speak"
    );
    // Kafka 4.x speaks Produce 13 and Fetch 17+, which name topics by id only; josefk caps both at 12.
    let (_, produce_max) = v.broker_range(ApiKey::Produce).expect("Produce advertised");
    let (_, fetch_max) = v.broker_range(ApiKey::Fetch).expect("Fetch advertised");
    assert!(
        produce_max >= 12 && fetch_max >= 12,
        "a 4.x broker: {produce_max}/{fetch_max}"
    );
    assert_eq!(conn.version_for::<ProduceRequest>().unwrap(), 12);
    assert_eq!(conn.version_for::<FetchRequest>().unwrap(), 12);
    // AddPartitionsToTxn 4+ is broker-to-broker only (KIP-890).
    let (_, aptt_max) = v
        .broker_range(ApiKey::AddPartitionsToTxn)
        .expect("AddPartitionsToTxn advertised");
    assert!(aptt_max >= 4, "a 4.x broker advertises v4+: {aptt_max}");
    assert_eq!(conn.version_for::<AddPartitionsToTxnRequest>().unwrap(), 3);
    assert_eq!(
        v.finalized_feature("transaction.version"),
        Some(2),
        "a default 4.x cluster finalizes transaction.version=2"
    );

    // ApiVersions as an ordinary pipelined request agrees with the handshake.
    // From v3 the broker rejects an empty client software name (INVALID_REQUEST).
    let again = conn
        .send(
            &ApiVersionsRequest::default()
                .with_client_software_name("josefk-it".into())
                .with_client_software_version("0".into()),
        )
        .await
        .unwrap();
    assert_eq!(again.error_code, 0);
    assert!(again.api_keys.len() > 40, "{} APIs", again.api_keys.len());
    for k in &again.api_keys {
        let key = ApiKey::try_from(k.api_key).ok();
        if let Some(key) = key {
            assert_eq!(
                v.broker_range(key),
                Some((k.min_version, k.max_version)),
                "{key:?}"
            );
        }
    }

    // Produce v12 and Fetch v12 identify the topic by name: records go in and come back.
    let base = produce(&conn, &topic, 0, &records("v12", 3, now_ms())).await;
    assert_eq!(base, 0);
    let fetched = conn.send(&fetch_request(&topic, 0, 0, 1000)).await.unwrap();
    assert_eq!(fetch_partition_error(&fetched), 0);
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.high_watermark, 3);
    let mut raw: Bytes = partition.records.clone().expect("records returned");
    let sets = RecordBatchDecoder::decode_all(&mut raw).expect("batch decodes");
    let values: Vec<String> = sets
        .iter()
        .flat_map(|s| &s.records)
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, ["v12-0", "v12-1", "v12-2"]);
    assert!(!conn.is_closed());
}

/// 500 concurrent requests on one connection, of two APIs whose answers differ per request:
/// Metadata for 250 distinct (missing) topic names, which the broker echoes, and ListOffsets for
/// 8 partitions holding 1..=8 records, so each answer names the partition and its own offset.
#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_pipelined_requests_return_to_their_callers() {
    const PARTITIONS: i32 = 8;
    const REQUESTS: usize = 500;
    let (_cluster, topic, conn) = topic_and_leader_connection("pipeline", PARTITIONS).await;
    for p in 0..PARTITIONS {
        produce(&conn, &topic, p, &records("p", p as usize + 1, now_ms())).await;
    }

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..REQUESTS {
        let conn = conn.clone();
        let topic = topic.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                let asked = format!("{topic}-missing-{i}");
                let response = conn.send(&metadata_for(&asked)).await?;
                assert_eq!(response.topics.len(), 1, "request {i}");
                let t = &response.topics[0];
                assert_eq!(
                    t.name.as_ref().map(|n| n.0.to_string()),
                    Some(asked.clone()),
                    "request {i} got another caller's Metadata answer"
                );
                assert_eq!(t.error_code, 3, "{asked} is UNKNOWN_TOPIC_OR_PARTITION");
            } else {
                let partition = (i / 2) as i32 % PARTITIONS;
                let response = conn.send(&list_latest(&topic, partition)).await?;
                let p = &response.topics[0].partitions[0];
                assert_eq!(response.topics[0].name.0.as_str(), topic);
                assert_eq!(
                    p.partition_index, partition,
                    "request {i} got another caller's ListOffsets answer"
                );
                assert_eq!(p.error_code, 0);
                assert_eq!(
                    p.offset,
                    partition as i64 + 1,
                    "partition {partition} holds {} records",
                    partition + 1
                );
            }
            Ok::<usize, Error>(i)
        });
    }
    let mut done = HashSet::new();
    while let Some(joined) = tokio::time::timeout(Duration::from_secs(60), tasks.join_next())
        .await
        .expect("500 pipelined requests finish within 60 s")
    {
        let i = joined
            .expect("request task panicked")
            .unwrap_or_else(|e| panic!("pipelined request failed: {e}"));
        assert!(done.insert(i));
    }
    assert_eq!(done.len(), REQUESTS);
    assert!(!conn.is_closed());
    eprintln!(
        "{REQUESTS} pipelined requests on one connection in {:?}",
        started.elapsed()
    );
}

/// Dropping callers whose requests are queued or on the wire leaves the connection usable: the
/// broker's late answers go nowhere, and the next caller gets its own answer.
#[tokio::test(flavor = "multi_thread")]
async fn dropped_caller_leaves_connection_usable() {
    let (_cluster, topic, conn) = topic_and_leader_connection("cancel", 1).await;
    let long_poll = fetch_request(&topic, 0, 0, 500);

    // Dropped almost at once: possibly before the request reached the wire.
    let r = tokio::time::timeout(Duration::from_millis(1), conn.send(&long_poll)).await;
    assert!(
        r.is_err(),
        "a 500 ms long poll on an empty partition cannot answer in 1 ms"
    );
    // Dropped while certainly on the wire: the broker holds it for 500 ms.
    tokio::select! {
        r = conn.send(&long_poll) => panic!("long poll answered early: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(150)) => {}
    }
    assert!(
        !conn.is_closed(),
        "dropping callers must not close the connection"
    );

    // The broker answers the abandoned polls first, then this one; a mix-up would fail to decode
    // a Fetch answer as Metadata or name the wrong topic.
    let started = Instant::now();
    let response = conn
        .send(&metadata_for(&topic))
        .await
        .expect("next request");
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].name.as_ref().unwrap().0.as_str(), topic);
    eprintln!(
        "metadata behind abandoned long polls answered after {:?}",
        started.elapsed()
    );

    // A full long poll on the same connection still gets its own answer.
    let fetched = conn
        .send(&fetch_request(&topic, 0, 0, 100))
        .await
        .expect("fetch after cancellations");
    assert_eq!(fetch_partition_error(&fetched), 0);
    assert_eq!(fetched.responses[0].partitions[0].high_watermark, 0);
    assert!(!conn.is_closed());
}

/// Waits until `f` returns `Some`, retrying every 200 ms until `within`; panics with `what`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(t) => return t,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A long poll in flight when its broker dies fails as outcome-unknown (and promptly), the dead
/// broker is refused fast rather than hung on, and after a restart the pool dials afresh and
/// requests succeed. Then the same for a clean (controlled) shutdown, which closes connections
/// before completing held long polls, so they are outcome-unknown too.
#[tokio::test(flavor = "multi_thread")]
async fn broker_stopped_mid_flight_fails_in_flight_then_reconnects() {
    let kafka = PrivateCluster::start(ClusterSpec::single()).await;
    let node = kafka.node_ids().await[0];
    let config = config(&kafka.bootstrap_servers())
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    let cluster = Cluster::connect(config).await.expect("connect");
    let admin = Admin::from_cluster(cluster.clone());
    let topic = unique_topic("crash");
    admin
        .create_topics(&[NewTopic::new(&topic, 1, 1)])
        .await
        .expect("create topic");
    let control = cluster.connection(node, Lane::Control).await.unwrap();
    await_leadership(&control, &topic, 1).await;

    for (round, crash) in [(1, true), (2, false)] {
        let conn = cluster
            .connection(node, Lane::Fetch)
            .await
            .expect("fetch connection");
        // The pool's open control connection: the dial below must not be handed it because its
        // task has not seen the broker go yet.
        let control = cluster
            .connection(node, Lane::Control)
            .await
            .expect("control connection");
        let poll = {
            let conn = conn.clone();
            let request = fetch_request(&topic, 0, 0, 5_000);
            tokio::spawn(async move { conn.send(&request).await })
        };
        // A second request pipelined behind the poll (once the poll is surely on the wire): the
        // broker answers in order, so it is unanswered too when the broker goes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let behind = {
            let conn = conn.clone();
            let request = metadata_for(&topic);
            tokio::spawn(async move { conn.send(&request).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !poll.is_finished(),
            "round {round}: long poll answered early"
        );

        let started = Instant::now();
        if crash {
            kafka.kill_node(node).await;
        } else {
            kafka.stop_node(node).await;
        }
        let result = tokio::time::timeout(Duration::from_secs(30), poll)
            .await
            .expect("in-flight request settles once its broker is gone")
            .unwrap();
        let waited = started.elapsed();
        let e = result.expect_err("the broker went before answering");
        assert!(
            matches!(
                e,
                Error::ConnectionLost {
                    outcome_unknown: true,
                    api: Some(josefk::ApiKey::Fetch),
                    ..
                }
            ),
            "round {round}: in-flight Fetch must be outcome-unknown, got {e}"
        );
        assert!(e.outcome_unknown() && e.is_retriable());
        let e = behind.await.unwrap().expect_err("pipelined request");
        assert!(
            e.outcome_unknown(),
            "round {round}: pipelined behind the poll: {e}"
        );
        if crash {
            // Settled by the crash, not by the 5 s long poll ending (kill_node includes waiting
            // for the JVM to exit). A clean stop may itself take seconds, so it is not timed.
            assert!(waited < Duration::from_secs(5), "settled after {waited:?}");
        }
        eventually(
            &format!("round {round}: connections marked closed"),
            Duration::from_secs(5),
            || async {
                (conn.is_closed() && control.is_closed())
                    .then_some(())
                    .ok_or_else(|| "open".to_owned())
            },
        )
        .await;

        // While the broker is down, dialling it is refused at once, with its address named. The
        // freed port is held (bound, not listening) meanwhile: otherwise another process, or
        // the kernel picking an ephemeral port for some outgoing connection (even this dial's
        // own, a TCP self-connect), can take it and the dial succeeds.
        let addr = kafka.broker_address(node).await;
        match hold_port(&addr) {
            Ok(held) => {
                let started = Instant::now();
                let e = cluster
                    .connection(node, Lane::Control)
                    .await
                    .expect_err("broker is down");
                assert!(matches!(e, Error::Connect { .. }), "round {round}: {e}");
                assert!(e.to_string().contains(&addr), "{e} should name {addr}");
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "dial took {:?}",
                    started.elapsed()
                );
                drop(held);
            }
            // Taken before it could be held: what a dial reaches is no longer the broker, so
            // there is nothing to assert about it (the restart below then fails on its own).
            Err(e) => eprintln!("round {round}: {addr} was taken while the broker was down: {e}"),
        }

        kafka.start_node(node).await;
        let restarted = Instant::now();
        let fetched = eventually(
            &format!("round {round}: fetch through the pool after restart"),
            Duration::from_secs(60),
            || async {
                let conn = cluster
                    .connection(node, Lane::Fetch)
                    .await
                    .map_err(|e| e.to_string())?;
                let r = conn
                    .send(&fetch_request(&topic, 0, 0, 100))
                    .await
                    .map_err(|e| e.to_string())?;
                match fetch_partition_error(&r) {
                    0 => Ok((conn, r)),
                    code => Err(format!("partition error {code}")),
                }
            },
        )
        .await;
        assert!(!fetched.0.is_closed());
        assert_eq!(fetched.1.responses[0].partitions[0].high_watermark, 0);
        // Metadata and admin calls go through the pool's replacement connections too.
        let snapshot = cluster
            .refresh_metadata(TopicsQuery::Some(&[&topic]))
            .await
            .expect("metadata after restart");
        assert_eq!(snapshot.leader(&TopicPartition::new(&topic, 0)), Some(node));
        let offsets = admin
            .list_offsets(
                &[(TopicPartition::new(&topic, 0), OffsetSpec::Latest)],
                IsolationLevel::ReadUncommitted,
            )
            .await
            .expect("list offsets after restart");
        assert_eq!(offsets[&TopicPartition::new(&topic, 0)].offset, 0);
        eprintln!(
            "round {round} ({}): usable again {:?} after the restart finished",
            if crash { "kill" } else { "clean stop" },
            restarted.elapsed()
        );
    }
    // Close josefk's connections first, so the broker's shutdown is not logged as lost connections.
    drop((admin, cluster));
    kafka.shutdown().await;
}

/// Holds `addr`'s port without listening on it, until dropped: dials to it are refused at once,
/// and no other process (nor the kernel, choosing an ephemeral port for an outgoing connection)
/// can take it. A port that was merely freed gives no such guarantee on a busy machine.
fn hold_port(addr: &str) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // The stopped broker's connections may linger in TIME_WAIT on the port.
    socket.set_reuseaddr(true)?;
    socket.bind(addr.parse().expect("an ip:port address"))?;
    Ok(socket)
}

/// A loopback port nobody listens on, held (see [`hold_port`]) until the socket is dropped.
fn refusing_port() -> (tokio::net::TcpSocket, String) {
    let socket = hold_port("127.0.0.1:0").expect("bind a loopback port");
    let addr = socket.local_addr().expect("bound address").to_string();
    (socket, addr)
}

/// A bootstrap address nobody listens on: refused at once, `Error::Connect` naming it.
#[tokio::test(flavor = "multi_thread")]
async fn refused_bootstrap_fails_fast_with_connect_error_naming_the_address() {
    init_tracing();
    let (_held, addr) = refusing_port();
    let started = Instant::now();
    let e = Cluster::connect(josefk::ClientConfig::new(&addr))
        .await
        .expect_err("nobody listens there");
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&addr), "{e} should name {addr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A bootstrap peer that accepts TCP but never answers ApiVersions: the connect gives up at the
/// setup timeout (it does not hang), with an `Error::Connect` naming the address; every bootstrap
/// address tried is named.
#[tokio::test(flavor = "multi_thread")]
async fn silent_bootstrap_fails_at_setup_timeout_with_connect_error() {
    init_tracing();
    // The kernel completes the TCP handshake from the listen backlog; nothing ever reads.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (_held, refused_addr) = refusing_port();
    let setup = Duration::from_millis(1_000);
    let config = josefk::ClientConfig::new(&format!("{silent_addr},{refused_addr}"))
        .connection_setup_timeout(setup);
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), Cluster::connect(config))
        .await
        .expect("Cluster::connect must not hang on a silent peer")
        .expect_err("the peer never answers");
    let waited = started.elapsed();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains(&silent_addr),
        "{text} should name {silent_addr}"
    );
    assert!(
        text.contains(&refused_addr),
        "{text} should name {refused_addr}"
    );
    assert!(
        text.contains("setup") || text.contains("timed out"),
        "{text} should say the setup timed out"
    );
    assert!(
        waited >= setup && waited < setup + Duration::from_secs(3),
        "gave up after {waited:?} (setup timeout {setup:?})"
    );
    drop(silent);
}

/// Produces `records` through josefk's own connection `conn` (to the partition's leader) with
/// `acks=all` and returns the base offset; retries the leadership window after topic creation.
async fn produce(
    conn: &Connection,
    topic: &str,
    partition: i32,
    records: &[kafka_protocol::records::Record],
) -> i64 {
    let request = produce_request(topic, partition, records, -1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = conn
            .send(&request)
            .await
            .unwrap_or_else(|e| panic!("produce to {topic}-{partition} failed: {e}"));
        let p = &response.responses[0].partition_responses[0];
        if p.error_code == 0 {
            return p.base_offset;
        }
        assert!(
            matches!(p.error_code, 3 | 6) && Instant::now() < deadline,
            "produce to {topic}-{partition}: error {}",
            p.error_code
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the broker behind `conn` leads `topic`'s partitions `0..partitions` (ListOffsets
/// answers without error).
async fn await_leadership(conn: &Connection, topic: &str, partitions: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for partition in 0..partitions {
        loop {
            let response = conn
                .send(&list_latest(topic, partition))
                .await
                .unwrap_or_else(|e| panic!("ListOffsets {topic}-{partition} failed: {e}"));
            let code = response.topics[0].partitions[0].error_code;
            if code == 0 {
                break;
            }
            assert!(
                matches!(code, 3 | 6) && Instant::now() < deadline,
                "{topic}-{partition}: ListOffsets error {code}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

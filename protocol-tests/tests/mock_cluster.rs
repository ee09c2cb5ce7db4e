//! `josefk::testing::MockCluster` behaving as a broker where it matters for exactly-once: retried
//! produces written once, sequence gaps and stale epochs refused, a fenced transactional producer
//! unable to commit, nothing lost across leader moves and cut connections, injected faults fired.
//! No broker needed: the mock is in-process.

use std::time::Duration;

use bytes::BytesMut;
use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::net::{Connection, ConnectionOptions};
use josefk::producer::{Producer, ProducerConfig};
use josefk::protocol::records::{encode_batch, BatchOptions, RecordInput};
use josefk::testing::{Api, Fault, MockCluster};
use josefk::{
    ClientConfig, ErrorClass, Guarantee, Header, IsolationLevel, ProducerRecord, TopicPartition,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn client(cluster: &MockCluster) -> ClientConfig {
    ClientConfig::new(&cluster.bootstrap_servers()).request_timeout(Duration::from_secs(20))
}

/// Every value of `topic` (partitions `0..n`) from the beginning, read until `expected` arrived.
async fn read(
    cluster: &MockCluster,
    topic: &str,
    n: i32,
    isolation: IsolationLevel,
    expected: usize,
) -> Vec<(i32, String)> {
    let config = ConsumerConfig::with_client(client(cluster))
        .isolation_level(isolation)
        .auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::connect(config).await.unwrap();
    let all: Vec<_> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(&all).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..50 {
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            out.push((r.partition, v));
        }
        if out.len() >= expected {
            // One more poll: anything beyond `expected` is a duplicate or a leak.
            for r in consumer.poll(Duration::from_millis(300)).await.unwrap() {
                out.push((r.partition, format!("extra at offset {}", r.offset)));
            }
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_retried_after_a_lost_response_is_written_once() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    // The second produce is written, then its connection is cut before the answer.
    cluster.inject(Fault::delay(Api::Produce, Duration::ZERO));
    cluster.inject(Fault::drop_response(Api::Produce));
    let producer = Producer::connect(
        ProducerConfig::with_client(client(&cluster)).guarantee(Guarantee::ExactlyOnce),
    )
    .await
    .unwrap();
    for i in 0..5 {
        let ack = producer
            .send(ProducerRecord::new("t", format!("v{i}")))
            .await
            .unwrap();
        assert_eq!(ack.await.unwrap().offset, Some(i));
    }
    assert_eq!(cluster.pending_faults(), 0, "the faults fired");
    assert_eq!(
        cluster.end_offset("t", 0),
        Some(5),
        "the retried batch was written once"
    );
    let values = read(&cluster, "t", 1, IsolationLevel::ReadUncommitted, 5).await;
    let expected: Vec<_> = (0..5).map(|i| (0, format!("v{i}"))).collect();
    assert_eq!(values, expected);
}

fn batch(pid: i64, epoch: i16, seq: i32) -> bytes::Bytes {
    let opts = BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    let mut out = BytesMut::new();
    let record = RecordInput::<Header> {
        timestamp: 1,
        key: None,
        value: Some(b"x"),
        headers: &[],
    };
    encode_batch(&mut out, &opts, [record]).unwrap();
    out.freeze()
}

async fn produce(conn: &Connection, pid: i64, epoch: i16, seq: i32) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(pid, epoch, seq)))])]);
    let response = conn.send(&request).await.unwrap();
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gaps_and_stale_epochs_are_refused() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let options = ConnectionOptions::from_config(&client(&cluster)).unwrap();
    let conn = Connection::connect(&cluster.bootstrap_servers(), Some(1), options)
        .await
        .unwrap();
    let init = conn
        .send(
            &InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_timeout_ms(60000),
        )
        .await
        .unwrap();
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert_eq!(
        produce(&conn, pid, 0, 1).await.0,
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a new producer starts at 0"
    );
    assert_eq!(produce(&conn, pid, 0, 0).await, (0, 0));
    assert_eq!(
        produce(&conn, pid, 0, 2).await.0,
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "gap"
    );
    assert_eq!(produce(&conn, pid, 0, 1).await, (0, 1));
    assert_eq!(
        produce(&conn, pid, 0, 1).await,
        (0, 1),
        "a duplicate answers with its offset"
    );
    // KIP-360 bump: epoch 1, sequences from 0 again; epoch 0 is stale from now on.
    let bump = conn
        .send(
            &InitProducerIdRequest::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0)
                .with_transaction_timeout_ms(60000),
        )
        .await
        .unwrap();
    assert_eq!(
        (bump.error_code, bump.producer_id.0, bump.producer_epoch),
        (0, pid, 1)
    );
    assert_eq!(
        produce(&conn, pid, 1, 2).await.0,
        OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a new epoch starts at 0"
    );
    assert_eq!(produce(&conn, pid, 1, 0).await, (0, 2));
    assert_eq!(produce(&conn, pid, 0, 2).await.0, INVALID_PRODUCER_EPOCH);
    assert_eq!(cluster.end_offset("t", 0), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_transactional_producer_cannot_commit() {
    let cluster = MockCluster::start(3).await.unwrap();
    cluster.create_topic("t", 2).unwrap();
    let txn_producer = || {
        Producer::connect(
            ProducerConfig::with_client(client(&cluster))
                .guarantee(Guarantee::ExactlyOnce)
                .transactional_id("same-id"),
        )
    };
    let zombie = txn_producer().await.unwrap();
    zombie.init_transactions().await.unwrap();
    zombie.begin_transaction().unwrap();
    for p in 0..2 {
        drop(
            zombie
                .send(ProducerRecord::new("t", "zombie").partition(p))
                .await
                .unwrap(),
        );
    }
    zombie.flush().await.unwrap();

    let successor = txn_producer().await.unwrap();
    successor.init_transactions().await.unwrap();
    let err = zombie.commit_transaction().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    successor.begin_transaction().unwrap();
    drop(
        successor
            .send(ProducerRecord::new("t", "successor").partition(1))
            .await
            .unwrap(),
    );
    successor.commit_transaction().await.unwrap();

    let committed = read(&cluster, "t", 2, IsolationLevel::ReadCommitted, 1).await;
    assert_eq!(committed, [(1, "successor".to_string())]);
    // The zombie's records are in the log, aborted: 2 records + 2 abort markers + 1 record +
    // 1 commit marker.
    let ends: Vec<_> = (0..2)
        .map(|p| cluster.end_offset("t", p).unwrap())
        .collect();
    assert_eq!(ends, [2, 4]);
    let everything = read(&cluster, "t", 2, IsolationLevel::ReadUncommitted, 3).await;
    assert_eq!(everything.len(), 3, "{everything:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_across_leader_moves_and_cut_connections() {
    let cluster = MockCluster::start(3).await.unwrap();
    cluster.create_topic("t", 3).unwrap();
    let producer = Producer::connect(
        ProducerConfig::with_client(client(&cluster)).guarantee(Guarantee::ExactlyOnce),
    )
    .await
    .unwrap();
    let send = |i: i32| producer.send(ProducerRecord::new("t", format!("v{i}")).partition(i % 3));
    for i in 0..30 {
        send(i).await.unwrap().await.unwrap();
    }
    for p in 0..3 {
        let old = cluster.leader("t", p).unwrap();
        let new = cluster
            .broker_ids()
            .into_iter()
            .find(|&b| b != old)
            .unwrap();
        cluster.move_leader("t", p, new).unwrap();
        assert_eq!(cluster.leader("t", p), Some(new));
    }
    cluster.drop_connections();
    cluster.inject(Fault::drop_connection(Api::Fetch));
    cluster.inject(Fault::delay(Api::Fetch, Duration::from_millis(300)));
    for i in 30..60 {
        send(i).await.unwrap().await.unwrap();
    }
    let values = read(&cluster, "t", 3, IsolationLevel::ReadUncommitted, 60).await;
    assert_eq!(cluster.pending_faults(), 0, "the faults fired");
    for p in 0..3 {
        let got: Vec<&str> = values
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, v)| v.as_str())
            .collect();
        let expected: Vec<String> = (0..60)
            .filter(|i| i % 3 == p)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(got, expected, "partition {p}");
    }
}

/// A commit whose EndTxn answer is lost: the retry (on `transaction.version` 2 with the epoch
/// from before the coordinator's bump) succeeds, and the next transaction goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_end_txn_answer_is_retried_safely() {
    for version in [0, 2] {
        let cluster = MockCluster::builder()
            .transaction_version(version)
            .start()
            .await
            .unwrap();
        cluster.create_topic("t", 1).unwrap();
        let producer = Producer::connect(
            ProducerConfig::with_client(client(&cluster))
                .guarantee(Guarantee::ExactlyOnce)
                .transactional_id("lost-end"),
        )
        .await
        .unwrap();
        producer.init_transactions().await.unwrap();
        cluster.inject(Fault::drop_response(Api::EndTxn));
        for n in 0..2 {
            producer.begin_transaction().unwrap();
            drop(
                producer
                    .send(ProducerRecord::new("t", format!("txn{n}")))
                    .await
                    .unwrap(),
            );
            producer
                .commit_transaction()
                .await
                .unwrap_or_else(|e| panic!("transaction.version {version}, txn {n}: {e}"));
        }
        assert_eq!(cluster.pending_faults(), 0);
        assert_eq!(cluster.requests(Api::EndTxn), 3, "one EndTxn retried");
        let committed = read(&cluster, "t", 1, IsolationLevel::ReadCommitted, 2).await;
        let expected = [(0, "txn0".to_string()), (0, "txn1".to_string())];
        assert_eq!(committed, expected, "transaction.version {version}");
    }
}

/// A fault for one broker catches only that broker's requests, as many times as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fire_on_the_chosen_broker_as_many_times_as_asked() {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let cluster = MockCluster::start(2).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let leader = cluster.leader("t", 0).unwrap();
    let other = cluster
        .broker_ids()
        .into_iter()
        .find(|&b| b != leader)
        .unwrap();
    cluster.inject(Fault::error(Api::Produce, NOT_LEADER_OR_FOLLOWER).on_broker(other));
    cluster.inject(
        Fault::error(Api::Produce, NOT_LEADER_OR_FOLLOWER)
            .on_broker(leader)
            .times(3),
    );
    let producer = Producer::connect(
        ProducerConfig::with_client(client(&cluster)).guarantee(Guarantee::ExactlyOnce),
    )
    .await
    .unwrap();
    let ack = producer.send(ProducerRecord::new("t", "v")).await.unwrap();
    assert_eq!(ack.await.unwrap().offset, Some(0));
    assert_eq!(cluster.requests(Api::Produce), 4, "3 refused, then written");
    assert_eq!(
        cluster.pending_faults(),
        1,
        "the other broker's fault never fired"
    );
    assert_eq!(cluster.end_offset("t", 0), Some(1));
}

/// A member that vanishes without LeaveGroup is expired after its session timeout, even while
/// the group waits for it to rejoin, and its partitions go to the member that is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_member_is_expired_and_its_partitions_move() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 2).unwrap();
    let member = || {
        Consumer::connect(
            ConsumerConfig::with_client(client(&cluster))
                .group_id("g")
                .session_timeout(Duration::from_secs(2))
                .heartbeat_interval(Duration::from_millis(500))
                .auto_offset_reset(AutoOffsetReset::Earliest),
        )
    };
    let mut a = member().await.unwrap();
    a.subscribe(&["t"]).unwrap();
    for _ in 0..100 {
        if a.assignment().len() == 2 {
            break;
        }
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(a.assignment().len(), 2);
    drop(a); // no LeaveGroup, no more heartbeats
    let mut b = member().await.unwrap();
    b.subscribe(&["t"]).unwrap();
    // a's rebalance timeout (max.poll.interval.ms, 5 minutes) would be far beyond this loop.
    for _ in 0..300 {
        if b.assignment().len() == 2 {
            break;
        }
        b.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(b.assignment().len(), 2, "b took over both partitions");
}

/// ListOffsets by timestamp finds the first record at or after it, inside a batch too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_find_the_record_inside_a_batch() {
    use josefk::admin::{Admin, OffsetSpec};
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let options = ConnectionOptions::from_config(&client(&cluster)).unwrap();
    let conn = Connection::connect(&cluster.bootstrap_servers(), Some(1), options)
        .await
        .unwrap();
    // One batch of records stamped 100, 200, 300.
    let mut out = BytesMut::new();
    let records = [100i64, 200, 300].map(|ts| RecordInput::<Header> {
        timestamp: ts,
        key: None,
        value: Some(b"x"),
        headers: &[],
    });
    encode_batch(&mut out, &BatchOptions::default(), records).unwrap();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(out.freeze()))])]);
    let response = conn.send(&request).await.unwrap();
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let admin = Admin::connect(client(&cluster)).await.unwrap();
    let tp = TopicPartition::new("t", 0);
    for (ts, offset) in [(50, 0), (150, 1), (300, 2), (301, -1)] {
        let found = admin
            .list_offsets(
                &[(tp.clone(), OffsetSpec::Timestamp(ts))],
                IsolationLevel::ReadUncommitted,
            )
            .await
            .unwrap();
        assert_eq!(found[&tp].offset, offset, "timestamp {ts}");
    }
}

/// Garbage and absurd frame lengths close the offending connection; the mock keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_client_closes_only_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = MockCluster::start(1).await.unwrap();
    let addr = cluster.bootstrap_servers();
    let frames: [&[u8]; 3] = [
        &[0x7f, 0xff, 0xff, 0xff],       // 2 GiB announced
        &[0, 0, 0, 6, 0, 0, 0, 0, 0, 0], // a header cut short
        &[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f], // Produce v0, garbage body
    ];
    for frame in frames {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(frame).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "connection closed without an answer: {read:?} {buf:?}"
        );
    }
    cluster.create_topic("t", 1).unwrap();
    let producer = Producer::connect(ProducerConfig::with_client(client(&cluster)))
        .await
        .unwrap();
    let ack = producer
        .send(ProducerRecord::new("t", "still here"))
        .await
        .unwrap();
    assert_eq!(ack.await.unwrap().offset, Some(0));
}

/// A transaction open past `transaction.timeout.ms` is aborted by the mock's coordinator, with
/// what Kafka 4.4 answers afterwards (see tests/transactions.rs, `transaction_timeout`): the commit
/// fails abortably; on transaction.version 2 the same producer aborts and goes on, on 0 the epoch
/// is fenced and a new producer instance goes on. The expired records stay invisible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted() {
    for version in [2, 0] {
        let cluster = MockCluster::builder()
            .transaction_version(version)
            .start()
            .await
            .unwrap();
        cluster.create_topic("t", 1).unwrap();
        let connect = || async {
            let mut config = ProducerConfig::with_client(client(&cluster))
                .guarantee(Guarantee::ExactlyOnce)
                .transactional_id("slow");
            config.transaction_timeout = Duration::from_millis(1000);
            let producer = Producer::connect(config).await.unwrap();
            producer.init_transactions().await.unwrap();
            producer
        };
        let mut producer = connect().await;
        producer.begin_transaction().unwrap();
        let f = producer
            .send(ProducerRecord::new("t", "expired"))
            .await
            .unwrap();
        f.await.unwrap();
        // Timeout (1 s) plus slack: the mock checks every 50 ms.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let e = producer.commit_transaction().await.unwrap_err();
        assert_eq!(
            e.class(),
            ErrorClass::Abortable,
            "transaction.version {version}: {e}"
        );
        if version == 2 {
            producer.abort_transaction().await.unwrap();
        } else {
            let e = producer.abort_transaction().await.unwrap_err();
            assert_eq!(e.class(), ErrorClass::Fatal, "{e}");
            producer.close(Duration::from_secs(1)).await.ok();
            producer = connect().await;
        }
        producer.begin_transaction().unwrap();
        drop(
            producer
                .send(ProducerRecord::new("t", "fresh"))
                .await
                .unwrap(),
        );
        producer.commit_transaction().await.unwrap();
        let committed = read(&cluster, "t", 1, IsolationLevel::ReadCommitted, 1).await;
        assert_eq!(
            committed,
            [(0, "fresh".to_string())],
            "transaction.version {version}"
        );
    }
}

/// On transaction.version 2, after the coordinator aborted a transaction on its timeout (bumping
/// the epoch), a commit with the old epoch answers INVALID_TXN_STATE and an abort with it answers
/// success with the new epoch, as Kafka 4.4 does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_after_a_timeout_abort_answers_as_kafka_4() {
    use kafka_protocol::messages::{EndTxnRequest, TransactionalId};
    const INVALID_TXN_STATE: i16 = 48;
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 1).unwrap();
    let options = ConnectionOptions::from_config(&client(&cluster)).unwrap();
    let conn = Connection::connect(&cluster.bootstrap_servers(), Some(1), options)
        .await
        .unwrap();
    let id = TransactionalId(StrBytes::from_static_str("raw"));
    let init = conn
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(id.clone()))
                .with_transaction_timeout_ms(300)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await
        .unwrap();
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let opts = BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
        transactional: true,
        ..BatchOptions::default()
    };
    let mut out = BytesMut::new();
    let record = RecordInput::<Header> {
        timestamp: 1,
        key: None,
        value: Some(b"x"),
        headers: &[],
    };
    encode_batch(&mut out, &opts, [record]).unwrap();
    let produce = ProduceRequest::default()
        .with_transactional_id(Some(id.clone()))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(out.freeze()))])]);
    let written = conn.send(&produce).await.unwrap();
    assert_eq!(written.responses[0].partition_responses[0].error_code, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let end = |committed: bool| {
        EndTxnRequest::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(committed)
    };
    let commit = conn.send(&end(true)).await.unwrap();
    assert_eq!(commit.error_code, INVALID_TXN_STATE);
    let abort = conn.send(&end(false)).await.unwrap();
    assert_eq!(
        (abort.error_code, abort.producer_id.0, abort.producer_epoch),
        (0, pid, epoch + 1)
    );
    // The timed-out record is behind an abort marker: nothing is stable but the marker's end.
    assert_eq!(cluster.end_offset("t", 0), Some(2));
}

/// KIP-794 adaptive partitioning: while one broker holds its Produce requests, keyless records
/// pile up in its partition's queue, and the sticky partitioner's next choices favour the other
/// partition; with `partitioner.adaptive.partitioning.enable=false` the choice stays uniform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_partitioning_steers_keyless_records_away_from_a_slow_broker() {
    const RECORDS: usize = 300;
    for adaptive in [true, false] {
        let cluster = MockCluster::start(2).await.unwrap();
        cluster.create_topic("t", 2).unwrap();
        for (p, node) in [(0, 1), (1, 2)] {
            if cluster.leader("t", p) != Some(node) {
                cluster.move_leader("t", p, node).unwrap();
            }
        }
        let mut config = ProducerConfig::with_client(client(&cluster));
        config.linger = Duration::ZERO;
        // Every record fills a batch of its own, so the sticky partitioner moves on after each.
        config.batch_size = 100;
        config.adaptive_partitioning = adaptive;
        let producer = Producer::connect(config).await.unwrap();
        // Broker 2 answers nothing for 6 s (later requests on its connection wait too). Only
        // records sent within 5 s of the first are judged: all of them met the held broker,
        // however slowly a loaded machine runs this loop.
        cluster.inject(Fault::delay(Api::Produce, Duration::from_secs(6)).on_broker(2));
        let mut deliveries = Vec::with_capacity(RECORDS);
        let first = std::time::Instant::now();
        for _ in 0..RECORDS {
            let delivery = producer
                .send(ProducerRecord::new("t", vec![7u8; 150]))
                .await
                .unwrap();
            deliveries.push((first.elapsed() < Duration::from_secs(5), delivery));
            // Lets the sender run a pass (it weighs the queues) between records.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (mut judged, mut on_slow, mut on_slow_judged) = (0, 0, 0);
        for (while_held, delivery) in deliveries {
            let written = tokio::time::timeout(Duration::from_secs(60), delivery)
                .await
                .expect("delivered within 60 s")
                .expect("delivered");
            let slow = usize::from(written.partition == 1);
            on_slow += slow;
            if while_held {
                judged += 1;
                on_slow_judged += slow;
            }
        }
        assert_eq!(cluster.pending_faults(), 0, "the delay fired");
        let ends = [0, 1].map(|p| cluster.end_offset("t", p).unwrap());
        assert_eq!(ends, [(RECORDS - on_slow) as i64, on_slow as i64]);
        eprintln!(
            "adaptive {adaptive}: {on_slow} of {RECORDS} on the slow broker's partition \
             ({on_slow_judged} of the {judged} sent while it was held)"
        );
        if adaptive {
            assert!(judged >= 100, "only {judged} records sent in 5 s");
            assert!(
                on_slow_judged < judged / 3,
                "{on_slow_judged} of {judged} on the slow partition"
            );
        } else {
            // Uniform: binomial(300, 1/2) stays above 100 but for odds of about 1e-8.
            assert!(
                on_slow > RECORDS / 3,
                "{on_slow} of {RECORDS} on the slow partition"
            );
        }
        producer.close(Duration::from_secs(10)).await.unwrap();
    }
}

/// A send that finds `buffer.memory` full makes every queued batch sendable at once (Java's
/// `exhausted`), not only the one it refused behind: a batch lingering for 30 s on another
/// partition is sent, its memory comes back, and the waiting record goes through long before
/// `max.block.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_memory_sends_batches_lingering_on_other_partitions() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.create_topic("t", 2).unwrap();
    let mut config = ProducerConfig::with_client(client(&cluster));
    config.linger = Duration::from_secs(30);
    config.batch_size = 1024;
    config.max_request_size = 4096;
    config.buffer_memory = 4096;
    config.max_block = Duration::from_secs(20);
    let producer = Producer::connect(config).await.unwrap();
    let lingering = producer
        .send(ProducerRecord::new("t", vec![1u8; 100]).partition(0))
        .await
        .unwrap();
    // Let the sender see that batch and settle down to wait out its linger.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cluster.end_offset("t", 0),
        Some(0),
        "sent before its linger"
    );
    // Needs the memory the lingering batch holds, on the other partition.
    let started = std::time::Instant::now();
    let waiting = producer
        .send(ProducerRecord::new("t", vec![2u8; 3500]).partition(1))
        .await
        .expect("queued once the lingering batch's memory came back");
    let waited = started.elapsed();
    let lingering = lingering.await.unwrap();
    assert_eq!((lingering.partition, lingering.offset), (0, Some(0)));
    assert!(
        waited < Duration::from_secs(15),
        "the send waited {waited:?} (the batch's linger is 30 s, max.block.ms 20 s)"
    );
    // The record that waited goes out with the memory pressure over: flush, not its linger.
    producer.flush().await.unwrap();
    let waiting = waiting.await.unwrap();
    assert_eq!((waiting.partition, waiting.offset), (1, Some(0)));
    assert_eq!([0, 1].map(|p| cluster.end_offset("t", p).unwrap()), [1, 1]);
    producer.close(Duration::from_secs(10)).await.unwrap();
}

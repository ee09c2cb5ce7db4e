//! Real responses from a real broker pass the decode pre-check, and are kept as fuzz seeds.
//!
//! Sends one request of every API josefk decodes (at the version it would choose) to the broker in
//! `KAFKA_BOOTSTRAP_SERVERS`, checks each raw answer decodes through josefk's own path (pre-check
//! included), and writes it to `fuzz/corpus/responses/live-<api>-v<version>`. Requests use the
//! fields of the newest versions (Kafka 4.x brokers). Many answers are
//! error answers (a JoinGroup without a member id, a Heartbeat from a stranger): they are real
//! frames all the same. Ignored by default because it needs a broker and writes into the repo:
//!
//! ```text
//! cargo run -p josefk-harness -- start   # prints KAFKA_BOOTSTRAP_SERVERS
//! KAFKA_BOOTSTRAP_SERVERS=... cargo test -p protocol-tests --test live_response_capture -- --ignored
//! ```

use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use josefk::__fuzz;
use josefk::net::{Connection, ConnectionOptions};
use josefk::protocol::codec::ApiRequest;
use josefk::protocol::records::{encode_batch, BatchOptions, RecordInput};
use josefk::protocol::{decode_response, encode_request, Compression};
use josefk::{ClientConfig, Header};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Sends `request` at the version josefk would choose, checks the raw answer decodes through
/// josefk's path, writes it as a seed, and returns the decoded answer.
async fn capture<R: ApiRequest>(conn: &Connection, request: &R) -> R::Response {
    let version = conn.version_for::<R>().expect("the broker speaks the API");
    let encoded = encode_request(request, version, "josefk-capture").expect("request encodes");
    let frame = conn
        .send_encoded(encoded, Some(Duration::from_secs(30)))
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", R::KEY));
    let response = decode_response::<R>(frame.clone(), version, Some(conn.broker()))
        .unwrap_or_else(|e| panic!("a real {:?} v{version} answer is refused: {e}", R::KEY));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/responses");
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let input = __fuzz::response_input(R::KEY, version, &frame);
    assert!(__fuzz::decode_response_input(&input).is_some_and(|r| r.is_ok()));
    std::fs::write(dir.join(format!("live-{:?}-v{version}", R::KEY)), input).expect("seed");
    response
}

#[tokio::test]
#[ignore = "needs KAFKA_BOOTSTRAP_SERVERS and writes fuzz seeds; run by hand"]
async fn real_responses_pass_the_precheck() {
    let servers = josefk_harness::bootstrap_servers_from_env().unwrap_or_else(|e| panic!("{e}"));
    let config = ClientConfig::new(&servers).client_id("josefk-capture");
    let addr = config.bootstrap_servers[0].clone();
    let conn = Connection::connect(
        &addr,
        None,
        ConnectionOptions::from_config(&config).expect("options"),
    )
    .await
    .expect("dial the broker");
    let name = format!("josefk-capture-{}", std::process::id());
    let group = format!("{name}-group");
    let txn = format!("{name}-txn");

    capture(&conn, &ApiVersionsRequest::default()).await;
    capture(&conn, &DescribeClusterRequest::default()).await;
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic(&name))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    capture(&conn, &create).await;
    capture(
        &conn,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic(&name))),
        ])),
    )
    .await;
    capture(&conn, &MetadataRequest::default().with_topics(None)).await;

    // Produce until the new partition's leader accepts (right after creation it may not yet).
    let headers = [Header {
        key: "h".into(),
        value: Some(Bytes::from_static(b"v")),
    }];
    let mut batch = BytesMut::new();
    let records = (0..5).map(|i| RecordInput {
        timestamp: 1_700_000_000_000 + i,
        key: Some(&b"key"[..]),
        value: Some(&b"value"[..]),
        headers: &headers[..],
    });
    let options = BatchOptions {
        compression: Compression::Lz4,
        ..BatchOptions::default()
    };
    encode_batch(&mut batch, &options, records).expect("batch encodes");
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic(&name))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.freeze())),
            ])]);
    for _ in 0..100 {
        let answer = capture(&conn, &produce).await;
        if answer.responses[0].partition_responses[0].error_code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic(&name))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetched = capture(&conn, &fetch).await;
    assert!(
        fetched.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty()),
        "the fetch returned the records produced"
    );
    capture(
        &conn,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic(&name))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ])]),
    )
    .await;
    capture(
        &conn,
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(&name)),
        ]),
    )
    .await;
    capture(
        &conn,
        &DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(topic(&name))
                .with_partition_indexes(vec![0, 1]),
        ]),
    )
    .await;

    // Group APIs: the answers are mostly errors for a member that never joined; real all the same.
    capture(
        &conn,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![s(&group)]),
    )
    .await;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s(&group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))]);
    capture(&conn, &join).await;
    capture(
        &conn,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_member_id(s("stranger")),
    )
    .await;
    capture(
        &conn,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_member_id(s("stranger")),
    )
    .await;
    capture(
        &conn,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic(&name))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(3)
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ]),
    )
    .await;
    capture(
        &conn,
        &OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic(&name))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ]),
    )
    .await;
    capture(
        &conn,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
    )
    .await;
    capture(
        &conn,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s("stranger"))
            ]),
    )
    .await;

    // Transaction APIs (the single broker is every coordinator).
    capture(
        &conn,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s(&txn)]),
    )
    .await;
    let mut init = None;
    for _ in 0..100 {
        let answer = capture(
            &conn,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(&txn))))
                .with_transaction_timeout_ms(60_000),
        )
        .await;
        if answer.error_code == 0 {
            init = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let init = init.expect("InitProducerId succeeds");
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    capture(
        &conn,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(&txn)))
            .with_v3_and_below_producer_id(pid)
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(topic(&name))
                    .with_partitions(vec![0, 1]),
            ]),
    )
    .await;
    capture(
        &conn,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(&group))),
    )
    .await;
    capture(
        &conn,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_group_id(GroupId(s(&group)))
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![
                txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(topic(&name))
                    .with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(2),
                    ]),
            ]),
    )
    .await;
    capture(
        &conn,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_committed(false),
    )
    .await;

    capture(
        &conn,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![topic(&name)])
            .with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(topic(&name)))
            ]),
    )
    .await;
}

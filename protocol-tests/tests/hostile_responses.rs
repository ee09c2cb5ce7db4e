//! A broker that answers with a huge array count (or string, bytes or tagged-field count) in every
//! response type josefk decodes: each request ends in a clear `Error::Protocol` naming the API,
//! the version and the broker, on one line, and the process stays alive with its memory bounded.
//!
//! `kafka-protocol` 0.18 alone reserves `count × size_of::<T>()` bytes for such an array and the
//! allocation failure aborts the process, so these tests run in-process on purpose: without
//! josefk's decode pre-check (`protocol::precheck`) this test binary dies with SIGABRT instead of
//! failing an assertion. A passing run is the proof.

use bytes::{Bytes, BytesMut};
use josefk::protocol::codec::ApiRequest;
use josefk::Error;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use protocol_tests::{test_options, Action, ScriptedBroker};

/// `count` in the encoding `flexible` versions use for counts and lengths (compact: unsigned
/// varint of count + 1) or the older one (big-endian `i32`).
fn count_bytes(count: u32, flexible: bool) -> Vec<u8> {
    if !flexible {
        return (count as i32).to_be_bytes().to_vec();
    }
    let mut v = count.saturating_add(1);
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn encode<M: Encodable>(message: &M, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    message.encode(&mut out, version).expect("response encodes");
    out.to_vec()
}

/// `empty` encoded, with the first count or length that differs from `one`'s (`one` has one more
/// element or byte there) replaced by a huge count: the largest `i32`, or `u32::MAX - 1` in compact
/// form. Found by comparing the two encodings, so the test needs no description of the message.
fn huge_count<M: Encodable>(empty: &M, one: &M, version: i16, flexible: bool) -> Bytes {
    let (z, o) = (encode(empty, version), encode(one, version));
    if !flexible && z.len() + 1 == o.len() {
        // One more byte, not one more element: a string, whose length is an i16.
        let at = z.iter().zip(&o).position(|(a, b)| a != b).expect("differ");
        assert_eq!(&z[at - 1..=at], &[0, 0], "not an empty string at {at}");
        let mut body = z.clone();
        body[at - 1..=at].copy_from_slice(&i16::MAX.to_be_bytes());
        return Bytes::from(body);
    }
    let at = z
        .iter()
        .zip(&o)
        .position(|(a, b)| a != b)
        .expect("the encodings differ");
    let (start, len) = if flexible { (at, 1) } else { (at - 3, 4) };
    assert_eq!(
        &z[start..start + len],
        &count_bytes(0, flexible)[..],
        "not a zero count at {start}"
    );
    let huge = if flexible {
        u32::MAX - 1
    } else {
        i32::MAX as u32
    };
    let mut body = z[..start].to_vec();
    body.extend_from_slice(&count_bytes(huge, flexible));
    body.extend_from_slice(&z[start + len..]);
    Bytes::from(body)
}

/// `message` encoded at a flexible version, with its final tagged-field count (0) replaced by
/// `u32::MAX`: for responses without arrays or byte fields.
fn huge_tag_count<M: Encodable>(message: &M, version: i16) -> Bytes {
    let mut body = encode(message, version);
    assert_eq!(body.pop(), Some(0), "ends with an empty tag section");
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    Bytes::from(body)
}

fn is_flexible<R: ApiRequest>(version: i16) -> bool {
    if R::KEY == ApiKey::ApiVersions {
        // Its response header stays v0 in every version (KIP-511); the body is flexible from 3.
        return version >= 3;
    }
    R::Response::header_version(version) >= 1
}

/// Sends a default `R` at `version` to a broker that answers it with `body`, and returns the
/// error, after checking it is a one-line `Error::Protocol` naming API, version and broker.
async fn refused<R: ApiRequest + Default>(version: i16, body: Bytes) -> Error {
    let key = R::KEY;
    let broker = ScriptedBroker::start(move |header, _| {
        if header.request_api_key == key as i16 {
            Action::Reply(body.clone())
        } else {
            Action::Default
        }
    })
    .await;
    let error = match broker.connect(test_options()).await {
        // ApiVersions is refused during the handshake.
        Err(e) => e,
        Ok(conn) => match conn.send_version(&R::default(), version, None).await {
            Ok(_) => panic!("{key:?} v{version}: a hostile response decoded"),
            Err(e) => e,
        },
    };
    let text = error.to_string();
    assert!(
        matches!(&error, Error::Protocol { api: Some(api), broker: Some(_), .. } if api.code() == key as i16),
        "{key:?} v{version}: {error:?}"
    );
    assert!(text.contains(&format!("{key:?}")), "{text}");
    assert!(text.contains(&broker.addr()), "{text}");
    assert!(text.contains("version "), "{text}");
    assert!(!text.contains('\n'), "{text:?}");
    error
}

/// A huge count in the first array (or byte field) of `R`'s response at `version`.
async fn refused_array<R: ApiRequest + Default>(version: i16, empty: R::Response, one: R::Response)
where
    R::Response: Encodable,
{
    let body = huge_count(&empty, &one, version, is_flexible::<R>(version));
    let error = refused::<R>(version, body).await;
    let text = error.to_string();
    assert!(
        text.contains(&format!("version {version}")) || R::KEY == ApiKey::ApiVersions,
        "{text}"
    );
    assert!(
        text.contains("exceeds the") || text.contains("but only"),
        "{text}"
    );
}

#[tokio::test]
async fn api_versions_with_a_huge_count_fails_the_handshake() {
    use api_versions_response::ApiVersion;
    for version in [0, 3] {
        let one = ApiVersionsResponse::default().with_api_keys(vec![ApiVersion::default()]);
        let body = huge_count(&ApiVersionsResponse::default(), &one, version, version >= 3);
        refused::<ApiVersionsRequest>(version, body).await;
    }
}

#[tokio::test]
async fn metadata_old_and_new_versions() {
    use metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
    for version in [1, 4, 8, 9, 12] {
        let one = MetadataResponse::default().with_topics(vec![MetadataResponseTopic::default()]);
        refused_array::<MetadataRequest>(version, MetadataResponse::default(), one).await;
        let one = MetadataResponse::default().with_brokers(vec![MetadataResponseBroker::default()]);
        refused_array::<MetadataRequest>(version, MetadataResponse::default(), one).await;
    }
}

#[tokio::test]
async fn produce_and_fetch() {
    use fetch_response::FetchableTopicResponse;
    use produce_response::TopicProduceResponse;
    for version in [3, 8, 9, 12] {
        let one = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()]);
        refused_array::<ProduceRequest>(version, ProduceResponse::default(), one).await;
    }
    for version in [4, 11, 12] {
        let one = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()]);
        refused_array::<FetchRequest>(version, FetchResponse::default(), one).await;
    }
}

#[tokio::test]
async fn offsets_and_coordinators() {
    for version in [1, 5, 6, 9] {
        let one = ListOffsetsResponse::default().with_topics(vec![
            list_offsets_response::ListOffsetsTopicResponse::default(),
        ]);
        refused_array::<ListOffsetsRequest>(version, ListOffsetsResponse::default(), one).await;
    }
    for version in [2, 7, 8, 9] {
        let one = OffsetCommitResponse::default().with_topics(vec![
            offset_commit_response::OffsetCommitResponseTopic::default(),
        ]);
        refused_array::<OffsetCommitRequest>(version, OffsetCommitResponse::default(), one).await;
    }
    for version in [1, 7] {
        let one = OffsetFetchResponse::default().with_topics(vec![
            offset_fetch_response::OffsetFetchResponseTopic::default(),
        ]);
        refused_array::<OffsetFetchRequest>(version, OffsetFetchResponse::default(), one).await;
    }
    for version in [8, 9] {
        let one = OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default(),
        ]);
        refused_array::<OffsetFetchRequest>(version, OffsetFetchResponse::default(), one).await;
    }
    for version in [4, 6] {
        let one = FindCoordinatorResponse::default()
            .with_coordinators(vec![find_coordinator_response::Coordinator::default()]);
        refused_array::<FindCoordinatorRequest>(version, FindCoordinatorResponse::default(), one)
            .await;
    }
    // Before v4 the answer has no array: a host name longer than the frame.
    for version in [1, 3] {
        let one = FindCoordinatorResponse::default().with_host("h".into());
        refused_array::<FindCoordinatorRequest>(version, FindCoordinatorResponse::default(), one)
            .await;
    }
}

#[tokio::test]
async fn group_membership() {
    for version in [0, 5, 6, 9] {
        let one = JoinGroupResponse::default()
            .with_members(vec![join_group_response::JoinGroupResponseMember::default()]);
        refused_array::<JoinGroupRequest>(version, JoinGroupResponse::default(), one).await;
    }
    for version in [0, 3, 4, 5] {
        let one = SyncGroupResponse::default().with_assignment(Bytes::from_static(b"x"));
        refused_array::<SyncGroupRequest>(version, SyncGroupResponse::default(), one).await;
    }
    for version in [3, 5] {
        let one = LeaveGroupResponse::default()
            .with_members(vec![leave_group_response::MemberResponse::default()]);
        refused_array::<LeaveGroupRequest>(version, LeaveGroupResponse::default(), one).await;
    }
    for version in [0, 5] {
        let one = DescribeGroupsResponse::default()
            .with_groups(vec![describe_groups_response::DescribedGroup::default()]);
        refused_array::<DescribeGroupsRequest>(version, DescribeGroupsResponse::default(), one)
            .await;
    }
    let error = refused::<HeartbeatRequest>(4, huge_tag_count(&HeartbeatResponse::default(), 4));
    assert!(error.await.to_string().contains("tagged fields"));
}

#[tokio::test]
async fn transactions() {
    let body = huge_tag_count(&InitProducerIdResponse::default(), 4);
    assert!(refused::<InitProducerIdRequest>(4, body)
        .await
        .to_string()
        .contains("tagged fields"));
    for version in [0, 3] {
        let one = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default(),
        ]);
        refused_array::<AddPartitionsToTxnRequest>(
            version,
            AddPartitionsToTxnResponse::default(),
            one,
        )
        .await;
    }
    for version in [0, 3, 5] {
        let one = TxnOffsetCommitResponse::default().with_topics(vec![
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default(),
        ]);
        refused_array::<TxnOffsetCommitRequest>(version, TxnOffsetCommitResponse::default(), one)
            .await;
    }
    let body = huge_tag_count(&AddOffsetsToTxnResponse::default(), 3);
    refused::<AddOffsetsToTxnRequest>(3, body).await;
    let body = huge_tag_count(&EndTxnResponse::default(), 5);
    refused::<EndTxnRequest>(5, body).await;
}

#[tokio::test]
async fn admin() {
    for version in [2, 4, 5, 7] {
        let one = CreateTopicsResponse::default()
            .with_topics(vec![create_topics_response::CreatableTopicResult::default()]);
        refused_array::<CreateTopicsRequest>(version, CreateTopicsResponse::default(), one).await;
    }
    for version in [1, 3, 4, 6] {
        let one = DeleteTopicsResponse::default()
            .with_responses(vec![delete_topics_response::DeletableTopicResult::default()]);
        refused_array::<DeleteTopicsRequest>(version, DeleteTopicsResponse::default(), one).await;
    }
    for version in [0, 2] {
        let one = DescribeClusterResponse::default().with_brokers(vec![
            describe_cluster_response::DescribeClusterBroker::default(),
        ]);
        refused_array::<DescribeClusterRequest>(version, DescribeClusterResponse::default(), one)
            .await;
    }
    for version in [1, 4] {
        let one = DescribeConfigsResponse::default().with_results(vec![
            describe_configs_response::DescribeConfigsResult::default(),
        ]);
        refused_array::<DescribeConfigsRequest>(version, DescribeConfigsResponse::default(), one)
            .await;
    }
    let one = DescribeProducersResponse::default()
        .with_topics(vec![describe_producers_response::TopicResponse::default()]);
    refused_array::<DescribeProducersRequest>(0, DescribeProducersResponse::default(), one).await;
    for version in [0, 3, 5] {
        let one = ListGroupsResponse::default()
            .with_groups(vec![list_groups_response::ListedGroup::default()]);
        refused_array::<ListGroupsRequest>(version, ListGroupsResponse::default(), one).await;
    }
    for version in [0, 2] {
        let one = DeleteGroupsResponse::default()
            .with_results(vec![delete_groups_response::DeletableGroupResult::default()]);
        refused_array::<DeleteGroupsRequest>(version, DeleteGroupsResponse::default(), one).await;
    }
    let one = OffsetDeleteResponse::default().with_topics(vec![
        offset_delete_response::OffsetDeleteResponseTopic::default(),
    ]);
    refused_array::<OffsetDeleteRequest>(0, OffsetDeleteResponse::default(), one).await;
    for version in [0, 2, 3] {
        let one = CreatePartitionsResponse::default().with_results(vec![
            create_partitions_response::CreatePartitionsTopicResult::default(),
        ]);
        refused_array::<CreatePartitionsRequest>(version, CreatePartitionsResponse::default(), one)
            .await;
    }
    for version in [0, 2] {
        let one = DeleteRecordsResponse::default().with_topics(vec![
            delete_records_response::DeleteRecordsTopicResult::default(),
        ]);
        refused_array::<DeleteRecordsRequest>(version, DeleteRecordsResponse::default(), one).await;
    }
    for version in [0, 1] {
        let one = IncrementalAlterConfigsResponse::default().with_responses(vec![
            incremental_alter_configs_response::AlterConfigsResourceResponse::default(),
        ]);
        refused_array::<IncrementalAlterConfigsRequest>(
            version,
            IncrementalAlterConfigsResponse::default(),
            one,
        )
        .await;
    }
}

#[tokio::test]
async fn sasl_exchange() {
    for version in [0, 1] {
        let one = SaslHandshakeResponse::default().with_mechanisms(vec!["".into()]);
        refused_array::<SaslHandshakeRequest>(version, SaslHandshakeResponse::default(), one).await;
    }
    for version in [0, 1, 2] {
        let one = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from_static(b"x"));
        refused_array::<SaslAuthenticateRequest>(version, SaslAuthenticateResponse::default(), one)
            .await;
    }
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn many_hostile_fetches_keep_memory_bounded() {
    // 200 Fetch answers each claiming 2^32 - 2 topics: decoding them naively would want about
    // 100 GiB apiece. The whole process (every test in this binary included) stays far below.
    use fetch_response::FetchableTopicResponse;
    let one = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()]);
    let body = huge_count(&FetchResponse::default(), &one, 12, true);
    let broker = ScriptedBroker::start(move |header, _| {
        if header.request_api_key == ApiKey::Fetch as i16 {
            Action::Reply(body.clone())
        } else {
            Action::Default
        }
    })
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    for _ in 0..200 {
        let e = conn
            .send_version(&FetchRequest::default(), 12, None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    }
    if let Some(peak) = peak_rss_kib() {
        assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    }
}

/// A scripted broker that leads topic `hostile` and answers every Produce with a huge array count
/// (at the highest Produce version josefk speaks, which it returns).
async fn hostile_produce_broker() -> (ScriptedBroker, i16) {
    use metadata_response::MetadataResponseTopic;
    use metadata_response::{MetadataResponseBroker, MetadataResponsePartition};
    use produce_response::TopicProduceResponse;
    use std::sync::{Arc, Mutex};

    let port = Arc::new(Mutex::new(0));
    let own_port = port.clone();
    let one = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()]);
    let produce_version = josefk::protocol::client_versions(ApiKey::Produce).max;
    let body = huge_count(&ProduceResponse::default(), &one, produce_version, true);
    let broker = ScriptedBroker::start(move |header, _| {
        let version = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::Metadata) => {
                let partition = MetadataResponsePartition::default()
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)]);
                let topic = MetadataResponseTopic::default()
                    .with_name(Some(TopicName("hostile".into())))
                    .with_partitions(vec![partition]);
                let broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host("127.0.0.1".into())
                    .with_port(*own_port.lock().unwrap());
                let answer = MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_controller_id(BrokerId(1))
                    .with_topics(vec![topic]);
                Action::reply(&answer, version)
            }
            Ok(ApiKey::InitProducerId) => Action::reply(
                &InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(4000))
                    .with_producer_epoch(0),
                version,
            ),
            Ok(ApiKey::Produce) if version == produce_version => Action::Reply(body.clone()),
            _ => Action::Default,
        }
    })
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    (broker, produce_version)
}

#[tokio::test]
async fn producer_sender_survives_a_hostile_produce_answer() {
    // The producer decodes Produce answers inside its own sink task; a huge count there must fail
    // the send, not the process.
    use josefk::producer::{Producer, ProducerConfig};
    use josefk::ProducerRecord;
    use std::time::{Duration, Instant};

    let (broker, produce_version) = hostile_produce_broker().await;

    let client = josefk::ClientConfig::new(&broker.addr()).request_timeout(Duration::from_secs(3));
    let config = ProducerConfig::with_client(client)
        .idempotence(false)
        .acks(josefk::producer::Acks::Leader)
        .linger(Duration::ZERO)
        .delivery_timeout(Duration::from_secs(10));
    let producer = Producer::connect(config).await.expect("producer connects");
    let started = Instant::now();
    let delivery = producer
        .send(ProducerRecord::new("hostile", &b"value"[..]))
        .await
        .expect("the record is accepted");
    let error = tokio::time::timeout(Duration::from_secs(60), delivery)
        .await
        .expect("the send settles within the delivery timeout")
        .expect_err("a hostile answer must not count as written");
    assert!(started.elapsed() < Duration::from_secs(60));
    let produces = broker
        .requests()
        .iter()
        .filter(|h| h.request_api_key == ApiKey::Produce as i16)
        .count();
    assert!(produces >= 1, "no Produce reached the broker");
    // The decode error reaches the future as itself: its variant and class, its text said once.
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert_eq!(error.class(), josefk::ErrorClass::Fatal, "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("protocol violation") && text.contains("Produce"),
        "{text}"
    );
    assert_eq!(text.matches("protocol violation").count(), 1, "{text}");
    assert!(!text.contains("invalid state"), "{text}");
    assert!(
        text.contains(&format!("version {produce_version}")),
        "{text}"
    );
}

#[tokio::test]
async fn an_idempotent_producer_reports_a_hostile_produce_answer_as_outcome_unknown() {
    // An answer arrived, so the request was written and the broker may have appended the batch:
    // the record must never be reported as "not written".
    use josefk::producer::{Producer, ProducerConfig};
    use josefk::ProducerRecord;
    use std::time::Duration;

    let (broker, _) = hostile_produce_broker().await;
    let client = josefk::ClientConfig::new(&broker.addr()).request_timeout(Duration::from_secs(2));
    let config = ProducerConfig::with_client(client)
        .linger(Duration::ZERO)
        .delivery_timeout(Duration::from_secs(3));
    let producer = Producer::connect(config).await.expect("producer connects");
    let delivery = producer
        .send(ProducerRecord::new("hostile", &b"value"[..]))
        .await
        .expect("the record is accepted");
    let error = tokio::time::timeout(Duration::from_secs(60), delivery)
        .await
        .expect("the send settles within the delivery timeout")
        .expect_err("a hostile answer must not count as written");
    assert!(error.outcome_unknown(), "{error:?}");
    assert!(error.to_string().contains("protocol violation"), "{error}");
}

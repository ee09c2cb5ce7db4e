//! Admin answers a real broker would not give, from a scripted one-node cluster: a ListOffsets,
//! DeleteRecords or DescribeProducers answer that leaves out a partition asked for is a clear protocol error (not
//! a missing entry a caller would index into), and a DescribeGroups member whose assignment bytes
//! do not decode is described with no assignment rather than failing the whole call; a
//! FindCoordinator answer without the key asked for, or naming a node no client can reach, is
//! COORDINATOR_NOT_AVAILABLE, retried until the call's timeout, never a coordinator. A
//! DescribeGroups group error is the group's: a loading coordinator is asked again, an
//! authorization failure fails the call, GROUP_ID_NOT_FOUND is the documented `Dead`.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    DescribeProducersResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    ListOffsetsResponse, MetadataResponse, ProducerId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::admin::{Admin, OffsetSpec};
use josefk::{ClientConfig, Error, IsolationLevel, TopicPartition};
use protocol_tests::{Action, ScriptedBroker};

const TOPIC: &str = "t";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Answers Metadata (topic `t`, partitions 0 and 1 led by node 1 at `port`), FindCoordinator (node
/// 1), and per API the test's answers; ListOffsets and DeleteRecords answer partition 0 only.
fn answer(port: i32, header: &RequestHeader) -> Action {
    let v = header.request_api_version;
    match ApiKey::try_from(header.request_api_key) {
        Ok(ApiKey::Metadata) => Action::reply(
            &MetadataResponse::default()
                .with_brokers(vec![MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)])
                .with_controller_id(BrokerId(1))
                .with_topics(vec![MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(TOPIC))))
                    .with_partitions(
                        (0..2)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_id(BrokerId(1))
                                    .with_replica_nodes(vec![BrokerId(1)])
                                    .with_isr_nodes(vec![BrokerId(1)])
                            })
                            .collect(),
                    )]),
            v,
        ),
        Ok(ApiKey::FindCoordinator) => {
            // Version 4 moved the answer into a list (KIP-699).
            let response = if v >= 4 {
                FindCoordinatorResponse::default().with_coordinators(vec![Coordinator::default()
                    .with_key(sb("g"))
                    .with_node_id(BrokerId(1))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)])
            } else {
                FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(1))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)
            };
            Action::reply(&response, v)
        }
        Ok(ApiKey::ListOffsets) => Action::reply(
            &ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_offset(7)])]),
            v,
        ),
        Ok(ApiKey::DeleteRecords) => Action::reply(
            &DeleteRecordsResponse::default().with_topics(vec![DeleteRecordsTopicResult::default(
            )
            .with_name(TopicName(sb(TOPIC)))
            .with_partitions(vec![DeleteRecordsPartitionResult::default()
                .with_partition_index(0)
                .with_low_watermark(3)])]),
            v,
        ),
        Ok(ApiKey::DescribeProducers) => Action::reply(
            &DescribeProducersResponse::default().with_topics(vec![TopicResponse::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![PartitionResponse::default()
                    .with_partition_index(0)
                    .with_active_producers(vec![ProducerState::default()
                        .with_producer_id(ProducerId(9))
                        .with_producer_epoch(2)
                        .with_last_sequence(4)
                        .with_coordinator_epoch(-1)
                        .with_current_txn_start_offset(-1)])])]),
            v,
        ),
        Ok(ApiKey::DescribeGroups) => Action::reply(
            &DescribeGroupsResponse::default().with_groups(vec![DescribedGroup::default()
                .with_group_id(GroupId(sb("g")))
                .with_group_state(sb("Stable"))
                .with_protocol_type(sb("consumer"))
                .with_protocol_data(sb("range"))
                .with_members(vec![DescribedGroupMember::default()
                    .with_member_id(sb("m-1"))
                    .with_client_id(sb("c"))
                    .with_client_host(sb("/127.0.0.1"))
                    // Version 0, then an array count far larger than the bytes left.
                    .with_member_assignment(Bytes::from_static(&[
                        0, 0, 0x7f, 0xff, 0xff, 0xff,
                    ]))])]),
            v,
        ),
        _ => Action::Default,
    }
}

async fn admin_on_script() -> (ScriptedBroker, Admin) {
    admin_finding(|_, _| None).await
}

/// [`admin_on_script`] whose `n`th FindCoordinator (from 0) gets `find(n, port)` when that is
/// some answer.
async fn admin_finding(
    find: impl Fn(usize, i32) -> Option<FindCoordinatorResponse> + Send + Sync + 'static,
) -> (ScriptedBroker, Admin) {
    let port = Arc::new(Mutex::new(0));
    let shared = port.clone();
    let finds = AtomicUsize::new(0);
    let broker = ScriptedBroker::start(move |header, _body: Bytes| {
        let port = *shared.lock().unwrap();
        if header.request_api_key == ApiKey::FindCoordinator as i16 {
            if let Some(r) = find(finds.fetch_add(1, SeqCst), port) {
                return Action::reply(&r, header.request_api_version);
            }
        }
        answer(port, header)
    })
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let config = ClientConfig::new(&broker.addr())
        .request_timeout(Duration::from_secs(2))
        .default_api_timeout(Duration::from_secs(2))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50));
    let admin = Admin::connect(config).await.expect("connect");
    (broker, admin)
}

fn is_protocol_error_naming(e: &Error, what: &str) -> bool {
    matches!(e, Error::Protocol { .. }) && e.to_string().contains(what)
}

#[tokio::test]
async fn an_answer_leaving_out_a_partition_is_a_protocol_error() {
    let (_broker, admin) = admin_on_script().await;
    let asked = [
        (TopicPartition::new(TOPIC, 0), OffsetSpec::Latest),
        (TopicPartition::new(TOPIC, 1), OffsetSpec::Latest),
    ];
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        admin.list_offsets(&asked, IsolationLevel::ReadUncommitted),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    assert!(is_protocol_error_naming(&e, "t-1"), "{e}");
    // What was answered alone is fine.
    let one = admin
        .list_offsets(&asked[..1], IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    assert_eq!(one[&asked[0].0].offset, 7);

    let e = tokio::time::timeout(
        Duration::from_secs(30),
        admin.delete_records(&[
            (TopicPartition::new(TOPIC, 0), 3),
            (TopicPartition::new(TOPIC, 1), 3),
        ]),
    )
    .await
    .expect("no hang")
    .unwrap_err();
    assert!(is_protocol_error_naming(&e, "t-1"), "{e}");

    let both = [TopicPartition::new(TOPIC, 0), TopicPartition::new(TOPIC, 1)];
    let e = tokio::time::timeout(Duration::from_secs(30), admin.describe_producers(&both))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(is_protocol_error_naming(&e, "t-1"), "{e}");
    let one = admin.describe_producers(&both[..1]).await.unwrap();
    let producer = one[&both[0]][0];
    assert_eq!(
        (
            producer.producer_id,
            producer.producer_epoch,
            producer.last_sequence
        ),
        (9, 2, 4)
    );
    assert_eq!(producer.coordinator_epoch, None);
    assert_eq!(producer.current_transaction_start_offset, None);
}

#[tokio::test]
async fn an_undecodable_member_assignment_is_described_as_unknown() {
    let (_broker, admin) = admin_on_script().await;
    let described = admin.describe_groups(&["g"]).await.unwrap();
    assert_eq!(described.len(), 1);
    let member = &described[0].members[0];
    assert_eq!(member.member_id, "m-1");
    assert_eq!(member.assignment, None);
    assert_eq!(described[0].protocol, "range");
}

/// FindCoordinator answers naming no coordinator for the group: no entry at all (which leaves
/// the v0-3 fields at node 0, `:0`), another key's, node 0 at `:0` under our key.
fn no_coordinator_for_g(n: usize, port: i32) -> FindCoordinatorResponse {
    let coordinator = |key: &str, port| {
        Coordinator::default()
            .with_key(sb(key))
            .with_node_id(BrokerId(if port == 0 { 0 } else { 1 }))
            .with_host(sb(if port == 0 { "" } else { "127.0.0.1" }))
            .with_port(port)
    };
    let coordinators = match n % 3 {
        0 => Vec::new(),
        1 => vec![coordinator("other", port)],
        _ => vec![coordinator("g", 0)],
    };
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

#[tokio::test]
async fn find_coordinator_answers_naming_no_reachable_coordinator_are_retried() {
    let finds = Arc::new(AtomicUsize::new(0));
    let counted = finds.clone();
    let (_broker, admin) = admin_finding(move |n, port| {
        counted.fetch_add(1, SeqCst);
        (n < 3).then(|| no_coordinator_for_g(n, port))
    })
    .await;
    let described = tokio::time::timeout(Duration::from_secs(30), admin.describe_groups(&["g"]))
        .await
        .expect("no hang")
        .expect("found on the fourth answer");
    assert_eq!(described[0].group_id, "g");
    assert_eq!(finds.load(SeqCst), 4, "each bad answer was asked again");
}

#[tokio::test]
async fn find_coordinator_never_naming_a_reachable_coordinator_ends_the_call_at_its_timeout() {
    let finds = Arc::new(AtomicUsize::new(0));
    let counted = finds.clone();
    let (_broker, admin) = admin_finding(move |n, port| {
        counted.fetch_add(1, SeqCst);
        Some(no_coordinator_for_g(n, port))
    })
    .await;
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(30), admin.describe_groups(&["g"]))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                api: Some(josefk::ApiKey::DescribeGroups),
                after,
                outcome_unknown: false,
                ..
            } if after == Duration::from_secs(2)
        ),
        "{e:?}"
    );
    // The call's timeout (2 s) bounds the retries, with slack for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(finds.load(SeqCst) >= 3, "retried: {}", finds.load(SeqCst));
}

/// DescribeGroups answers per group: `loading` is COORDINATOR_LOAD_IN_PROGRESS twice, then
/// described; `secret` is GROUP_AUTHORIZATION_FAILED; `gone` is GROUP_ID_NOT_FOUND (v6+).
#[tokio::test]
async fn describe_groups_heeds_each_groups_error() {
    let port = Arc::new(Mutex::new(0));
    let shared = port.clone();
    let loading_answers = Arc::new(AtomicUsize::new(0));
    let counted = loading_answers.clone();
    let broker = ScriptedBroker::start(move |header, mut body: Bytes| {
        let port = *shared.lock().unwrap();
        let v = header.request_api_version;
        if header.request_api_key == ApiKey::FindCoordinator as i16 {
            // Node 1 for whichever group is asked about.
            let request = FindCoordinatorRequest::decode(&mut body, v).unwrap();
            let keys = if v >= 4 {
                request
                    .coordinator_keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect()
            } else {
                vec![request.key.to_string()]
            };
            let coordinator = |key: &str| {
                Coordinator::default()
                    .with_key(sb(key))
                    .with_node_id(BrokerId(1))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)
            };
            let response = if v >= 4 {
                FindCoordinatorResponse::default()
                    .with_coordinators(keys.iter().map(|k| coordinator(k)).collect())
            } else {
                FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(1))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)
            };
            return Action::reply(&response, v);
        }
        if header.request_api_key != ApiKey::DescribeGroups as i16 {
            return answer(port, header);
        }
        let request = DescribeGroupsRequest::decode(&mut body, v).unwrap();
        let group = request.groups[0].0.to_string();
        let code = match group.as_str() {
            "loading" if counted.fetch_add(1, SeqCst) < 2 => 14,
            "secret" => 30,
            "gone" => 69,
            _ => 0,
        };
        let state = if code == 69 { "Dead" } else { "Stable" };
        Action::reply(
            &DescribeGroupsResponse::default().with_groups(vec![DescribedGroup::default()
                .with_error_code(code)
                .with_group_id(GroupId(sb(&group)))
                .with_group_state(sb(state))
                .with_protocol_type(sb("consumer"))]),
            v,
        )
    })
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let config = ClientConfig::new(&broker.addr())
        .default_api_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50));
    let admin = Admin::connect(config).await.expect("connect");

    let described = admin.describe_groups(&["loading"]).await.unwrap();
    assert_eq!(described[0].state, "Stable");
    assert_eq!(loading_answers.load(SeqCst), 3, "asked again while loading");

    let e = admin.describe_groups(&["secret"]).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(josefk::ErrorCode::GroupAuthorizationFailed),
        "{e}"
    );

    let described = admin.describe_groups(&["gone"]).await.unwrap();
    assert_eq!(described[0].state, "Dead");
    assert!(described[0].members.is_empty());
}

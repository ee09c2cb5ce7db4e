//! Every admin call ends by its deadline (`default.api.timeout.ms`, 1 s here) with
//! `Error::Timeout`, against a scripted broker that keeps answering a retriable error
//! (COORDINATOR_NOT_AVAILABLE to FindCoordinator, NOT_CONTROLLER to CreateTopics,
//! LEADER_NOT_AVAILABLE to ListOffsets and DescribeProducers), that never shows a created topic
//! in its metadata, or that never answers at all. The retries are spaced by the retry backoff (a
//! bounded count of requests, not a storm), and the timeout says whether a change may have been
//! applied: a request that changes something and got no answer. The request timeout (10 s) and
//! the hang guard (20 s) are far above the deadline, so a call bounded only by them fails the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsResponse, DescribeProducersResponse, FindCoordinatorResponse,
    ListOffsetsResponse, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use josefk::admin::{
    AclBinding, AclOperation, AclPermission, Admin, ConfigChange, ConfigResource, NewTopic,
    OffsetSpec, ResourceType,
};
use josefk::{ClientConfig, Error, IsolationLevel, Result, TopicPartition};
use protocol_tests::{Action, ScriptedBroker};

const TOPIC: &str = "t";
const DEADLINE: Duration = Duration::from_secs(1);
const HANG_GUARD: Duration = Duration::from_secs(20);
/// Over a 1 s deadline with a 50-200 ms backoff a call asks a handful of times; a retry loop
/// without backoff would ask thousands of times.
const MAX_REQUESTS: usize = 40;

const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_CONTROLLER: i16 = 41;
const LEADER_NOT_AVAILABLE: i16 = 5;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Metadata naming node 1 at `port` (controller too) and topic `t` with partition 0 led by it.
fn metadata(port: i32, v: i16) -> Action {
    Action::reply(
        &MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(sb("127.0.0.1"))
                .with_port(port)])
            .with_controller_id(BrokerId(1))
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb(TOPIC))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)])])]),
        v,
    )
}

/// A one-node cluster answering Metadata as [`metadata`] does and every other request (but
/// ApiVersions) with `script(api, version, port)`; the admin's deadline is [`DEADLINE`].
async fn admin_on(
    script: impl Fn(ApiKey, i16, i32) -> Action + Send + Sync + 'static,
) -> (ScriptedBroker, Admin) {
    let port = Arc::new(Mutex::new(0));
    let shared = port.clone();
    let broker = ScriptedBroker::start(move |header: &RequestHeader, _body: Bytes| {
        let port = *shared.lock().unwrap();
        let v = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::ApiVersions) | Err(_) => Action::Default,
            Ok(ApiKey::Metadata) => metadata(port, v),
            Ok(api) => script(api, v, port),
        }
    })
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let config = ClientConfig::new(&broker.addr())
        .request_timeout(Duration::from_secs(10))
        .default_api_timeout(DEADLINE)
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let admin = Admin::connect(config).await.expect("connect");
    (broker, admin)
}

/// Runs `call` under the hang guard and returns its error, which must be the call's timeout
/// after [`DEADLINE`] naming `api`, with the given `outcome_unknown`.
async fn times_out<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T>>,
    api: josefk::ApiKey,
    outcome_unknown: bool,
) {
    let result = tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("the call ended by its deadline, not the hang guard");
    let e = result.expect_err("the call cannot succeed against this broker");
    match &e {
        Error::Timeout {
            api: got,
            after,
            outcome_unknown: unknown,
            ..
        } => {
            assert_eq!(*got, Some(api), "{e}");
            assert_eq!(*after, DEADLINE, "{e}");
            assert_eq!(*unknown, outcome_unknown, "{e}");
        }
        other => panic!("expected the call's timeout, got {other:?}"),
    }
}

fn count(broker: &ScriptedBroker, api: ApiKey) -> usize {
    broker
        .requests()
        .iter()
        .filter(|h| h.request_api_key == api as i16)
        .count()
}

/// Asked again after each backoff, not at once and not only once.
fn retried_with_backoff(broker: &ScriptedBroker, api: ApiKey) {
    let n = count(broker, api);
    assert!((2..=MAX_REQUESTS).contains(&n), "{api:?} asked {n} times");
}

fn no_coordinator(v: i16) -> Action {
    let response = if v >= 4 {
        FindCoordinatorResponse::default().with_coordinators(vec![Coordinator::default()
            .with_key(sb("g"))
            .with_node_id(BrokerId(-1))
            .with_error_code(COORDINATOR_NOT_AVAILABLE)])
    } else {
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(-1))
            .with_error_code(COORDINATOR_NOT_AVAILABLE)
    };
    Action::reply(&response, v)
}

#[tokio::test]
async fn coordinator_not_available_forever_ends_group_calls_at_the_deadline() {
    let (broker, admin) = admin_on(|api, v, _| match api {
        ApiKey::FindCoordinator => no_coordinator(v),
        _ => Action::Close,
    })
    .await;
    times_out(
        admin.describe_groups(&["g"]),
        josefk::ApiKey::DescribeGroups,
        false,
    )
    .await;
    retried_with_backoff(&broker, ApiKey::FindCoordinator);

    let (broker, admin) = admin_on(|api, v, _| match api {
        ApiKey::FindCoordinator => no_coordinator(v),
        _ => Action::Close,
    })
    .await;
    // Nothing reached a coordinator, so nothing was deleted.
    times_out(
        admin.delete_groups(&["g"]),
        josefk::ApiKey::DeleteGroups,
        false,
    )
    .await;
    retried_with_backoff(&broker, ApiKey::FindCoordinator);
    assert_eq!(count(&broker, ApiKey::DeleteGroups), 0);
}

#[tokio::test]
async fn not_controller_forever_ends_create_topics_at_the_deadline() {
    let (broker, admin) = admin_on(|api, v, _| match api {
        ApiKey::CreateTopics => Action::reply(
            &CreateTopicsResponse::default().with_topics(vec![CreatableTopicResult::default()
                .with_name(TopicName(sb("new")))
                .with_error_code(NOT_CONTROLLER)]),
            v,
        ),
        _ => Action::Close,
    })
    .await;
    // Every CreateTopics was answered (refused), so nothing was created.
    times_out(
        admin.create_topics(&[NewTopic::new("new", 1, 1)]),
        josefk::ApiKey::CreateTopics,
        false,
    )
    .await;
    retried_with_backoff(&broker, ApiKey::CreateTopics);
}

#[tokio::test]
async fn leader_not_available_forever_ends_partition_calls_at_the_deadline() {
    let script = |api, v, _| match api {
        ApiKey::ListOffsets => Action::reply(
            &ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_error_code(LEADER_NOT_AVAILABLE)])]),
            v,
        ),
        ApiKey::DescribeProducers => Action::reply(
            &DescribeProducersResponse::default().with_topics(vec![TopicResponse::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(vec![PartitionResponse::default()
                    .with_partition_index(0)
                    .with_error_code(LEADER_NOT_AVAILABLE)])]),
            v,
        ),
        _ => Action::Close,
    };
    let tp = TopicPartition::new(TOPIC, 0);
    let (broker, admin) = admin_on(script).await;
    times_out(
        admin.list_offsets(
            &[(tp.clone(), OffsetSpec::Latest)],
            IsolationLevel::ReadUncommitted,
        ),
        josefk::ApiKey::ListOffsets,
        false,
    )
    .await;
    retried_with_backoff(&broker, ApiKey::ListOffsets);

    let (broker, admin) = admin_on(script).await;
    times_out(
        admin.describe_producers(std::slice::from_ref(&tp)),
        josefk::ApiKey::DescribeProducers,
        false,
    )
    .await;
    retried_with_backoff(&broker, ApiKey::DescribeProducers);
}

#[tokio::test]
async fn a_created_topic_that_never_shows_up_ends_the_wait_at_the_deadline() {
    let (broker, admin) = admin_on(|api, v, _| match api {
        ApiKey::CreateTopics => Action::reply(
            &CreateTopicsResponse::default().with_topics(vec![
                CreatableTopicResult::default().with_name(TopicName(sb("new")))
            ]),
            v,
        ),
        _ => Action::Close,
    })
    .await;
    // Created (the answer said so): the timeout names the wait, and the outcome is known.
    times_out(
        admin.create_topics(&[NewTopic::new("new", 1, 1)]),
        josefk::ApiKey::Metadata,
        false,
    )
    .await;
    assert_eq!(count(&broker, ApiKey::CreateTopics), 1);
    retried_with_backoff(&broker, ApiKey::Metadata);
}

#[tokio::test]
async fn a_broker_that_never_answers_ends_each_call_at_the_deadline() {
    let silent = |api, _, _| match api {
        ApiKey::CreateTopics
        | ApiKey::IncrementalAlterConfigs
        | ApiKey::CreateAcls
        | ApiKey::DescribeConfigs => Action::NoReply,
        _ => Action::Close,
    };
    let topic = ConfigResource::Topic(TOPIC.into());

    // Changes sent and never answered: they may have been applied.
    let (broker, admin) = admin_on(silent).await;
    times_out(
        admin.create_topics(&[NewTopic::new("new", 1, 1)]),
        josefk::ApiKey::CreateTopics,
        true,
    )
    .await;
    assert_eq!(count(&broker, ApiKey::CreateTopics), 1, "not sent again");

    let (broker, admin) = admin_on(silent).await;
    let change = [ConfigChange::Set("retention.ms".into(), "1000".into())];
    times_out(
        admin.alter_configs(&topic, &change),
        josefk::ApiKey::IncrementalAlterConfigs,
        true,
    )
    .await;
    assert_eq!(count(&broker, ApiKey::IncrementalAlterConfigs), 1);

    let (broker, admin) = admin_on(silent).await;
    let acl = AclBinding::new(
        ResourceType::Topic,
        TOPIC,
        "User:a",
        AclOperation::Read,
        AclPermission::Allow,
    );
    times_out(admin.create_acls(&[acl]), josefk::ApiKey::CreateAcls, true).await;
    assert_eq!(count(&broker, ApiKey::CreateAcls), 1);

    // A read changes nothing whatever happened to it.
    let (_broker, admin) = admin_on(silent).await;
    times_out(
        admin.describe_configs(&topic),
        josefk::ApiKey::DescribeConfigs,
        false,
    )
    .await;
}

/// The metadata calls (`describe_cluster`, `list_topics`, `describe_topics`) ride out retriable
/// failures within their deadline, as Java's admin client does: here the broker closes the
/// connection on the first four Metadata requests of each call (one metadata refresh tries three
/// times without backoff, then fails); each call still answers.
#[tokio::test]
async fn metadata_calls_ask_again_after_a_lost_connection() {
    let port = Arc::new(Mutex::new(0));
    // Metadata requests to drop before answering again; the bootstrap's is answered.
    let drop_next = Arc::new(Mutex::new(0usize));
    let (shared_port, shared_drop) = (port.clone(), drop_next.clone());
    let broker = ScriptedBroker::start(move |header: &RequestHeader, _body: Bytes| {
        let port = *shared_port.lock().unwrap();
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::Metadata) => {
                let mut left = shared_drop.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Action::Close;
                }
                metadata(port, header.request_api_version)
            }
            _ => Action::Default,
        }
    })
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    let config = ClientConfig::new(&broker.addr())
        .request_timeout(Duration::from_secs(10))
        .default_api_timeout(Duration::from_secs(15))
        .retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let admin = Admin::connect(config).await.expect("connect");

    *drop_next.lock().unwrap() = 4;
    let cluster = tokio::time::timeout(HANG_GUARD, admin.describe_cluster())
        .await
        .expect("within the guard")
        .expect("describe_cluster after four lost connections");
    assert_eq!(cluster.brokers.len(), 1);
    *drop_next.lock().unwrap() = 4;
    let topics = tokio::time::timeout(HANG_GUARD, admin.list_topics())
        .await
        .expect("within the guard")
        .expect("list_topics after four lost connections");
    assert_eq!(topics, vec![TOPIC.to_owned()]);
    *drop_next.lock().unwrap() = 4;
    let described = tokio::time::timeout(HANG_GUARD, admin.describe_topics(&[TOPIC]))
        .await
        .expect("within the guard")
        .expect("describe_topics after four lost connections");
    assert_eq!(described[0].partitions.len(), 1);
    assert_eq!(
        *drop_next.lock().unwrap(),
        0,
        "every dropped request was asked again"
    );
}

//! Mock handlers for cluster and topic requests: ApiVersions, Metadata, CreateTopics,
//! DeleteTopics, FindCoordinator, ListOffsets.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::server::encode;
use super::state::{code, State};
use crate::protocol::versions::client_versions;

/// The APIs the mock answers; advertised from their lowest version up to what josefk speaks.
pub(crate) const APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

pub(crate) fn api_versions(state: &State, version: i16) -> Bytes {
    let max = client_versions(ApiKey::ApiVersions).max;
    if version > max {
        // KIP-511: refuse in the v0 format, naming the versions the broker has.
        let own = ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_max_version(max);
        return encode(
            &ApiVersionsResponse::default()
                .with_error_code(35)
                .with_api_keys(vec![own]),
            0,
        );
    }
    let keys = APIS
        .iter()
        .map(|&api| {
            let range = client_versions(api);
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect();
    let mut response = ApiVersionsResponse::default().with_api_keys(keys);
    if state.transaction_version > 0 && version >= 3 {
        response = response
            .with_finalized_features_epoch(1)
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name(s("transaction.version"))
                .with_min_version_level(state.transaction_version)
                .with_max_version_level(state.transaction_version)]);
    }
    encode(&response, version)
}

pub(crate) fn metadata(state: &mut State, _node: i32, v: i16, r: MetadataRequest) -> Bytes {
    use metadata_response::*;
    let brokers = state
        .brokers
        .iter()
        .map(|(&id, &port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(s("127.0.0.1"))
                .with_port(i32::from(port))
        })
        .collect();
    let names: Vec<String> = match &r.topics {
        None => state.topics.keys().cloned().collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect(),
    };
    let mut topics = Vec::new();
    for name in names {
        if !state.topics.contains_key(&name)
            && r.allow_auto_topic_creation
            && state.auto_create_topics
        {
            let partitions = state.default_partitions;
            state.create_topic(&name, partitions);
        }
        let topic = match state.topics.get(&name) {
            Some(t) => {
                let partitions = t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        MetadataResponsePartition::default()
                            .with_partition_index(i as i32)
                            .with_leader_id(BrokerId(p.leader))
                            .with_leader_epoch(p.leader_epoch)
                            .with_replica_nodes(vec![BrokerId(p.leader)])
                            .with_isr_nodes(vec![BrokerId(p.leader)])
                    })
                    .collect();
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(s(&name))))
                    .with_partitions(partitions)
            }
            None => MetadataResponseTopic::default()
                .with_name(Some(TopicName(s(&name))))
                .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
        };
        topics.push(topic);
    }
    let controller = state.broker_ids()[0];
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s(&state.cluster_id)))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics);
    encode(&response, v)
}

pub(crate) fn create_topics(
    state: &mut State,
    _node: i32,
    v: i16,
    r: CreateTopicsRequest,
) -> Bytes {
    use create_topics_response::CreatableTopicResult;
    let brokers = state.brokers.len() as i16;
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = if t.num_partitions == -1 {
                state.default_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                1
            } else {
                t.replication_factor
            };
            let error = if rf < 1 || rf > brokers {
                code::INVALID_REPLICATION_FACTOR
            } else if r.validate_only {
                code::NONE
            } else {
                state.create_topic(&name, partitions)
            };
            let mut result = CreatableTopicResult::default()
                .with_name(t.name)
                .with_error_code(error)
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if error == code::NONE {
                result = result
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf);
            }
            result
        })
        .collect();
    encode(&CreateTopicsResponse::default().with_topics(topics), v)
}

pub(crate) fn delete_topics(
    state: &mut State,
    _node: i32,
    v: i16,
    r: DeleteTopicsRequest,
) -> Bytes {
    use delete_topics_response::DeletableTopicResult;
    let names = r
        .topic_names
        .into_iter()
        .map(Some)
        .chain(r.topics.into_iter().map(|t| t.name));
    let results = names
        .map(|name| {
            let found = name
                .as_ref()
                .is_some_and(|n| state.topics.remove(n.0.as_str()).is_some());
            if found {
                if let Some(n) = &name {
                    state.producers.retain(|(t, _, _), _| t != n.0.as_str());
                }
            }
            DeletableTopicResult::default()
                .with_name(name)
                .with_error_code(if found {
                    code::NONE
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                })
        })
        .collect();
    encode(&DeleteTopicsResponse::default().with_responses(results), v)
}

pub(crate) fn find_coordinator(
    state: &mut State,
    _node: i32,
    v: i16,
    r: FindCoordinatorRequest,
) -> Bytes {
    use find_coordinator_response::Coordinator;
    let locate = |key: &str| {
        let node = state.coordinator(r.key_type, key);
        (node, state.brokers.get(&node).copied().unwrap_or(0))
    };
    let valid_type = r.key_type == 0 || r.key_type == 1;
    let response = if v >= 4 {
        let coordinators = r
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                if !valid_type {
                    return c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code::COORDINATOR_NOT_AVAILABLE);
                }
                let (node, port) = locate(key);
                c.with_node_id(BrokerId(node))
                    .with_host(s("127.0.0.1"))
                    .with_port(i32::from(port))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else if !valid_type {
        FindCoordinatorResponse::default()
            .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    } else {
        let (node, port) = locate(&r.key);
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(s("127.0.0.1"))
            .with_port(i32::from(port))
    };
    encode(&response, v)
}

pub(crate) fn list_offsets(state: &mut State, node: i32, v: i16, r: ListOffsetsRequest) -> Bytes {
    use list_offsets_response::*;
    let read_committed = r.isolation_level == 1;
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let Some(log) = state.partition(t.name.0.as_str(), p.partition_index) else {
                        return answer.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    if log.leader != node {
                        return answer.with_error_code(code::NOT_LEADER_OR_FOLLOWER);
                    }
                    let end = if read_committed {
                        log.last_stable_offset()
                    } else {
                        log.high_watermark()
                    };
                    let (offset, ts) = match p.timestamp {
                        -1 => (end, -1),
                        -2 | -4 => (log.log_start, -1),
                        -3 => log
                            .batches
                            .iter()
                            .max_by_key(|b| b.max_timestamp)
                            .map_or((-1, -1), |b| (b.base_offset, b.max_timestamp)),
                        ts => log
                            .offset_for_timestamp(ts)
                            .filter(|&(o, _)| o < end)
                            .unwrap_or((-1, -1)),
                    };
                    answer
                        .with_offset(offset)
                        .with_timestamp(ts)
                        .with_leader_epoch(log.leader_epoch)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(&ListOffsetsResponse::default().with_topics(topics), v)
}

//! Fault injection for the mock cluster: which request to disturb ([`Api`], broker, how many
//! times) and how ([`Fault::error`], [`Fault::delay`], [`Fault::drop_connection`],
//! [`Fault::drop_response`]); and the error answer of each API, mirroring the request's topics and
//! partitions so the client sees the code where it looks for it.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::server::encode;

/// A request type the mock cluster answers, for [`Fault`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Api {
    /// Produce.
    Produce,
    /// Fetch.
    Fetch,
    /// ListOffsets.
    ListOffsets,
    /// Metadata.
    Metadata,
    /// OffsetCommit.
    OffsetCommit,
    /// OffsetFetch.
    OffsetFetch,
    /// FindCoordinator.
    FindCoordinator,
    /// JoinGroup.
    JoinGroup,
    /// Heartbeat.
    Heartbeat,
    /// LeaveGroup.
    LeaveGroup,
    /// SyncGroup.
    SyncGroup,
    /// CreateTopics.
    CreateTopics,
    /// DeleteTopics.
    DeleteTopics,
    /// InitProducerId.
    InitProducerId,
    /// AddPartitionsToTxn.
    AddPartitionsToTxn,
    /// AddOffsetsToTxn.
    AddOffsetsToTxn,
    /// EndTxn.
    EndTxn,
    /// TxnOffsetCommit.
    TxnOffsetCommit,
}

impl Api {
    pub(crate) fn key(self) -> ApiKey {
        match self {
            Api::Produce => ApiKey::Produce,
            Api::Fetch => ApiKey::Fetch,
            Api::ListOffsets => ApiKey::ListOffsets,
            Api::Metadata => ApiKey::Metadata,
            Api::OffsetCommit => ApiKey::OffsetCommit,
            Api::OffsetFetch => ApiKey::OffsetFetch,
            Api::FindCoordinator => ApiKey::FindCoordinator,
            Api::JoinGroup => ApiKey::JoinGroup,
            Api::Heartbeat => ApiKey::Heartbeat,
            Api::LeaveGroup => ApiKey::LeaveGroup,
            Api::SyncGroup => ApiKey::SyncGroup,
            Api::CreateTopics => ApiKey::CreateTopics,
            Api::DeleteTopics => ApiKey::DeleteTopics,
            Api::InitProducerId => ApiKey::InitProducerId,
            Api::AddPartitionsToTxn => ApiKey::AddPartitionsToTxn,
            Api::AddOffsetsToTxn => ApiKey::AddOffsetsToTxn,
            Api::EndTxn => ApiKey::EndTxn,
            Api::TxnOffsetCommit => ApiKey::TxnOffsetCommit,
        }
    }
}

/// What a fault does to the request it catches.
#[derive(Debug, Clone)]
pub(crate) enum FaultAction {
    Error(i16),
    Delay(Duration),
    DropConnection,
    DropResponse,
}

/// One disturbance of the next request(s) of one [`Api`], added with
/// [`MockCluster::inject`](super::MockCluster::inject).
///
/// Faults are matched in the order they were added; each catches `times` requests (1 unless set)
/// and is then used up.
#[derive(Debug, Clone)]
pub struct Fault {
    pub(crate) api: Api,
    pub(crate) broker: Option<i32>,
    pub(crate) remaining: u32,
    pub(crate) action: FaultAction,
}

impl Fault {
    fn new(api: Api, action: FaultAction) -> Fault {
        Fault {
            api,
            broker: None,
            remaining: 1,
            action,
        }
    }

    /// Answers the request with Kafka error `code` (e.g. 6 NOT_LEADER_OR_FOLLOWER, 16
    /// NOT_COORDINATOR, 51 CONCURRENT_TRANSACTIONS) in every error field, without carrying it out.
    pub fn error(api: Api, code: i16) -> Fault {
        Fault::new(api, FaultAction::Error(code))
    }

    /// Waits `delay` before carrying out the request; later requests on the connection wait too.
    pub fn delay(api: Api, delay: Duration) -> Fault {
        Fault::new(api, FaultAction::Delay(delay))
    }

    /// Closes the connection instead of carrying out the request.
    pub fn drop_connection(api: Api) -> Fault {
        Fault::new(api, FaultAction::DropConnection)
    }

    /// Carries out the request, then closes the connection instead of answering: the client cannot
    /// know it happened (a retry must not write twice).
    pub fn drop_response(api: Api) -> Fault {
        Fault::new(api, FaultAction::DropResponse)
    }

    /// Only requests to broker `node_id`.
    pub fn on_broker(mut self, node_id: i32) -> Fault {
        self.broker = Some(node_id);
        self
    }

    /// Catches the next `n` matching requests instead of one.
    pub fn times(mut self, n: u32) -> Fault {
        self.remaining = n.max(1);
        self
    }
}

/// Takes the first fault matching `api` on `broker`, using one of its catches.
pub(crate) fn take(faults: &mut Vec<Fault>, api: ApiKey, broker: i32) -> Option<FaultAction> {
    let i = faults
        .iter()
        .position(|f| f.api.key() == api && f.broker.is_none_or(|b| b == broker))?;
    let action = faults[i].action.clone();
    faults[i].remaining -= 1;
    if faults[i].remaining == 0 {
        faults.remove(i);
    }
    Some(action)
}

/// The answer to `body` (a request of `api` at `version`) with `code` in every error field, or
/// `None` if the request does not decode.
pub(crate) fn error_response(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
    code: i16,
) -> Option<Bytes> {
    let b = &mut body;
    Some(match api {
        ApiKey::Produce => {
            let r = ProduceRequest::decode(b, version).ok()?;
            let topics = r.topic_data.into_iter().map(|t| {
                let parts = t.partition_data.iter().map(|p| {
                    produce_response::PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                });
                produce_response::TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(parts.collect())
            });
            encode(
                &ProduceResponse::default().with_responses(topics.collect()),
                version,
            )
        }
        ApiKey::Fetch => {
            let r = FetchRequest::decode(b, version).ok()?;
            let topics = r.topics.into_iter().map(|t| {
                let parts = t.partitions.iter().map(|p| {
                    fetch_response::PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                });
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(t.topic)
                    .with_partitions(parts.collect())
            });
            encode(
                &FetchResponse::default().with_responses(topics.collect()),
                version,
            )
        }
        ApiKey::ListOffsets => {
            let r = ListOffsetsRequest::decode(b, version).ok()?;
            let topics = r.topics.into_iter().map(|t| {
                let parts = t.partitions.iter().map(|p| {
                    list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_offset(-1)
                        .with_timestamp(-1)
                });
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(parts.collect())
            });
            encode(
                &ListOffsetsResponse::default().with_topics(topics.collect()),
                version,
            )
        }
        ApiKey::Metadata => encode(&MetadataResponse::default().with_error_code(code), version),
        ApiKey::OffsetCommit => {
            let r = OffsetCommitRequest::decode(b, version).ok()?;
            let topics = r.topics.into_iter().map(|t| {
                let parts = t.partitions.iter().map(|p| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(parts.collect())
            });
            encode(
                &OffsetCommitResponse::default().with_topics(topics.collect()),
                version,
            )
        }
        ApiKey::OffsetFetch => {
            let r = OffsetFetchRequest::decode(b, version).ok()?;
            let groups = r.groups.into_iter().map(|g| {
                offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code)
            });
            encode(
                &OffsetFetchResponse::default()
                    .with_error_code(code)
                    .with_groups(groups.collect()),
                version,
            )
        }
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorRequest::decode(b, version).ok()?;
            let keys = r.coordinator_keys.into_iter().map(|k| {
                find_coordinator_response::Coordinator::default()
                    .with_key(k)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
            });
            encode(
                &FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_coordinators(keys.collect()),
                version,
            )
        }
        ApiKey::JoinGroup => encode(
            &JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1),
            version,
        ),
        ApiKey::Heartbeat => encode(&HeartbeatResponse::default().with_error_code(code), version),
        ApiKey::LeaveGroup => encode(
            &LeaveGroupResponse::default().with_error_code(code),
            version,
        ),
        ApiKey::SyncGroup => encode(&SyncGroupResponse::default().with_error_code(code), version),
        ApiKey::CreateTopics => {
            let r = CreateTopicsRequest::decode(b, version).ok()?;
            let topics = r.topics.into_iter().map(|t| {
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            });
            encode(
                &CreateTopicsResponse::default().with_topics(topics.collect()),
                version,
            )
        }
        ApiKey::DeleteTopics => {
            let r = DeleteTopicsRequest::decode(b, version).ok()?;
            let names = r
                .topic_names
                .into_iter()
                .map(Some)
                .chain(r.topics.into_iter().map(|t| t.name));
            let topics = names.map(|n| {
                delete_topics_response::DeletableTopicResult::default()
                    .with_name(n)
                    .with_error_code(code)
            });
            encode(
                &DeleteTopicsResponse::default().with_responses(topics.collect()),
                version,
            )
        }
        ApiKey::InitProducerId => encode(
            &InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        ApiKey::AddPartitionsToTxn => {
            let r = AddPartitionsToTxnRequest::decode(b, version).ok()?;
            let topics = r.v3_and_below_topics.into_iter().map(|t| {
                let parts = t.partitions.iter().map(|&p| {
                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                });
                add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name)
                    .with_results_by_partition(parts.collect())
            });
            encode(
                &AddPartitionsToTxnResponse::default()
                    .with_error_code(code)
                    .with_results_by_topic_v3_and_below(topics.collect()),
                version,
            )
        }
        ApiKey::AddOffsetsToTxn => encode(
            &AddOffsetsToTxnResponse::default().with_error_code(code),
            version,
        ),
        ApiKey::EndTxn => encode(
            &EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        ApiKey::TxnOffsetCommit => {
            let r = TxnOffsetCommitRequest::decode(b, version).ok()?;
            let topics = r.topics.into_iter().map(|t| {
                let parts = t.partitions.iter().map(|p| {
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                });
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(parts.collect())
            });
            encode(
                &TxnOffsetCommitResponse::default().with_topics(topics.collect()),
                version,
            )
        }
        _ => return None,
    })
}

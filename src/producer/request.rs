//! Building Produce requests from drained batches and reading their per-partition outcomes.
//!
//! Pure functions: the sender decides what to send and what an outcome means; this file only maps
//! between josefk's view (topic-partition → encoded batch) and the message layout.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use crate::record::TopicPartition;

/// A Produce request for one broker: at most one batch per partition, as the idempotent producer
/// requires (the broker checks sequence continuity per batch).
pub(crate) fn build_produce_request<'a>(
    acks: i16,
    timeout_ms: i32,
    transactional_id: Option<&str>,
    batches: impl IntoIterator<Item = (&'a TopicPartition, Bytes)>,
) -> ProduceRequest {
    let mut by_topic: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for (tp, records) in batches {
        by_topic.entry(tp.topic.as_str()).or_default().push(
            PartitionProduceData::default()
                .with_index(tp.partition)
                .with_records(Some(records)),
        );
    }
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_transactional_id(
            transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_owned()))),
        )
        .with_topic_data(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partition_data(partitions)
                })
                .collect(),
        )
}

/// What the broker said about one partition's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionOutcome {
    /// The partition.
    pub tp: TopicPartition,
    /// The error, if any.
    pub error: Option<ResponseError>,
    /// The broker's message for the error.
    pub error_message: Option<String>,
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// The broker's append time, for `LogAppendTime` topics.
    pub log_append_time: Option<i64>,
    /// The partition's log start offset (tells retention apart from loss on UNKNOWN_PRODUCER_ID).
    pub log_start_offset: i64,
    /// Records the broker rejected individually (INVALID_RECORD), by index in the batch.
    pub record_errors: Vec<(i32, Option<String>)>,
    /// The new leader and its epoch, when the error says leadership moved (KIP-951).
    pub current_leader: Option<(i32, i32)>,
}

/// Flattens a Produce response into one outcome per partition.
pub(crate) fn parse_produce_response(response: &ProduceResponse) -> Vec<PartitionOutcome> {
    let mut out = Vec::new();
    for topic in &response.responses {
        for p in &topic.partition_responses {
            out.push(PartitionOutcome {
                tp: TopicPartition::new(topic.name.0.to_string(), p.index),
                error: ResponseError::try_from_code(p.error_code),
                error_message: p.error_message.as_ref().map(|m| m.to_string()),
                base_offset: p.base_offset,
                log_append_time: (p.log_append_time_ms >= 0).then_some(p.log_append_time_ms),
                log_start_offset: p.log_start_offset,
                record_errors: p
                    .record_errors
                    .iter()
                    .map(|e| {
                        (
                            e.batch_index,
                            e.batch_index_error_message.as_ref().map(|m| m.to_string()),
                        )
                    })
                    .collect(),
                current_leader: (p.current_leader.leader_id.0 >= 0)
                    .then_some((p.current_leader.leader_id.0, p.current_leader.leader_epoch)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        LeaderIdAndEpoch, PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::BrokerId;

    #[test]
    fn groups_batches_by_topic_one_entry_per_partition() {
        let a0 = TopicPartition::new("a", 0);
        let a1 = TopicPartition::new("a", 1);
        let b0 = TopicPartition::new("b", 0);
        let req = build_produce_request(
            -1,
            30_000,
            Some("tx"),
            [
                (&a1, Bytes::from_static(b"x")),
                (&b0, Bytes::from_static(b"y")),
                (&a0, Bytes::from_static(b"z")),
            ],
        );
        assert_eq!(req.acks, -1);
        assert_eq!(req.transactional_id.as_ref().unwrap().0.as_str(), "tx");
        assert_eq!(req.topic_data.len(), 2);
        assert_eq!(req.topic_data[0].name.0.as_str(), "a");
        let parts: Vec<i32> = req.topic_data[0]
            .partition_data
            .iter()
            .map(|p| p.index)
            .collect();
        assert_eq!(parts, vec![1, 0]);
        assert_eq!(
            req.topic_data[1].partition_data[0].records.as_deref(),
            Some(&b"y"[..])
        );
    }

    #[test]
    fn outcomes_carry_error_offsets_and_new_leader() {
        let response =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName("t".into()))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default()
                        .with_index(0)
                        .with_base_offset(41)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(3)
                        .with_current_leader(
                            LeaderIdAndEpoch::default().with_leader_id(BrokerId(-1)),
                        ),
                    PartitionProduceResponse::default()
                        .with_index(1)
                        .with_error_code(6)
                        .with_base_offset(-1)
                        .with_current_leader(
                            LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(2))
                                .with_leader_epoch(9),
                        ),
                ])]);
        let out = parse_produce_response(&response);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].error, None);
        assert_eq!(out[0].base_offset, 41);
        assert_eq!(out[0].log_append_time, None);
        assert_eq!(out[0].current_leader, None);
        assert_eq!(out[1].error, Some(ResponseError::NotLeaderOrFollower));
        assert_eq!(out[1].current_leader, Some((2, 9)));
    }
}

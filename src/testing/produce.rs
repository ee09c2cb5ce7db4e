//! The mock's Produce handler: validates each batch (v2, CRC), checks idempotent sequence numbers
//! and producer epochs per partition as a Kafka partition leader does, checks that transactional
//! batches belong to an open transaction, and appends the batches as sent.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::server::{encode, Reply};
use super::state::{code, State};
use super::txn::TxnState;
use crate::protocol::records::RecordBatches;

/// How many batches per producer and partition are remembered to spot retried duplicates (Java's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
const RECENT_BATCHES: usize = 5;

pub(crate) fn produce(state: &mut State, node: i32, v: i16, r: ProduceRequest) -> Reply {
    let txn_id = r.transactional_id.as_ref().map(|t| t.0.to_string());
    let topics = r
        .topic_data
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let partitions = t
                .partition_data
                .into_iter()
                .map(|p| {
                    let records = p.records.unwrap_or_default();
                    let (error, base_offset, log_start) =
                        match append(state, node, &topic, p.index, txn_id.as_deref(), records) {
                            Ok((base, start)) => (code::NONE, base, start),
                            Err(e) => (e, -1, -1),
                        };
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(error)
                        .with_base_offset(base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(log_start)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    if r.acks == 0 {
        return Reply::Silent;
    }
    Reply::Now(encode(
        &ProduceResponse::default().with_responses(topics),
        v,
    ))
}

/// Appends every batch of one partition's records; returns the first base offset and the log
/// start offset, or the error code of the first batch refused (later batches are not written).
fn append(
    state: &mut State,
    node: i32,
    topic: &str,
    partition: i32,
    txn_id: Option<&str>,
    records: bytes::Bytes,
) -> Result<(i64, i64), i16> {
    let transaction_version = state.transaction_version;
    match state.partition(topic, partition) {
        None => return Err(code::UNKNOWN_TOPIC_OR_PARTITION),
        Some(log) if log.leader != node => return Err(code::NOT_LEADER_OR_FOLLOWER),
        Some(_) => {}
    }
    let mut first_base = None;
    for batch in RecordBatches::new(records.clone()) {
        let batch = batch.map_err(|_| code::CORRUPT_MESSAGE)?;
        if batch.is_control || batch.last_offset_delta < 0 {
            return Err(code::CORRUPT_MESSAGE);
        }
        let pid = batch.producer_id;
        if batch.is_transactional {
            let Some(txn_id) = txn_id else {
                return Err(code::INVALID_TXN_STATE);
            };
            let Some(txn) = state.txns.get_mut(txn_id) else {
                return Err(code::INVALID_PRODUCER_ID_MAPPING);
            };
            if txn.producer_id != pid {
                return Err(code::INVALID_PRODUCER_ID_MAPPING);
            }
            if batch.producer_epoch != txn.epoch {
                return Err(code::INVALID_PRODUCER_EPOCH);
            }
            let key = (topic.to_owned(), partition);
            if !txn.partitions.contains(&key) {
                // transaction.version 2 adds partitions implicitly with the first write.
                if transaction_version < 2
                    || txn.state != TxnState::Ongoing && !txn.partitions.is_empty()
                {
                    return Err(code::INVALID_TXN_STATE);
                }
                txn.begin();
                txn.partitions.insert(key);
            }
        }
        let mut duplicate = None;
        if pid >= 0 {
            let key = (topic.to_owned(), partition, pid);
            let entry = state.producers.get(&key);
            let seq = batch.base_sequence;
            let last = batch.last_sequence();
            match entry {
                Some(e) if batch.producer_epoch < e.epoch => {
                    return Err(code::INVALID_PRODUCER_EPOCH);
                }
                Some(e) if batch.producer_epoch == e.epoch => {
                    if let Some(&(_, _, base)) =
                        e.recent.iter().find(|&&(f, l, _)| f == seq && l == last)
                    {
                        duplicate = Some(base);
                    } else if seq != e.last_sequence.wrapping_add(1)
                        && !(e.last_sequence == i32::MAX && seq == 0)
                    {
                        return Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER);
                    }
                }
                // A new producer or a new epoch starts at sequence 0.
                _ if seq != 0 => return Err(code::OUT_OF_ORDER_SEQUENCE_NUMBER),
                _ => {}
            }
        }
        let base = match duplicate {
            Some(base) => base,
            None => {
                let span = i64::from(batch.last_offset_delta) + 1;
                let log = state
                    .partition_mut(topic, partition)
                    .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)?;
                let base = log.append(batch.raw(), span, batch.max_timestamp);
                if batch.is_transactional {
                    log.open_txn(pid, base);
                }
                if pid >= 0 {
                    let entry = state
                        .producers
                        .entry((topic.to_owned(), partition, pid))
                        .or_default();
                    if entry.epoch != batch.producer_epoch {
                        entry.recent.clear();
                    }
                    entry.epoch = batch.producer_epoch;
                    entry.last_sequence = batch.last_sequence();
                    entry
                        .recent
                        .push_back((batch.base_sequence, batch.last_sequence(), base));
                    if entry.recent.len() > RECENT_BATCHES {
                        entry.recent.pop_front();
                    }
                }
                base
            }
        };
        first_base.get_or_insert(base);
    }
    let log_start = state.partition(topic, partition).map_or(0, |l| l.log_start);
    first_base
        .map(|b| (b, log_start))
        .ok_or(code::CORRUPT_MESSAGE)
}

//! The mock's Fetch handler: returns stored batches from the requested offsets up to the high
//! watermark (read_uncommitted) or the last stable offset (read_committed, with the list of
//! aborted transactions in range), waiting up to `max_wait_ms` for data as a broker does. Fetch
//! sessions are not kept: every answer has session id 0, so clients send full requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use super::server::{encode, Shared};
use super::state::{code, State};

/// Longest a fetch waits, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn fetch(shared: &Arc<Shared>, node: i32, v: i16, r: FetchRequest) -> Bytes {
    let wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = shared.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (response, bytes, errors) = answer(&shared.lock(), node, &r);
        let enough = bytes >= usize::try_from(r.min_bytes).unwrap_or(0).max(1);
        if enough || errors || tokio::time::Instant::now() >= deadline {
            return encode(&response, v);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let (response, _, _) = answer(&shared.lock(), node, &r);
            return encode(&response, v);
        }
    }
}

/// The response as of now, the bytes of records in it, and whether any partition has an error.
fn answer(state: &State, node: i32, r: &FetchRequest) -> (FetchResponse, usize, bool) {
    let read_committed = r.isolation_level == 1;
    let max_total = usize::try_from(r.max_bytes).unwrap_or(0);
    let mut total = 0usize;
    let mut errors = false;
    let mut topics = Vec::new();
    for t in &r.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let out = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let Some(log) = state.partition(t.topic.0.as_str(), p.partition) else {
                errors = true;
                partitions.push(out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if log.leader != node {
                errors = true;
                partitions.push(out.with_error_code(code::NOT_LEADER_OR_FOLLOWER));
                continue;
            }
            let out = out
                .with_high_watermark(log.high_watermark())
                .with_last_stable_offset(log.last_stable_offset())
                .with_log_start_offset(log.log_start);
            if p.fetch_offset < log.log_start || p.fetch_offset > log.log_end {
                errors = true;
                partitions.push(out.with_error_code(code::OFFSET_OUT_OF_RANGE));
                continue;
            }
            let limit = if read_committed {
                log.last_stable_offset()
            } else {
                log.high_watermark()
            };
            let max_partition = usize::try_from(p.partition_max_bytes).unwrap_or(0);
            let mut records = BytesMut::new();
            let mut last_offset = p.fetch_offset;
            for b in &log.batches[log.batch_index_from(p.fetch_offset)..] {
                if b.last_offset >= limit {
                    break;
                }
                let first = records.is_empty() && total == 0;
                // As Kafka: the first batch goes out whole even above the limits, so a client
                // with small limits still makes progress.
                if !first
                    && (records.len() + b.bytes.len() > max_partition
                        || total + b.bytes.len() > max_total)
                {
                    break;
                }
                records.extend_from_slice(&b.bytes);
                total += b.bytes.len();
                last_offset = b.last_offset;
            }
            let mut out = out.with_records(Some(records.freeze()));
            if read_committed {
                let aborted = log
                    .aborted
                    .iter()
                    .filter(|a| a.first_offset <= last_offset && a.last_offset >= p.fetch_offset)
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect();
                out = out.with_aborted_transactions(Some(aborted));
            }
            partitions.push(out);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        errors,
    )
}

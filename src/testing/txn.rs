//! The mock's transaction coordinator: InitProducerId (new ids, KIP-360 epoch bumps, fencing an
//! earlier incarnation of a `transactional.id` and aborting its open transaction),
//! AddPartitionsToTxn (v0–3), AddOffsetsToTxn, TxnOffsetCommit (offsets held pending in the
//! group), EndTxn (commit or abort markers on every partition of the transaction, pending offsets
//! applied or dropped), and aborting transactions that outlive their timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::server::encode;
use super::state::{code, now, now_ms, State};

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    Empty,
    Ongoing,
    Committed,
    Aborted,
}

/// One `transactional.id`'s coordinator state.
#[derive(Debug)]
pub(crate) struct Txn {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    timeout: Duration,
    pub(crate) state: TxnState,
    pub(crate) partitions: BTreeSet<(String, i32)>,
    groups: BTreeSet<String>,
    started: Option<Instant>,
}

impl Txn {
    /// Marks the transaction ongoing (a no-op if it already is).
    pub(crate) fn begin(&mut self) {
        if self.state != TxnState::Ongoing {
            self.state = TxnState::Ongoing;
            self.started = Some(now());
        }
    }
}

fn new_producer_id(state: &mut State) -> i64 {
    state.next_producer_id += 1;
    state.next_producer_id
}

/// Checks coordinator, producer id and epoch of a request about transaction `id`.
fn check(state: &State, node: i32, id: &str, pid: i64, epoch: i16) -> i16 {
    if state.coordinator(1, id) != node {
        return code::NOT_COORDINATOR;
    }
    match state.txns.get(id) {
        None => code::INVALID_PRODUCER_ID_MAPPING,
        Some(t) if t.producer_id != pid => code::INVALID_PRODUCER_ID_MAPPING,
        Some(t) if t.epoch != epoch => code::PRODUCER_FENCED,
        Some(_) => code::NONE,
    }
}

/// Ends transaction `id`: markers stamped with `marker_epoch` on every partition, group offsets
/// applied (commit) or dropped (abort).
fn complete(state: &mut State, id: &str, commit: bool, marker_epoch: i16) {
    let Some(txn) = state.txns.get_mut(id) else {
        return;
    };
    let pid = txn.producer_id;
    let partitions = std::mem::take(&mut txn.partitions);
    txn.groups.clear();
    txn.started = None;
    txn.state = if commit {
        TxnState::Committed
    } else {
        TxnState::Aborted
    };
    let at = now_ms();
    for (topic, p) in partitions {
        if let Some(log) = state.partition_mut(&topic, p) {
            log.write_marker(pid, marker_epoch, commit, at);
        }
        if let Some(entry) = state.producers.get_mut(&(topic, p, pid)) {
            if marker_epoch > entry.epoch {
                // A newer epoch starts its sequences at 0 again.
                entry.epoch = marker_epoch;
                entry.last_sequence = -1;
                entry.recent.clear();
            }
        }
    }
    for group in state.groups.values_mut() {
        if let Some(offsets) = group.pending_txn.remove(&pid) {
            if commit {
                group.offsets.extend(offsets);
            }
        }
    }
}

/// Aborts transactions that outlived their timeout, fencing their producer (as Kafka does).
pub(crate) fn tick(state: &mut State) -> bool {
    let at = now();
    let expired: Vec<String> = state
        .txns
        .iter()
        .filter(|(_, t)| {
            t.state == TxnState::Ongoing && t.started.is_some_and(|s| at >= s + t.timeout)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in &expired {
        let epoch = state.txns[id].epoch.saturating_add(1);
        complete(state, id, false, epoch);
        if let Some(t) = state.txns.get_mut(id) {
            t.epoch = epoch;
        }
    }
    !expired.is_empty()
}

pub(crate) fn init_producer_id(
    state: &mut State,
    node: i32,
    v: i16,
    r: InitProducerIdRequest,
) -> Bytes {
    let answer = |error: i16, pid: i64, epoch: i16| {
        encode(
            &InitProducerIdResponse::default()
                .with_error_code(error)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            v,
        )
    };
    let given = (r.producer_id.0, r.producer_epoch);
    let Some(id) = r.transactional_id.as_ref().map(|t| t.0.to_string()) else {
        // Idempotent producer: a new id, or a KIP-360 epoch bump of the one it has.
        if given.0 >= 0 {
            match state.idempotent_epochs.get(&given.0) {
                Some(&e) if e == given.1 && e < i16::MAX - 1 => {
                    state.idempotent_epochs.insert(given.0, e + 1);
                    return answer(code::NONE, given.0, e + 1);
                }
                Some(&e) if e != given.1 => return answer(code::PRODUCER_FENCED, -1, -1),
                _ => {}
            }
        }
        let pid = new_producer_id(state);
        state.idempotent_epochs.insert(pid, 0);
        return answer(code::NONE, pid, 0);
    };
    if state.coordinator(1, &id) != node {
        return answer(code::NOT_COORDINATOR, -1, -1);
    }
    let timeout = Duration::from_millis(u64::try_from(r.transaction_timeout_ms).unwrap_or(0));
    let Some(txn) = state.txns.get(&id) else {
        let pid = new_producer_id(state);
        state.txns.insert(
            id,
            Txn {
                producer_id: pid,
                epoch: 0,
                timeout,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                started: None,
            },
        );
        return answer(code::NONE, pid, 0);
    };
    if given.0 >= 0 && given != (txn.producer_id, txn.epoch) {
        return answer(code::PRODUCER_FENCED, -1, -1);
    }
    let (mut pid, mut epoch) = (txn.producer_id, txn.epoch.saturating_add(1));
    if txn.state == TxnState::Ongoing {
        // Fences the earlier incarnation: its open transaction is aborted with the new epoch.
        complete(state, &id, false, epoch);
    }
    if epoch >= i16::MAX - 1 {
        pid = new_producer_id(state);
        epoch = 0;
    }
    if let Some(t) = state.txns.get_mut(&id) {
        t.producer_id = pid;
        t.epoch = epoch;
        t.timeout = timeout;
        t.state = TxnState::Empty;
    }
    answer(code::NONE, pid, epoch)
}

pub(crate) fn add_partitions(
    state: &mut State,
    node: i32,
    v: i16,
    r: AddPartitionsToTxnRequest,
) -> Bytes {
    let id = r.v3_and_below_transactional_id.0.to_string();
    let error = check(
        state,
        node,
        &id,
        r.v3_and_below_producer_id.0,
        r.v3_and_below_producer_epoch,
    );
    let topics = r
        .v3_and_below_topics
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let results = t
                .partitions
                .iter()
                .map(|&p| {
                    let mut e = error;
                    if e == code::NONE && state.partition(&topic, p).is_none() {
                        e = code::UNKNOWN_TOPIC_OR_PARTITION;
                    }
                    if e == code::NONE {
                        if let Some(txn) = state.txns.get_mut(&id) {
                            txn.begin();
                            txn.partitions.insert((topic.clone(), p));
                        }
                    }
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(e)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(results)
        })
        .collect();
    encode(
        &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics),
        v,
    )
}

pub(crate) fn add_offsets(
    state: &mut State,
    node: i32,
    v: i16,
    r: AddOffsetsToTxnRequest,
) -> Bytes {
    let id = r.transactional_id.0.to_string();
    let error = check(state, node, &id, r.producer_id.0, r.producer_epoch);
    if error == code::NONE {
        if let Some(txn) = state.txns.get_mut(&id) {
            txn.begin();
            txn.groups.insert(r.group_id.0.to_string());
        }
    }
    encode(
        &AddOffsetsToTxnResponse::default().with_error_code(error),
        v,
    )
}

pub(crate) fn txn_offset_commit(
    state: &mut State,
    node: i32,
    v: i16,
    r: TxnOffsetCommitRequest,
) -> Bytes {
    let group_id = r.group_id.0.to_string();
    let id = r.transactional_id.0.to_string();
    let pid = r.producer_id.0;
    let error = if state.coordinator(0, &group_id) != node {
        code::NOT_COORDINATOR
    } else {
        match state.txns.get(&id) {
            Some(t) if t.producer_id == pid && t.epoch != r.producer_epoch => code::PRODUCER_FENCED,
            // transaction.version 2 (TxnOffsetCommit v5) adds the group implicitly (KIP-890).
            Some(t)
                if t.producer_id == pid
                    && (t.groups.contains(&group_id)
                        || (state.transaction_version >= 2 && v >= 5)) =>
            {
                match state.groups.get(&group_id) {
                    Some(g) => g.check_txn_member(r.member_id.as_str(), r.generation_id),
                    None => code::NONE,
                }
            }
            _ => code::INVALID_TXN_STATE,
        }
    };
    if error == code::NONE {
        if let Some(t) = state.txns.get_mut(&id) {
            t.begin();
            t.groups.insert(group_id.clone());
        }
    }
    let group = state.groups.entry(group_id).or_default();
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let partitions =
                t.partitions
                    .iter()
                    .map(|p| {
                        if error == code::NONE {
                            let md = p.committed_metadata.as_ref().map(|m| m.to_string());
                            group.pending_txn.entry(pid).or_default().insert(
                                (topic.clone(), p.partition_index),
                                (p.committed_offset, md),
                            );
                        }
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error)
                    })
                    .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(&TxnOffsetCommitResponse::default().with_topics(topics), v)
}

pub(crate) fn end_txn(state: &mut State, node: i32, v: i16, r: EndTxnRequest) -> Bytes {
    let id = r.transactional_id.0.to_string();
    let tv2 = state.transaction_version >= 2 && v >= 5;
    let answer = |error: i16, pid: i64, epoch: i16| {
        encode(
            &EndTxnResponse::default()
                .with_error_code(error)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            v,
        )
    };
    let error = check(state, node, &id, r.producer_id.0, r.producer_epoch);
    if error == code::PRODUCER_FENCED && tv2 {
        // A retry of an EndTxn whose epoch bump already happened carries the previous epoch.
        let t = &state.txns[&id];
        let done = if r.committed {
            TxnState::Committed
        } else {
            TxnState::Aborted
        };
        if r.producer_epoch.checked_add(1) == Some(t.epoch) {
            if t.state == done {
                return answer(code::NONE, t.producer_id, t.epoch);
            }
            // E.g. a commit of a transaction the coordinator aborted on its timeout (Kafka 4:
            // abortable for the client, which aborts and goes on with the new epoch).
            return answer(code::INVALID_TXN_STATE, -1, -1);
        }
    }
    if error != code::NONE {
        return answer(error, -1, -1);
    }
    let txn = &state.txns[&id];
    let (pid, epoch, current) = (txn.producer_id, txn.epoch, txn.state);
    let error = match (current, r.committed) {
        (TxnState::Ongoing, commit) => {
            // transaction.version 2 bumps the epoch with every transaction (KIP-890).
            let next = if tv2 { epoch.saturating_add(1) } else { epoch };
            complete(state, &id, commit, next);
            if let Some(t) = state.txns.get_mut(&id) {
                t.epoch = next;
            }
            code::NONE
        }
        // A retry of an EndTxn that already took effect.
        (TxnState::Committed, true) | (TxnState::Aborted, false) => code::NONE,
        // An abort with nothing sent yet (the client aborts a transaction it only began).
        (TxnState::Empty, false) => code::NONE,
        _ => code::INVALID_TXN_STATE,
    };
    let epoch = state.txns.get(&id).map_or(epoch, |t| t.epoch);
    answer(error, pid, epoch)
}

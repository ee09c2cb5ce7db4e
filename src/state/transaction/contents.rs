//! What is in a transaction: its partitions and its consumer offsets, from the user's call that
//! adds them to the coordinator's answer (AddPartitionsToTxn and AddOffsetsToTxn under v1,
//! TxnOffsetCommit under both protocols), the quick retries after CONCURRENT_TRANSACTIONS, and
//! [`TransactionalGate`], which holds a partition's batches until the partition is in the
//! transaction.
//!
//! Part of [`TransactionManager`]: these methods keep its partition and offset bookkeeping; the
//! states, the request order and how a transaction ends are in the parent module.

use std::time::Duration;

use super::{classify_coordinator_error, needs_coordinator_lookup};
use super::{Offsets, TransactionManager, TxnProtocol, TxnRequest, TxnState, TxnStep};
use crate::error::{ApiKey, Error, ErrorClass, Result};
use crate::record::TopicPartition;
use crate::state::accumulator::{DrainGate, ProducerBatch};
use crate::state::sequence::IdempotenceState;
use kafka_protocol::error::ResponseError;

/// The longest retry wait after CONCURRENT_TRANSACTIONS on a transaction's first
/// AddPartitionsToTxn or on its offsets requests: the previous transaction is still completing
/// and will be done soon (Java waits this long for AddPartitionsToTxn,
/// `ADD_PARTITIONS_RETRY_BACKOFF_MS`, KAFKA-5482).
pub const ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF: Duration = Duration::from_millis(20);

/// First retry wait after CONCURRENT_TRANSACTIONS on a transaction's first AddPartitionsToTxn,
/// on TxnOffsetCommit or on AddOffsetsToTxn; each further one in a row doubles it up to
/// [`ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF`]. On v1 the first AddPartitionsToTxn of the next
/// transaction meets the previous one's markers being written, which on a healthy cluster takes
/// a few milliseconds: Java's fixed 20 ms cost each such transaction more than the wait. Under v2
/// the pipeline's TxnOffsetCommit often reaches the group coordinator a millisecond or two after
/// EndTxn was answered, while the previous markers are still being written (the verification of
/// `__consumer_offsets` meets the ending transaction): the window is short, and the default
/// `retry.backoff.ms` (100 ms) made each such transaction ~100 ms longer.
pub const OFFSETS_CONCURRENT_RETRY_BACKOFF: Duration = Duration::from_millis(2);

impl TransactionManager {
    /// A record for `tp` may join the transaction (Java `maybeAddPartition`): checks, then adds.
    /// The producer runs the two halves apart, around its append; the state tests use this.
    #[cfg(test)]
    pub fn maybe_add_partition(&mut self, tp: &TopicPartition) -> Result<()> {
        self.check_add_partition(tp)?;
        self.add_partition(tp);
        Ok(())
    }

    /// A record for `tp` was queued after [`TransactionManager::check_add_partition`] passed
    /// (under the same lock, so nothing to check again per record). v1 queues the partition for
    /// AddPartitionsToTxn; v2 adds it implicitly (Produce v12 does it on the broker).
    pub fn add_partition(&mut self, tp: &TopicPartition) {
        if self.partitions.contains(tp) || self.pending_partitions.contains(tp) {
            return;
        }
        match self.protocol {
            // The first Produce adds the partition on the broker, so the transaction has begun
            // there once a record is on its way (Java sets `transactionStarted` here under v2).
            TxnProtocol::V2 => {
                self.partitions.insert(tp.clone());
                self.started = true;
            }
            TxnProtocol::V1 => {
                self.new_partitions.insert(tp.clone());
            }
        }
    }

    /// Whether a record for `tp` may join the transaction now, without adding it, for a caller
    /// that adds the partition only once the record is queued (Java adds after the append: a
    /// record refused before it is queued must not count as sent in the transaction).
    pub fn check_add_partition(&self, tp: &TopicPartition) -> Result<()> {
        self.fail_if_error()?;
        if !self.producer().is_valid() || self.state() != TxnState::InTransaction {
            return Err(Error::InvalidState(format!(
                "cannot add {tp} to a transaction in state {:?}",
                self.state()
            )));
        }
        Ok(())
    }

    /// Whether batches for `tp` may be sent (Java `isSendToPartitionAllowed`): under v1 only once
    /// the coordinator has added it.
    pub fn is_send_to_partition_allowed(&self, tp: &TopicPartition) -> bool {
        self.state() != TxnState::FatalError
            && (self.protocol == TxnProtocol::V2 || self.partitions.contains(tp))
    }

    /// `sendOffsetsToTransaction` for `group_id`: v1 sends AddOffsetsToTxn first, v2 goes straight
    /// to TxnOffsetCommit v5.
    pub fn begin_send_offsets(&mut self, group_id: &str) -> Result<()> {
        self.fail_if_error()?;
        if self.state() != TxnState::InTransaction {
            return Err(Error::InvalidState(
                "cannot send offsets outside a transaction".into(),
            ));
        }
        self.offsets = Some(match self.protocol {
            TxnProtocol::V1 => Offsets::AddOffsets(group_id.to_owned()),
            TxnProtocol::V2 => {
                // TxnOffsetCommit v5 begins the transaction on the coordinator (Java sets
                // `transactionStarted` when it queues it under v2).
                self.started = true;
                Offsets::Commit(group_id.to_owned())
            }
        });
        Ok(())
    }

    /// Whether offsets of `begin_send_offsets` are still to be committed: false once they were,
    /// or were dropped (refused, or their transaction aborted).
    pub fn offsets_pending(&self) -> bool {
        self.offsets.is_some()
    }

    /// The AddPartitionsToTxn response: each requested partition's error, if any. Every error
    /// counts, as in Java; unlike Java, only a partition we asked for can join the transaction,
    /// and one the answer left out is asked for again after the retry backoff (Java keeps it
    /// pending and never asks again).
    pub fn on_add_partitions(
        &mut self,
        results: &[(TopicPartition, Option<ResponseError>)],
    ) -> Result<TxnStep> {
        let requested = match self.take_in_flight(ApiKey::AddPartitionsToTxn)? {
            TxnRequest::AddPartitionsToTxn { partitions } => partitions,
            _ => Vec::new(),
        };
        for (_, code) in results {
            self.note_outcome(*code);
        }
        let api = ApiKey::AddPartitionsToTxn;
        let mut refused = None;
        for (_, code) in results {
            let Some(code) = *code else { continue };
            match classify_coordinator_error(api, code, &self.ctx()) {
                ErrorClass::Retriable => {
                    let first = self.partitions.is_empty();
                    if first && code == ResponseError::ConcurrentTransactions {
                        return Ok(self.concurrent_retry(api, code));
                    }
                    self.concurrent_in_a_row = 0;
                    return Ok(TxnStep::Retry {
                        lookup_coordinator: needs_coordinator_lookup(api, code),
                        backoff: None,
                    });
                }
                // Java fails at once on these; other refusals are collected, a topic
                // authorization failure being the reason reported.
                ErrorClass::Abortable
                    if !matches!(
                        code,
                        ResponseError::TransactionAbortable | ResponseError::UnknownProducerId
                    ) =>
                {
                    if refused.is_none() || code == ResponseError::TopicAuthorizationFailed {
                        refused = Some(code);
                    }
                }
                _ => return Ok(self.apply(api, code)),
            }
        }
        self.concurrent_in_a_row = 0;
        let answered: Vec<&TopicPartition> = results
            .iter()
            .map(|(tp, _)| tp)
            .filter(|tp| requested.contains(tp))
            .collect();
        // Failed or not, these are no longer pending: retried batches to the partitions that
        // were added must be able to go (Java comment in AddPartitionsToTxnHandler).
        for tp in &answered {
            self.pending_partitions.remove(*tp);
        }
        if let Some(code) = refused {
            return Ok(self.apply(api, code));
        }
        // Only partitions we asked for join: one the coordinator named unasked was never
        // registered by us, and its batches would go out unregistered. With nothing added the
        // coordinator has no transaction, so no EndTxn is owed yet.
        self.started |= !answered.is_empty();
        self.partitions.extend(answered.into_iter().cloned());
        // A partition the answer left out is still pending (an abort clears it): its batches
        // wait, so ask again, paced like a retriable error rather than by the round trip.
        if requested
            .iter()
            .any(|tp| self.pending_partitions.contains(tp))
        {
            return Ok(TxnStep::Retry {
                lookup_coordinator: false,
                backoff: None,
            });
        }
        Ok(TxnStep::Done { new_producer: None })
    }

    /// The AddOffsetsToTxn response; on success TxnOffsetCommit is queued.
    pub fn on_add_offsets(&mut self, code: Option<ResponseError>) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::AddOffsetsToTxn)?;
        self.note_outcome(code);
        let Some(code) = code else {
            self.started = true;
            if let Some(Offsets::AddOffsets(g)) = self.offsets.take() {
                self.offsets = Some(Offsets::Commit(g));
            }
            self.concurrent_in_a_row = 0;
            return Ok(TxnStep::Done { new_producer: None });
        };
        if code == ResponseError::ConcurrentTransactions {
            return Ok(self.concurrent_retry(ApiKey::AddOffsetsToTxn, code));
        }
        self.concurrent_in_a_row = 0;
        Ok(self.apply(ApiKey::AddOffsetsToTxn, code))
    }

    /// The TxnOffsetCommit response to a request for the `requested` partitions: each
    /// partition's error. On `Retry`, resend the requested partitions not answered without an
    /// error (Java `TxnOffsetCommitHandler` re-sends while `pendingTxnOffsetCommits` is not
    /// empty): those whose error was retriable, and those the answer left out, whose offsets the
    /// group coordinator may never have written. Reporting them committed would let the
    /// transaction commit its output without its input offsets.
    pub fn on_txn_offset_commit(
        &mut self,
        requested: &[TopicPartition],
        results: &[(TopicPartition, Option<ResponseError>)],
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::TxnOffsetCommit)?;
        for (_, code) in results {
            self.note_outcome(*code);
        }
        let api = ApiKey::TxnOffsetCommit;
        let mut retry = None;
        let mut concurrent = false;
        for code in results.iter().filter_map(|(_, c)| *c) {
            match classify_coordinator_error(api, code, &self.ctx()) {
                ErrorClass::Retriable => {
                    let lookup = needs_coordinator_lookup(api, code);
                    retry = Some(retry.unwrap_or(false) || lookup);
                    concurrent |= code == ResponseError::ConcurrentTransactions;
                }
                _ => {
                    self.offsets = None;
                    self.concurrent_in_a_row = 0;
                    return Ok(self.apply(api, code));
                }
            }
        }
        match retry {
            Some(false) if concurrent => {
                return Ok(self.concurrent_retry(api, ResponseError::ConcurrentTransactions))
            }
            Some(lookup_coordinator) => {
                self.concurrent_in_a_row = 0;
                return Ok(TxnStep::Retry {
                    lookup_coordinator,
                    backoff: None,
                });
            }
            None => self.concurrent_in_a_row = 0,
        }
        let committed = |tp: &TopicPartition| results.iter().any(|(r, c)| r == tp && c.is_none());
        if !requested.iter().all(committed) {
            return Ok(TxnStep::Retry {
                lookup_coordinator: false,
                backoff: None,
            });
        }
        self.offsets = None;
        self.started = true;
        Ok(TxnStep::Done { new_producer: None })
    }

    /// A retry after CONCURRENT_TRANSACTIONS on a transaction's first AddPartitionsToTxn or an
    /// offsets request: soon, since the previous transaction's markers are nearly written (see
    /// [`OFFSETS_CONCURRENT_RETRY_BACKOFF`]).
    fn concurrent_retry(&mut self, api: ApiKey, code: ResponseError) -> TxnStep {
        let doublings = self.concurrent_in_a_row.min(4);
        self.concurrent_in_a_row += 1;
        TxnStep::Retry {
            lookup_coordinator: needs_coordinator_lookup(api, code),
            backoff: Some(
                (OFFSETS_CONCURRENT_RETRY_BACKOFF * (1 << doublings))
                    .min(ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF),
            ),
        }
    }
}

/// The [`DrainGate`] of a transactional producer: a partition drains only once it is in the
/// transaction, and then as the idempotence rules allow.
#[derive(Debug)]
pub struct TransactionalGate<'a> {
    /// The transaction manager.
    pub txn: &'a TransactionManager,
    /// The sequence state.
    pub idempotence: &'a mut IdempotenceState,
}

impl DrainGate for TransactionalGate<'_> {
    fn may_drain<T>(&mut self, batch: &ProducerBatch<T>) -> bool {
        self.txn.is_send_to_partition_allowed(batch.tp()) && self.idempotence.may_drain(batch)
    }

    fn on_drain<T>(&mut self, batch: &mut ProducerBatch<T>) {
        self.idempotence.on_drain(batch);
    }
}

//! The transactional producer's state machine and its coordinator requests. How coordinator errors
//! are classified ([`classify_coordinator_error`], [`ErrorContext`], [`TxnError`]) lives in
//! `transaction_errors`, and what is in a transaction (its partitions and offsets, their requests'
//! answers, [`TransactionalGate`]) in `contents`; both are re-exported here.
//!
//! [`TxnState`] is Java's `TransactionManager.State` (without KIP-939's `PREPARED_TRANSACTION`,
//! whose public API Kafka 4.1/4.2 removed), and [`TxnState::transition`] is its
//! `isTransitionValid` table as of Kafka 4.x. [`TransactionManager`] is the rest of Java's class
//! minus idempotence (in [`super::sequence`]): which coordinator request goes next
//! ([`TransactionManager::next_request`], Java `nextRequest`), what each response means, and
//! which partitions are in the transaction. Invariants:
//!
//! - `FatalError` is terminal; an invalid transition caused by a response (not a user call)
//!   poisons the manager into `FatalError` (KAFKA-14831);
//! - one coordinator request is outstanding at a time, chosen by Java's priorities: InitProducerId,
//!   then AddPartitionsToTxn/AddOffsetsToTxn/TxnOffsetCommit, then EndTxn (held until every batch
//!   is done), then an epoch-bumping InitProducerId;
//! - the protocol ([`TxnProtocol`], KIP-890 "transactions v2") is latched when a transaction
//!   begins and never switched mid-transaction; v2 adds partitions implicitly with Produce v12
//!   and takes the next producer id and epoch from EndTxn v5;
//! - a transaction in which a send failed cannot commit: the failure moves it to `AbortableError`.

use std::collections::BTreeSet;
use std::time::Duration;

use super::sequence::ProducerIdAndEpoch;
use crate::error::{ApiKey, Error, ErrorClass, Result};
use crate::record::TopicPartition;
use kafka_protocol::error::ResponseError;

pub use super::transaction_errors::{
    classify_coordinator_error, needs_coordinator_lookup, ErrorContext, TxnError,
};

mod contents;
pub use contents::TransactionalGate;
// Used by the unit tests and, with `unstable-internals`, the tests' facade.
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))]
pub use contents::{ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF, OFFSETS_CONCURRENT_RETRY_BACKOFF};

/// The states of a transactional producer (Java `TransactionManager.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TxnState {
    /// No producer id yet.
    #[default]
    Uninitialized,
    /// InitProducerId is under way (first time, or bumping the epoch after a transaction).
    Initializing,
    /// Has a producer id; no transaction open.
    Ready,
    /// A transaction is open.
    InTransaction,
    /// EndTxn(commit) is under way.
    CommittingTransaction,
    /// EndTxn(abort) is under way.
    AbortingTransaction,
    /// The open transaction cannot commit; it must be aborted.
    AbortableError,
    /// The producer cannot go on. Terminal.
    FatalError,
}

impl TxnState {
    /// Whether `self → target` is allowed (Java `isTransitionValid`, Kafka 4.x).
    pub fn can_transition_to(self, target: TxnState) -> bool {
        use TxnState::*;
        match target {
            Uninitialized => matches!(self, Ready | AbortableError),
            // From Committing as well: a commit whose epoch must then be bumped.
            Initializing => matches!(
                self,
                Uninitialized | CommittingTransaction | AbortingTransaction
            ),
            Ready => matches!(
                self,
                Initializing | CommittingTransaction | AbortingTransaction
            ),
            InTransaction => self == Ready,
            CommittingTransaction => self == InTransaction,
            AbortingTransaction => matches!(self, InTransaction | AbortableError),
            AbortableError => matches!(
                self,
                InTransaction | CommittingTransaction | AbortableError | Initializing
            ),
            // Anything may fail fatally; nothing leaves FatalError because no other target lists it.
            FatalError => true,
        }
    }

    /// Moves to `target` if the table allows it; otherwise leaves the state as it was and returns
    /// [`Error::InvalidState`].
    pub fn transition(&mut self, target: TxnState) -> Result<()> {
        if !self.can_transition_to(target) {
            use TxnState::*;
            // Say what to do: the states are this crate's, not the caller's vocabulary.
            let what = match (*self, target) {
                (Uninitialized | Initializing, _) => "call init_transactions first",
                (Ready, CommittingTransaction | AbortingTransaction) => {
                    "no transaction is open: call begin_transaction first"
                }
                (InTransaction, InTransaction) => {
                    "a transaction is already open: commit or abort it first"
                }
                (CommittingTransaction | AbortingTransaction, _) => {
                    "the last commit or abort has not finished: call it again to resume it"
                }
                (AbortableError, _) => "the transaction hit an abortable error: abort it",
                _ => "not allowed now",
            };
            return Err(Error::InvalidState(format!(
                "{what} (transaction state {self:?}, asked for {target:?})"
            )));
        }
        *self = target;
        Ok(())
    }
}

/// Which transaction protocol a transaction uses (KIP-890).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TxnProtocol {
    /// AddPartitionsToTxn and AddOffsetsToTxn; the client bumps epochs via InitProducerId.
    #[default]
    V1,
    /// Partitions added by Produce v12, offsets by TxnOffsetCommit v5, epoch bumped by the
    /// coordinator on every EndTxn v5.
    V2,
}

/// What the cluster supports, as far as transactions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnCapabilities {
    /// Finalized `transaction.version` feature level (0 when absent).
    pub transaction_version: i16,
    /// Highest Produce version both sides speak.
    pub produce_max: i16,
    /// Highest EndTxn version.
    pub end_txn_max: i16,
    /// Highest TxnOffsetCommit version.
    pub txn_offset_commit_max: i16,
    /// Highest InitProducerId version of the transaction coordinator.
    pub init_producer_id_max: i16,
}

impl TxnCapabilities {
    /// V2 only when the feature is finalized at 2+ and every API that changed is new enough: the
    /// feature alone is not enough (Confluent Cloud advertised Produce v12 without it,
    /// twmb/franz-go#1017), nor are the versions alone (Redpanda has no KIP-890).
    pub fn protocol(&self) -> TxnProtocol {
        if self.transaction_version >= 2
            && self.produce_max >= 12
            && self.end_txn_max >= 5
            && self.txn_offset_commit_max >= 5
        {
            TxnProtocol::V2
        } else {
            TxnProtocol::V1
        }
    }

    /// Whether the coordinator can bump an epoch on request (InitProducerId v3+, KIP-360).
    pub fn coordinator_can_bump_epoch(&self) -> bool {
        self.init_producer_id_max >= 3
    }
}

/// A coordinator request for the caller to build and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnRequest {
    /// InitProducerId; `current` is the id and epoch to bump (KIP-360), `None` the first time.
    InitProducerId {
        /// The producer id and epoch to bump.
        current: Option<ProducerIdAndEpoch>,
    },
    /// AddPartitionsToTxn (v1 protocol; at most request version 3, client versions only).
    AddPartitionsToTxn {
        /// The partitions to add.
        partitions: Vec<TopicPartition>,
    },
    /// AddOffsetsToTxn for the group (v1 protocol).
    AddOffsetsToTxn {
        /// The consumer group.
        group_id: String,
    },
    /// TxnOffsetCommit of the caller's offsets to the group coordinator.
    TxnOffsetCommit {
        /// The consumer group.
        group_id: String,
    },
    /// EndTxn.
    EndTxn {
        /// Commit (true) or abort.
        commit: bool,
    },
}

/// What a coordinator response means.
#[derive(Debug)]
pub enum TxnStep {
    /// The request succeeded. With `new_producer`, call
    /// [`IdempotenceState::set_producer_id`]`(p, true)`: a new epoch restarts every sequence.
    ///
    /// [`IdempotenceState::set_producer_id`]: super::sequence::IdempotenceState::set_producer_id
    Done {
        /// The producer id and epoch from now on, if they changed.
        new_producer: Option<ProducerIdAndEpoch>,
    },
    /// Send the same request again after `backoff` (the default retry backoff if `None`),
    /// looking the coordinator up first when `lookup_coordinator`.
    Retry {
        /// Find the coordinator again first. The producer's IO layer invalidates the coordinator
        /// from the response's error code itself; the field states the decision for the
        /// runtime-free tests.
        #[cfg_attr(not(test), allow(dead_code))]
        lookup_coordinator: bool,
        /// A shorter wait than the default, when Java uses one.
        backoff: Option<Duration>,
    },
    /// The request failed; the manager is now in `AbortableError` or `FatalError` (or still
    /// aborting), as the error's class says.
    Failed(Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    First,
    Bump,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Offsets {
    AddOffsets(String),
    Commit(String),
}

/// The transaction state machine and its bookkeeping. See the module docs.
#[derive(Debug, Default)]
pub struct TransactionManager {
    state: TxnState,
    last_error: Option<TxnError>,
    producer: ProducerIdAndEpoch,
    caps: TxnCapabilities,
    /// Latched from `caps` when a transaction begins (see module docs).
    protocol: TxnProtocol,
    /// A send failed under a coordinator that can bump: the epoch must go up before the next
    /// transaction, so no old-epoch batch can land in it (KIP-360).
    epoch_bump_required: bool,
    /// Under v1, a coordinator request of this transaction got no definite answer (lost
    /// connection, NETWORK_EXCEPTION, REQUEST_TIMED_OUT). A copy of it may still reach the
    /// coordinator late, and v1 requests carry the same epoch from one transaction to the next: a
    /// late EndTxn would end the *next* transaction, late offsets would join it (Jepsen, Bufstream
    /// 0.1.0, 2024). So the epoch is bumped when this transaction ends, which fences them. v2
    /// bumps on every EndTxn already.
    unknown_outcome: bool,
    /// Partitions produced to but not yet in an AddPartitionsToTxn.
    new_partitions: BTreeSet<TopicPartition>,
    /// Partitions in the outstanding or retried AddPartitionsToTxn: sends to them wait.
    pending_partitions: BTreeSet<TopicPartition>,
    /// Partitions in the transaction.
    partitions: BTreeSet<TopicPartition>,
    /// A partition or offsets were added (v1: answered; v2: a record or offsets sent), so EndTxn
    /// must be sent (Java `transactionStarted`).
    started: bool,
    init: Option<Init>,
    offsets: Option<Offsets>,
    end: Option<bool>,
    /// The commit (true) or abort under way, from `commit_transaction`/`abort_transaction` until
    /// `Ready`, epoch bump included: a call that timed out is resumed by calling it again, and
    /// only it (Java `pendingTransition`).
    completing: Option<bool>,
    /// The outstanding request, to check each response against.
    in_flight: Option<TxnRequest>,
    /// CONCURRENT_TRANSACTIONS answers in a row to the first AddPartitionsToTxn or the offsets
    /// requests (their retry backoff).
    concurrent_in_a_row: u32,
}

impl TransactionManager {
    /// A manager in `Uninitialized`.
    pub fn new() -> Self {
        TransactionManager::default()
    }

    /// The current state.
    pub fn state(&self) -> TxnState {
        self.state
    }

    /// Why the manager is in an error state.
    pub fn last_error(&self) -> Option<&TxnError> {
        self.last_error.as_ref()
    }

    /// The producer id and epoch for transactional requests.
    pub fn producer(&self) -> ProducerIdAndEpoch {
        self.producer
    }

    /// The protocol of the current (or next) transaction.
    pub fn protocol(&self) -> TxnProtocol {
        self.protocol
    }

    /// The partitions in the transaction.
    #[cfg(test)]
    pub fn partitions(&self) -> &BTreeSet<TopicPartition> {
        &self.partitions
    }

    /// Records the cluster's capabilities; the protocol changes only when the next transaction
    /// begins.
    pub fn set_capabilities(&mut self, caps: TxnCapabilities) {
        self.caps = caps;
    }

    fn ctx(&self) -> ErrorContext {
        ErrorContext {
            protocol: self.protocol,
            can_bump_epoch: self.caps.coordinator_can_bump_epoch(),
            aborting: self.state() == TxnState::AbortingTransaction,
        }
    }

    /// A response-driven transition: an invalid one poisons the manager (KAFKA-14831). Once
    /// fatal, only another fatal error may replace the cause (the producer refines a bare
    /// PRODUCER_FENCED into "the transaction timed out" that way); anything else changes
    /// nothing, so answers still in flight for the dead epoch (a produce refused after the
    /// coordinator's fence) cannot hide the fence, which is what a caller decides on.
    fn force(&mut self, target: TxnState, error: Option<TxnError>) {
        if self.state() == TxnState::FatalError && target != TxnState::FatalError {
            return;
        }
        if matches!(target, TxnState::AbortableError | TxnState::FatalError) {
            // The commit or abort under way has ended, in failure.
            self.completing = None;
        }
        let mut state = self.state();
        if let Err(e) = state.transition(target) {
            self.last_error = Some(TxnError::of(&e, ErrorClass::Fatal));
            self.state = TxnState::FatalError;
            return;
        }
        self.state = state;
        self.last_error = error;
    }

    fn user_transition(&mut self, target: TxnState) -> Result<()> {
        let mut state = self.state();
        state.transition(target)?;
        self.state = state;
        self.last_error = None;
        Ok(())
    }

    fn fail_if_error(&self) -> Result<()> {
        match (self.state(), &self.last_error) {
            (TxnState::AbortableError | TxnState::FatalError, Some(e)) => Err(e.to_error()),
            (TxnState::FatalError, None) => Err(Error::Failed("fatal error".into())),
            _ => Ok(()),
        }
    }

    /// Moves to `FatalError` with `error` (Java `transitionToFatalError`).
    pub fn fatal_error(&mut self, error: &Error) {
        self.force(
            TxnState::FatalError,
            Some(TxnError::of(error, ErrorClass::Fatal)),
        );
    }

    /// Moves to `AbortableError` with `error`, unless already aborting (Java
    /// `transitionToAbortableError`). Outside a commit the epoch will be bumped if the coordinator
    /// can (Java `maybeTransitionToErrorState`).
    pub fn abortable_error(&mut self, error: &Error) {
        match self.state() {
            TxnState::AbortingTransaction => return,
            TxnState::CommittingTransaction => {}
            _ if self.caps.coordinator_can_bump_epoch() => self.epoch_bump_required = true,
            _ => {}
        }
        self.force(
            TxnState::AbortableError,
            Some(TxnError::of(error, ErrorClass::Abortable)),
        );
    }

    /// A record send failed (a produce error, an expired batch, a failure before enqueueing): a
    /// fatal-class error ends the producer, anything else makes the transaction abort-only
    /// (Java `maybeTransitionToErrorState`). A leader's connection refused at set-up (TLS, SASL)
    /// is abort-only too, as in Java: it concerns that broker, not the producer's identity.
    pub fn on_send_failed(&mut self, error: &Error) {
        let setup_refused = matches!(error, Error::Tls { .. } | Error::Authentication { .. });
        if error.class() == ErrorClass::Fatal && !setup_refused {
            self.fatal_error(error);
        } else {
            self.abortable_error(error);
        }
    }

    /// Notes an answer without a definite outcome (see `unknown_outcome`).
    fn note_outcome(&mut self, code: Option<ResponseError>) {
        if self.protocol == TxnProtocol::V1
            && matches!(
                code,
                Some(ResponseError::NetworkException | ResponseError::RequestTimedOut)
            )
        {
            self.unknown_outcome = true;
        }
    }

    fn apply(&mut self, api: ApiKey, code: ResponseError) -> TxnStep {
        let class = classify_coordinator_error(api, code, &self.ctx());
        let error = Error::Broker {
            api,
            broker: None,
            code: crate::error::ErrorCode::from_protocol(code),
            message: None,
            class,
        };
        match class {
            ErrorClass::Retriable => TxnStep::Retry {
                lookup_coordinator: needs_coordinator_lookup(api, code),
                backoff: None,
            },
            ErrorClass::Abortable => {
                self.abortable_error(&error);
                TxnStep::Failed(error)
            }
            _ => {
                self.fatal_error(&error);
                TxnStep::Failed(error)
            }
        }
    }

    /// `initTransactions`: asks for a producer id. Latches the protocol.
    pub fn begin_init(&mut self) -> Result<()> {
        self.fail_if_error()?;
        self.user_transition(TxnState::Initializing)?;
        self.protocol = self.caps.protocol();
        self.init = Some(Init::First);
        Ok(())
    }

    /// Refuses `operation` while a commit or abort is still completing (Java
    /// `throwIfPendingState`): its call may have timed out, and only calling it again finishes
    /// it. `resuming` is the operation that may resume it.
    fn refuse_while_completing(&self, operation: &str, resuming: Option<bool>) -> Result<()> {
        let Some(commit) = self.completing else {
            return Ok(());
        };
        if resuming == Some(commit) {
            return Ok(());
        }
        let (what, call) = if commit {
            ("committed", "commit_transaction")
        } else {
            ("aborted", "abort_transaction")
        };
        Err(Error::InvalidState(format!(
            "cannot {operation}: the transaction is still being {what} (the call may have timed \
             out); call {call} again to wait for it"
        )))
    }

    /// `beginTransaction`. Latches the protocol for this transaction.
    pub fn begin_transaction(&mut self) -> Result<()> {
        self.fail_if_error()?;
        self.refuse_while_completing("begin a transaction", None)?;
        self.user_transition(TxnState::InTransaction)?;
        self.protocol = self.caps.protocol();
        Ok(())
    }

    /// `commitTransaction`: fails if the transaction is abort-only. Calling it again while the
    /// commit is under way resumes it.
    pub fn begin_commit(&mut self) -> Result<()> {
        self.refuse_while_completing("commit", Some(true))?;
        if self.completing == Some(true) && self.state() != TxnState::FatalError {
            self.resume_end(true);
            return Ok(());
        }
        self.fail_if_error()?;
        self.user_transition(TxnState::CommittingTransaction)?;
        self.begin_completing(true);
        Ok(())
    }

    /// `abortTransaction`: allowed from `InTransaction` and `AbortableError`. Calling it again
    /// while the abort is under way resumes it.
    pub fn begin_abort(&mut self) -> Result<()> {
        self.refuse_while_completing("abort", Some(false))?;
        if self.completing == Some(false) && self.state() != TxnState::FatalError {
            // Still aborting, or bumping the epoch that ends the abort.
            self.resume_end(false);
            return Ok(());
        }
        if self.state() != TxnState::AbortableError {
            self.fail_if_error()?;
        }
        self.user_transition(TxnState::AbortingTransaction)?;
        self.new_partitions.clear();
        self.pending_partitions.clear();
        self.offsets = None;
        self.begin_completing(false);
        Ok(())
    }

    fn begin_completing(&mut self, commit: bool) {
        self.end = Some(commit);
        self.completing = Some(commit);
        // Under v2 the coordinator bumps on EndTxn; the client only bumps under v1 (KAFKA-17898).
        if self.epoch_bump_required && self.protocol == TxnProtocol::V1 {
            self.init = Some(Init::Bump);
        }
    }

    fn resume_end(&mut self, commit: bool) {
        let ending = matches!(
            self.state(),
            TxnState::CommittingTransaction | TxnState::AbortingTransaction
        );
        if ending && self.in_flight.is_none() && self.end.is_none() && self.init.is_none() {
            self.end = Some(commit);
        }
    }

    /// The next coordinator request to send, if any (Java `nextRequest`). EndTxn waits while
    /// `has_incomplete_batches`; in an error state queued requests are dropped. Under v1, EndTxn
    /// for a transaction that added nothing is skipped and the transaction completes here.
    pub fn next_request(&mut self, has_incomplete_batches: bool) -> Option<TxnRequest> {
        if self.in_flight.is_some() {
            return None;
        }
        if matches!(
            self.state(),
            TxnState::AbortableError | TxnState::FatalError
        ) {
            self.end = None;
            self.init = None;
            self.offsets = None;
            return None;
        }
        let request = if self.init == Some(Init::First) {
            TxnRequest::InitProducerId { current: None }
        } else if !self.new_partitions.is_empty() || !self.pending_partitions.is_empty() {
            self.pending_partitions.append(&mut self.new_partitions);
            TxnRequest::AddPartitionsToTxn {
                partitions: self.pending_partitions.iter().cloned().collect(),
            }
        } else if let Some(offsets) = &self.offsets {
            match offsets {
                Offsets::AddOffsets(g) => TxnRequest::AddOffsetsToTxn {
                    group_id: g.clone(),
                },
                Offsets::Commit(g) => TxnRequest::TxnOffsetCommit {
                    group_id: g.clone(),
                },
            }
        } else if let Some(commit) = self.end {
            if has_incomplete_batches {
                return None;
            }
            // Nothing was added or sent: the coordinator has no transaction to end, and would
            // refuse EndTxn (INVALID_TXN_STATE), so end it here as Java does on both protocols.
            if !self.started {
                self.end = None;
                self.complete_transaction();
                return self.next_request(has_incomplete_batches);
            }
            TxnRequest::EndTxn { commit }
        } else if self.init == Some(Init::Bump) {
            TxnRequest::InitProducerId {
                current: Some(self.producer()),
            }
        } else {
            return None;
        };
        self.in_flight = Some(request.clone());
        Some(request)
    }

    fn take_in_flight(&mut self, api: ApiKey) -> Result<TxnRequest> {
        let matches = |r: &TxnRequest| match r {
            TxnRequest::InitProducerId { .. } => api == ApiKey::InitProducerId,
            TxnRequest::AddPartitionsToTxn { .. } => api == ApiKey::AddPartitionsToTxn,
            TxnRequest::AddOffsetsToTxn { .. } => api == ApiKey::AddOffsetsToTxn,
            TxnRequest::TxnOffsetCommit { .. } => api == ApiKey::TxnOffsetCommit,
            TxnRequest::EndTxn { .. } => api == ApiKey::EndTxn,
        };
        match self.in_flight.take() {
            Some(r) if matches(&r) => Ok(r),
            other => {
                self.in_flight = other;
                Err(Error::InvalidState(format!(
                    "no {api:?} request outstanding"
                )))
            }
        }
    }

    /// The InitProducerId response: the producer id and epoch, or the error code.
    pub fn on_init_producer_id(
        &mut self,
        result: std::result::Result<ProducerIdAndEpoch, ResponseError>,
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::InitProducerId)?;
        Ok(match result {
            Ok(producer) => {
                self.producer = producer;
                self.init = None;
                self.epoch_bump_required = false;
                self.unknown_outcome = false;
                self.completing = None;
                self.force(TxnState::Ready, None);
                TxnStep::Done {
                    new_producer: Some(producer),
                }
            }
            Err(code) => self.apply(ApiKey::InitProducerId, code),
        })
    }

    /// The EndTxn response: on success, the next producer id and epoch EndTxn v5 returned (`None`
    /// before v5 or when its producer id is -1).
    pub fn on_end_txn(
        &mut self,
        result: std::result::Result<Option<ProducerIdAndEpoch>, ResponseError>,
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::EndTxn)?;
        self.note_outcome(result.err());
        match result {
            Ok(next) => {
                self.end = None;
                let next = next.filter(ProducerIdAndEpoch::is_valid);
                if let Some(p) = next {
                    self.producer = p;
                }
                self.complete_transaction();
                Ok(TxnStep::Done { new_producer: next })
            }
            Err(code) => {
                let step = self.apply(ApiKey::EndTxn, code);
                if !matches!(step, TxnStep::Retry { .. }) {
                    self.end = None;
                }
                Ok(step)
            }
        }
    }

    /// Java `completeTransaction`: back to `Ready`, or to `Initializing` when an epoch bump
    /// follows (after a client-side failure, or a v1 request whose outcome was unknown).
    fn complete_transaction(&mut self) {
        if std::mem::take(&mut self.unknown_outcome)
            && self.protocol == TxnProtocol::V1
            && self.caps.coordinator_can_bump_epoch()
        {
            self.init = Some(Init::Bump);
        }
        let next = if self.init == Some(Init::Bump) {
            TxnState::Initializing
        } else {
            self.completing = None;
            TxnState::Ready
        };
        self.force(next, None);
        self.epoch_bump_required = false;
        self.started = false;
        self.new_partitions.clear();
        self.pending_partitions.clear();
        self.partitions.clear();
    }
}

#[cfg(test)]
#[path = "tests/transaction.rs"]
mod tests;

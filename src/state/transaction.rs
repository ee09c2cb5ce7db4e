//! The transactional producer's state machine, its coordinator requests, and how coordinator
//! errors are classified.
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

use super::accumulator::{DrainGate, ProducerBatch};
use super::sequence::{IdempotenceState, ProducerIdAndEpoch};
use crate::error::{ApiKey, Error, ErrorClass, ResponseError, Result};
use crate::record::TopicPartition;

/// Retry wait after CONCURRENT_TRANSACTIONS on a transaction's first AddPartitionsToTxn: the
/// previous transaction is still completing and will be done soon (Java
/// `ADD_PARTITIONS_RETRY_BACKOFF_MS`, KAFKA-5482).
pub const ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF: Duration = Duration::from_millis(20);

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
            return Err(Error::InvalidState(format!(
                "invalid transaction state transition from {self:?} to {target:?}"
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

/// What decides a coordinator error's class besides the API and the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorContext {
    /// The transaction's protocol.
    pub protocol: TxnProtocol,
    /// Whether the coordinator can bump the epoch (InitProducerId v3+).
    pub can_bump_epoch: bool,
    /// The request is an EndTxn(abort).
    pub aborting: bool,
}

/// The class of an error from the transaction or group coordinator (eos-reference §2.2, after
/// Java's `TransactionManager` response handlers):
///
/// - retried internally: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
///   COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS and any code Kafka marks retriable;
/// - fatal: PRODUCER_FENCED, INVALID_PRODUCER_EPOCH (an old coordinator's fencing),
///   TRANSACTIONAL_ID/CLUSTER_AUTHORIZATION_FAILED, UNSUPPORTED_VERSION, INVALID_TXN_STATE,
///   UNSUPPORTED_FOR_MESSAGE_FORMAT, TRANSACTION_ABORTABLE answering an abort (Kafka 4.x: the
///   abort itself failed), and anything unexpected;
/// - abortable: TRANSACTION_ABORTABLE, GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
///   and OPERATION_NOT_ATTEMPTED (and, as in Java, any unexpected per-partition error) from
///   AddPartitionsToTxn, UNKNOWN_MEMBER_ID/ILLEGAL_GENERATION/FENCED_INSTANCE_ID from
///   TxnOffsetCommit, UNKNOWN_PRODUCER_ID/INVALID_PRODUCER_ID_MAPPING from AddPartitionsToTxn,
///   AddOffsetsToTxn or EndTxn when the epoch can be bumped (`abortableErrorIfPossible`; fatal
///   otherwise). Under v2, INVALID_PRODUCER_ID_MAPPING from EndTxn is fatal (Kafka 4.x, franz-go).
pub fn classify_coordinator_error(
    api: ApiKey,
    code: ResponseError,
    ctx: &ErrorContext,
) -> ErrorClass {
    use ErrorClass::*;
    use ResponseError as E;
    match code {
        E::NotCoordinator
        | E::CoordinatorNotAvailable
        | E::CoordinatorLoadInProgress
        | E::ConcurrentTransactions => Retriable,
        E::ProducerFenced
        | E::InvalidProducerEpoch
        | E::TransactionalIdAuthorizationFailed
        | E::ClusterAuthorizationFailed
        | E::UnsupportedVersion
        | E::InvalidTxnState
        | E::UnsupportedForMessageFormat => Fatal,
        E::TransactionAbortable if api == ApiKey::EndTxn && ctx.aborting => Fatal,
        E::TransactionAbortable | E::GroupAuthorizationFailed => Abortable,
        E::UnknownMemberId | E::IllegalGeneration | E::FencedInstanceId
            if api == ApiKey::TxnOffsetCommit =>
        {
            Abortable
        }
        E::UnknownProducerId | E::InvalidProducerIdMapping
            if matches!(
                api,
                ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn
            ) =>
        {
            let v2 = ctx.protocol == TxnProtocol::V2;
            if code == E::InvalidProducerIdMapping && api == ApiKey::EndTxn && v2 {
                Fatal
            } else if ctx.can_bump_epoch || v2 {
                Abortable
            } else {
                Fatal
            }
        }
        _ if code.is_retriable() => Retriable,
        _ if api == ApiKey::AddPartitionsToTxn => Abortable,
        _ => Fatal,
    }
}

/// Whether the coordinator must be looked up again before retrying (NOT_COORDINATOR,
/// COORDINATOR_NOT_AVAILABLE; for TxnOffsetCommit also REQUEST_TIMED_OUT, as Java does).
pub fn needs_coordinator_lookup(api: ApiKey, code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable
    ) || (api == ApiKey::TxnOffsetCommit && code == ResponseError::RequestTimedOut)
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
    Done {
        /// The producer id and epoch from now on, if they changed.
        new_producer: Option<ProducerIdAndEpoch>,
    },
    /// Send the same request again after `backoff` (the default retry backoff if `None`),
    /// looking the coordinator up first when `lookup_coordinator`.
    Retry {
        /// Find the coordinator again first.
        lookup_coordinator: bool,
        /// A shorter wait than the default, when Java uses one.
        backoff: Option<Duration>,
    },
    /// The request failed; the manager is now in `AbortableError` or `FatalError` (or still
    /// aborting), as the error's class says.
    Failed(Error),
}

/// The error that put the manager in an error state, kept so later calls can report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    /// Abortable or fatal.
    pub class: ErrorClass,
    /// The API that failed, if one did.
    pub api: Option<ApiKey>,
    /// The Kafka error, if the broker sent one.
    pub code: Option<ResponseError>,
    /// What happened.
    pub message: String,
}

impl TxnError {
    fn of(error: &Error, class: ErrorClass) -> Self {
        TxnError {
            class,
            api: error.api(),
            code: error.kafka_code(),
            message: error.to_string(),
        }
    }

    /// The error to hand a caller. A client-side abortable cause (an expired batch) is reported
    /// as TRANSACTION_ABORTABLE, since that is what it means: abort and go on.
    pub fn to_error(&self) -> Error {
        match (self.code, self.class) {
            (None, ErrorClass::Fatal) => Error::InvalidState(self.message.clone()),
            (code, class) => Error::Broker {
                api: self.api.unwrap_or(ApiKey::Produce),
                broker: None,
                code: code.unwrap_or(ResponseError::TransactionAbortable),
                message: Some(self.message.clone()),
                class,
            },
        }
    }
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
    /// Partitions produced to but not yet in an AddPartitionsToTxn.
    new_partitions: BTreeSet<TopicPartition>,
    /// Partitions in the outstanding or retried AddPartitionsToTxn: sends to them wait.
    pending_partitions: BTreeSet<TopicPartition>,
    /// Partitions in the transaction.
    partitions: BTreeSet<TopicPartition>,
    /// A partition or offsets were added, so v1 must send EndTxn (Java `transactionStarted`).
    started: bool,
    init: Option<Init>,
    offsets: Option<Offsets>,
    end: Option<bool>,
    /// The outstanding request, to check each response against.
    in_flight: Option<TxnRequest>,
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

    /// A response-driven transition: an invalid one poisons the manager (KAFKA-14831).
    fn force(&mut self, target: TxnState, error: Option<TxnError>) {
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
            (TxnState::FatalError, None) => Err(Error::InvalidState("fatal error".into())),
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
    /// (Java `maybeTransitionToErrorState`).
    pub fn on_send_failed(&mut self, error: &Error) {
        if error.class() == ErrorClass::Fatal {
            self.fatal_error(error);
        } else {
            self.abortable_error(error);
        }
    }

    fn apply(&mut self, api: ApiKey, code: ResponseError) -> TxnStep {
        let class = classify_coordinator_error(api, code, &self.ctx());
        let error = Error::Broker {
            api,
            broker: None,
            code,
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

    /// `beginTransaction`. Latches the protocol for this transaction.
    pub fn begin_transaction(&mut self) -> Result<()> {
        self.fail_if_error()?;
        self.user_transition(TxnState::InTransaction)?;
        self.protocol = self.caps.protocol();
        Ok(())
    }

    /// A record is about to be sent to `tp` (Java `maybeAddPartition`). v1 queues it for
    /// AddPartitionsToTxn; v2 adds it implicitly (Produce v12 does it on the broker).
    pub fn maybe_add_partition(&mut self, tp: &TopicPartition) -> Result<()> {
        self.fail_if_error()?;
        if !self.producer().is_valid() || self.state() != TxnState::InTransaction {
            return Err(Error::InvalidState(format!(
                "cannot add {tp} to a transaction in state {:?}",
                self.state()
            )));
        }
        if self.partitions.contains(tp) || self.pending_partitions.contains(tp) {
            return Ok(());
        }
        match self.protocol {
            TxnProtocol::V2 => self.partitions.insert(tp.clone()),
            TxnProtocol::V1 => self.new_partitions.insert(tp.clone()),
        };
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
            TxnProtocol::V2 => Offsets::Commit(group_id.to_owned()),
        });
        Ok(())
    }

    /// `commitTransaction`: fails if the transaction is abort-only. Calling it again while the
    /// commit is under way resumes it.
    pub fn begin_commit(&mut self) -> Result<()> {
        if self.state() == TxnState::CommittingTransaction {
            self.resume_end(true);
            return Ok(());
        }
        self.fail_if_error()?;
        self.user_transition(TxnState::CommittingTransaction)?;
        self.begin_completing(true, false);
        Ok(())
    }

    /// `abortTransaction`: allowed from `InTransaction` and `AbortableError`. Calling it again
    /// while the abort is under way resumes it.
    pub fn begin_abort(&mut self) -> Result<()> {
        if self.state() == TxnState::AbortingTransaction {
            self.resume_end(false);
            return Ok(());
        }
        if self.state() != TxnState::AbortableError {
            self.fail_if_error()?;
        }
        // The coordinator refuses EndTxn after INVALID_PRODUCER_ID_MAPPING; go straight to the
        // epoch bump (Java `beginCompletingTransaction`).
        let skip_end = self
            .last_error
            .as_ref()
            .is_some_and(|e| e.code == Some(ResponseError::InvalidProducerIdMapping));
        self.user_transition(TxnState::AbortingTransaction)?;
        self.new_partitions.clear();
        self.pending_partitions.clear();
        self.offsets = None;
        self.begin_completing(false, skip_end);
        Ok(())
    }

    fn begin_completing(&mut self, commit: bool, skip_end: bool) {
        if !skip_end {
            self.end = Some(commit);
        }
        // Under v2 the coordinator bumps on EndTxn; the client only bumps under v1 (KAFKA-17898).
        if self.epoch_bump_required && self.protocol == TxnProtocol::V1 {
            self.init = Some(Init::Bump);
        }
    }

    fn resume_end(&mut self, commit: bool) {
        if self.in_flight.is_none() && self.end.is_none() && self.init.is_none() {
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
            if self.protocol == TxnProtocol::V1 && !self.started {
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
                self.force(TxnState::Ready, None);
                TxnStep::Done {
                    new_producer: Some(producer),
                }
            }
            Err(code) => self.apply(ApiKey::InitProducerId, code),
        })
    }

    /// The AddPartitionsToTxn response: each requested partition's error, if any.
    pub fn on_add_partitions(
        &mut self,
        results: &[(TopicPartition, Option<ResponseError>)],
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::AddPartitionsToTxn)?;
        let api = ApiKey::AddPartitionsToTxn;
        let mut refused = None;
        for (_, code) in results {
            let Some(code) = *code else { continue };
            match classify_coordinator_error(api, code, &self.ctx()) {
                ErrorClass::Retriable => {
                    let first = self.partitions.is_empty();
                    let concurrent = code == ResponseError::ConcurrentTransactions;
                    return Ok(TxnStep::Retry {
                        lookup_coordinator: needs_coordinator_lookup(api, code),
                        backoff: (concurrent && first)
                            .then_some(ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF),
                    });
                }
                // Java fails at once on these; other refusals are collected, a topic
                // authorization failure being the reason reported.
                ErrorClass::Abortable
                    if !matches!(
                        code,
                        ResponseError::TransactionAbortable
                            | ResponseError::UnknownProducerId
                            | ResponseError::InvalidProducerIdMapping
                    ) =>
                {
                    if refused.is_none() || code == ResponseError::TopicAuthorizationFailed {
                        refused = Some(code);
                    }
                }
                _ => return Ok(self.apply(api, code)),
            }
        }
        // Failed or not, these are no longer pending: retried batches to the partitions that
        // were added must be able to go (Java comment in AddPartitionsToTxnHandler).
        for (tp, _) in results {
            self.pending_partitions.remove(tp);
        }
        if let Some(code) = refused {
            return Ok(self.apply(api, code));
        }
        self.partitions
            .extend(results.iter().map(|(tp, _)| tp.clone()));
        self.started = true;
        Ok(TxnStep::Done { new_producer: None })
    }

    /// The AddOffsetsToTxn response; on success TxnOffsetCommit is queued.
    pub fn on_add_offsets(&mut self, code: Option<ResponseError>) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::AddOffsetsToTxn)?;
        let Some(code) = code else {
            self.started = true;
            if let Some(Offsets::AddOffsets(g)) = self.offsets.take() {
                self.offsets = Some(Offsets::Commit(g));
            }
            return Ok(TxnStep::Done { new_producer: None });
        };
        Ok(self.apply(ApiKey::AddOffsetsToTxn, code))
    }

    /// The TxnOffsetCommit response: each partition's error. On `Retry`, resend the partitions
    /// whose error was retriable.
    pub fn on_txn_offset_commit(
        &mut self,
        results: &[(TopicPartition, Option<ResponseError>)],
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::TxnOffsetCommit)?;
        let api = ApiKey::TxnOffsetCommit;
        let mut retry = None;
        for code in results.iter().filter_map(|(_, c)| *c) {
            match classify_coordinator_error(api, code, &self.ctx()) {
                ErrorClass::Retriable => {
                    let lookup = needs_coordinator_lookup(api, code);
                    retry = Some(retry.unwrap_or(false) || lookup);
                }
                _ => {
                    self.offsets = None;
                    return Ok(self.apply(api, code));
                }
            }
        }
        if let Some(lookup_coordinator) = retry {
            return Ok(TxnStep::Retry {
                lookup_coordinator,
                backoff: None,
            });
        }
        self.offsets = None;
        self.started = true;
        Ok(TxnStep::Done { new_producer: None })
    }

    /// The EndTxn response: on success, the next producer id and epoch EndTxn v5 returned (`None`
    /// before v5 or when its producer id is -1).
    pub fn on_end_txn(
        &mut self,
        result: std::result::Result<Option<ProducerIdAndEpoch>, ResponseError>,
    ) -> Result<TxnStep> {
        self.take_in_flight(ApiKey::EndTxn)?;
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
    /// follows.
    fn complete_transaction(&mut self) {
        let next = if self.init == Some(Init::Bump) {
            TxnState::Initializing
        } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::accumulator::{Accumulator, AccumulatorConfig};
    use std::time::Instant;
    use ResponseError as E;
    use TxnState::*;

    const ALL: [TxnState; 8] = [
        Uninitialized,
        Initializing,
        Ready,
        InTransaction,
        CommittingTransaction,
        AbortingTransaction,
        AbortableError,
        FatalError,
    ];

    const V1: TxnCapabilities = TxnCapabilities {
        transaction_version: 0,
        produce_max: 11,
        end_txn_max: 4,
        txn_offset_commit_max: 4,
        init_producer_id_max: 5,
    };
    const V2: TxnCapabilities = TxnCapabilities {
        transaction_version: 2,
        produce_max: 12,
        end_txn_max: 5,
        txn_offset_commit_max: 5,
        init_producer_id_max: 5,
    };

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn pid(epoch: i16) -> ProducerIdAndEpoch {
        ProducerIdAndEpoch::new(1, epoch)
    }

    /// A manager that went through initTransactions and holds producer 1, epoch 0.
    fn ready(caps: TxnCapabilities) -> TransactionManager {
        let mut m = TransactionManager::new();
        m.set_capabilities(caps);
        m.begin_init().unwrap();
        assert_eq!(m.state(), Initializing);
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::InitProducerId { current: None })
        );
        let step = m.on_init_producer_id(Ok(pid(0))).unwrap();
        assert!(matches!(step, TxnStep::Done { new_producer: Some(p) } if p == pid(0)));
        assert_eq!(m.state(), Ready);
        m
    }

    fn in_txn(caps: TxnCapabilities) -> TransactionManager {
        let mut m = ready(caps);
        m.begin_transaction().unwrap();
        m
    }

    fn abortable(code: ResponseError) -> Error {
        Error::Broker {
            api: ApiKey::Produce,
            broker: None,
            code,
            message: None,
            class: ErrorClass::Abortable,
        }
    }

    fn class_of(step: &TxnStep) -> Option<ErrorClass> {
        match step {
            TxnStep::Failed(e) => Some(e.class()),
            _ => None,
        }
    }

    #[test]
    fn the_transition_table_is_javas() {
        let valid = [
            (Ready, Uninitialized),
            (AbortableError, Uninitialized),
            (Uninitialized, Initializing),
            (CommittingTransaction, Initializing),
            (AbortingTransaction, Initializing),
            (Initializing, Ready),
            (CommittingTransaction, Ready),
            (AbortingTransaction, Ready),
            (Ready, InTransaction),
            (InTransaction, CommittingTransaction),
            (InTransaction, AbortingTransaction),
            (AbortableError, AbortingTransaction),
            (InTransaction, AbortableError),
            (CommittingTransaction, AbortableError),
            (AbortableError, AbortableError),
            (Initializing, AbortableError),
        ];
        for from in ALL {
            for to in ALL {
                let expected = to == FatalError || valid.contains(&(from, to));
                assert_eq!(from.can_transition_to(to), expected, "{from:?} -> {to:?}");
                let mut s = from;
                assert_eq!(s.transition(to).is_ok(), expected);
                assert_eq!(
                    s,
                    if expected { to } else { from },
                    "refused moves change nothing"
                );
            }
        }
    }

    #[test]
    fn fatal_error_is_terminal() {
        for to in ALL {
            assert_eq!(FatalError.can_transition_to(to), to == FatalError, "{to:?}");
        }
        let mut m = in_txn(V1);
        m.fatal_error(&Error::Closed);
        assert!(m.begin_abort().is_err());
        assert!(m.begin_commit().is_err());
        assert!(m.begin_transaction().is_err());
        assert_eq!(m.state(), FatalError);
    }

    #[test]
    fn coordinator_errors_are_classified_as_in_java() {
        use ErrorClass::*;
        let v1 = ErrorContext {
            protocol: TxnProtocol::V1,
            can_bump_epoch: true,
            aborting: false,
        };
        let old = ErrorContext {
            can_bump_epoch: false,
            ..v1
        };
        let v2 = ErrorContext {
            protocol: TxnProtocol::V2,
            can_bump_epoch: false,
            ..v1
        };
        let aborting = ErrorContext {
            aborting: true,
            ..v1
        };
        let cases = [
            (ApiKey::EndTxn, E::NotCoordinator, v1, Retriable),
            (ApiKey::EndTxn, E::CoordinatorNotAvailable, v1, Retriable),
            (
                ApiKey::InitProducerId,
                E::CoordinatorLoadInProgress,
                v1,
                Retriable,
            ),
            (
                ApiKey::AddPartitionsToTxn,
                E::ConcurrentTransactions,
                v1,
                Retriable,
            ),
            (ApiKey::EndTxn, E::ProducerFenced, v1, Fatal),
            (ApiKey::EndTxn, E::InvalidProducerEpoch, v1, Fatal),
            (
                ApiKey::InitProducerId,
                E::TransactionalIdAuthorizationFailed,
                v1,
                Fatal,
            ),
            (
                ApiKey::InitProducerId,
                E::ClusterAuthorizationFailed,
                v1,
                Fatal,
            ),
            (ApiKey::EndTxn, E::UnsupportedVersion, v1, Fatal),
            (ApiKey::EndTxn, E::InvalidTxnState, v1, Fatal),
            (
                ApiKey::TxnOffsetCommit,
                E::UnsupportedForMessageFormat,
                v1,
                Fatal,
            ),
            (ApiKey::EndTxn, E::Unknown(999), v1, Fatal),
            (ApiKey::EndTxn, E::TransactionAbortable, v1, Abortable),
            (ApiKey::EndTxn, E::TransactionAbortable, aborting, Fatal),
            (
                ApiKey::AddOffsetsToTxn,
                E::GroupAuthorizationFailed,
                v1,
                Abortable,
            ),
            (
                ApiKey::AddPartitionsToTxn,
                E::TopicAuthorizationFailed,
                v1,
                Abortable,
            ),
            (
                ApiKey::AddPartitionsToTxn,
                E::OperationNotAttempted,
                v1,
                Abortable,
            ),
            (ApiKey::TxnOffsetCommit, E::UnknownMemberId, v1, Abortable),
            (ApiKey::TxnOffsetCommit, E::IllegalGeneration, v1, Abortable),
            (ApiKey::TxnOffsetCommit, E::FencedInstanceId, v1, Abortable),
            (ApiKey::EndTxn, E::IllegalGeneration, v1, Fatal),
            (ApiKey::EndTxn, E::UnknownProducerId, v1, Abortable),
            (
                ApiKey::AddOffsetsToTxn,
                E::InvalidProducerIdMapping,
                v1,
                Abortable,
            ),
            (ApiKey::EndTxn, E::UnknownProducerId, old, Fatal),
            (
                ApiKey::AddPartitionsToTxn,
                E::InvalidProducerIdMapping,
                old,
                Fatal,
            ),
            (ApiKey::EndTxn, E::UnknownProducerId, v2, Abortable),
            (ApiKey::EndTxn, E::InvalidProducerIdMapping, v2, Fatal),
            (ApiKey::InitProducerId, E::UnknownProducerId, v1, Fatal),
            (
                ApiKey::TxnOffsetCommit,
                E::UnknownTopicOrPartition,
                v1,
                Retriable,
            ),
        ];
        for (api, code, ctx, expected) in cases {
            assert_eq!(
                classify_coordinator_error(api, code, &ctx),
                expected,
                "{api:?} {code:?} {ctx:?}"
            );
        }
        assert!(needs_coordinator_lookup(ApiKey::EndTxn, E::NotCoordinator));
        assert!(needs_coordinator_lookup(
            ApiKey::TxnOffsetCommit,
            E::RequestTimedOut
        ));
        assert!(!needs_coordinator_lookup(
            ApiKey::EndTxn,
            E::ConcurrentTransactions
        ));
    }

    #[test]
    fn v2_needs_the_feature_and_every_new_api_version() {
        assert_eq!(V2.protocol(), TxnProtocol::V2);
        for weaker in [
            TxnCapabilities {
                transaction_version: 1,
                ..V2
            },
            TxnCapabilities {
                produce_max: 11,
                ..V2
            },
            TxnCapabilities {
                end_txn_max: 4,
                ..V2
            },
            TxnCapabilities {
                txn_offset_commit_max: 4,
                ..V2
            },
        ] {
            assert_eq!(weaker.protocol(), TxnProtocol::V1, "{weaker:?}");
        }
        assert!(!TxnCapabilities {
            init_producer_id_max: 2,
            ..V1
        }
        .coordinator_can_bump_epoch());
    }

    #[test]
    fn the_protocol_never_changes_mid_transaction() {
        let mut m = in_txn(V1);
        m.set_capabilities(V2);
        assert_eq!(m.protocol(), TxnProtocol::V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        assert!(
            !m.is_send_to_partition_allowed(&tp(0)),
            "v1: wait for AddPartitionsToTxn"
        );
        // Nothing was added yet, so the v1 abort completes without EndTxn.
        m.begin_abort().unwrap();
        assert_eq!((m.next_request(false), m.state()), (None, Ready));
        m.begin_transaction().unwrap();
        assert_eq!(m.protocol(), TxnProtocol::V2);
    }

    #[test]
    fn v1_commit_adds_partitions_then_ends_after_the_batches() {
        let mut m = in_txn(V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.maybe_add_partition(&tp(0)).unwrap();
        let req = m.next_request(true).unwrap();
        assert_eq!(
            req,
            TxnRequest::AddPartitionsToTxn {
                partitions: vec![tp(0)]
            }
        );
        assert_eq!(m.next_request(true), None, "one request at a time");
        assert!(matches!(
            m.on_add_partitions(&[(tp(0), None)]).unwrap(),
            TxnStep::Done { .. }
        ));
        assert!(m.is_send_to_partition_allowed(&tp(0)));
        m.begin_commit().unwrap();
        assert_eq!(m.state(), CommittingTransaction);
        assert_eq!(m.next_request(true), None, "EndTxn waits for the batches");
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
        assert!(matches!(
            m.on_end_txn(Ok(None)).unwrap(),
            TxnStep::Done { new_producer: None }
        ));
        assert_eq!(m.state(), Ready);
        assert!(m.partitions().is_empty());
    }

    #[test]
    fn v1_skips_end_txn_when_nothing_was_added() {
        let mut m = in_txn(V1);
        m.begin_commit().unwrap();
        assert_eq!(m.next_request(false), None);
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn v2_adds_partitions_implicitly_and_adopts_the_epoch_from_end_txn() {
        let mut m = in_txn(V2);
        m.maybe_add_partition(&tp(3)).unwrap();
        assert!(m.is_send_to_partition_allowed(&tp(3)));
        assert!(m.partitions().contains(&tp(3)));
        m.begin_commit().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
        let step = m.on_end_txn(Ok(Some(pid(1)))).unwrap();
        assert!(matches!(step, TxnStep::Done { new_producer: Some(p) } if p == pid(1)));
        assert_eq!((m.state(), m.producer()), (Ready, pid(1)));
        // Even an empty v2 transaction ends with EndTxn: the epoch moves on every transaction.
        m.begin_transaction().unwrap();
        m.begin_commit().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
    }

    #[test]
    fn a_failed_send_forbids_commit_and_the_abort_bumps_the_epoch_under_v1() {
        let mut m = in_txn(V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.next_request(false);
        m.on_add_partitions(&[(tp(0), None)]).unwrap();
        m.on_send_failed(&abortable(E::OutOfOrderSequenceNumber));
        assert_eq!(m.state(), AbortableError);
        let err = m.begin_commit().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Abortable);
        assert_eq!(err.kafka_code(), Some(E::OutOfOrderSequenceNumber));
        assert_eq!(m.state(), AbortableError, "a refused call changes nothing");
        m.begin_abort().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: false })
        );
        m.on_end_txn(Ok(None)).unwrap();
        assert_eq!(m.state(), Initializing);
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::InitProducerId {
                current: Some(pid(0))
            })
        );
        let step = m.on_init_producer_id(Ok(pid(1))).unwrap();
        assert!(matches!(step, TxnStep::Done { new_producer: Some(p) } if p == pid(1)));
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn under_v2_the_coordinator_bumps_so_the_abort_sends_only_end_txn() {
        let mut m = in_txn(V2);
        m.on_send_failed(&Error::Timeout {
            api: Some(ApiKey::Produce),
            broker: None,
            after: Duration::from_secs(1),
        });
        assert_eq!(m.state(), AbortableError);
        m.begin_abort().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: false })
        );
        m.on_end_txn(Ok(Some(pid(1)))).unwrap();
        assert_eq!((m.state(), m.next_request(false)), (Ready, None));
    }

    #[test]
    fn a_send_failure_during_commit_cancels_end_txn() {
        let mut m = in_txn(V2);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.begin_commit().unwrap();
        m.on_send_failed(&abortable(E::NotEnoughReplicas));
        assert_eq!(m.state(), AbortableError);
        assert_eq!(m.next_request(false), None);
        m.begin_abort().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: false })
        );
    }

    #[test]
    fn fencing_on_end_txn_is_fatal() {
        let mut m = in_txn(V2);
        m.begin_commit().unwrap();
        m.next_request(false);
        let step = m.on_end_txn(Err(E::ProducerFenced)).unwrap();
        assert_eq!(class_of(&step), Some(ErrorClass::Fatal));
        assert_eq!(m.state(), FatalError);
        assert_eq!(m.last_error().unwrap().code, Some(E::ProducerFenced));
        assert_eq!(
            m.begin_transaction().unwrap_err().kafka_code(),
            Some(E::ProducerFenced)
        );
    }

    #[test]
    fn transaction_abortable_aborts_a_commit_but_is_fatal_for_an_abort() {
        let mut m = in_txn(V2);
        m.begin_commit().unwrap();
        m.next_request(false);
        let step = m.on_end_txn(Err(E::TransactionAbortable)).unwrap();
        assert_eq!(
            (class_of(&step), m.state()),
            (Some(ErrorClass::Abortable), AbortableError)
        );
        m.begin_abort().unwrap();
        m.next_request(false);
        let step = m.on_end_txn(Err(E::TransactionAbortable)).unwrap();
        assert_eq!(
            (class_of(&step), m.state()),
            (Some(ErrorClass::Fatal), FatalError)
        );
    }

    #[test]
    fn retriable_end_txn_errors_resend_and_a_repeated_abort_resumes() {
        let mut m = in_txn(V2);
        m.begin_abort().unwrap();
        m.next_request(false);
        let step = m.on_end_txn(Err(E::NotCoordinator)).unwrap();
        assert!(matches!(
            step,
            TxnStep::Retry {
                lookup_coordinator: true,
                backoff: None
            }
        ));
        m.begin_abort().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: false })
        );
        assert!(m.on_end_txn(Ok(None)).is_ok());
        assert!(
            m.on_end_txn(Ok(None)).is_err(),
            "no EndTxn outstanding any more"
        );
    }

    #[test]
    fn add_partitions_retries_fast_on_the_first_concurrent_transactions() {
        let mut m = in_txn(V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.next_request(false);
        let step = m
            .on_add_partitions(&[(tp(0), Some(E::ConcurrentTransactions))])
            .unwrap();
        assert!(
            matches!(step, TxnStep::Retry { backoff: Some(b), .. } if b == ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF)
        );
        m.maybe_add_partition(&tp(1)).unwrap();
        let again = m.next_request(false).unwrap();
        assert_eq!(
            again,
            TxnRequest::AddPartitionsToTxn {
                partitions: vec![tp(0), tp(1)]
            }
        );
        m.on_add_partitions(&[(tp(0), None), (tp(1), None)])
            .unwrap();
        m.maybe_add_partition(&tp(2)).unwrap();
        m.next_request(false);
        let step = m
            .on_add_partitions(&[(tp(2), Some(E::ConcurrentTransactions))])
            .unwrap();
        assert!(
            matches!(step, TxnStep::Retry { backoff: None, .. }),
            "not the first add"
        );
    }

    #[test]
    fn refused_partitions_make_the_transaction_abort_only() {
        let mut m = in_txn(V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.maybe_add_partition(&tp(1)).unwrap();
        m.next_request(false);
        let results = [
            (tp(0), Some(E::OperationNotAttempted)),
            (tp(1), Some(E::TopicAuthorizationFailed)),
        ];
        let step = m.on_add_partitions(&results).unwrap();
        match step {
            TxnStep::Failed(e) => assert_eq!(e.kafka_code(), Some(E::TopicAuthorizationFailed)),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.state(), AbortableError);
        assert!(!m.is_send_to_partition_allowed(&tp(1)));
    }

    #[test]
    fn an_invalid_producer_id_mapping_skips_end_txn_and_bumps() {
        let mut m = in_txn(V1);
        m.maybe_add_partition(&tp(0)).unwrap();
        m.next_request(false);
        let step = m
            .on_add_partitions(&[(tp(0), Some(E::InvalidProducerIdMapping))])
            .unwrap();
        assert_eq!(class_of(&step), Some(ErrorClass::Abortable));
        m.begin_abort().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::InitProducerId {
                current: Some(pid(0))
            })
        );
        m.on_init_producer_id(Ok(pid(1))).unwrap();
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn offsets_go_through_add_offsets_under_v1_and_straight_to_the_group_under_v2() {
        let mut m = in_txn(V1);
        m.begin_send_offsets("g").unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::AddOffsetsToTxn {
                group_id: "g".into()
            })
        );
        m.on_add_offsets(None).unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::TxnOffsetCommit {
                group_id: "g".into()
            })
        );
        let step = m
            .on_txn_offset_commit(&[(tp(0), Some(E::CoordinatorLoadInProgress))])
            .unwrap();
        assert!(matches!(
            step,
            TxnStep::Retry {
                lookup_coordinator: false,
                ..
            }
        ));
        m.next_request(false);
        let step = m
            .on_txn_offset_commit(&[(tp(0), Some(E::IllegalGeneration))])
            .unwrap();
        assert_eq!(class_of(&step), Some(ErrorClass::Abortable));

        let mut m = in_txn(V2);
        m.begin_send_offsets("g").unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::TxnOffsetCommit {
                group_id: "g".into()
            })
        );
        assert!(matches!(
            m.on_txn_offset_commit(&[(tp(0), None)]).unwrap(),
            TxnStep::Done { .. }
        ));
        assert_eq!(m.next_request(false), None);
    }

    #[test]
    fn misuse_is_refused_without_changing_state() {
        let mut m = TransactionManager::new();
        assert!(m.begin_transaction().is_err());
        assert!(m.begin_commit().is_err());
        assert!(m.maybe_add_partition(&tp(0)).is_err());
        assert_eq!(m.state(), Uninitialized);
        let mut m = ready(V1);
        assert!(
            m.maybe_add_partition(&tp(0)).is_err(),
            "no transaction open"
        );
        assert!(m.begin_send_offsets("g").is_err());
        assert!(m.on_add_offsets(None).is_err(), "nothing outstanding");
        assert_eq!(m.state(), Ready);
    }

    #[test]
    fn init_producer_id_errors() {
        let mut m = TransactionManager::new();
        m.set_capabilities(V1);
        m.begin_init().unwrap();
        m.next_request(false);
        let step = m
            .on_init_producer_id(Err(E::CoordinatorNotAvailable))
            .unwrap();
        assert!(matches!(
            step,
            TxnStep::Retry {
                lookup_coordinator: true,
                ..
            }
        ));
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::InitProducerId { current: None })
        );
        let step = m
            .on_init_producer_id(Err(E::TransactionalIdAuthorizationFailed))
            .unwrap();
        assert_eq!(
            (class_of(&step), m.state()),
            (Some(ErrorClass::Fatal), FatalError)
        );
    }

    #[test]
    fn a_response_driven_invalid_transition_poisons_the_manager() {
        let mut m = ready(V1);
        // A produce failure with no transaction open: Ready -> AbortableError is invalid.
        m.on_send_failed(&abortable(E::NotEnoughReplicas));
        assert_eq!(m.state(), FatalError);
    }

    #[test]
    fn the_transactional_gate_holds_partitions_not_yet_added() {
        let now = Instant::now();
        let mut m = in_txn(V1);
        let mut idem = IdempotenceState::new(true);
        idem.set_producer_id(m.producer(), true);
        let mut acc: Accumulator<()> = Accumulator::new(AccumulatorConfig::default());
        let _ = acc.append(&tp(0), (), 10, now);
        m.maybe_add_partition(&tp(0)).unwrap();
        let mut gate = TransactionalGate {
            txn: &m,
            idempotence: &mut idem,
        };
        assert!(acc.drain(1, &[tp(0)], 1 << 20, now, &mut gate).is_empty());
        m.next_request(false);
        m.on_add_partitions(&[(tp(0), None)]).unwrap();
        let mut gate = TransactionalGate {
            txn: &m,
            idempotence: &mut idem,
        };
        let drained = acc.drain(1, &[tp(0)], 1 << 20, now, &mut gate);
        assert_eq!(drained[0].sequence().unwrap().base_sequence, 0);
    }
}

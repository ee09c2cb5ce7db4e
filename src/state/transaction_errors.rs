//! How errors from the transaction and group coordinators are classified, and the error a
//! [`TransactionManager`](crate::state::transaction::TransactionManager) keeps once it is in an
//! error state.
//!
//! Split out of [`crate::state::transaction`], which re-exports everything here: the public paths
//! are `crate::state::transaction::{ErrorContext, TxnError, ...}`.

use super::transaction::TxnProtocol;
use crate::error::{ApiKey, Error, ErrorClass, ErrorCode};
use kafka_protocol::error::ResponseError;

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
///   abort itself failed), INVALID_PRODUCER_ID_MAPPING, and anything unexpected;
/// - abortable: TRANSACTION_ABORTABLE, GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
///   and OPERATION_NOT_ATTEMPTED (and, as in Java, any unexpected per-partition error) from
///   AddPartitionsToTxn, UNKNOWN_MEMBER_ID/ILLEGAL_GENERATION/FENCED_INSTANCE_ID from
///   TxnOffsetCommit, UNKNOWN_PRODUCER_ID from AddPartitionsToTxn, AddOffsetsToTxn or EndTxn
///   when the epoch can be bumped (`abortableErrorIfPossible`; fatal otherwise).
///
/// INVALID_PRODUCER_ID_MAPPING is fatal on both protocols, as in Java since Kafka 4.0
/// (KAFKA-18019): the coordinator has forgotten the transactional id (it expired), and a
/// producer that recovered by taking a new id could be one a newer instance fenced long ago,
/// resuming work that instance already did (a duplicate, breaking exactly-once).
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
        | E::InvalidProducerIdMapping
        | E::UnsupportedForMessageFormat => Fatal,
        E::TransactionAbortable if api == ApiKey::EndTxn && ctx.aborting => Fatal,
        E::TransactionAbortable | E::GroupAuthorizationFailed => Abortable,
        E::UnknownMemberId | E::IllegalGeneration | E::FencedInstanceId
            if api == ApiKey::TxnOffsetCommit =>
        {
            Abortable
        }
        E::UnknownProducerId
            if matches!(
                api,
                ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn
            ) =>
        {
            if ctx.can_bump_epoch || ctx.protocol == TxnProtocol::V2 {
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

/// The error that put the manager in an error state, kept so later calls can report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    /// Abortable or fatal.
    pub class: ErrorClass,
    /// The API that failed, if one did.
    pub api: Option<ApiKey>,
    /// The Kafka error, if the broker sent one.
    pub code: Option<ErrorCode>,
    /// What happened: for a broker error only its detail (possibly empty), since the API and
    /// code are kept apart and [`TxnError::to_error`] renders them again.
    pub message: String,
}

impl TxnError {
    pub(super) fn of(error: &Error, class: ErrorClass) -> Self {
        let message = match error {
            Error::Broker { message, .. } => message.clone().unwrap_or_default(),
            other => other.to_string(),
        };
        TxnError {
            class,
            api: error.api(),
            code: error.kafka_code(),
            message,
        }
    }

    /// The error to hand a caller. A client-side abortable cause (an expired batch) is reported
    /// as TRANSACTION_ABORTABLE, since that is what it means: abort and go on.
    pub fn to_error(&self) -> Error {
        match (self.code, self.class) {
            (None, ErrorClass::Fatal) => Error::Failed(self.message.clone()),
            (code, class) => Error::Broker {
                api: self.api.unwrap_or(ApiKey::Produce),
                broker: None,
                code: code.unwrap_or(ErrorCode::TransactionAbortable),
                message: (!self.message.is_empty()).then(|| self.message.clone()),
                class,
            },
        }
    }
}

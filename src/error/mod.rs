//! The one public error type, and how each error should be handled.
//!
//! Every fallible call in josefk returns [`Error`]. What a caller should *do* about an error is given by
//! [`Error::class`], following the Java client's semantics (and KIP-1050's grouping):
//!
//! - [`ErrorClass::Retriable`]: the same operation may succeed if tried again (a leader moved, a
//!   connection dropped, a coordinator is loading). josefk retries these itself where the operation is
//!   safe to repeat; a caller sees one only when the retry budget (a timeout) ran out.
//! - [`ErrorClass::Abortable`]: the current transaction cannot commit, but the producer is healthy:
//!   abort it and begin a new one.
//! - [`ErrorClass::Fatal`]: the client cannot go on: the producer was fenced, the broker is too
//!   old, the configuration is wrong, the credentials were refused. Close the client.
//! - [`ErrorClass::Rejected`]: this one call was refused as made (an invalid topic name, a
//!   partition that does not exist, a record too large, a call the client's state does not allow
//!   such as committing with no transaction begun; an admin request the broker refused); the
//!   client is unaffected. Fix the input; repeating the same call fails the same way.
//!
//! [`Error::outcome_unknown`] is separate from the class: it is true only when a request that may
//! have changed something was sent and no answer says whether it did (a lost connection or a
//! timeout after sending a produce, commit or transaction call). A `send` that timed out waiting
//! for metadata or buffer memory queued nothing, so its outcome is known.
//!
//! The same Kafka error code can mean different things in different places (an `INVALID_PRODUCER_EPOCH`
//! from the transaction coordinator is fatal, from a partition leader it is abortable), so the class of
//! a [`Error::Broker`] is decided where the error is detected and stored in the error, not derived from
//! the code alone.

use std::fmt;
use std::time::Duration;

mod api;
mod codes;

pub use api::ApiKey;
pub use codes::ErrorCode;

/// What a caller should do about an [`Error`]. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Trying the same operation again may succeed.
    Retriable,
    /// The current transaction must be aborted; the client stays usable.
    Abortable,
    /// The client cannot go on; close it.
    Fatal,
    /// This call was refused as made (bad argument); the client stays usable.
    Rejected,
}

/// The broker an error came from: its node id when known (bootstrap connections have none yet) and
/// the address josefk connected to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerRef {
    /// The broker's node id, if the connection was made to a known node.
    pub node_id: Option<i32>,
    /// `host:port` as dialled.
    pub addr: String,
}

impl fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node_id {
            Some(id) => write!(f, "broker {id} ({})", self.addr),
            None => write!(f, "bootstrap broker {}", self.addr),
        }
    }
}

/// Formats an optional API name for error messages.
struct ApiName(Option<ApiKey>);

impl fmt::Display for ApiName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(api) => write!(f, "{api:?}"),
            None => f.write_str("request"),
        }
    }
}

/// Formats an optional broker for error messages.
struct BrokerName<'a>(&'a Option<BrokerRef>);

impl fmt::Display for BrokerName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => write!(f, " to {b}"),
            None => Ok(()),
        }
    }
}

/// Formats a duration in whole milliseconds (`3s`, `1.5s`, `250ms`): timeouts are configured in
/// milliseconds, and a deadline measured with the clock is off by nanoseconds.
pub(crate) struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = (self.0.as_nanos() + 500_000) / 1_000_000;
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        write!(f, "{:?}", Duration::from_millis(ms))
    }
}

/// Every error josefk returns.
///
/// Match on the variant for detail, or call [`Error::class`] to decide what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing, unknown or invalid. Raised when a client is built.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A connection could not be established (refused, unreachable, DNS, setup timeout).
    /// Nothing was sent.
    #[error("cannot connect to {broker}: {source}")]
    Connect {
        /// The broker dialled.
        broker: BrokerRef,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The connection broke while this request was queued or in flight.
    ///
    /// When `outcome_unknown` is true the request may or may not have been received and applied by
    /// the broker: a produce may have been written, a commit may have happened. Never treat such a
    /// request as failed-and-safe-to-resend unless the operation is idempotent.
    #[error(
        "connection{} lost during {}{}: {reason}",
        BrokerName(&Some(broker.clone())),
        ApiName(*api),
        if *outcome_unknown { " (outcome unknown)" } else { " (not sent)" }
    )]
    ConnectionLost {
        /// The request's API, if the error belongs to one request.
        api: Option<ApiKey>,
        /// The broker.
        broker: BrokerRef,
        /// Whether the request may have reached the broker.
        outcome_unknown: bool,
        /// Why the connection was closed.
        reason: String,
    },

    /// The broker sent bytes that violate the protocol: a frame over the size cap, a correlation id
    /// out of order, a body that does not decode. The connection is closed.
    #[error("protocol violation{} in {}: {message}", BrokerName(broker), ApiName(*api))]
    Protocol {
        /// The API being decoded, if known.
        api: Option<ApiKey>,
        /// The broker, if known.
        broker: Option<BrokerRef>,
        /// What was wrong.
        message: String,
    },

    /// The broker answered with a Kafka error code.
    #[error(
        "{api:?}{} failed: {code:?} (Kafka error {}){}",
        BrokerName(broker),
        code.code(),
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Broker {
        /// The API whose response carried the error.
        api: ApiKey,
        /// The broker that answered, if known.
        broker: Option<BrokerRef>,
        /// The Kafka error.
        code: ErrorCode,
        /// The broker's error message, where the response has one.
        message: Option<String>,
        /// What to do about it, decided where the error was detected.
        class: ErrorClass,
    },

    /// No answer within the allowed time.
    ///
    /// `outcome_unknown` is true when a request that changes something (a produce, a commit, a
    /// transaction call) was sent and may have been applied; false when the time ran out before
    /// anything was queued or sent (`send` waiting for metadata or buffer memory, connecting) or
    /// the request only reads.
    #[error(
        "{}{} timed out after {}{}",
        ApiName(*api),
        BrokerName(broker),
        Millis(*after),
        if *outcome_unknown { " (outcome unknown)" } else { "" }
    )]
    Timeout {
        /// The API, if one request timed out.
        api: Option<ApiKey>,
        /// The broker, if known.
        broker: Option<BrokerRef>,
        /// The time allowed.
        after: Duration,
        /// Whether a request that may have been applied was sent.
        outcome_unknown: bool,
    },

    /// The broker does not support any version of an API that josefk can speak.
    #[error(
        "{broker} does not support {api:?} in any version josefk speaks (josefk: {client_min}..={client_max}, broker: {})",
        broker_range.map(|(a, b)| format!("{a}..={b}")).unwrap_or_else(|| "none".into())
    )]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The broker.
        broker: BrokerRef,
        /// The versions the broker advertised, if any.
        broker_range: Option<(i16, i16)>,
        /// The lowest version josefk speaks.
        client_min: i16,
        /// The highest version josefk speaks.
        client_max: i16,
    },

    /// A call was made in a state that does not allow it (for example committing with no
    /// transaction begun, subscribing without `group.id`, seeking an unassigned partition).
    /// Nothing was done; the client is unaffected ([`ErrorClass::Rejected`]).
    #[error("invalid state: {0}")]
    InvalidState(String),

    /// The client failed earlier (a fatal error such as a fenced producer, or one of its tasks
    /// ended unexpectedly) and refuses further calls: close it ([`ErrorClass::Fatal`]). The text
    /// names the original failure.
    #[error("client failed: {0}")]
    Failed(String),

    /// The broker refused this client's credentials (SASL: bad password, unknown user, expired or
    /// rejected token, mechanism not enabled) or the principal's session could not be renewed.
    /// Retrying with the same credentials will not help.
    #[error("authentication with {broker} failed: {message}")]
    Authentication {
        /// The broker.
        broker: BrokerRef,
        /// What the broker or josefk said, naming the mechanism and what to check.
        message: String,
    },

    /// The TLS handshake with a broker failed (unknown certificate authority, host name mismatch,
    /// expired certificate, client certificate refused, a plaintext peer on a TLS port).
    #[error("TLS with {broker} failed: {message}")]
    Tls {
        /// The broker.
        broker: BrokerRef,
        /// What failed and what to check.
        message: String,
    },

    /// The client was closed.
    #[error("client closed")]
    Closed,

    /// An argument of this call is invalid (a topic name Kafka does not allow, a partition the
    /// topic does not have). Nothing was sent; the client is unaffected
    /// ([`ErrorClass::Rejected`]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A record the producer gave up on: `delivery.timeout.ms` passed (or its retries ran out,
    /// or the producer was closed) before the broker gave a definite answer.
    ///
    /// When `outcome_unknown` is true a send of it may have been written; otherwise it was never
    /// written. Either way the producer stays usable, and an idempotent producer keeps the
    /// records sent after it de-duplicated and in order (it moves to a new epoch first).
    #[error(
        "record for {topic}-{partition} not delivered {}: {reason}",
        if *outcome_unknown { "(outcome unknown: it may have been written)" } else { "(not written)" }
    )]
    Undelivered {
        /// The record's topic.
        topic: String,
        /// The record's partition.
        partition: i32,
        /// Whether a send of it may have been written.
        outcome_unknown: bool,
        /// Why it was given up on, and what was last tried.
        reason: String,
    },

    /// `poll` fetched a partition several times (with backoff) and none of the answers let its
    /// position move: the data at `offset` is truncated, over-long, corrupt, or only records
    /// already consumed. The consumer stays usable and goes on fetching the partition with
    /// backoff, so polling again may succeed if the broker's answer changes
    /// ([`ErrorClass::Retriable`]); otherwise `seek` past the offset (Java: "seek past the
    /// record to continue consumption"). Reported on every poll until the position moves.
    #[error(
        "partition {topic}-{partition} makes no progress at offset {offset}{}: {reason}",
        broker.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
    )]
    PartitionStalled {
        /// The partition's topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The position that does not move.
        offset: i64,
        /// The leader that answered, when known.
        broker: Option<BrokerRef>,
        /// How many fetches made no progress and what they returned.
        reason: String,
    },

    /// `send` waited `max.block.ms` for room in `buffer.memory` and found none: records not yet
    /// delivered hold it all. Nothing was queued (the outcome is known: not written); sending
    /// again may succeed once deliveries complete ([`ErrorClass::Retriable`]).
    #[error(
        "buffer.memory full: no room for a record of about {record_size} bytes within \
         max.block.ms ({}); {in_use} of {buffer_memory} bytes are held by records not yet \
         delivered; the record was not queued",
        Millis(*waited)
    )]
    BufferExhausted {
        /// The record's estimated size in the batch.
        record_size: usize,
        /// Bytes of `buffer.memory` in use when the wait ended.
        in_use: usize,
        /// The configured `buffer.memory`.
        buffer_memory: usize,
        /// How long `send` waited (`max.block.ms`).
        waited: Duration,
    },

    /// `close` ran out of time before every record had an outcome. The producer is closed
    /// either way; each record's own future says what became of it.
    #[error(
        "close timed out after {}: {unsent} record(s) not sent, {unknown} record(s) in flight \
         with outcome unknown",
        Millis(*after)
    )]
    CloseTimedOut {
        /// The time `close` was given.
        after: Duration,
        /// Records failed without being written.
        unsent: usize,
        /// Records whose send may have been written.
        unknown: usize,
    },

    /// A [`Pipeline`](crate::pipeline::Pipeline)'s transform refused an input record and the
    /// pipeline's policy is to stop (`TransformErrorPolicy::Fail`). The open transaction was
    /// aborted: nothing since the last commit was written, and the record is read again on the
    /// next run.
    #[error("transform failed on {topic}-{partition} at offset {offset}: {source}")]
    Transform {
        /// The input record's topic.
        topic: String,
        /// The input record's partition.
        partition: i32,
        /// The input record's offset.
        offset: i64,
        /// What the transform returned.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// What a caller should do about this error. See the module docs.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Connect { .. }
            | Error::ConnectionLost { .. }
            | Error::Timeout { .. }
            | Error::BufferExhausted { .. }
            | Error::Undelivered { .. }
            | Error::PartitionStalled { .. } => ErrorClass::Retriable,
            Error::InvalidArgument(_) | Error::InvalidState(_) | Error::Transform { .. } => {
                ErrorClass::Rejected
            }
            Error::Broker { class, .. } => *class,
            Error::Config(_)
            | Error::Protocol { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Failed(_)
            | Error::Authentication { .. }
            | Error::Tls { .. }
            | Error::CloseTimedOut { .. }
            | Error::Closed => ErrorClass::Fatal,
        }
    }

    /// Shorthand for `class() == ErrorClass::Retriable`.
    pub fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::Retriable
    }

    /// The Kafka error, for [`Error::Broker`].
    pub fn kafka_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The API the error belongs to, where there is one.
    pub fn api(&self) -> Option<ApiKey> {
        match self {
            Error::Broker { api, .. } | Error::UnsupportedVersion { api, .. } => Some(*api),
            Error::ConnectionLost { api, .. }
            | Error::Protocol { api, .. }
            | Error::Timeout { api, .. } => *api,
            _ => None,
        }
    }

    /// The broker the error came from, where known.
    pub fn broker(&self) -> Option<&BrokerRef> {
        match self {
            Error::Connect { broker, .. }
            | Error::ConnectionLost { broker, .. }
            | Error::Authentication { broker, .. }
            | Error::Tls { broker, .. }
            | Error::UnsupportedVersion { broker, .. } => Some(broker),
            Error::Protocol { broker, .. }
            | Error::Broker { broker, .. }
            | Error::Timeout { broker, .. }
            | Error::PartitionStalled { broker, .. } => broker.as_ref(),
            _ => None,
        }
    }

    /// True when a request may have been applied by the broker even though it failed here
    /// (connection lost after sending, a timeout, a record given up on after it was sent).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::ConnectionLost {
                outcome_unknown, ..
            }
            | Error::Undelivered {
                outcome_unknown, ..
            } => *outcome_unknown,
            Error::CloseTimedOut { unknown, .. } => *unknown > 0,
            Error::Timeout {
                outcome_unknown, ..
            } => *outcome_unknown,
            _ => false,
        }
    }

    /// An equivalent copy, for failures shared by many records (`Error` is not `Clone`: it may
    /// hold an `io::Error`, whose copy keeps its kind and text but loses any inner source).
    /// Keeps the variant, and so the class, of the original.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Config(m) => Error::Config(m.clone()),
            Error::Connect { broker, source } => Error::Connect {
                broker: broker.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::ConnectionLost {
                api,
                broker,
                outcome_unknown,
                reason,
            } => Error::ConnectionLost {
                api: *api,
                broker: broker.clone(),
                outcome_unknown: *outcome_unknown,
                reason: reason.clone(),
            },
            Error::Protocol {
                api,
                broker,
                message,
            } => Error::Protocol {
                api: *api,
                broker: broker.clone(),
                message: message.clone(),
            },
            Error::Broker {
                api,
                broker,
                code,
                message,
                class,
            } => Error::Broker {
                api: *api,
                broker: broker.clone(),
                code: *code,
                message: message.clone(),
                class: *class,
            },
            Error::Timeout {
                api,
                broker,
                after,
                outcome_unknown,
            } => Error::Timeout {
                api: *api,
                broker: broker.clone(),
                after: *after,
                outcome_unknown: *outcome_unknown,
            },
            Error::UnsupportedVersion {
                api,
                broker,
                broker_range,
                client_min,
                client_max,
            } => Error::UnsupportedVersion {
                api: *api,
                broker: broker.clone(),
                broker_range: *broker_range,
                client_min: *client_min,
                client_max: *client_max,
            },
            Error::InvalidState(m) => Error::InvalidState(m.clone()),
            Error::Failed(m) => Error::Failed(m.clone()),
            Error::Authentication { broker, message } => Error::Authentication {
                broker: broker.clone(),
                message: message.clone(),
            },
            Error::Tls { broker, message } => Error::Tls {
                broker: broker.clone(),
                message: message.clone(),
            },
            Error::Closed => Error::Closed,
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Undelivered {
                topic,
                partition,
                outcome_unknown,
                reason,
            } => Error::Undelivered {
                topic: topic.clone(),
                partition: *partition,
                outcome_unknown: *outcome_unknown,
                reason: reason.clone(),
            },
            Error::PartitionStalled {
                topic,
                partition,
                offset,
                broker,
                reason,
            } => Error::PartitionStalled {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                broker: broker.clone(),
                reason: reason.clone(),
            },
            Error::BufferExhausted {
                record_size,
                in_use,
                buffer_memory,
                waited,
            } => Error::BufferExhausted {
                record_size: *record_size,
                in_use: *in_use,
                buffer_memory: *buffer_memory,
                waited: *waited,
            },
            Error::CloseTimedOut {
                after,
                unsent,
                unknown,
            } => Error::CloseTimedOut {
                after: *after,
                unsent: *unsent,
                unknown: *unknown,
            },
            Error::Transform {
                topic,
                partition,
                offset,
                source,
            } => Error::Transform {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
                // The user's error is not `Clone`: its text is kept.
                source: source.to_string().into(),
            },
        }
    }

    /// A broker error whose class follows Kafka's retriable flag: retriable if Kafka says so;
    /// otherwise rejected for the admin APIs (a refused admin request concerns that request
    /// only: the topic exists, the ACL is missing, the transactional id is unknown) and fatal for
    /// the rest. Roles that know better (transactions) build [`Error::Broker`] themselves.
    pub(crate) fn from_code(
        api: kafka_protocol::messages::ApiKey,
        broker: Option<BrokerRef>,
        code: kafka_protocol::error::ResponseError,
        message: Option<String>,
    ) -> Error {
        let code = ErrorCode::from_protocol(code);
        let class = if code.is_retriable() {
            ErrorClass::Retriable
        } else if is_admin_api(api) {
            ErrorClass::Rejected
        } else {
            ErrorClass::Fatal
        };
        Error::Broker {
            api: ApiKey::from_protocol(api),
            broker,
            code,
            message,
            class,
        }
    }

    /// Turns a response's `error_code` field into `Ok(())` or an [`Error::Broker`] classified by
    /// [`Error::from_code`].
    pub(crate) fn check_code(
        api: kafka_protocol::messages::ApiKey,
        broker: Option<&BrokerRef>,
        error_code: i16,
        message: Option<&str>,
    ) -> Result<()> {
        match kafka_protocol::error::ResponseError::try_from_code(error_code) {
            None => Ok(()),
            Some(code) => Err(Error::from_code(
                api,
                broker.cloned(),
                code,
                message.map(str::to_owned),
            )),
        }
    }
}

/// APIs only the admin client sends: each request stands alone, so no answer to one can leave
/// the client unusable.
fn is_admin_api(api: kafka_protocol::messages::ApiKey) -> bool {
    use kafka_protocol::messages::ApiKey as K;
    matches!(
        api,
        K::CreateTopics
            | K::DeleteTopics
            | K::CreatePartitions
            | K::DeleteRecords
            | K::DescribeConfigs
            | K::AlterConfigs
            | K::IncrementalAlterConfigs
            | K::DescribeCluster
            | K::ListGroups
            | K::DescribeGroups
            | K::DeleteGroups
            | K::OffsetDelete
            | K::ConsumerGroupDescribe
            | K::ListTransactions
            | K::DescribeTransactions
            | K::DescribeProducers
            | K::WriteTxnMarkers
            | K::CreateAcls
            | K::DescribeAcls
            | K::DeleteAcls
    )
}

/// Whether Kafka classes `code` as retriable (see [`ErrorCode::is_retriable`]; josefk's table
/// differs from the protocol crate's for CONCURRENT_TRANSACTIONS).
pub(crate) fn is_retriable_code(code: kafka_protocol::error::ResponseError) -> bool {
    ErrorCode::from_protocol(code).is_retriable()
}

/// `Result` with josefk's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::ApiKey as ProtocolApi;

    fn broker() -> BrokerRef {
        BrokerRef {
            node_id: Some(1),
            addr: "127.0.0.1:9092".into(),
        }
    }

    #[test]
    fn a_refused_admin_request_is_rejected_not_fatal() {
        let refused = |api| {
            Error::from_code(api, Some(broker()), ResponseError::TopicAlreadyExists, None).class()
        };
        assert_eq!(refused(ProtocolApi::CreateTopics), ErrorClass::Rejected);
        let unknown_id = Error::from_code(
            ProtocolApi::DescribeTransactions,
            None,
            ResponseError::TransactionalIdNotFound,
            None,
        );
        assert_eq!(unknown_id.class(), ErrorClass::Rejected);
        let denied = Error::from_code(
            ProtocolApi::CreateAcls,
            None,
            ResponseError::ClusterAuthorizationFailed,
            None,
        );
        assert_eq!(denied.class(), ErrorClass::Rejected);
        // Retriable stays retriable; the other roles' non-retriable answers stay fatal.
        let moving = Error::from_code(
            ProtocolApi::DeleteRecords,
            None,
            ResponseError::NotLeaderOrFollower,
            None,
        );
        assert_eq!(moving.class(), ErrorClass::Retriable);
        assert_eq!(refused(ProtocolApi::Produce), ErrorClass::Fatal);
    }

    #[test]
    fn a_duplicate_keeps_variant_class_and_text() {
        let originals = [
            Error::Protocol {
                api: Some(ApiKey::Produce),
                broker: Some(broker()),
                message: "cannot decode".into(),
            },
            Error::Connect {
                broker: broker(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            },
            Error::Tls {
                broker: broker(),
                message: "bad certificate".into(),
            },
            Error::Authentication {
                broker: broker(),
                message: "revoked".into(),
            },
        ];
        for e in &originals {
            let copy = e.duplicate();
            assert_eq!(copy.to_string(), e.to_string());
            assert_eq!(copy.class(), e.class());
            assert_eq!(std::mem::discriminant(&copy), std::mem::discriminant(e));
        }
    }

    #[test]
    fn broker_error_class_follows_kafka_retriable_flag() {
        let e = Error::from_code(
            ProtocolApi::Produce,
            Some(broker()),
            ResponseError::NotLeaderOrFollower,
            None,
        );
        assert_eq!(e.class(), ErrorClass::Retriable);
        let e = Error::from_code(
            ProtocolApi::Produce,
            None,
            ResponseError::MessageTooLarge,
            None,
        );
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert_eq!(e.kafka_code(), Some(ErrorCode::MessageTooLarge));
        assert_eq!(e.api(), Some(ApiKey::Produce));
        let e = Error::from_code(
            ProtocolApi::Produce,
            None,
            ResponseError::ConcurrentTransactions,
            None,
        );
        assert_eq!(e.class(), ErrorClass::Retriable);
    }

    #[test]
    fn check_code_zero_is_ok_and_nonzero_names_api_broker_and_code() {
        assert!(Error::check_code(ProtocolApi::Metadata, None, 0, None).is_ok());
        let e = Error::check_code(
            ProtocolApi::CreateTopics,
            Some(&broker()),
            36,
            Some("exists"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("CreateTopics"), "{text}");
        assert!(text.contains("broker 1 (127.0.0.1:9092)"), "{text}");
        assert!(text.contains("Kafka error 36"), "{text}");
        assert!(text.contains("exists"), "{text}");
        assert!(text.contains("TopicAlreadyExists"), "{text}");
        assert_eq!(e.kafka_code().map(ErrorCode::code), Some(36));
        assert_eq!(e.broker(), Some(&broker()));
    }

    #[test]
    fn lost_connection_is_retriable_and_says_whether_outcome_is_known() {
        let e = Error::ConnectionLost {
            api: Some(ApiKey::Produce),
            broker: broker(),
            outcome_unknown: true,
            reason: "reset".into(),
        };
        assert!(e.is_retriable());
        assert!(e.outcome_unknown());
        assert!(e.to_string().contains("outcome unknown"));
        let e = Error::ConnectionLost {
            api: None,
            broker: broker(),
            outcome_unknown: false,
            reason: "reset".into(),
        };
        assert!(!e.outcome_unknown());
        assert!(e.to_string().contains("not sent"));
    }

    #[test]
    fn timeouts_print_whole_milliseconds() {
        let e = Error::Timeout {
            api: Some(ApiKey::Metadata),
            broker: None,
            after: Duration::from_nanos(2_999_999_382),
            outcome_unknown: false,
        };
        assert_eq!(e.to_string(), "Metadata timed out after 3s");
        assert!(!e.outcome_unknown());
        assert_eq!(Millis(Duration::from_micros(1_500_400)).to_string(), "1.5s");
        assert_eq!(Millis(Duration::from_millis(250)).to_string(), "250ms");
    }

    #[test]
    fn undelivered_says_whether_it_may_have_been_written() {
        let e = |unknown| Error::Undelivered {
            topic: "t".into(),
            partition: 3,
            outcome_unknown: unknown,
            reason: "why".into(),
        };
        assert!(e(true).outcome_unknown());
        assert!(e(true).to_string().contains("t-3"));
        assert!(e(true).to_string().contains("may have been written"));
        assert!(!e(false).outcome_unknown());
        assert!(e(false).to_string().contains("(not written)"));
        assert_eq!(e(false).class(), ErrorClass::Retriable);
        assert_eq!(
            Error::InvalidArgument("x".into()).class(),
            ErrorClass::Rejected
        );
    }

    #[test]
    fn buffer_exhaustion_says_what_is_full_and_that_nothing_was_queued() {
        let e = Error::BufferExhausted {
            record_size: 120,
            in_use: 1000,
            buffer_memory: 1024,
            waited: Duration::from_millis(250),
        };
        assert_eq!(
            e.to_string(),
            "buffer.memory full: no room for a record of about 120 bytes within max.block.ms \
             (250ms); 1000 of 1024 bytes are held by records not yet delivered; the record was \
             not queued"
        );
        assert!(!e.outcome_unknown());
        assert_eq!(e.class(), ErrorClass::Retriable);
        assert_eq!(e.api(), None);
    }

    #[test]
    fn a_timeout_is_outcome_unknown_only_when_it_says_so() {
        let e = |unknown| Error::Timeout {
            api: Some(ApiKey::OffsetCommit),
            broker: None,
            after: Duration::from_secs(1),
            outcome_unknown: unknown,
        };
        assert!(e(true).outcome_unknown());
        assert!(e(true).to_string().ends_with("(outcome unknown)"));
        assert!(!e(false).outcome_unknown());
        assert!(e(true).duplicate().outcome_unknown());
        assert_eq!(e(false).class(), ErrorClass::Retriable);
    }

    #[test]
    fn misuse_is_rejected_and_an_earlier_failure_is_fatal() {
        assert_eq!(
            Error::InvalidState("no transaction".into()).class(),
            ErrorClass::Rejected
        );
        assert_eq!(Error::Failed("fenced".into()).class(), ErrorClass::Fatal);
    }

    #[test]
    fn misuse_and_protocol_violations_are_fatal() {
        assert_eq!(Error::Closed.class(), ErrorClass::Fatal);
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Fatal);
        let e = Error::UnsupportedVersion {
            api: ApiKey::Produce,
            broker: broker(),
            broker_range: Some((0, 2)),
            client_min: 3,
            client_max: 12,
        };
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert!(e.to_string().contains("Produce"));
        assert!(e.to_string().contains("0..=2"));
    }
}

#[cfg(test)]
mod code_tests {
    use super::{ApiKey, ErrorCode};
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::ApiKey as ProtocolApi;

    #[test]
    fn every_protocol_error_code_maps_to_the_same_number_and_retriable_flag() {
        let mut known = 0;
        for n in -1..=200i16 {
            let (Some(ours), Some(theirs)) =
                (ErrorCode::from_code(n), ResponseError::try_from_code(n))
            else {
                assert_eq!(n, 0);
                continue;
            };
            assert_eq!(ours.code(), n);
            assert_eq!(ErrorCode::from_protocol(theirs), ours);
            if let ErrorCode::Other(_) = ours {
                assert_eq!(theirs, ResponseError::Unknown(n));
                continue;
            }
            known += 1;
            let expect_retriable =
                theirs.is_retriable() || theirs == ResponseError::ConcurrentTransactions;
            assert_eq!(ours.is_retriable(), expect_retriable, "{ours:?}");
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        }
        assert!(known > 120, "{known}");
        assert_eq!(
            ErrorCode::NotLeaderOrFollower.name(),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(ErrorCode::MessageTooLarge.to_string(), "MESSAGE_TOO_LARGE");
        assert_eq!(ErrorCode::from_code(0), None);
        assert_eq!(ErrorCode::from_code(9999), Some(ErrorCode::Other(9999)));
    }

    #[test]
    fn every_protocol_api_key_maps_to_the_same_number_and_name() {
        let mut known = 0;
        for n in 0..=200i16 {
            let theirs = ProtocolApi::try_from(n).ok();
            let ours = ApiKey::from_code(n);
            assert_eq!(ours.is_some(), theirs.is_some(), "key {n}");
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                known += 1;
                assert_eq!(ApiKey::from_protocol(theirs), ours);
                assert_eq!(ours.code(), n);
                assert_eq!(ours.name(), format!("{theirs:?}"));
            }
        }
        assert!(known > 70, "{known}");
        assert_eq!(ApiKey::FindCoordinator.to_string(), "FindCoordinator");
    }
}

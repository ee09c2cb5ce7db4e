//! Unit tests for [`super`]: the transaction state machine and coordinator error handling.

use super::*;
use crate::state::accumulator::{Accumulator, AccumulatorConfig};
use crate::state::sequence::IdempotenceState;
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
        code: crate::error::ErrorCode::from_protocol(code),
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
        (ApiKey::AddOffsetsToTxn, E::UnknownProducerId, v1, Abortable),
        // KAFKA-18019: fatal on both protocols, whatever the API.
        (
            ApiKey::AddOffsetsToTxn,
            E::InvalidProducerIdMapping,
            v1,
            Fatal,
        ),
        (
            ApiKey::AddPartitionsToTxn,
            E::InvalidProducerIdMapping,
            v1,
            Fatal,
        ),
        (ApiKey::EndTxn, E::InvalidProducerIdMapping, v1, Fatal),
        (
            ApiKey::AddPartitionsToTxn,
            E::InvalidProducerIdMapping,
            v2,
            Fatal,
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
fn an_unknown_outcome_bumps_the_v1_epoch_when_the_transaction_ends_and_never_under_v2() {
    for (caps, code) in [
        (V1, E::NetworkException),
        (V1, E::RequestTimedOut),
        (V2, E::NetworkException),
    ] {
        let mut m = in_txn(caps);
        m.maybe_add_partition(&tp(0)).unwrap();
        if caps.protocol() == TxnProtocol::V1 {
            m.next_request(false).unwrap();
            m.on_add_partitions(&[(tp(0), None)]).unwrap();
        }
        m.begin_commit().unwrap();
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
        // No definite answer: the same EndTxn again, which then succeeds.
        let retry = m.on_end_txn(Err(code)).unwrap();
        assert!(
            matches!(retry, TxnStep::Retry { .. }),
            "{code:?}: {retry:?}"
        );
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true })
        );
        m.on_end_txn(Ok(None)).unwrap();
        if caps.protocol() == TxnProtocol::V1 {
            // The first copy may still be applied: fence it before the next transaction.
            assert_eq!(m.state(), Initializing, "{code:?}");
            assert_eq!(
                m.next_request(false),
                Some(TxnRequest::InitProducerId {
                    current: Some(pid(0))
                })
            );
            m.on_init_producer_id(Ok(pid(1))).unwrap();
        }
        assert_eq!(m.state(), Ready);
        // The bump is owed once: the next transaction ends without one.
        m.begin_transaction().unwrap();
        m.begin_commit().unwrap();
        while let Some(r) = m.next_request(false) {
            assert!(matches!(r, TxnRequest::EndTxn { .. }), "{r:?}");
            m.on_end_txn(Ok(None)).unwrap();
        }
        assert_eq!(m.state(), Ready);
    }
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
    // An empty transaction ends without EndTxn on v2 too: the coordinator has none to end and
    // refuses the commit (INVALID_TXN_STATE, on Kafka 4.4); Java skips it on both protocols.
    for commit in [true, false] {
        m.begin_transaction().unwrap();
        if commit {
            m.begin_commit().unwrap();
        } else {
            m.begin_abort().unwrap();
        }
        assert_eq!(m.next_request(false), None);
        assert_eq!((m.state(), m.producer()), (Ready, pid(1)));
    }
    // Offsets alone begin it: TxnOffsetCommit v5 does on the coordinator.
    m.begin_transaction().unwrap();
    m.begin_send_offsets("g").unwrap();
    assert!(matches!(
        m.next_request(false),
        Some(TxnRequest::TxnOffsetCommit { .. })
    ));
    m.on_txn_offset_commit(&[tp(0)], &[(tp(0), None)]).unwrap();
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
    assert_eq!(
        err.kafka_code(),
        Some(crate::error::ErrorCode::OutOfOrderSequenceNumber)
    );
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
fn a_leader_refusing_tls_or_credentials_makes_the_transaction_abortable_not_fatal() {
    let broker = crate::error::BrokerRef {
        node_id: Some(1),
        addr: "b:9092".into(),
    };
    let refusals = [
        Error::Tls {
            broker: broker.clone(),
            message: "bad certificate".into(),
        },
        Error::Authentication {
            broker,
            message: "revoked".into(),
        },
    ];
    for refusal in &refusals {
        let mut m = in_txn(V2);
        m.on_send_failed(refusal);
        assert_eq!(m.state(), AbortableError, "{refusal}");
        let err = m.begin_commit().unwrap_err();
        assert_eq!(err.class(), ErrorClass::Abortable);
        assert!(err.to_string().contains(&refusal.to_string()), "{err}");
        m.begin_abort().unwrap();
    }
}

#[test]
fn under_v2_the_coordinator_bumps_so_the_abort_sends_only_end_txn() {
    let mut m = in_txn(V2);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.on_send_failed(&Error::Timeout {
        api: Some(ApiKey::Produce),
        broker: None,
        after: Duration::from_secs(1),
        outcome_unknown: true,
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
    m.maybe_add_partition(&tp(0)).unwrap();
    m.begin_commit().unwrap();
    m.next_request(false);
    let step = m.on_end_txn(Err(E::ProducerFenced)).unwrap();
    assert_eq!(class_of(&step), Some(ErrorClass::Fatal));
    assert_eq!(m.state(), FatalError);
    assert_eq!(
        m.last_error().unwrap().code,
        Some(crate::error::ErrorCode::ProducerFenced)
    );
    assert_eq!(
        m.begin_transaction().unwrap_err().kafka_code(),
        Some(crate::error::ErrorCode::ProducerFenced)
    );
}

#[test]
fn transaction_abortable_aborts_a_commit_but_is_fatal_for_an_abort() {
    let mut m = in_txn(V2);
    m.maybe_add_partition(&tp(0)).unwrap();
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
    m.maybe_add_partition(&tp(0)).unwrap();
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
    // Soon, then doubling up to Java's 20 ms while the previous transaction is still completing.
    let mut waits = Vec::new();
    for _ in 0..6 {
        let step = m
            .on_add_partitions(&[(tp(0), Some(E::ConcurrentTransactions))])
            .unwrap();
        match step {
            TxnStep::Retry { backoff, .. } => waits.push(backoff),
            other => panic!("not a retry: {other:?}"),
        }
        m.next_request(false);
    }
    let ms = Duration::from_millis;
    assert_eq!(waits, [2, 4, 8, 16, 20, 20].map(|n| Some(ms(n))));
    assert_eq!(
        waits.iter().max(),
        Some(&Some(ADD_PARTITIONS_CONCURRENT_RETRY_BACKOFF))
    );
    let step = m
        .on_add_partitions(&[(tp(0), Some(E::CoordinatorLoadInProgress))])
        .unwrap();
    assert!(matches!(step, TxnStep::Retry { backoff: None, .. }));
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
        TxnStep::Failed(e) => assert_eq!(
            e.kafka_code(),
            Some(crate::error::ErrorCode::TopicAuthorizationFailed)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.state(), AbortableError);
    assert!(!m.is_send_to_partition_allowed(&tp(1)));
}

#[test]
fn an_invalid_producer_id_mapping_is_fatal_even_where_the_epoch_could_be_bumped() {
    let mut m = in_txn(V1);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.next_request(false);
    let step = m
        .on_add_partitions(&[(tp(0), Some(E::InvalidProducerIdMapping))])
        .unwrap();
    assert_eq!(class_of(&step), Some(ErrorClass::Fatal));
    assert_eq!(m.state(), FatalError);
    assert!(
        m.begin_abort().is_err(),
        "no way back: a new producer is needed"
    );
    assert_eq!(m.next_request(false), None);
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
        .on_txn_offset_commit(&[tp(0)], &[(tp(0), Some(E::CoordinatorLoadInProgress))])
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
        .on_txn_offset_commit(&[tp(0)], &[(tp(0), Some(E::IllegalGeneration))])
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
        m.on_txn_offset_commit(&[tp(0)], &[(tp(0), None)]).unwrap(),
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
fn once_fatal_only_another_fatal_error_replaces_the_cause() {
    // The coordinator's fence of a timed-out transaction arrives first; the stale epoch's
    // produce answers arrive after it. The fence must stay the error every later call reports
    // (a caller recovers from a fence, not from "invalid transition"). A later fatal error may
    // replace it (the producer's timeout refinement relies on that).
    let mut m = in_txn(V2);
    m.fatal_error(&Error::Broker {
        api: ApiKey::TxnOffsetCommit,
        broker: None,
        code: crate::error::ErrorCode::from_protocol(E::InvalidProducerEpoch),
        message: None,
        class: ErrorClass::Fatal,
    });
    m.on_send_failed(&abortable(E::NotEnoughReplicas));
    assert_eq!(m.state(), FatalError);
    let reported = m.begin_abort().unwrap_err();
    assert_eq!(
        reported.kafka_code(),
        Some(crate::error::ErrorCode::InvalidProducerEpoch),
        "{reported}"
    );
    m.fatal_error(&abortable(E::ProducerFenced));
    let refined = m.begin_abort().unwrap_err();
    assert_eq!(
        refined.kafka_code(),
        Some(crate::error::ErrorCode::ProducerFenced),
        "{refined}"
    );
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

#[test]
fn an_abort_timed_out_in_its_epoch_bump_is_resumed_by_calling_abort_again() {
    let mut m = in_txn(V1);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.next_request(false);
    m.on_add_partitions(&[(tp(0), None)]).unwrap();
    m.on_send_failed(&abortable(E::NotEnoughReplicas));
    m.begin_abort().unwrap();
    m.next_request(false);
    m.on_end_txn(Ok(None)).unwrap();
    // The caller's abort_transaction timed out here, during the KIP-360 epoch bump.
    assert_eq!(m.state(), Initializing);
    m.begin_abort()
        .expect("calling abort again waits for the same abort");
    let e = m.begin_commit().unwrap_err();
    assert!(e.to_string().contains("still being aborted"), "{e}");
    let e = m.begin_transaction().unwrap_err();
    assert!(e.to_string().contains("abort_transaction again"), "{e}");
    assert_eq!(
        m.next_request(false),
        Some(TxnRequest::InitProducerId {
            current: Some(pid(0))
        }),
        "resuming sends nothing twice"
    );
    m.on_init_producer_id(Ok(pid(1))).unwrap();
    assert_eq!(m.state(), Ready);
    m.begin_transaction().expect("the abort is over");
}

#[test]
fn a_pending_commit_cannot_be_turned_into_an_abort_or_a_new_transaction() {
    let mut m = in_txn(V2);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.begin_commit().unwrap();
    assert_eq!(
        m.next_request(false),
        Some(TxnRequest::EndTxn { commit: true })
    );
    let e = m.begin_abort().unwrap_err();
    assert!(
        e.to_string().contains("still being committed")
            && e.to_string().contains("commit_transaction again"),
        "{e}"
    );
    assert!(m.begin_transaction().is_err());
    assert_eq!(m.state(), CommittingTransaction, "refusals change nothing");
    m.begin_commit().expect("calling commit again resumes it");
    m.on_end_txn(Ok(Some(pid(1)))).unwrap();
    assert_eq!(m.state(), Ready);
    m.begin_transaction().unwrap();
}

#[test]
fn a_commit_that_fails_abortably_can_then_be_aborted() {
    let mut m = in_txn(V2);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.begin_commit().unwrap();
    m.next_request(false);
    m.on_end_txn(Err(E::TransactionAbortable)).unwrap();
    assert_eq!(m.state(), AbortableError);
    m.begin_abort()
        .expect("the failed commit no longer blocks an abort");
    assert_eq!(
        m.next_request(false),
        Some(TxnRequest::EndTxn { commit: false })
    );
}

#[test]
fn offsets_retry_soon_after_concurrent_transactions_and_back_off_up_to_the_add_partitions_wait() {
    let backoff_of = |step: TxnStep| match step {
        TxnStep::Retry {
            backoff,
            lookup_coordinator: false,
        } => backoff,
        other => panic!("not a retry: {other:?}"),
    };
    let ms = Duration::from_millis;
    let mut m = in_txn(V2);
    m.begin_send_offsets("g").unwrap();
    let mut waits = Vec::new();
    for _ in 0..6 {
        assert!(matches!(
            m.next_request(false),
            Some(TxnRequest::TxnOffsetCommit { .. })
        ));
        let step = m
            .on_txn_offset_commit(&[tp(0)], &[(tp(0), Some(E::ConcurrentTransactions))])
            .unwrap();
        waits.push(backoff_of(step));
    }
    let expected = [2, 4, 8, 16, 20, 20].map(|n| Some(ms(n)));
    assert_eq!(waits, expected);
    // Other retriable codes keep the configured backoff (a loading coordinator can take long).
    m.next_request(false);
    let step = m
        .on_txn_offset_commit(&[tp(0)], &[(tp(0), Some(E::CoordinatorLoadInProgress))])
        .unwrap();
    assert_eq!(backoff_of(step), None);
    m.next_request(false);
    assert!(matches!(
        m.on_txn_offset_commit(&[tp(0)], &[(tp(0), None)]).unwrap(),
        TxnStep::Done { .. }
    ));

    // Under v1 AddOffsetsToTxn meets the same window; a success resets the doubling.
    let mut m = in_txn(V1);
    m.begin_send_offsets("g").unwrap();
    m.next_request(false);
    let step = m.on_add_offsets(Some(E::ConcurrentTransactions)).unwrap();
    assert_eq!(backoff_of(step), Some(OFFSETS_CONCURRENT_RETRY_BACKOFF));
    m.next_request(false);
    let step = m.on_add_offsets(Some(E::ConcurrentTransactions)).unwrap();
    assert_eq!(backoff_of(step), Some(ms(4)));
    m.next_request(false);
    m.on_add_offsets(None).unwrap();
    m.next_request(false);
    let step = m
        .on_txn_offset_commit(&[tp(0)], &[(tp(0), Some(E::ConcurrentTransactions))])
        .unwrap();
    assert_eq!(backoff_of(step), Some(OFFSETS_CONCURRENT_RETRY_BACKOFF));
}

#[path = "transaction_answers.rs"]
mod answers;

#[test]
fn calls_out_of_order_say_what_to_do_not_only_the_states() {
    let mut m = ready(V2);
    let e = m.begin_commit().unwrap_err();
    assert!(
        e.to_string().contains("call begin_transaction first"),
        "{e}"
    );
    m.begin_transaction().unwrap();
    let e = m.begin_transaction().unwrap_err();
    assert!(e.to_string().contains("already open"), "{e}");
    let mut fresh = TransactionManager::new();
    let e = fresh.begin_transaction().unwrap_err();
    assert!(e.to_string().contains("init_transactions"), "{e}");
}

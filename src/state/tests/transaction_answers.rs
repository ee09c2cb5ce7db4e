//! Coordinator answers that are well-formed but do not match the request: partitions left out,
//! or named without being asked for.

use super::*;

fn retry_after_backoff(step: &TxnStep) -> bool {
    matches!(
        step,
        TxnStep::Retry {
            lookup_coordinator: false,
            backoff: None,
        }
    )
}

fn offset_commit() -> Option<TxnRequest> {
    Some(TxnRequest::TxnOffsetCommit {
        group_id: "g".into(),
    })
}

#[test]
fn offsets_an_answer_left_out_are_sent_again_never_reported_committed() {
    for caps in [V1, V2] {
        let mut m = in_txn(caps);
        m.begin_send_offsets("g").unwrap();
        if caps.protocol() == TxnProtocol::V1 {
            m.next_request(false);
            m.on_add_offsets(None).unwrap();
        }
        assert_eq!(m.next_request(false), offset_commit());
        let asked = [tp(0), tp(1)];
        // Partition 1 left out: its offset may never have been written.
        let step = m.on_txn_offset_commit(&asked, &[(tp(0), None)]).unwrap();
        assert!(retry_after_backoff(&step), "{caps:?}: {step:?}");
        assert_eq!(m.state(), InTransaction);
        // The commit cannot overtake the offsets: they go first, EndTxn after.
        m.begin_commit().unwrap();
        assert_eq!(m.next_request(false), offset_commit());
        // `topics: []`, and an answer naming only a partition not asked for: still pending.
        let step = m.on_txn_offset_commit(&[tp(1)], &[]).unwrap();
        assert!(retry_after_backoff(&step), "{caps:?}: {step:?}");
        assert_eq!(m.next_request(false), offset_commit());
        let step = m.on_txn_offset_commit(&[tp(1)], &[(tp(7), None)]).unwrap();
        assert!(retry_after_backoff(&step), "{caps:?}: {step:?}");
        assert_eq!(m.next_request(false), offset_commit());
        let step = m.on_txn_offset_commit(&[tp(1)], &[(tp(1), None)]).unwrap();
        assert!(matches!(step, TxnStep::Done { .. }), "{caps:?}: {step:?}");
        assert_eq!(
            m.next_request(false),
            Some(TxnRequest::EndTxn { commit: true }),
            "{caps:?}"
        );
    }
}

#[test]
fn an_error_on_a_partition_not_asked_for_still_counts() {
    let mut m = in_txn(V2);
    m.begin_send_offsets("g").unwrap();
    m.next_request(false);
    let step = m
        .on_txn_offset_commit(
            &[tp(0)],
            &[(tp(0), None), (tp(9), Some(E::GroupAuthorizationFailed))],
        )
        .unwrap();
    assert_eq!(class_of(&step), Some(ErrorClass::Abortable));
    assert_eq!(m.state(), AbortableError);
}

#[test]
fn partitions_an_add_partitions_answer_left_out_are_asked_for_again_after_the_backoff() {
    let mut m = in_txn(V1);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.maybe_add_partition(&tp(1)).unwrap();
    m.next_request(false);
    let step = m.on_add_partitions(&[(tp(0), None)]).unwrap();
    assert!(retry_after_backoff(&step), "{step:?}");
    assert!(m.is_send_to_partition_allowed(&tp(0)));
    assert!(!m.is_send_to_partition_allowed(&tp(1)));
    let again = Some(TxnRequest::AddPartitionsToTxn {
        partitions: vec![tp(1)],
    });
    assert_eq!(m.next_request(false), again);
    // `topics: []`.
    let step = m.on_add_partitions(&[]).unwrap();
    assert!(retry_after_backoff(&step), "{step:?}");
    assert_eq!(m.next_request(false), again);
    let step = m.on_add_partitions(&[(tp(1), None)]).unwrap();
    assert!(matches!(step, TxnStep::Done { .. }), "{step:?}");
    assert!(m.is_send_to_partition_allowed(&tp(1)));
    assert_eq!(m.next_request(false), None);
}

#[test]
fn an_empty_add_partitions_answer_owes_no_end_txn_once_aborted() {
    let mut m = in_txn(V1);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.next_request(false);
    assert!(retry_after_backoff(&m.on_add_partitions(&[]).unwrap()));
    // Nothing was added: the abort ends here, no EndTxn the coordinator would refuse.
    m.begin_abort().unwrap();
    assert_eq!(m.next_request(false), None);
    assert_eq!(m.state(), Ready);
}

#[test]
fn a_partition_the_add_partitions_answer_names_unasked_never_joins_the_transaction() {
    let mut m = in_txn(V1);
    m.maybe_add_partition(&tp(0)).unwrap();
    m.next_request(false);
    let step = m
        .on_add_partitions(&[(tp(0), None), (tp(5), None)])
        .unwrap();
    assert!(matches!(step, TxnStep::Done { .. }), "{step:?}");
    assert_eq!(m.partitions(), &BTreeSet::from([tp(0)]));
    assert!(!m.is_send_to_partition_allowed(&tp(5)));
    // Had its batches been allowed, they would go unregistered; asked for, it is added as usual.
    m.maybe_add_partition(&tp(5)).unwrap();
    assert_eq!(
        m.next_request(false),
        Some(TxnRequest::AddPartitionsToTxn {
            partitions: vec![tp(5)]
        })
    );
}

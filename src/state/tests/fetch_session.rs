use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::*;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn at(offset: i64) -> SessionPartition {
    SessionPartition {
        fetch_offset: offset,
        leader_epoch: 0,
        max_bytes: 1 << 20,
    }
}

fn wanted(entries: &[(i32, i64)]) -> BTreeMap<TopicPartition, SessionPartition> {
    entries.iter().map(|(p, o)| (tp(*p), at(*o))).collect()
}

fn sent(r: &SessionRequest) -> Vec<(i32, i64)> {
    r.to_send
        .iter()
        .map(|(tp, p)| (tp.partition, p.fetch_offset))
        .collect()
}

#[test]
fn first_request_is_full_and_creates_a_session() {
    let mut s = FetchSession::new();
    let r = s.build(&wanted(&[(0, 10), (1, 20)]));
    assert!(r.full);
    assert_eq!((r.session_id, r.epoch), (0, 0));
    assert_eq!(sent(&r), vec![(0, 10), (1, 20)]);
    s.on_response(None, 77);
    assert_eq!(s.session_id(), 77);
}

#[test]
fn incremental_requests_send_only_changes_and_forget_what_is_no_longer_wanted() {
    let mut s = FetchSession::new();
    s.build(&wanted(&[(0, 10), (1, 20), (2, 30)]));
    s.on_response(None, 77);

    // Partition 0 moved, 1 unchanged, 2 no longer wanted, 3 new.
    let r = s.build(&wanted(&[(0, 15), (1, 20), (3, 0)]));
    assert!(!r.full);
    assert_eq!((r.session_id, r.epoch), (77, 1));
    assert_eq!(sent(&r), vec![(0, 15), (3, 0)]);
    assert_eq!(r.to_forget, vec![tp(2)]);
    s.on_response(None, 77);

    // Nothing changed: an empty incremental request, epoch 2.
    let r = s.build(&wanted(&[(0, 15), (1, 20), (3, 0)]));
    assert_eq!((r.epoch, r.to_send.len(), r.to_forget.len()), (2, 0, 0));
    s.on_response(None, 77);
    let stats = s.stats();
    assert_eq!((stats.full_requests, stats.incremental_requests), (1, 2));
    assert_eq!(stats.partitions_sent, 5);
    assert_eq!(stats.partitions_implicit, 4);
}

#[test]
fn a_partition_forgotten_and_wanted_again_is_sent_again() {
    let mut s = FetchSession::new();
    s.build(&wanted(&[(0, 10), (1, 20)]));
    s.on_response(None, 5);
    s.build(&wanted(&[(1, 20)]));
    s.on_response(None, 5);
    let r = s.build(&wanted(&[(0, 10), (1, 20)]));
    assert_eq!(sent(&r), vec![(0, 10)]);
}

#[test]
fn session_errors_and_lost_answers_start_over_with_a_full_request() {
    for error in [
        Some(ResponseError::FetchSessionIdNotFound),
        Some(ResponseError::InvalidFetchSessionEpoch),
        None,
    ] {
        let mut s = FetchSession::new();
        s.build(&wanted(&[(0, 10)]));
        s.on_response(None, 9);
        s.build(&wanted(&[(0, 11)]));
        match error {
            Some(e) => s.on_response(Some(e), 0),
            None => s.on_failure(),
        }
        let r = s.build(&wanted(&[(0, 11)]));
        assert!(r.full, "{error:?}");
        assert_eq!((r.session_id, r.epoch), (0, 0));
        assert_eq!(sent(&r), vec![(0, 11)]);
    }
}

#[test]
fn an_incremental_answer_from_another_session_starts_over() {
    let mut s = FetchSession::new();
    s.build(&wanted(&[(0, 10), (1, 20)]));
    s.on_response(None, 9);
    s.build(&wanted(&[(0, 11), (1, 20)]));
    s.on_response(None, 10);
    let r = s.build(&wanted(&[(0, 11), (1, 20)]));
    assert!(r.full, "session 10 never held partition 1");
    assert_eq!((r.session_id, r.epoch), (0, 0));
    assert_eq!(sent(&r), vec![(0, 11), (1, 20)]);
}

#[test]
fn no_session_from_the_broker_means_full_requests_every_time() {
    let mut s = FetchSession::new();
    s.build(&wanted(&[(0, 10)]));
    s.on_response(None, 0);
    let r = s.build(&wanted(&[(0, 10)]));
    assert!(r.full);
    assert_eq!(sent(&r), vec![(0, 10)]);
}

#[test]
fn changed_leader_epoch_or_max_bytes_is_sent_again() {
    let mut s = FetchSession::new();
    s.build(&wanted(&[(0, 10)]));
    s.on_response(None, 3);
    let mut w = wanted(&[(0, 10)]);
    w.get_mut(&tp(0)).unwrap().leader_epoch = 4;
    let r = s.build(&w);
    assert_eq!(r.to_send.len(), 1);
    assert_eq!(r.to_send[0].1.leader_epoch, 4);
}

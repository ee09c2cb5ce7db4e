use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use super::*;

const T1: TopicId = [1; 16];
const T2: TopicId = [2; 16];

fn assignment(parts: &[(TopicId, &[i32])]) -> IdAssignment {
    parts
        .iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn ok(epoch: i32, target: Option<IdAssignment>) -> HeartbeatAnswer {
    HeartbeatAnswer {
        error: None,
        member_id: None,
        member_epoch: epoch,
        heartbeat_interval_ms: 5_000,
        assignment: target,
    }
}

fn error(code: ResponseError) -> HeartbeatAnswer {
    HeartbeatAnswer {
        error: Some(code),
        ..HeartbeatAnswer::default()
    }
}

fn member(instance: Option<&str>, now: Instant) -> ConsumerMember {
    let mut m = ConsumerMember::new(
        "m-1".into(),
        instance.map(str::to_owned),
        Some("rack-a".into()),
        Some("uniform".into()),
        Duration::from_secs(300),
        now,
    );
    m.subscribe(vec!["a".into(), "b".into()]);
    m
}

fn send(m: &mut ConsumerMember, now: Instant) -> HeartbeatFields {
    match m.heartbeat_step(now) {
        HeartbeatStep::Send(f) => f,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

/// A member that joined, reconciled `T1: 0, 1` at epoch 3 and had it acknowledged.
fn stable(now: Instant) -> ConsumerMember {
    let mut m = member(None, now);
    send(&mut m, now);
    m.on_heartbeat_response(ok(3, Some(assignment(&[(T1, &[0, 1])]))));
    let (epoch, target) = m.reconcile_target().expect("reconciling");
    let target = target.clone();
    m.on_reconciled(epoch, target);
    send(&mut m, now);
    m.on_heartbeat_response(ok(3, None));
    assert_eq!(m.state(), MemberState::Stable);
    m
}

#[test]
fn joins_with_epoch_zero_and_every_field() {
    let now = Instant::now();
    let mut m = member(Some("static-1"), now);
    assert_eq!(m.state(), MemberState::Joining);
    let f = send(&mut m, now);
    assert_eq!(f.member_id, "m-1");
    assert_eq!(f.member_epoch, 0);
    assert_eq!(f.instance_id.as_deref(), Some("static-1"));
    assert_eq!(f.rack_id.as_deref(), Some("rack-a"));
    assert_eq!(f.rebalance_timeout_ms, 300_000);
    assert_eq!(
        f.subscribed_topic_names,
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(f.server_assignor.as_deref(), Some("uniform"));
    assert_eq!(f.owned, Some(IdAssignment::new()));
}

#[test]
fn unsubscribed_member_sends_nothing() {
    let now = Instant::now();
    let mut m = ConsumerMember::new("m".into(), None, None, None, Duration::from_secs(1), now);
    assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
    assert_eq!(m.begin_leave(), None);
}

#[test]
fn assignment_is_reconciled_then_acknowledged_with_the_owned_partitions() {
    let now = Instant::now();
    let mut m = member(None, now);
    send(&mut m, now);
    let target = assignment(&[(T1, &[0, 1]), (T2, &[4])]);
    assert_eq!(
        m.on_heartbeat_response(ok(7, Some(target.clone()))),
        Reaction::Done
    );
    assert_eq!(m.state(), MemberState::Reconciling);
    assert_eq!(m.epoch(), 7);
    assert_eq!(m.heartbeat_interval(), Duration::from_secs(5));
    // Heartbeats go on at the broker's interval while the application reconciles, without
    // fields that did not change.
    assert_eq!(
        m.heartbeat_step(now + Duration::from_secs(1)),
        HeartbeatStep::WaitUntil(now + Duration::from_secs(5))
    );
    let f = send(&mut m, now + Duration::from_secs(5));
    assert_eq!(f.member_epoch, 7);
    assert_eq!(f.subscribed_topic_names, None);
    assert_eq!(f.owned, None);
    assert_eq!(f.rebalance_timeout_ms, -1);
    assert_eq!(f.rack_id, None);
    assert_eq!(f.server_assignor, None);
    m.on_heartbeat_response(ok(7, None));

    let (epoch, got) = m.reconcile_target().expect("target");
    assert_eq!((epoch, got), (7, &target));
    m.on_reconciled(7, target.clone());
    assert_eq!(m.state(), MemberState::Acknowledging);
    // The acknowledgement goes at once, carrying the owned partitions.
    let later = now + Duration::from_secs(6);
    let f = send(&mut m, later);
    assert_eq!(f.owned, Some(target.clone()));
    m.on_heartbeat_response(ok(7, None));
    assert_eq!(m.state(), MemberState::Stable);
    assert_eq!(m.owned(), &target);
    assert_eq!(m.reconcile_target(), None);
    // Stable: the next heartbeat waits for the interval and carries no owned partitions.
    assert_eq!(
        m.heartbeat_step(later),
        HeartbeatStep::WaitUntil(later + Duration::from_secs(5))
    );
    assert_eq!(send(&mut m, later + Duration::from_secs(5)).owned, None);
}

#[test]
fn a_new_target_while_stable_starts_the_next_reconciliation() {
    let now = Instant::now();
    let mut m = stable(now);
    m.on_heartbeat_response(ok(4, Some(assignment(&[(T1, &[1])]))));
    assert_eq!(m.state(), MemberState::Reconciling);
    let (epoch, target) = m.reconcile_target().unwrap();
    assert_eq!((epoch, target.clone()), (4, assignment(&[(T1, &[1])])));
    m.on_reconciled(4, assignment(&[(T1, &[1])]));
    let f = send(&mut m, now);
    assert_eq!(f.owned, Some(assignment(&[(T1, &[1])])));
    // The broker moved on while the acknowledgement was in flight.
    m.on_heartbeat_response(ok(5, Some(assignment(&[(T1, &[1]), (T2, &[0])]))));
    assert_eq!(m.state(), MemberState::Reconciling);
}

#[test]
fn an_unresolved_topic_is_acknowledged_once_not_at_every_poll() {
    let now = Instant::now();
    let mut m = member(None, now);
    send(&mut m, now);
    m.on_heartbeat_response(ok(2, Some(assignment(&[(T1, &[0]), (T2, &[0])]))));
    // T2 not in metadata yet: only T1 is owned.
    m.on_reconciled(2, assignment(&[(T1, &[0])]));
    send(&mut m, now);
    m.on_heartbeat_response(ok(2, None));
    assert_eq!(m.state(), MemberState::Reconciling);
    m.on_reconciled(2, assignment(&[(T1, &[0])]));
    assert!(matches!(m.heartbeat_step(now), HeartbeatStep::WaitUntil(_)));
}

#[test]
fn fenced_member_loses_its_partitions_and_rejoins_with_epoch_zero_after_releasing() {
    for code in [
        ResponseError::FencedMemberEpoch,
        ResponseError::UnknownMemberId,
    ] {
        let now = Instant::now();
        let mut m = stable(now);
        send(&mut m, now + Duration::from_secs(5));
        assert_eq!(m.on_heartbeat_response(error(code)), Reaction::Rejoin);
        assert_eq!(m.state(), MemberState::Fenced);
        assert!(m.lost_pending());
        assert_eq!(m.reconcile_target(), None);
        // Nothing is sent until the application side released the partitions.
        assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
        m.on_lost_released();
        assert!(!m.lost_pending());
        assert_eq!(m.state(), MemberState::Joining);
        let f = send(&mut m, now + Duration::from_secs(6));
        assert_eq!(f.member_id, "m-1", "the member id survives fencing");
        assert_eq!(f.member_epoch, 0);
        assert_eq!(f.owned, Some(IdAssignment::new()));
        assert!(f.subscribed_topic_names.is_some());
    }
}

#[test]
fn answers_to_heartbeats_sent_before_fencing_are_ignored() {
    let now = Instant::now();
    let mut m = stable(now);
    m.on_heartbeat_response(error(ResponseError::FencedMemberEpoch));
    assert_eq!(
        m.on_heartbeat_response(ok(9, Some(assignment(&[(T2, &[3])])))),
        Reaction::Done
    );
    assert_eq!(m.state(), MemberState::Fenced);
    assert_eq!(m.epoch(), 0);
}

#[test]
fn failed_heartbeat_resends_every_field() {
    let now = Instant::now();
    let mut m = stable(now);
    assert_eq!(m.on_heartbeat_failure(), Reaction::RetryAfterBackoff);
    let f = send(&mut m, now);
    assert_eq!(f.member_epoch, 3);
    assert!(f.subscribed_topic_names.is_some());
    assert_eq!(f.owned, Some(assignment(&[(T1, &[0, 1])])));
    assert_eq!(f.rebalance_timeout_ms, 300_000);
    // A coordinator error does too.
    assert_eq!(
        m.on_heartbeat_response(error(ResponseError::NotCoordinator)),
        Reaction::FindCoordinator
    );
    assert!(send(&mut m, now).owned.is_some());
    assert_eq!(
        m.on_heartbeat_response(error(ResponseError::CoordinatorLoadInProgress)),
        Reaction::RetryAfterBackoff
    );
    assert_eq!(m.state(), MemberState::Stable);
}

#[test]
fn subscription_change_is_sent_at_once_and_only_once() {
    let now = Instant::now();
    let mut m = stable(now);
    m.subscribe(vec!["a".into(), "c".into()]);
    let f = send(&mut m, now);
    assert_eq!(
        f.subscribed_topic_names,
        Some(vec!["a".to_owned(), "c".to_owned()])
    );
    assert_eq!(f.member_epoch, 3);
    m.on_heartbeat_response(ok(3, None));
    assert_eq!(
        send(&mut m, now + Duration::from_secs(5)).subscribed_topic_names,
        None
    );
}

#[test]
fn fatal_errors_stop_the_member() {
    for code in [
        ResponseError::FencedInstanceId,
        ResponseError::UnreleasedInstanceId,
        ResponseError::GroupAuthorizationFailed,
        ResponseError::UnsupportedAssignor,
        ResponseError::InvalidRequest,
        // Java's default branch: an unexpected code is fatal too.
        ResponseError::UnknownServerError,
    ] {
        let now = Instant::now();
        let mut m = stable(now);
        assert_eq!(
            m.on_heartbeat_response(error(code)),
            Reaction::Fatal,
            "{code:?}"
        );
        assert_eq!(m.state(), MemberState::Fatal);
        assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
        // What it owned goes as lost (Java's transitionToFatal), and it stays fatal after.
        assert!(m.lost_pending(), "{code:?}");
        assert!(m.fatal_reason().is_some_and(|r| r.contains(&format!("{code:?}"))));
        m.on_lost_released();
        assert!(m.owned().is_empty());
        assert_eq!(m.state(), MemberState::Fatal);
        assert_eq!(m.commit_identity(), (String::new(), -1));
        // Neither a new subscription nor an unsubscribe/subscribe brings it back.
        m.subscribe(vec!["c".into()]);
        assert_eq!(m.state(), MemberState::Fatal);
        assert_eq!(m.begin_leave(), None);
        m.subscribe(vec!["c".into()]);
        assert_eq!(m.state(), MemberState::Fatal);
        assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
    }
}

#[test]
fn a_broker_that_cannot_take_the_heartbeat_makes_the_member_fatal_and_its_partitions_lost() {
    let now = Instant::now();
    let mut m = stable(now);
    m.on_fatal("no ConsumerGroupHeartbeat".into());
    assert_eq!(m.state(), MemberState::Fatal);
    assert!(m.lost_pending());
    assert_eq!(m.fatal_reason(), Some("no ConsumerGroupHeartbeat"));
    m.on_lost_released();
    assert_eq!(m.state(), MemberState::Fatal);
}

#[test]
fn topic_authorization_failed_keeps_the_member_and_retries() {
    let now = Instant::now();
    let mut m = stable(now);
    send(&mut m, now + Duration::from_secs(5));
    assert_eq!(
        m.on_heartbeat_response(error(ResponseError::TopicAuthorizationFailed)),
        Reaction::RetryAfterBackoff
    );
    assert_eq!(m.state(), MemberState::Stable);
    assert!(!m.lost_pending());
    assert_eq!(m.fatal_reason(), None);
    assert_eq!(m.owned(), &assignment(&[(T1, &[0, 1])]));
    // The retry carries every field, with the epoch it had.
    let f = send(&mut m, now + Duration::from_secs(5));
    assert_eq!(f.member_epoch, 3);
    assert!(f.subscribed_topic_names.is_some());
    assert_eq!(f.owned, Some(assignment(&[(T1, &[0, 1])])));
    m.on_heartbeat_response(ok(3, None));
    assert_eq!(m.state(), MemberState::Stable);
}

#[test]
fn a_success_answer_with_an_epoch_the_member_cannot_hold_fences_it() {
    for epoch in [-1, -2, 0] {
        let now = Instant::now();
        let mut m = stable(now);
        send(&mut m, now + Duration::from_secs(5));
        assert_eq!(m.on_heartbeat_response(ok(epoch, None)), Reaction::Rejoin);
        assert_eq!(m.state(), MemberState::Fenced, "epoch {epoch}");
        assert!(m.lost_pending());
        m.on_lost_released();
        let f = send(&mut m, now + Duration::from_secs(6));
        assert_eq!(f.member_epoch, JOIN_EPOCH, "epoch {epoch}: rejoins, does not leave");
        assert!(f.subscribed_topic_names.is_some());
    }
    // A join answered with epoch 0 and no assignment still just keeps joining.
    let now = Instant::now();
    let mut m = member(None, now);
    send(&mut m, now);
    assert_eq!(m.on_heartbeat_response(ok(0, None)), Reaction::Done);
    assert_eq!(m.state(), MemberState::Joining);
    // A joining member answered with -1 starts over too.
    assert_eq!(m.on_heartbeat_response(ok(-1, None)), Reaction::Rejoin);
    m.on_lost_released();
    assert_eq!(send(&mut m, now).member_epoch, JOIN_EPOCH);
}

#[test]
fn poll_timeout_leaves_loses_partitions_and_the_next_poll_rejoins() {
    let now = Instant::now();
    let mut m = stable(now);
    let late = now + Duration::from_secs(300);
    match m.heartbeat_step(late) {
        HeartbeatStep::LeaveForPollTimeout(f) => assert_eq!(f.member_epoch, LEAVE_EPOCH),
        other => panic!("expected a leave, got {other:?}"),
    }
    assert_eq!(m.state(), MemberState::Stale);
    assert!(m.lost_pending());
    assert_eq!(m.heartbeat_step(late), HeartbeatStep::Idle);
    m.on_poll(late);
    // Still stale until the partitions are released as lost.
    assert_eq!(m.state(), MemberState::Stale);
    m.on_lost_released();
    assert_eq!(m.state(), MemberState::Joining);
    assert_eq!(send(&mut m, late).member_epoch, 0);
}

#[test]
fn heartbeat_wait_never_passes_the_poll_deadline() {
    let now = Instant::now();
    let mut m = ConsumerMember::new("m".into(), None, None, None, Duration::from_secs(2), now);
    m.subscribe(vec!["a".into()]);
    send(&mut m, now);
    m.on_heartbeat_response(ok(1, Some(IdAssignment::new())));
    // An empty first assignment is still reconciled once (the listener hears it).
    assert_eq!(m.reconcile_target(), Some((1, &IdAssignment::new())));
    m.on_reconciled(1, IdAssignment::new());
    m.on_heartbeat_response(ok(1, None));
    assert_eq!(m.state(), MemberState::Stable);
    assert_eq!(
        m.heartbeat_step(now),
        HeartbeatStep::WaitUntil(now + Duration::from_secs(2))
    );
}

#[test]
fn static_member_leaves_with_epoch_minus_two_and_dynamic_with_minus_one() {
    let now = Instant::now();
    let mut m = member(Some("i-1"), now);
    send(&mut m, now);
    m.on_heartbeat_response(ok(1, Some(IdAssignment::new())));
    let f = m.begin_leave().expect("leave heartbeat");
    assert_eq!(f.member_epoch, STATIC_LEAVE_EPOCH);
    assert_eq!(f.instance_id.as_deref(), Some("i-1"));
    assert_eq!(m.state(), MemberState::Leaving);
    assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);

    let mut m = stable(now);
    assert_eq!(m.begin_leave().unwrap().member_epoch, LEAVE_EPOCH);
    assert!(m.owned().is_empty());
    // Subscribing again joins afresh.
    m.subscribe(vec!["a".into()]);
    assert_eq!(send(&mut m, now).member_epoch, 0);
}

#[test]
fn commit_errors() {
    let m = stable(Instant::now());
    assert_eq!(
        m.on_commit_error(ResponseError::StaleMemberEpoch),
        Reaction::RetryAfterBackoff
    );
    assert_eq!(
        m.on_commit_error(ResponseError::NotCoordinator),
        Reaction::FindCoordinator
    );
    assert_eq!(
        m.on_commit_error(ResponseError::UnknownMemberId),
        Reaction::Rejoin
    );
    assert_eq!(
        m.on_commit_error(ResponseError::FencedMemberEpoch),
        Reaction::Rejoin
    );
    assert_eq!(
        m.on_commit_error(ResponseError::GroupAuthorizationFailed),
        Reaction::Fatal
    );
}

#[test]
fn commits_use_member_id_and_epoch_only_while_in_the_group() {
    let now = Instant::now();
    let mut m = member(None, now);
    assert_eq!(m.commit_identity(), (String::new(), -1));
    let m2 = stable(now);
    assert_eq!(m2.commit_identity(), ("m-1".to_owned(), 3));
    m.begin_leave();
    assert_eq!(m.commit_identity(), (String::new(), -1));
}

#[test]
fn a_zero_interval_from_the_broker_does_not_make_a_busy_loop() {
    let now = Instant::now();
    let mut m = member(None, now);
    send(&mut m, now);
    let mut answer = ok(1, Some(IdAssignment::new()));
    answer.heartbeat_interval_ms = 0;
    m.on_heartbeat_response(answer);
    assert_eq!(
        m.heartbeat_step(now),
        HeartbeatStep::WaitUntil(now + MIN_INTERVAL)
    );
}

#[test]
fn a_pattern_is_sent_when_joining_and_after_a_failure_and_removed_with_an_empty_regex() {
    let now = Instant::now();
    let mut m = ConsumerMember::new("m".into(), None, None, None, Duration::from_secs(300), now);
    m.subscribe_pattern("orders-.*".into());
    assert_eq!(m.state(), MemberState::Joining);
    let f = send(&mut m, now);
    assert_eq!(f.subscribed_topic_regex.as_deref(), Some("orders-.*"));
    assert_eq!(f.subscribed_topic_names, Some(Vec::new()), "names: none");
    m.on_heartbeat_response(ok(1, Some(assignment(&[(T1, &[0])]))));
    // Incremental: not repeated while unchanged.
    let later = now + Duration::from_secs(5);
    assert_eq!(send(&mut m, later).subscribed_topic_regex, None);
    // After a failed heartbeat the broker may not have it: sent again.
    m.on_heartbeat_failure();
    assert_eq!(
        send(&mut m, later).subscribed_topic_regex.as_deref(),
        Some("orders-.*")
    );
    m.on_heartbeat_response(ok(1, None));
    // A new pattern is sent at once; names are untouched.
    m.subscribe_pattern("refunds-.*".into());
    let f = send(&mut m, later);
    assert_eq!(f.subscribed_topic_regex.as_deref(), Some("refunds-.*"));
    assert_eq!(f.subscribed_topic_names, None);
    m.on_heartbeat_response(ok(1, None));
    // Back to names: the regex is removed with "" (Java's rule), once.
    m.subscribe(vec!["a".into()]);
    assert_eq!(m.regex(), None);
    let f = send(&mut m, later);
    assert_eq!(f.subscribed_topic_regex.as_deref(), Some(""));
    assert_eq!(f.subscribed_topic_names, Some(vec!["a".to_owned()]));
    m.on_heartbeat_response(ok(1, None));
    assert_eq!(
        send(&mut m, later + Duration::from_secs(5)).subscribed_topic_regex,
        None
    );
}

#[test]
fn a_member_subscribed_by_names_never_sends_a_regex() {
    let now = Instant::now();
    let mut m = member(None, now);
    assert_eq!(send(&mut m, now).subscribed_topic_regex, None);
    m.on_heartbeat_failure();
    // Not even the empty string: a v0 broker cannot take the field at all.
    assert_eq!(send(&mut m, now).subscribed_topic_regex, None);
    assert_eq!(m.begin_leave().unwrap().subscribed_topic_regex, None);
}

#[test]
fn the_first_reconciliation_after_each_join_is_known() {
    let now = Instant::now();
    let mut m = member(None, now);
    assert!(!m.reconciled_since_join());
    let mut m2 = stable(now);
    assert!(m2.reconciled_since_join());
    send(&mut m, now);
    m2.on_heartbeat_response(error(ResponseError::FencedMemberEpoch));
    m2.on_lost_released();
    assert!(!m2.reconciled_since_join(), "a rejoin starts over");
}

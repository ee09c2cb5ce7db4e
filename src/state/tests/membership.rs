use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use super::*;

fn timers() -> MemberTimers {
    MemberTimers {
        session_timeout: Duration::from_secs(45),
        heartbeat_interval: Duration::from_secs(3),
        max_poll_interval: Duration::from_secs(300),
    }
}

/// A member that went through JoinGroup and SyncGroup as `m-1`, generation 5.
fn stable(instance: Option<&str>, now: Instant) -> Membership {
    let mut m = Membership::new(instance.map(str::to_owned), timers(), now);
    assert_eq!(m.begin_join(), "");
    assert_eq!(
        m.on_join_response(None, "m-1", 5, Some("range"), "m-1"),
        Reaction::Done
    );
    assert_eq!(m.state(), MemberState::Syncing);
    assert_eq!(m.on_sync_response(None, now), Reaction::Done);
    m
}

#[test]
fn new_member_needs_a_join_and_becomes_stable_after_sync() {
    let now = Instant::now();
    let m = Membership::new(None, timers(), now);
    assert!(m.needs_rejoin());
    assert_eq!(m.generation(), -1);
    let m = stable(None, now);
    assert_eq!(m.state(), MemberState::Stable);
    assert!(!m.needs_rejoin());
    assert!(!m.partitions_lost());
    assert_eq!((m.member_id(), m.generation()), ("m-1", 5));
    assert_eq!(m.protocol(), Some("range"));
    assert!(m.is_leader());
}

#[test]
fn member_id_required_keeps_the_given_id_for_the_next_join() {
    let mut m = Membership::new(None, timers(), Instant::now());
    m.begin_join();
    let r = m.on_join_response(Some(ResponseError::MemberIdRequired), "given", -1, None, "");
    assert_eq!(r, Reaction::RetryNow);
    assert_eq!(m.begin_join(), "given");
}

#[test]
fn join_errors_map_as_java_does() {
    let now = Instant::now();
    for (code, expected) in [
        (
            ResponseError::CoordinatorLoadInProgress,
            Reaction::RetryAfterBackoff,
        ),
        (
            ResponseError::RebalanceInProgress,
            Reaction::RetryAfterBackoff,
        ),
        (ResponseError::NotCoordinator, Reaction::FindCoordinator),
        (
            ResponseError::CoordinatorNotAvailable,
            Reaction::FindCoordinator,
        ),
        (ResponseError::UnknownMemberId, Reaction::RetryNow),
        (ResponseError::FencedInstanceId, Reaction::Fatal),
        (ResponseError::InconsistentGroupProtocol, Reaction::Fatal),
        (ResponseError::GroupAuthorizationFailed, Reaction::Fatal),
        (ResponseError::InvalidSessionTimeout, Reaction::Fatal),
    ] {
        let mut m = stable(None, now);
        m.request_rejoin("test");
        m.begin_join();
        assert_eq!(
            m.on_join_response(Some(code), "x", -1, None, ""),
            expected,
            "{code:?}"
        );
        if code == ResponseError::UnknownMemberId {
            assert_eq!(m.member_id(), "", "UNKNOWN_MEMBER_ID forgets the member id");
            assert_eq!(m.generation(), -1);
        }
    }
}

#[test]
fn heartbeats_are_spaced_by_the_interval_and_one_at_a_time() {
    let t0 = Instant::now();
    let mut m = stable(None, t0);
    assert_eq!(
        m.heartbeat_step(t0),
        HeartbeatStep::Send {
            member_id: "m-1".into(),
            generation: 5
        }
    );
    // In flight: no second heartbeat even when the interval passed.
    let t1 = t0 + Duration::from_secs(4);
    assert!(matches!(m.heartbeat_step(t1), HeartbeatStep::WaitUntil(_)));
    assert_eq!(m.on_heartbeat_response(5, None, t1), Reaction::Done);
    // Sent at t0, so the next is due at t0 + 3 s, which has passed.
    assert!(matches!(m.heartbeat_step(t1), HeartbeatStep::Send { .. }));
    assert_eq!(m.on_heartbeat_response(5, None, t1), Reaction::Done);
    assert_eq!(
        m.heartbeat_step(t1 + Duration::from_secs(1)),
        HeartbeatStep::WaitUntil(t1 + Duration::from_secs(3))
    );
}

#[test]
fn rebalance_in_progress_keeps_the_generation_but_illegal_generation_loses_partitions() {
    let now = Instant::now();
    let mut m = stable(None, now);
    m.heartbeat_step(now);
    let r = m.on_heartbeat_response(5, Some(ResponseError::RebalanceInProgress), now);
    assert_eq!(r, Reaction::Rejoin);
    assert!(m.needs_rejoin());
    assert!(
        !m.partitions_lost(),
        "revoked, not lost: offsets can still be committed"
    );
    assert_eq!(m.generation(), 5);

    let mut m = stable(None, now);
    m.heartbeat_step(now);
    let r = m.on_heartbeat_response(5, Some(ResponseError::IllegalGeneration), now);
    assert_eq!(r, Reaction::Rejoin);
    assert!(m.partitions_lost());
    assert_eq!(m.generation(), -1);
    assert_eq!(
        m.member_id(),
        "m-1",
        "ILLEGAL_GENERATION keeps the member id"
    );

    let mut m = stable(None, now);
    m.heartbeat_step(now);
    let r = m.on_heartbeat_response(5, Some(ResponseError::UnknownMemberId), now);
    assert_eq!(r, Reaction::Rejoin);
    assert!(m.partitions_lost());
    assert_eq!(m.member_id(), "");

    let mut m = stable(Some("static-1"), now);
    m.heartbeat_step(now);
    let r = m.on_heartbeat_response(5, Some(ResponseError::FencedInstanceId), now);
    assert_eq!(r, Reaction::Fatal);
}

#[test]
fn answers_for_an_old_generation_are_ignored() {
    let now = Instant::now();
    let mut m = stable(None, now);
    m.heartbeat_step(now);
    let r = m.on_heartbeat_response(4, Some(ResponseError::IllegalGeneration), now);
    assert_eq!(r, Reaction::Done);
    assert_eq!(m.generation(), 5);
    assert!(!m.needs_rejoin());
}

#[test]
fn no_good_heartbeat_for_a_session_timeout_means_find_the_coordinator() {
    let t0 = Instant::now();
    let mut m = stable(None, t0);
    m.heartbeat_step(t0);
    assert_eq!(
        m.on_heartbeat_failure(t0 + Duration::from_secs(10)),
        Reaction::RetryAfterBackoff
    );
    m.heartbeat_step(t0 + Duration::from_secs(10));
    assert_eq!(
        m.on_heartbeat_failure(t0 + Duration::from_secs(46)),
        Reaction::FindCoordinator
    );
}

#[test]
fn poll_timeout_leaves_dynamic_members_and_resets_static_ones() {
    let t0 = Instant::now();
    let late = t0 + Duration::from_secs(301);
    let mut m = stable(None, t0);
    assert_eq!(
        m.heartbeat_step(late),
        HeartbeatStep::LeaveForPollTimeout {
            member_id: Some("m-1".into())
        }
    );
    assert!(m.needs_rejoin() && m.partitions_lost());
    assert_eq!(m.member_id(), "");
    assert_eq!(m.heartbeat_step(late), HeartbeatStep::Idle);

    let mut m = stable(Some("static-1"), t0);
    assert_eq!(
        m.heartbeat_step(late),
        HeartbeatStep::LeaveForPollTimeout { member_id: None }
    );
    assert_eq!(m.member_id(), "m-1", "a static member keeps its member id");

    // A poll in time keeps the member.
    let mut m = stable(None, t0);
    m.on_poll(t0 + Duration::from_secs(200));
    assert!(matches!(m.heartbeat_step(late), HeartbeatStep::Send { .. }));
}

#[test]
fn commit_errors() {
    let now = Instant::now();
    let mut m = stable(None, now);
    assert_eq!(
        m.on_commit_error(ResponseError::CoordinatorLoadInProgress),
        Reaction::RetryAfterBackoff
    );
    assert_eq!(
        m.on_commit_error(ResponseError::NotCoordinator),
        Reaction::FindCoordinator
    );
    assert_eq!(
        m.on_commit_error(ResponseError::OffsetMetadataTooLarge),
        Reaction::Fatal
    );
    assert_eq!(m.state(), MemberState::Stable);
    assert_eq!(
        m.on_commit_error(ResponseError::RebalanceInProgress),
        Reaction::Rejoin
    );
    assert!(m.needs_rejoin());
}

#[test]
fn sync_failure_with_moved_coordinator_rejoins() {
    let now = Instant::now();
    let mut m = Membership::new(None, timers(), now);
    m.begin_join();
    m.on_join_response(None, "m-1", 1, Some("range"), "m-2");
    assert!(!m.is_leader());
    assert_eq!(
        m.on_sync_response(Some(ResponseError::NotCoordinator), now),
        Reaction::FindCoordinator
    );
    assert!(m.needs_rejoin());
    assert_eq!(m.state(), MemberState::Unjoined);
}

#[test]
fn unexpected_heartbeat_errors_are_retried_and_keep_the_member() {
    let t0 = Instant::now();
    let mut m = stable(None, t0);
    assert!(matches!(m.heartbeat_step(t0), HeartbeatStep::Send { .. }));
    for code in [
        ResponseError::UnknownServerError,
        ResponseError::InvalidRequest,
        ResponseError::GroupIdNotFound,
    ] {
        assert_eq!(
            m.on_heartbeat_response(5, Some(code), t0),
            Reaction::RetryAfterBackoff,
            "{code:?}"
        );
        assert_eq!(m.state(), MemberState::Stable, "{code:?}");
        assert_eq!((m.member_id(), m.generation()), ("m-1", 5));
        assert!(!m.needs_rejoin() && !m.partitions_lost());
    }
    // The next heartbeat goes out when due.
    let t1 = t0 + Duration::from_secs(3);
    assert!(matches!(m.heartbeat_step(t1), HeartbeatStep::Send { .. }));
    // Only failures for a whole session send the member to look for the coordinator again.
    assert_eq!(
        m.on_heartbeat_response(
            5,
            Some(ResponseError::UnknownServerError),
            t0 + Duration::from_secs(46)
        ),
        Reaction::FindCoordinator
    );
    assert_eq!(m.state(), MemberState::Stable);
}

#[test]
fn group_authorization_failure_on_heartbeat_is_reported_and_heartbeats_go_on() {
    let t0 = Instant::now();
    let mut m = stable(None, t0);
    m.heartbeat_step(t0);
    assert_eq!(
        m.on_heartbeat_response(5, Some(ResponseError::GroupAuthorizationFailed), t0),
        Reaction::Fatal
    );
    assert_eq!(m.state(), MemberState::Stable);
    assert!(!m.partitions_lost());
    assert!(matches!(
        m.heartbeat_step(t0 + Duration::from_secs(3)),
        HeartbeatStep::Send { .. }
    ));
}

#[test]
fn fenced_instance_id_on_heartbeat_loses_the_partitions() {
    let now = Instant::now();
    let mut m = stable(Some("static-1"), now);
    m.heartbeat_step(now);
    assert_eq!(
        m.on_heartbeat_response(5, Some(ResponseError::FencedInstanceId), now),
        Reaction::Fatal
    );
    assert_eq!(m.state(), MemberState::Unjoined);
    assert!(m.partitions_lost() && m.needs_rejoin());
    assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
}

#[test]
fn commits_wait_for_a_stable_generation() {
    let now = Instant::now();
    // A member outside any generation (manual assignment) commits as a non-member.
    let fresh = Membership::new(None, timers(), now);
    assert_eq!(fresh.commit_identity(), Some((String::new(), -1)));

    let mut m = stable(None, now);
    assert_eq!(m.commit_identity(), Some(("m-1".into(), 5)));
    // A rejoin asked for but not started: still generation 5's member (Java commits here,
    // before sending JoinGroup).
    m.request_rejoin("test");
    assert_eq!(m.commit_identity(), Some(("m-1".into(), 5)));
    m.begin_join();
    assert_eq!(m.commit_identity(), None, "joining");
    m.on_join_response(None, "m-1", 6, Some("range"), "m-1");
    assert_eq!(m.commit_identity(), None, "syncing");
    m.on_sync_response(None, now);
    assert_eq!(m.commit_identity(), Some(("m-1".into(), 6)));
}

#[test]
fn a_commit_answer_for_a_generation_already_left_does_not_reset_the_join() {
    let now = Instant::now();
    let mut m = stable(None, now);
    m.request_rejoin("a member joined");
    m.begin_join();
    // A commit sent with generation 5 is answered after JoinGroup moved the member to 6.
    m.on_join_response(None, "m-1", 6, Some("range"), "m-1");
    for code in [
        ResponseError::IllegalGeneration,
        ResponseError::UnknownMemberId,
        ResponseError::RebalanceInProgress,
        ResponseError::FencedInstanceId,
    ] {
        assert_eq!(m.on_commit_error_for(5, code), Reaction::Done, "{code:?}");
        assert_eq!(m.generation(), 6, "{code:?}");
        assert_eq!(m.member_id(), "m-1", "{code:?}");
        assert_eq!(m.state(), MemberState::Syncing, "{code:?}");
        assert!(!m.partitions_lost(), "{code:?}");
    }
    assert_eq!(m.on_sync_response(None, now), Reaction::Done);
    assert_eq!(m.state(), MemberState::Stable);
    assert_eq!(m.generation(), 6);
    assert!(!m.needs_rejoin() && !m.partitions_lost());

    // For the current generation the answer still counts.
    assert_eq!(
        m.on_commit_error_for(6, ResponseError::IllegalGeneration),
        Reaction::Rejoin
    );
    assert!(m.partitions_lost() && m.needs_rejoin());
}

#[test]
fn an_unreadable_assignment_loses_the_partitions_and_rejoins() {
    let now = Instant::now();
    let mut m = stable(None, now);
    m.on_unreadable_assignment();
    assert_eq!(m.state(), MemberState::Unjoined);
    assert!(m.needs_rejoin() && m.partitions_lost());
    assert_eq!(m.member_id(), "m-1", "the member id stays for the next join");
    assert_eq!(m.heartbeat_step(now), HeartbeatStep::Idle);
}

//! A consumer's membership of a classic (JoinGroup/SyncGroup/Heartbeat) consumer group, as an
//! IO-free state machine: who the member is (member id, generation, protocol), where it is in a
//! rebalance, when the next heartbeat is due, and what each broker answer means for it.
//!
//! The rules follow the Java client's `AbstractCoordinator` and `ConsumerCoordinator`:
//!
//! - JoinGroup: MEMBER_ID_REQUIRED hands out the member id to join with (KIP-394) and the join is
//!   sent again at once; UNKNOWN_MEMBER_ID forgets the member id; coordinator errors send the
//!   member to find the coordinator again; FENCED_INSTANCE_ID (another process took this
//!   `group.instance.id`) and configuration errors are fatal.
//! - SyncGroup and Heartbeat: REBALANCE_IN_PROGRESS asks for a rejoin keeping the generation (the
//!   member may still commit for it); ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID mean the group moved
//!   on without this member: the generation is reset and its partitions are *lost* (they may
//!   already belong to someone else, so nothing is committed for them).
//! - A member that has not heard a successful heartbeat answer for `session.timeout.ms` assumes the
//!   coordinator is gone and looks for it again. One that has not been polled for
//!   `max.poll.interval.ms` leaves the group (a static member only forgets its generation: it
//!   cannot leave without losing its instance id's place).
//!
//! Time is passed in; nothing here sleeps or does IO.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use super::consumer_protocol::DEFAULT_GENERATION;

/// Where the member is in the group's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not in the group (never joined, left, or reset after an error).
    Unjoined,
    /// A JoinGroup is under way.
    Joining,
    /// JoinGroup succeeded; waiting for SyncGroup's assignment.
    Syncing,
    /// In the group with an assignment for the current generation; heartbeats run.
    Stable,
}

/// What the caller should do after a broker answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// The step succeeded.
    Done,
    /// Send the same request again at once (MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID on join).
    RetryNow,
    /// Send the request again after the retry backoff.
    RetryAfterBackoff,
    /// The coordinator moved or is gone: find it again, then retry.
    FindCoordinator,
    /// The group is rebalancing or moved on: join again (the member state says whether the
    /// generation survived).
    Rejoin,
    /// Nothing will make this succeed: report the error to the application.
    Fatal,
}

/// What the heartbeat loop should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatStep {
    /// Send a heartbeat for this member and generation.
    Send {
        /// The member id.
        member_id: String,
        /// The generation.
        generation: i32,
    },
    /// Nothing to send before this instant.
    WaitUntil(Instant),
    /// `max.poll.interval.ms` passed without a poll: leave the group (dynamic members send
    /// LeaveGroup with this member id; `None` for a static member, which only resets).
    LeaveForPollTimeout {
        /// The member id to leave with, for a dynamic member.
        member_id: Option<String>,
    },
    /// Not a stable member: heartbeats wait for the next join.
    Idle,
}

/// Timing settings of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberTimers {
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (also the JoinGroup rebalance timeout).
    pub max_poll_interval: Duration,
}

/// One member's view of its group. See the module docs.
#[derive(Debug, Clone)]
pub struct Membership {
    member_id: String,
    generation: i32,
    protocol: Option<String>,
    leader_id: String,
    group_instance_id: Option<String>,
    state: MemberState,
    /// Why a rejoin was asked for, while one is needed.
    rejoin_reason: Option<String>,
    /// The partitions must be treated as lost rather than revoked (the generation is gone).
    partitions_lost: bool,
    timers: MemberTimers,
    last_poll: Instant,
    last_heartbeat_sent: Option<Instant>,
    last_heartbeat_ok: Instant,
    heartbeat_in_flight: bool,
}

impl Membership {
    /// A member that has not joined yet.
    pub fn new(group_instance_id: Option<String>, timers: MemberTimers, now: Instant) -> Self {
        Membership {
            member_id: String::new(),
            generation: DEFAULT_GENERATION,
            protocol: None,
            leader_id: String::new(),
            group_instance_id,
            state: MemberState::Unjoined,
            rejoin_reason: Some("initial join".into()),
            partitions_lost: false,
            timers,
            last_poll: now,
            last_heartbeat_sent: None,
            last_heartbeat_ok: now,
            heartbeat_in_flight: false,
        }
    }

    /// The member id (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation (-1 when not in one).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The chosen assignor's name, once joined.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// `group.instance.id` of a static member.
    pub fn group_instance_id(&self) -> Option<&str> {
        self.group_instance_id.as_deref()
    }

    /// Whether this member leads the current generation.
    pub fn is_leader(&self) -> bool {
        !self.member_id.is_empty() && self.member_id == self.leader_id
    }

    /// The state.
    #[cfg(test)]
    pub fn state(&self) -> MemberState {
        self.state
    }

    /// Why a rejoin is needed, if one is.
    pub fn rejoin_reason(&self) -> Option<&str> {
        self.rejoin_reason.as_deref()
    }

    /// Whether the next poll must (re)join before fetching.
    pub fn needs_rejoin(&self) -> bool {
        self.rejoin_reason.is_some() || self.state == MemberState::Unjoined
    }

    /// Whether the partitions held now must be treated as lost (not revoked): the generation they
    /// belong to is gone, so offsets for them can no longer be committed.
    pub fn partitions_lost(&self) -> bool {
        self.partitions_lost
    }

    /// Asks for a rejoin (a subscription change, a cooperative revocation, a heartbeat's
    /// REBALANCE_IN_PROGRESS). The generation stays valid.
    pub fn request_rejoin(&mut self, reason: impl Into<String>) {
        if self.rejoin_reason.is_none() {
            self.rejoin_reason = Some(reason.into());
        }
    }

    /// The application polled: the `max.poll.interval.ms` clock restarts.
    pub fn on_poll(&mut self, now: Instant) {
        self.last_poll = now;
    }

    /// A JoinGroup is about to be sent; returns the member id to send.
    pub fn begin_join(&mut self) -> String {
        self.state = MemberState::Joining;
        self.member_id.clone()
    }

    /// The JoinGroup answer: `code` (None for success), and the response's member id, generation,
    /// chosen protocol and leader.
    pub fn on_join_response(
        &mut self,
        code: Option<ResponseError>,
        member_id: &str,
        generation: i32,
        protocol: Option<&str>,
        leader_id: &str,
    ) -> Reaction {
        match code {
            None => {
                self.member_id = member_id.to_owned();
                self.generation = generation;
                self.protocol = protocol.map(str::to_owned);
                self.leader_id = leader_id.to_owned();
                self.state = MemberState::Syncing;
                Reaction::Done
            }
            Some(ResponseError::MemberIdRequired) => {
                self.member_id = member_id.to_owned();
                Reaction::RetryNow
            }
            Some(ResponseError::UnknownMemberId) => {
                self.reset(true);
                self.state = MemberState::Joining;
                Reaction::RetryNow
            }
            Some(ResponseError::CoordinatorLoadInProgress | ResponseError::RebalanceInProgress) => {
                Reaction::RetryAfterBackoff
            }
            Some(ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator) => {
                Reaction::FindCoordinator
            }
            Some(ResponseError::IllegalGeneration) => {
                self.reset(false);
                self.state = MemberState::Joining;
                Reaction::RetryNow
            }
            Some(_) => {
                self.state = MemberState::Unjoined;
                Reaction::Fatal
            }
        }
    }

    /// The SyncGroup answer. On success the member is stable and owns the assignment.
    pub fn on_sync_response(&mut self, code: Option<ResponseError>, now: Instant) -> Reaction {
        match code {
            None => {
                self.state = MemberState::Stable;
                self.rejoin_reason = None;
                self.partitions_lost = false;
                self.last_heartbeat_ok = now;
                self.last_heartbeat_sent = None;
                self.heartbeat_in_flight = false;
                Reaction::Done
            }
            Some(code) => {
                let reaction = self.on_group_error(code, "SyncGroup");
                if reaction == Reaction::FindCoordinator {
                    // The join must be redone with the new coordinator.
                    self.state = MemberState::Unjoined;
                    self.request_rejoin("coordinator moved during SyncGroup");
                }
                reaction
            }
        }
    }

    /// What the heartbeat loop should do at `now`.
    pub fn heartbeat_step(&mut self, now: Instant) -> HeartbeatStep {
        if self.state != MemberState::Stable && self.state != MemberState::Syncing {
            return HeartbeatStep::Idle;
        }
        if now.saturating_duration_since(self.last_poll) >= self.timers.max_poll_interval {
            let member_id = self
                .group_instance_id
                .is_none()
                .then(|| self.member_id.clone());
            self.reset(self.group_instance_id.is_none());
            self.request_rejoin("max.poll.interval.ms passed without a poll");
            return HeartbeatStep::LeaveForPollTimeout { member_id };
        }
        if self.state != MemberState::Stable || self.heartbeat_in_flight {
            return HeartbeatStep::WaitUntil(now + self.timers.heartbeat_interval.min(ONE_SECOND));
        }
        let due = self
            .last_heartbeat_sent
            .map_or(now, |at| at + self.timers.heartbeat_interval);
        let poll_deadline = self.last_poll + self.timers.max_poll_interval;
        if due > now {
            return HeartbeatStep::WaitUntil(due.min(poll_deadline));
        }
        self.heartbeat_in_flight = true;
        self.last_heartbeat_sent = Some(now);
        HeartbeatStep::Send {
            member_id: self.member_id.clone(),
            generation: self.generation,
        }
    }

    /// A heartbeat's answer for `generation` (None for success). Answers for a generation that
    /// is no longer current are ignored.
    ///
    /// As in Java's heartbeat thread, only FENCED_INSTANCE_ID ends the membership; any other
    /// error the group rules do not name is a failed heartbeat, tried again after the backoff
    /// (past `session.timeout.ms` without a good answer, the coordinator is looked for again).
    /// GROUP_AUTHORIZATION_FAILED is `Fatal` so that the application hears of it, but the member
    /// stays as it is and heartbeats go on.
    pub fn on_heartbeat_response(
        &mut self,
        generation: i32,
        code: Option<ResponseError>,
        now: Instant,
    ) -> Reaction {
        self.heartbeat_in_flight = false;
        if generation != self.generation || self.state != MemberState::Stable {
            return Reaction::Done;
        }
        match code {
            None => {
                self.last_heartbeat_ok = now;
                Reaction::Done
            }
            Some(ResponseError::FencedInstanceId) => {
                // Another process took this `group.instance.id`: what this member owned is
                // gone with its place in the group.
                self.reset(true);
                Reaction::Fatal
            }
            Some(ResponseError::GroupAuthorizationFailed) => Reaction::Fatal,
            Some(
                code @ (ResponseError::RebalanceInProgress
                | ResponseError::IllegalGeneration
                | ResponseError::UnknownMemberId
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress),
            ) => self.on_group_error(code, "Heartbeat"),
            Some(_) => self.on_heartbeat_failure(now),
        }
    }

    /// A heartbeat could not be sent or answered (connection lost, timeout). Past
    /// `session.timeout.ms` without a good answer, the coordinator is looked for again.
    pub fn on_heartbeat_failure(&mut self, now: Instant) -> Reaction {
        self.heartbeat_in_flight = false;
        if now.saturating_duration_since(self.last_heartbeat_ok) >= self.timers.session_timeout {
            Reaction::FindCoordinator
        } else {
            Reaction::RetryAfterBackoff
        }
    }

    /// The member id and generation an OffsetCommit is sent with, or `None` while a rebalance is
    /// under way (Java's `generationIfStable`): a commit then fails at once with
    /// REBALANCE_IN_PROGRESS, as Java's `RebalanceInProgressException`, and nothing is sent. A
    /// generation being joined or synced has no assignment yet, and the one before it may be
    /// over by the time the commit is answered. A member in no generation (never joined, or
    /// reset) commits as a non-member and the coordinator decides.
    pub fn commit_identity(&self) -> Option<(String, i32)> {
        let stable = self.state == MemberState::Stable;
        let outside = self.state == MemberState::Unjoined && self.generation == DEFAULT_GENERATION;
        (stable || outside).then(|| (self.member_id.clone(), self.generation))
    }

    /// An OffsetCommit answer's error, for a commit sent with `generation`. UNKNOWN_MEMBER_ID,
    /// ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS fail the commit (Java's
    /// `CommitFailedException`) and ask for a rejoin.
    ///
    /// When the member's generation changed since the commit was sent (a join completed or
    /// reset it meanwhile), the group errors speak of a generation that is already over: the
    /// member is left as it is (resetting would throw away the join that moved it on) and the
    /// answer is `Done`, meaning the commit failed only because the group rebalanced meanwhile.
    pub fn on_commit_error_for(&mut self, generation: i32, code: ResponseError) -> Reaction {
        let group_error = matches!(
            code,
            ResponseError::UnknownMemberId
                | ResponseError::IllegalGeneration
                | ResponseError::RebalanceInProgress
                | ResponseError::FencedInstanceId
        );
        if group_error && generation != self.generation {
            return Reaction::Done;
        }
        self.on_commit_error(code)
    }

    /// An OffsetCommit answer's error for this member's current generation. See
    /// [`Membership::on_commit_error_for`].
    pub fn on_commit_error(&mut self, code: ResponseError) -> Reaction {
        match code {
            ResponseError::CoordinatorLoadInProgress | ResponseError::RequestTimedOut => {
                Reaction::RetryAfterBackoff
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                Reaction::FindCoordinator
            }
            ResponseError::UnknownMemberId
            | ResponseError::IllegalGeneration
            | ResponseError::RebalanceInProgress
            | ResponseError::FencedInstanceId => self.on_group_error(code, "OffsetCommit"),
            _ => Reaction::Fatal,
        }
    }

    /// The SyncGroup answer's assignment could not be read. The generation's assignment is
    /// unknown, so what the member held may belong to another member now: it is lost, and the
    /// next poll joins again (Java keeps failing on the same bytes instead).
    pub fn on_unreadable_assignment(&mut self) {
        self.reset(false);
        self.request_rejoin("the assignment from SyncGroup could not be read");
    }

    /// The member left the group (close, or a poll timeout already handled): nothing is owned.
    pub fn on_leave(&mut self) {
        self.reset(self.group_instance_id.is_none());
    }

    /// Errors shared by SyncGroup, Heartbeat and OffsetCommit.
    fn on_group_error(&mut self, code: ResponseError, api: &str) -> Reaction {
        match code {
            ResponseError::RebalanceInProgress => {
                self.request_rejoin(format!("{api}: group is rebalancing"));
                Reaction::Rejoin
            }
            ResponseError::IllegalGeneration => {
                self.reset(false);
                self.request_rejoin(format!("{api}: generation is no longer current"));
                Reaction::Rejoin
            }
            ResponseError::UnknownMemberId => {
                self.reset(true);
                self.request_rejoin(format!("{api}: member is no longer known"));
                Reaction::Rejoin
            }
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                Reaction::FindCoordinator
            }
            ResponseError::CoordinatorLoadInProgress => Reaction::RetryAfterBackoff,
            _ => {
                self.state = MemberState::Unjoined;
                Reaction::Fatal
            }
        }
    }

    /// Forgets the generation (and the member id if `forget_member`): what the member owns is
    /// lost.
    fn reset(&mut self, forget_member: bool) {
        self.generation = DEFAULT_GENERATION;
        self.protocol = None;
        self.leader_id.clear();
        if forget_member {
            self.member_id.clear();
        }
        self.state = MemberState::Unjoined;
        self.partitions_lost = true;
        self.heartbeat_in_flight = false;
    }
}

const ONE_SECOND: Duration = Duration::from_secs(1);

#[cfg(test)]
#[path = "tests/membership.rs"]
mod tests;

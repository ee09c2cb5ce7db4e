//! A consumer's membership of a KIP-848 `consumer` group (ConsumerGroupHeartbeat), as an IO-free
//! state machine: the member id and epoch, the subscription, the assignment the broker wants
//! (the *target*) and the one the member owns, when the next heartbeat is due and which of its
//! fields it must carry, and what each answer means.
//!
//! The rules follow the Java client's `ConsumerMembershipManager`, `AbstractMembershipManager`
//! and `ConsumerHeartbeatRequestManager`:
//!
//! - The member generates its member id once and joins with epoch 0. The broker answers with the
//!   member's epoch, the heartbeat interval and, when it changed, the target assignment (topic
//!   ids and partitions).
//! - A new target puts the member in `Reconciling`: the application side revokes what is no
//!   longer assigned (commit, listener) before adding the new partitions, then reports what it
//!   owns ([`ConsumerMember::on_reconciled`]); the next heartbeat, sent at once, carries the owned
//!   partitions as the acknowledgement (`Acknowledging`), and its answer makes the member
//!   `Stable` or starts the next reconciliation.
//! - Heartbeats are incremental: the subscription, the owned partitions, the rebalance timeout
//!   and the server assignor are sent only when joining, when they changed since the last
//!   heartbeat, or after a failed heartbeat (the broker may not have seen them).
//! - FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID: the broker removed the member; what it owned is
//!   *lost* (it may already be another member's) and it rejoins with epoch 0 once the application
//!   side has released it. A success answer with an epoch the member cannot hold (below 0, or
//!   0 after it joined) is taken the same way: every later heartbeat would otherwise carry it.
//!   Coordinator errors send the member to find the coordinator again. TOPIC_AUTHORIZATION_FAILED
//!   is reported to the application and the heartbeat retried after the backoff, the member
//!   keeping its state (Java: it recovers if the missing ACLs are added). Every other error is
//!   fatal (Java's `handleFatalFailure`, unknown codes included): what the member owns is
//!   released as lost and it stays `Fatal` for good, nothing sent and `subscribe` not rejoining
//!   (Java's member in FATAL ignores new subscriptions too); the consumer must be recreated.
//! - Leaving sends epoch -1 (a static member closing sends -2: it keeps its assignment until its
//!   session times out, so a restart gets it back). A member not polled for
//!   `max.poll.interval.ms` leaves the same way, loses its partitions and rejoins at the next
//!   poll.
//!
//! Time is passed in; nothing here sleeps or does IO.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

pub use super::membership::Reaction;

/// A topic id (KIP-516) as 16 bytes.
pub type TopicId = [u8; 16];

/// Partitions per topic id, as the heartbeat carries them.
pub type IdAssignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The shortest heartbeat interval followed, whatever the broker asks for.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The epoch that joins a group.
pub const JOIN_EPOCH: i32 = 0;
/// The epoch that leaves a group.
pub const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member leaves with, keeping its assignment for its restart.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where the member is in the group's life cycle (Java's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Not subscribed: no heartbeats.
    Unsubscribed,
    /// Joining with epoch 0 (every field is sent).
    Joining,
    /// The broker's target differs from what the member owns: the application side must revoke
    /// and assign.
    Reconciling,
    /// The reconciled assignment is being acknowledged by a heartbeat.
    Acknowledging,
    /// Owns its target assignment.
    Stable,
    /// Removed by the broker: the owned partitions must be released as lost, then it rejoins.
    Fenced,
    /// Left because `max.poll.interval.ms` passed; the next poll releases its partitions as lost
    /// and rejoins.
    Stale,
    /// Leaving for good (unsubscribe, close).
    Leaving,
    /// A fatal error: the owned partitions must be released as lost; nothing more is sent, and
    /// the member never leaves this state (a new consumer is needed).
    Fatal,
}

/// One ConsumerGroupHeartbeat's fields; `None` means "unchanged since the last heartbeat".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatFields {
    /// The member id.
    pub member_id: String,
    /// 0 to join, the current epoch, -1 to leave, -2 for a static member's temporary leave.
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`, when joining.
    pub rack_id: Option<String>,
    /// `max.poll.interval.ms` in ms, or -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// The subscribed topics, when changed.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// The subscribed regex (RE2/J, resolved by the broker), when changed; an empty string
    /// removes a regex sent before (Java's rule). Needs ConsumerGroupHeartbeat v1.
    pub subscribed_topic_regex: Option<String>,
    /// `group.remote.assignor`, when changed.
    pub server_assignor: Option<String>,
    /// The owned partitions, when changed.
    pub owned: Option<IdAssignment>,
}

/// What the heartbeat loop should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatStep {
    /// Send this heartbeat.
    Send(HeartbeatFields),
    /// `max.poll.interval.ms` passed without a poll: send this leave heartbeat; the partitions
    /// are lost and the next poll rejoins.
    LeaveForPollTimeout(HeartbeatFields),
    /// Nothing to send before this instant.
    WaitUntil(Instant),
    /// Nothing to send until the application side acts (poll, subscribe, release).
    Idle,
}

/// A successful or failed ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatAnswer {
    /// The error, if any.
    pub error: Option<ResponseError>,
    /// The member id the broker knows (v0 brokers assign it).
    pub member_id: Option<String>,
    /// The member's epoch.
    pub member_epoch: i32,
    /// The heartbeat interval the broker wants, in ms.
    pub heartbeat_interval_ms: i32,
    /// The target assignment, when it changed.
    pub assignment: Option<IdAssignment>,
}

/// What was sent in the last heartbeat, for incremental heartbeats.
#[derive(Debug, Clone, Default)]
struct SentFields {
    subscription: Option<Vec<String>>,
    /// The regex the broker has from this member (`None`: none, or not known after a failure).
    regex: Option<String>,
    owned: Option<IdAssignment>,
    rebalance_timeout_ms: Option<i32>,
    server_assignor: Option<String>,
}

/// One member's view of its `consumer` group. See the module docs.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    member_id: String,
    epoch: i32,
    instance_id: Option<String>,
    rack: Option<String>,
    server_assignor: Option<String>,
    rebalance_timeout: Duration,
    subscription: Vec<String>,
    /// A regex subscription the broker resolves (`subscribe_pattern`), instead of names.
    regex: Option<String>,
    state: MemberState,
    heartbeat_interval: Duration,
    last_sent: Option<Instant>,
    send_now: bool,
    last_poll: Instant,
    target: IdAssignment,
    owned: IdAssignment,
    lost_pending: bool,
    sent: SentFields,
    /// Why the member is `Fatal`.
    fatal: Option<String>,
    /// Whether a target was reconciled since the member (re)joined.
    reconciled_since_join: bool,
}

impl ConsumerMember {
    /// A member that has not subscribed. `member_id` is generated once per consumer (Java uses
    /// a random UUID); `rebalance_timeout` is `max.poll.interval.ms`.
    pub fn new(
        member_id: String,
        instance_id: Option<String>,
        rack: Option<String>,
        server_assignor: Option<String>,
        rebalance_timeout: Duration,
        now: Instant,
    ) -> Self {
        ConsumerMember {
            member_id,
            epoch: JOIN_EPOCH,
            instance_id,
            rack,
            server_assignor,
            rebalance_timeout,
            subscription: Vec::new(),
            regex: None,
            state: MemberState::Unsubscribed,
            heartbeat_interval: Duration::ZERO,
            last_sent: None,
            send_now: true,
            last_poll: now,
            target: IdAssignment::new(),
            owned: IdAssignment::new(),
            lost_pending: false,
            sent: SentFields::default(),
            fatal: None,
            reconciled_since_join: false,
        }
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The member id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The member epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// What commits and transactional offset commits carry: member id and epoch while the
    /// member is in the group; otherwise an empty member id and -1, as Java's commits of
    /// manually assigned partitions do (the broker accepts those only while the group has no
    /// members).
    pub fn commit_identity(&self) -> (String, i32) {
        let in_group = self.epoch > 0
            && matches!(
                self.state,
                MemberState::Reconciling | MemberState::Acknowledging | MemberState::Stable
            );
        if in_group {
            (self.member_id.clone(), self.epoch)
        } else {
            (String::new(), -1)
        }
    }

    /// `group.instance.id` of a static member.
    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The state.
    pub fn state(&self) -> MemberState {
        self.state
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The heartbeat interval the broker asked for (zero before its first answer).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The partitions the member owns (acknowledged or being acknowledged).
    pub fn owned(&self) -> &IdAssignment {
        &self.owned
    }

    /// Subscribes to `topics` (sorted, deduplicated by the caller). An unsubscribed member
    /// joins; a member in the group sends the new subscription with its next heartbeat, at once.
    /// A `Fatal` member stays fatal.
    pub fn subscribe(&mut self, topics: Vec<String>) {
        self.subscription = topics;
        self.regex = None;
        self.start_subscription();
    }

    /// Subscribes to the topics matching `regex` (RE2/J syntax), which the broker resolves and
    /// re-resolves as topics come and go (KIP-848). Replaces a subscription by names.
    pub fn subscribe_pattern(&mut self, regex: String) {
        self.subscription = Vec::new();
        self.regex = Some(regex);
        self.start_subscription();
    }

    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the unit tests
    /// The regex subscribed to, if any.
    pub fn regex(&self) -> Option<&str> {
        self.regex.as_deref()
    }

    fn start_subscription(&mut self) {
        match self.state {
            MemberState::Unsubscribed | MemberState::Leaving => self.join(),
            _ => {}
        }
        self.send_now = true;
    }

    /// The application polled: the `max.poll.interval.ms` clock restarts, and a member that left
    /// for a poll timeout and has released its partitions rejoins.
    pub fn on_poll(&mut self, now: Instant) {
        self.last_poll = now;
        if self.state == MemberState::Stale && !self.lost_pending {
            self.join();
        }
    }

    /// Whether the owned partitions must be released as lost (fenced, or left for a poll
    /// timeout) before anything else.
    pub fn lost_pending(&self) -> bool {
        self.lost_pending
    }

    /// The application side released every owned partition as lost: a fenced (or stale) member
    /// rejoins with epoch 0, keeping its member id; a fatal one stays fatal.
    pub fn on_lost_released(&mut self) {
        self.lost_pending = false;
        self.owned.clear();
        if matches!(self.state, MemberState::Fenced | MemberState::Stale) {
            self.join();
        }
    }

    /// The target to reconcile, with the epoch it came with, when the member is `Reconciling`.
    pub fn reconcile_target(&self) -> Option<(i32, &IdAssignment)> {
        (self.state == MemberState::Reconciling && !self.lost_pending)
            .then_some((self.epoch, &self.target))
    }

    /// Whether a target was reconciled since the member last joined: the first reconciliation
    /// after a join runs even when it changes nothing (the listener hears every join).
    pub fn reconciled_since_join(&self) -> bool {
        self.reconciled_since_join
    }

    /// The application side revoked and assigned partitions for the target of `epoch`, and now
    /// owns `owned` (topics it could not resolve yet are left out). The next heartbeat, sent at
    /// once, acknowledges it. Ignored if the member was fenced or left meanwhile.
    pub fn on_reconciled(&mut self, epoch: i32, owned: IdAssignment) {
        if self.state != MemberState::Reconciling || self.lost_pending {
            return;
        }
        let _ = epoch;
        self.reconciled_since_join = true;
        // Only a change is worth an early heartbeat: a topic that cannot be resolved yet must
        // not make every poll send one.
        if owned != self.owned {
            self.send_now = true;
        }
        self.owned = owned;
        self.state = MemberState::Acknowledging;
    }

    /// What the heartbeat loop should do at `now`.
    pub fn heartbeat_step(&mut self, now: Instant) -> HeartbeatStep {
        let in_group = matches!(
            self.state,
            MemberState::Joining
                | MemberState::Reconciling
                | MemberState::Acknowledging
                | MemberState::Stable
        );
        if !in_group {
            return HeartbeatStep::Idle;
        }
        if now.saturating_duration_since(self.last_poll) >= self.rebalance_timeout {
            let fields = self.leave_fields();
            self.state = MemberState::Stale;
            self.lost_pending = true;
            self.epoch = JOIN_EPOCH;
            self.target.clear();
            self.sent = SentFields::default();
            return HeartbeatStep::LeaveForPollTimeout(fields);
        }
        let due = match self.last_sent {
            // The floor keeps a broker answering interval 0 from making this a busy loop.
            Some(at) if !self.send_now => at + self.heartbeat_interval.max(MIN_INTERVAL),
            _ => now,
        };
        if due > now {
            let poll_deadline = self.last_poll + self.rebalance_timeout;
            return HeartbeatStep::WaitUntil(due.min(poll_deadline));
        }
        self.send_now = false;
        self.last_sent = Some(now);
        HeartbeatStep::Send(self.fields())
    }

    /// The fields of the next heartbeat, recording what is sent.
    fn fields(&mut self) -> HeartbeatFields {
        let full = self.state == MemberState::Joining;
        let timeout_ms = i32::try_from(self.rebalance_timeout.as_millis()).unwrap_or(i32::MAX);
        let mut fields = HeartbeatFields {
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance_id.clone(),
            rack_id: if full { self.rack.clone() } else { None },
            rebalance_timeout_ms: -1,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: None,
        };
        if full || self.sent.rebalance_timeout_ms != Some(timeout_ms) {
            fields.rebalance_timeout_ms = timeout_ms;
            self.sent.rebalance_timeout_ms = Some(timeout_ms);
        }
        if full || self.sent.subscription.as_ref() != Some(&self.subscription) {
            fields.subscribed_topic_names = Some(self.subscription.clone());
            self.sent.subscription = Some(self.subscription.clone());
        }
        // Java's rule: the regex when joining or changed; "" once to remove one sent before.
        if (full && self.regex.is_some()) || self.sent.regex != self.regex {
            fields.subscribed_topic_regex = Some(self.regex.clone().unwrap_or_default());
            self.sent.regex = self.regex.clone();
        }
        if self.server_assignor.is_some()
            && (full || self.sent.server_assignor != self.server_assignor)
        {
            fields.server_assignor = self.server_assignor.clone();
            self.sent.server_assignor = self.server_assignor.clone();
        }
        if full || self.sent.owned.as_ref() != Some(&self.owned) {
            fields.owned = Some(self.owned.clone());
            self.sent.owned = Some(self.owned.clone());
        }
        fields
    }

    /// A heartbeat's answer.
    pub fn on_heartbeat_response(&mut self, answer: HeartbeatAnswer) -> Reaction {
        if matches!(
            self.state,
            MemberState::Unsubscribed
                | MemberState::Leaving
                | MemberState::Stale
                | MemberState::Fenced
                | MemberState::Fatal
        ) {
            // An answer to a heartbeat sent before the member left or was fenced.
            return Reaction::Done;
        }
        let Some(code) = answer.error else {
            let joining = self.state == MemberState::Joining;
            if answer.member_epoch < JOIN_EPOCH || (answer.member_epoch == JOIN_EPOCH && !joining) {
                // No error yet no epoch the member can heartbeat with: adopted, -1 would make
                // every later heartbeat a leave. Start over as if fenced.
                self.sent = SentFields::default();
                self.fence();
                return Reaction::Rejoin;
            }
            if let Some(id) = answer.member_id.filter(|id| !id.is_empty()) {
                self.member_id = id;
            }
            self.epoch = answer.member_epoch;
            if answer.heartbeat_interval_ms > 0 {
                self.heartbeat_interval =
                    Duration::from_millis(answer.heartbeat_interval_ms as u64);
            }
            let received = answer.assignment.is_some();
            if let Some(target) = answer.assignment {
                self.target = target;
            }
            self.state = match self.state {
                MemberState::Reconciling => MemberState::Reconciling,
                _ if self.target != self.owned => MemberState::Reconciling,
                // The first assignment after a join is reconciled even when it changes nothing,
                // so the listener hears `on_partitions_assigned` (maybe empty) for every join, as
                // with Java and classic groups.
                MemberState::Joining if received => MemberState::Reconciling,
                // A join answered without an assignment keeps joining until one comes.
                MemberState::Joining if self.epoch == JOIN_EPOCH => MemberState::Joining,
                _ => MemberState::Stable,
            };
            return Reaction::Done;
        };
        // The broker may not have applied the fields the failed heartbeat carried.
        self.sent = SentFields::default();
        match code {
            ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId => {
                self.fence();
                Reaction::Rejoin
            }
            ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable => {
                self.send_now = true;
                Reaction::FindCoordinator
            }
            // The heartbeat loop also reports TOPIC_AUTHORIZATION_FAILED to the application.
            ResponseError::CoordinatorLoadInProgress | ResponseError::TopicAuthorizationFailed => {
                self.send_now = true;
                Reaction::RetryAfterBackoff
            }
            _ => {
                self.on_fatal(format!("ConsumerGroupHeartbeat answered {code:?}"));
                Reaction::Fatal
            }
        }
    }

    fn fence(&mut self) {
        self.state = MemberState::Fenced;
        self.lost_pending = true;
        self.epoch = JOIN_EPOCH;
        self.target.clear();
    }

    /// Nothing will make the membership work (a fatal heartbeat answer, a broker that cannot
    /// take the heartbeat): the owned partitions are to be released as lost, as Java's
    /// `transitionToFatal` does, and nothing more is sent. `reason` is what later polls report.
    pub fn on_fatal(&mut self, reason: String) {
        self.state = MemberState::Fatal;
        self.lost_pending = true;
        self.target.clear();
        self.fatal.get_or_insert(reason);
    }

    /// Why the member is `Fatal`, if it is.
    pub fn fatal_reason(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// A heartbeat could not be sent or answered (connection lost, timeout): it is sent again
    /// with every field after the backoff.
    pub fn on_heartbeat_failure(&mut self) -> Reaction {
        self.sent = SentFields::default();
        self.send_now = true;
        Reaction::RetryAfterBackoff
    }

    /// An OffsetCommit answer's error for this member. STALE_MEMBER_EPOCH is retried with the
    /// epoch the member has by then (Java does the same for synchronous commits); a member the
    /// broker no longer knows fails the commit (its heartbeat finds out and rejoins).
    pub fn on_commit_error(&self, code: ResponseError) -> Reaction {
        match code {
            ResponseError::StaleMemberEpoch
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::RequestTimedOut => Reaction::RetryAfterBackoff,
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                Reaction::FindCoordinator
            }
            ResponseError::UnknownMemberId
            | ResponseError::FencedMemberEpoch
            | ResponseError::IllegalGeneration => Reaction::Rejoin,
            _ => Reaction::Fatal,
        }
    }

    /// Starts leaving for good (unsubscribe, close): the leave heartbeat to send, if the member
    /// is in the group. Nothing is owned afterwards.
    pub fn begin_leave(&mut self) -> Option<HeartbeatFields> {
        if self.state == MemberState::Fatal {
            // Not in the group, and staying fatal (Java's leaveGroup leaves FATAL as it is).
            self.owned.clear();
            self.lost_pending = false;
            return None;
        }
        // A member that never sent a heartbeat is not in the group yet.
        let never_joined = self.state == MemberState::Joining && self.last_sent.is_none();
        let in_group = !never_joined
            && !matches!(
                self.state,
                MemberState::Unsubscribed | MemberState::Leaving | MemberState::Fatal
            );
        let fields = in_group.then(|| self.leave_fields());
        self.state = MemberState::Leaving;
        self.epoch = JOIN_EPOCH;
        self.owned.clear();
        self.target.clear();
        self.lost_pending = false;
        self.sent = SentFields::default();
        fields
    }

    fn leave_fields(&self) -> HeartbeatFields {
        HeartbeatFields {
            member_id: self.member_id.clone(),
            member_epoch: if self.instance_id.is_some() {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            },
            instance_id: self.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: -1,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: None,
        }
    }

    fn join(&mut self) {
        self.state = MemberState::Joining;
        self.reconciled_since_join = false;
        self.epoch = JOIN_EPOCH;
        self.target.clear();
        self.sent = SentFields::default();
        self.send_now = true;
    }
}

#[cfg(test)]
#[path = "tests/consumer_member.rs"]
mod tests;

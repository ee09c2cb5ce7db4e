//! A consumer's group membership over the wire: the join task (JoinGroup, the leader's
//! assignment, SyncGroup), the heartbeat task, and LeaveGroup. Decisions come from the IO-free
//! [`Membership`]; this module only sends requests and feeds it the answers.
//!
//! # Tasks
//!
//! - The **heartbeat task** lives as long as the [`Group`]. It asks the membership what to do,
//!   sends Heartbeats while the member is stable, and leaves the group (or, for a static member,
//!   forgets its generation) when `max.poll.interval.ms` passes without a poll. An answer the
//!   application must hear of (FENCED_INSTANCE_ID, GROUP_AUTHORIZATION_FAILED) is stored for the
//!   next `poll`; the task goes on either way, as a member must heartbeat again once it rejoins.
//! - A **join task** is spawned by `poll` when the member must (re)join, and runs until the
//!   member has an assignment or a fatal error. `poll` waits for it only until its own deadline:
//!   a dropped or timed-out `poll` leaves the join running, so no JoinGroup answer (and no member
//!   id it carries) is thrown away, and the next `poll` picks up the result.
//!
//! Both tasks are aborted when the [`Group`] is dropped, without LeaveGroup: dropping a consumer
//! behaves like a crashed process (its partitions move after `session.timeout.ms`).
//! `Consumer::close` leaves properly.
//!
//! JoinGroup and Heartbeat share the coordinator connection, and a broker answers one request per
//! connection at a time, so heartbeats pause while a join is under way (the membership says
//! `Idle` then), as in the Java client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, CoordinatorKind, TopicsQuery};
use crate::error::{Error, ErrorClass, Result};
use crate::record::TopicPartition;
use crate::state::assignor::{
    cooperative_sticky_user_data, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription, Assignment, Assignor, GroupMember, RebalanceProtocol, Subscription,
    CONSUMER_PROTOCOL_TYPE, CONSUMER_PROTOCOL_VERSION,
};
use crate::state::membership::{HeartbeatStep, MemberTimers, Membership, Reaction};

/// The group settings the tasks need.
#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub instance_id: Option<String>,
    pub timers: MemberTimers,
    /// In preference order; the coordinator picks the first one every member supports.
    pub assignors: Vec<Assignor>,
    pub rack: Option<String>,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
}

impl GroupSettings {
    /// Cooperative only when every configured assignor supports it (Java picks the highest
    /// protocol common to all assignors).
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        if self
            .assignors
            .iter()
            .all(|a| a.rebalance_protocol() == RebalanceProtocol::Cooperative)
        {
            RebalanceProtocol::Cooperative
        } else {
            RebalanceProtocol::Eager
        }
    }
}

/// What a finished join hands back.
#[derive(Debug, Clone)]
pub(crate) struct JoinOutcome {
    pub generation: i32,
    pub member_id: String,
    pub assignment: Vec<TopicPartition>,
    /// The leader's: the partition counts its assignment was computed from (topics it did not
    /// find are missing). A change after them must rejoin, however soon after the join it is
    /// seen.
    pub assigned_from: Option<HashMap<String, i32>>,
}

/// A consumer's membership of one group: shared state plus the two tasks.
#[derive(Debug)]
pub(crate) struct Group {
    pub settings: Arc<GroupSettings>,
    cluster: Cluster,
    pub membership: Arc<Mutex<Membership>>,
    fatal: Arc<Mutex<Option<Error>>>,
    heartbeat: JoinHandle<()>,
    join: Option<JoinHandle<Result<JoinOutcome>>>,
    /// The topics the running (or last) join subscribed to.
    pub joined_topics: Vec<String>,
    /// When the running (or last) join started (`rebalance-latency`).
    pub join_started: Instant,
}

impl Drop for Group {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Some(join) = &self.join {
            join.abort();
        }
    }
}

impl Group {
    /// Starts the heartbeat task (idle until the first join completes) for `membership`, which
    /// the consumer shares for its commits.
    pub fn new(
        cluster: Cluster,
        settings: GroupSettings,
        membership: Arc<Mutex<Membership>>,
    ) -> Group {
        let settings = Arc::new(settings);
        let fatal = Arc::new(Mutex::new(None));
        let heartbeat = tokio::spawn(heartbeat_loop(
            cluster.clone(),
            settings.clone(),
            membership.clone(),
            fatal.clone(),
        ));
        Group {
            settings,
            cluster,
            membership,
            fatal,
            heartbeat,
            join: None,
            joined_topics: Vec::new(),
            join_started: Instant::now(),
        }
    }

    /// Locks the membership (held only for synchronous steps).
    pub fn member(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().expect("membership lock poisoned")
    }

    /// A fatal error the heartbeat task met, once.
    pub fn take_fatal(&self) -> Option<Error> {
        self.fatal.lock().expect("fatal slot poisoned").take()
    }

    /// Starts the heartbeat task again if it ended (it only ends by panicking): without it the
    /// coordinator would drop this member every `session.timeout.ms` while it kept consuming.
    pub fn ensure_heartbeat(&mut self) {
        if self.heartbeat.is_finished() {
            warn!(group = %self.settings.group_id, "heartbeat task ended; starting it again");
            self.heartbeat = tokio::spawn(heartbeat_loop(
                self.cluster.clone(),
                self.settings.clone(),
                self.membership.clone(),
                self.fatal.clone(),
            ));
        }
    }

    /// Whether a join task is running.
    pub fn joining(&self) -> bool {
        self.join.is_some()
    }

    /// Starts a join task for `topics`, declaring `owned` (the partitions kept through a
    /// cooperative rebalance).
    pub fn start_join(&mut self, topics: Vec<String>, owned: Vec<TopicPartition>) {
        debug_assert!(self.join.is_none());
        let reason = self.member().rejoin_reason().unwrap_or("rejoin").to_owned();
        debug!(group = %self.settings.group_id, %reason, "joining group");
        self.joined_topics = topics.clone();
        self.join_started = Instant::now();
        self.join = Some(tokio::spawn(join_group(
            self.cluster.clone(),
            self.settings.clone(),
            self.membership.clone(),
            topics,
            owned,
            reason,
        )));
    }

    /// Waits for the join task until `deadline`. `None` when the time ran out (the task keeps
    /// running); otherwise its result, and the task is gone.
    ///
    /// Cancellation: safe; the task is not affected.
    pub async fn wait_join(&mut self, deadline: Instant) -> Option<Result<JoinOutcome>> {
        let join = self.join.as_mut()?;
        let joined = tokio::select! {
            joined = join => joined,
            () = tokio::time::sleep_until(deadline) => return None,
        };
        self.join = None;
        Some(joined.unwrap_or_else(|e| Err(Error::Failed(format!("group join task failed: {e}")))))
    }

    /// Sends LeaveGroup for a dynamic member (a static member stays, keeping its instance id's
    /// place until its session times out, as Java's default close does) and forgets the
    /// generation.
    pub async fn leave(&mut self, reason: &str) -> Result<()> {
        if let Some(join) = self.join.take() {
            join.abort();
        }
        let member_id = {
            let m = self.member();
            (m.group_instance_id().is_none() && !m.member_id().is_empty())
                .then(|| m.member_id().to_owned())
        };
        self.member().on_leave();
        if let Some(member_id) = member_id {
            send_leave(&self.cluster, &self.settings, &member_id, reason).await?;
        }
        Ok(())
    }
}

/// Joins until the member has an assignment or a fatal error.
async fn join_group(
    cluster: Cluster,
    settings: Arc<GroupSettings>,
    membership: Arc<Mutex<Membership>>,
    topics: Vec<String>,
    owned: Vec<TopicPartition>,
    reason: String,
) -> Result<JoinOutcome> {
    let group = settings.group_id.as_str();
    let mut backoff = cluster.retry_backoff();
    let lock = || membership.lock().expect("membership lock poisoned");
    loop {
        let (node, conn) = match cluster.coordinator(CoordinatorKind::Group, group).await {
            Ok(found) => found,
            Err(e) if e.is_retriable() => {
                debug!(error = %e, group, "group coordinator not found yet");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (member_id, generation) = {
            let mut m = lock();
            let generation = m.generation();
            (m.begin_join(), generation)
        };
        let join = join_request(&settings, &topics, &owned, &member_id, generation, &reason)?;
        let rebalance_timeout = settings.timers.max_poll_interval;
        let timeout = settings
            .request_timeout
            .max(rebalance_timeout + Duration::from_secs(5));
        let response = match send_checked(&conn, &join, Some(timeout)).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                debug!(error = %e, group, "JoinGroup failed; finding the coordinator again");
                cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let code = ResponseError::try_from_code(response.error_code);
        let reaction = lock().on_join_response(
            code,
            &response.member_id,
            response.generation_id,
            response.protocol_name.as_deref(),
            &response.leader,
        );
        match reaction {
            Reaction::Done => {}
            Reaction::RetryNow | Reaction::Rejoin => continue,
            Reaction::RetryAfterBackoff => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Reaction::FindCoordinator => {
                cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Reaction::Fatal => {
                return Err(group_error(
                    ApiKey::JoinGroup,
                    &conn,
                    code.expect("fatal has a code"),
                    group,
                ))
            }
        }

        let (my_id, my_generation, protocol, leader) = {
            let m = lock();
            (
                m.member_id().to_owned(),
                m.generation(),
                m.protocol().unwrap_or_default().to_owned(),
                m.is_leader(),
            )
        };
        // A static leader rejoining a stable group must not reassign (KIP-814).
        let (assignments, assigned_from) = if leader && !response.skip_assignment {
            let (assignments, counts) = leader_assignments(&cluster, &protocol, &response).await?;
            (assignments, Some(counts))
        } else {
            (Vec::new(), None)
        };
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id(my_generation)
            .with_member_id(StrBytes::from_string(my_id.clone()))
            .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string))
            .with_protocol_type(Some(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE)))
            .with_protocol_name(Some(StrBytes::from_string(protocol.clone())));
        sync.assignments = assignments;
        let response = match send_checked(&conn, &sync, Some(timeout)).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                debug!(error = %e, group, "SyncGroup failed; rejoining");
                cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                lock().request_rejoin("SyncGroup failed");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let code = ResponseError::try_from_code(response.error_code);
        let reaction = lock().on_sync_response(code, std::time::Instant::now());
        match reaction {
            Reaction::Done => {}
            Reaction::Fatal => {
                return Err(group_error(
                    ApiKey::SyncGroup,
                    &conn,
                    code.expect("fatal has a code"),
                    group,
                ))
            }
            Reaction::FindCoordinator => {
                cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Reaction::RetryAfterBackoff => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Reaction::RetryNow | Reaction::Rejoin => continue,
        }
        let assignment = if response.assignment.is_empty() {
            Assignment::default()
        } else {
            match decode_assignment(&response.assignment) {
                Ok(assignment) => assignment,
                Err(e) => {
                    // The membership already counts as stable: without this the member would
                    // heartbeat and commit on with no assignment until the next rebalance.
                    lock().on_unreadable_assignment();
                    return Err(e);
                }
            }
        };
        info!(
            group,
            generation = my_generation,
            member = %my_id,
            leader,
            %protocol,
            partitions = assignment.partitions.len(),
            "joined group"
        );
        return Ok(JoinOutcome {
            generation: my_generation,
            member_id: my_id,
            assignment: assignment.partitions,
            assigned_from,
        });
    }
}

/// The JoinGroup request: one protocol per configured assignor, each carrying the subscription.
fn join_request(
    settings: &GroupSettings,
    topics: &[String],
    owned: &[TopicPartition],
    member_id: &str,
    generation: i32,
    reason: &str,
) -> Result<JoinGroupRequest> {
    let mut protocols = Vec::new();
    for assignor in &settings.assignors {
        let subscription = Subscription {
            topics: topics.to_vec(),
            user_data: (*assignor == Assignor::CooperativeSticky)
                .then(|| cooperative_sticky_user_data(generation)),
            owned_partitions: owned.to_vec(),
            generation_id: Some(generation),
            rack_id: settings.rack.clone(),
        };
        protocols.push(
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str(assignor.name()))
                .with_metadata(encode_subscription(
                    &subscription,
                    CONSUMER_PROTOCOL_VERSION,
                )?),
        );
    }
    Ok(JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
        .with_session_timeout_ms(millis(settings.timers.session_timeout))
        .with_rebalance_timeout_ms(millis(settings.timers.max_poll_interval))
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string))
        .with_protocol_type(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE))
        .with_protocols(protocols)
        .with_reason(Some(StrBytes::from_string(reason.to_owned()))))
}

/// The leader's work: decode every member's subscription, look up the subscribed topics'
/// partition counts, run the chosen assignor, encode each member's assignment. Also returns the
/// counts.
async fn leader_assignments(
    cluster: &Cluster,
    protocol: &str,
    response: &JoinGroupResponse,
) -> Result<(Vec<SyncGroupRequestAssignment>, HashMap<String, i32>)> {
    let assignor = Assignor::from_name(protocol).ok_or_else(|| {
        Error::Failed(format!(
            "the coordinator chose assignor `{protocol}`, which this member did not offer"
        ))
    })?;
    let mut members = Vec::with_capacity(response.members.len());
    for m in &response.members {
        members.push(GroupMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
            subscription: decode_subscription(&m.metadata)?,
        });
    }
    let mut topics: Vec<&str> = members
        .iter()
        .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let snapshot = cluster.refresh_metadata(TopicsQuery::Some(&topics)).await?;
    let counts: HashMap<String, i32> = topics
        .iter()
        .filter_map(|t| {
            snapshot
                .topics
                .get(*t)
                .filter(|info| !info.partitions.is_empty())
                .map(|info| ((*t).to_owned(), info.partitions.len() as i32))
        })
        .collect();
    let plan = assignor.assign(&members, &counts);
    let mut out = Vec::with_capacity(plan.len());
    for (member_id, partitions) in plan {
        let bytes = encode_assignment(
            &Assignment {
                partitions,
                user_data: None,
            },
            CONSUMER_PROTOCOL_VERSION,
        )?;
        out.push(
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_assignment(bytes),
        );
    }
    Ok((out, counts))
}

/// Heartbeats while the member is stable; leaves on a poll timeout. Runs until aborted: a failed
/// heartbeat is tried again, and an error for the application is stored in `fatal`.
async fn heartbeat_loop(
    cluster: Cluster,
    settings: Arc<GroupSettings>,
    membership: Arc<Mutex<Membership>>,
    fatal: Arc<Mutex<Option<Error>>>,
) {
    let group = settings.group_id.as_str();
    let idle = settings.timers.heartbeat_interval.min(IDLE_CHECK);
    loop {
        let step = membership
            .lock()
            .expect("membership lock poisoned")
            .heartbeat_step(std::time::Instant::now());
        match step {
            HeartbeatStep::Idle => tokio::time::sleep(idle).await,
            HeartbeatStep::WaitUntil(at) => {
                let at = Instant::from_std(at).min(Instant::now() + idle);
                tokio::time::sleep_until(at).await;
            }
            HeartbeatStep::LeaveForPollTimeout { member_id } => {
                warn!(
                    group,
                    max_poll_interval = ?settings.timers.max_poll_interval,
                    "no poll within max.poll.interval.ms: leaving the group; the next poll rejoins"
                );
                if let Some(member_id) = member_id {
                    if let Err(e) =
                        send_leave(&cluster, &settings, &member_id, "poll timeout").await
                    {
                        debug!(error = %e, group, "LeaveGroup after poll timeout failed");
                    }
                }
            }
            HeartbeatStep::Send {
                member_id,
                generation,
            } => {
                let answer = send_heartbeat(&cluster, &settings, &member_id, generation).await;
                let now = std::time::Instant::now();
                let mut back_off = false;
                {
                    let mut m = membership.lock().expect("membership lock poisoned");
                    match answer {
                        Ok((node, code)) => match m.on_heartbeat_response(generation, code, now) {
                            Reaction::Fatal => {
                                // Reported by the next poll; the task goes on, so a member that
                                // joins again (or is authorized again) heartbeats again.
                                let code = code.expect("fatal has a code");
                                warn!(group, ?code, "heartbeat failed; the next poll reports it");
                                *fatal.lock().expect("fatal slot poisoned") = Some(Error::Broker {
                                    api: crate::error::ApiKey::Heartbeat,
                                    broker: None,
                                    code: crate::error::ErrorCode::from_protocol(code),
                                    message: Some(format!("group `{group}`: {code:?}")),
                                    class: ErrorClass::Fatal,
                                });
                                back_off = true;
                            }
                            Reaction::FindCoordinator => {
                                cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                                back_off = true;
                            }
                            Reaction::RetryAfterBackoff => {
                                debug!(group, ?code, "heartbeat failed; trying again");
                                back_off = true;
                            }
                            Reaction::Rejoin => info!(group, ?code, "heartbeat says rejoin"),
                            Reaction::Done | Reaction::RetryNow => {}
                        },
                        Err((node, e)) => {
                            debug!(error = %e, group, "heartbeat failed");
                            if m.on_heartbeat_failure(now) == Reaction::FindCoordinator {
                                if let Some(node) = node {
                                    cluster.invalidate_coordinator(
                                        CoordinatorKind::Group,
                                        group,
                                        node,
                                    );
                                }
                            }
                            back_off = true;
                        }
                    }
                }
                if back_off {
                    tokio::time::sleep(settings.retry_backoff).await;
                }
            }
        }
    }
}

/// How often an idle heartbeat loop looks at the membership again.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// One Heartbeat: the coordinator's node and the answer's error, or the failure and the node if
/// one was reached.
async fn send_heartbeat(
    cluster: &Cluster,
    settings: &GroupSettings,
    member_id: &str,
    generation: i32,
) -> std::result::Result<(i32, Option<ResponseError>), (Option<i32>, Error)> {
    let (node, conn) = cluster
        .coordinator(CoordinatorKind::Group, &settings.group_id)
        .await
        .map_err(|e| (None, e))?;
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_group_instance_id(settings.instance_id.clone().map(StrBytes::from_string));
    let response = send_checked(&conn, &request, None)
        .await
        .map_err(|e| (Some(node), e))?;
    Ok((node, ResponseError::try_from_code(response.error_code)))
}

/// LeaveGroup for one dynamic member. UNKNOWN_MEMBER_ID (already gone) counts as success.
async fn send_leave(
    cluster: &Cluster,
    settings: &GroupSettings,
    member_id: &str,
    reason: &str,
) -> Result<()> {
    let (_, conn) = cluster
        .coordinator(CoordinatorKind::Group, &settings.group_id)
        .await?;
    let version = conn.version_for::<LeaveGroupRequest>()?;
    let mut request = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(settings.group_id.clone())));
    if version >= 3 {
        request.members = vec![MemberIdentity::default()
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_reason(Some(StrBytes::from_string(reason.to_owned())))];
    } else {
        request.member_id = StrBytes::from_string(member_id.to_owned());
    }
    let response = conn.send_version(&request, version, None).await?;
    let codes =
        std::iter::once(response.error_code).chain(response.members.iter().map(|m| m.error_code));
    for code in codes {
        match ResponseError::try_from_code(code) {
            None | Some(ResponseError::UnknownMemberId) => {}
            Some(code) => {
                return Err(Error::from_code(
                    ApiKey::LeaveGroup,
                    Some(conn.broker().clone()),
                    code,
                    Some(format!("group `{}`", settings.group_id)),
                ))
            }
        }
    }
    info!(group = %settings.group_id, member = member_id, "left group");
    Ok(())
}

/// Sends at the highest common version; transport errors only (the caller reads error codes).
async fn send_checked<R: crate::protocol::codec::ApiRequest>(
    conn: &crate::net::Connection,
    request: &R,
    timeout: Option<Duration>,
) -> Result<R::Response> {
    let version = conn.version_for::<R>()?;
    conn.send_version(request, version, timeout).await
}

/// A fatal group error naming the group.
fn group_error(
    api: ApiKey,
    conn: &crate::net::Connection,
    code: ResponseError,
    group: &str,
) -> Error {
    Error::Broker {
        api: crate::error::ApiKey::from_protocol(api),
        broker: Some(conn.broker().clone()),
        code: crate::error::ErrorCode::from_protocol(code),
        message: Some(format!("group `{group}`")),
        class: ErrorClass::Fatal,
    }
}

/// A duration as the protocol's i32 milliseconds (config validation keeps it in range).
pub(crate) fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

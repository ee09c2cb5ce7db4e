//! A consumer's membership of a KIP-848 `consumer` group over the wire: the task that sends
//! ConsumerGroupHeartbeat to the group coordinator, and the leave heartbeat of `unsubscribe` and
//! `close`. Decisions come from the IO-free [`ConsumerMember`]; this module only sends requests
//! and feeds it the answers. Reconciling the assignment it receives happens in `poll`
//! (`reconcile`), where the rebalance listener runs.
//!
//! # Task
//!
//! The **heartbeat task** lives as long as the [`ConsumerGroup`]. It asks the member what to do,
//! sends heartbeats at the interval the broker gave (at once when joining, acknowledging a
//! reconciliation or after a subscription change: `poll` wakes it), finds the coordinator again
//! after NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE or a lost connection, and leaves the group
//! when `max.poll.interval.ms` passes without a poll. A fatal answer (or a broker that cannot take
//! the heartbeat) makes the member fatal: the next `poll` releases its partitions as lost and
//! reports the error, every later one fails too, and the task ends. TOPIC_AUTHORIZATION_FAILED is
//! reported by the next `poll` as well, but the member stays and the heartbeat is retried after
//! the backoff. Heartbeats go on while `poll` reconciles, so a slow rebalance listener does not get
//! the member fenced (as long as it finishes within the rebalance timeout) — when the task can
//! run meanwhile: on a multi-thread runtime, or a listener that awaits rather than blocks. A
//! listener blocking a current-thread runtime stops the heartbeats too.
//!
//! The task is aborted when the [`ConsumerGroup`] is dropped, without a leave heartbeat: dropping
//! a consumer behaves like a crashed process (the broker fences it after its session timeout).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, ErrorClass, Result};
use crate::state::consumer_member::{
    ConsumerMember, HeartbeatAnswer, HeartbeatFields, HeartbeatStep, IdAssignment, Reaction,
};

/// A consumer's membership of one `consumer` group: the shared member plus the heartbeat task.
#[derive(Debug)]
pub(crate) struct ConsumerGroup {
    cluster: Cluster,
    group_id: String,
    member: Arc<Mutex<ConsumerMember>>,
    fatal: Arc<Mutex<Option<Error>>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
    request_timeout: Duration,
}

impl Drop for ConsumerGroup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConsumerGroup {
    /// Starts the heartbeat task for `member`, which the consumer shares for its commits.
    pub fn new(
        cluster: Cluster,
        group_id: String,
        member: Arc<Mutex<ConsumerMember>>,
        retry_backoff: Duration,
        request_timeout: Duration,
    ) -> ConsumerGroup {
        let fatal = Arc::new(Mutex::new(None));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(heartbeat_loop(
            cluster.clone(),
            group_id.clone(),
            member.clone(),
            fatal.clone(),
            wake.clone(),
            retry_backoff,
        ));
        ConsumerGroup {
            cluster,
            group_id,
            member,
            fatal,
            wake,
            task,
            request_timeout,
        }
    }

    /// Locks the member (held only for synchronous steps).
    pub fn member(&self) -> MutexGuard<'_, ConsumerMember> {
        self.member.lock().expect("member lock poisoned")
    }

    /// Makes the heartbeat task look at the member now (a heartbeat may be due at once).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// An error the heartbeat task met for `poll` to report, once (a fatal one, or a refusal the
    /// member survives). A fatal member's later polls fail through its `fatal_reason`.
    pub fn take_fatal(&self) -> Option<Error> {
        self.fatal.lock().expect("fatal slot poisoned").take()
    }

    /// Stops heartbeating and sends the leave heartbeat (epoch -1; -2 for a static member, which
    /// keeps its assignment until its session times out). Nothing is owned afterwards.
    ///
    /// A leave the coordinator refuses or that cannot be sent is logged, not returned: the member
    /// has released everything and stopped heartbeating, so the broker removes it after its
    /// session timeout anyway, and a failed `unsubscribe`/`close` could not be retried (Java
    /// completes the unsubscribe the same way).
    ///
    /// Cancellation: dropping the future may leave the member in the group until the broker's
    /// session timeout.
    pub async fn leave(&mut self) -> Result<()> {
        self.task.abort();
        let Some(fields) = self.member().begin_leave() else {
            return Ok(());
        };
        let group = self.group_id.as_str();
        let member = fields.member_id.as_str();
        match send_heartbeat(&self.cluster, group, &fields, Some(self.request_timeout)).await {
            Ok((_, answer)) => match answer.error {
                None | Some(ResponseError::UnknownMemberId | ResponseError::FencedMemberEpoch) => {
                    info!(group, member, "left group");
                }
                Some(code) => warn!(
                    group,
                    member,
                    ?code,
                    "leave heartbeat refused; the group drops the member after its session timeout"
                ),
            },
            Err((_, e)) => warn!(
                group,
                member,
                error = %e,
                "leave heartbeat failed; the group drops the member after its session timeout"
            ),
        }
        Ok(())
    }
}

/// Heartbeats while the member is in the group. Runs until aborted or a fatal answer.
async fn heartbeat_loop(
    cluster: Cluster,
    group_id: String,
    member: Arc<Mutex<ConsumerMember>>,
    fatal: Arc<Mutex<Option<Error>>>,
    wake: Arc<Notify>,
    retry_backoff: Duration,
) {
    let group = group_id.as_str();
    let mut backoff = cluster.retry_backoff();
    loop {
        let step = member
            .lock()
            .expect("member lock poisoned")
            .heartbeat_step(std::time::Instant::now());
        let fields = match step {
            HeartbeatStep::Idle => {
                wait(&wake, Instant::now() + IDLE_CHECK).await;
                continue;
            }
            HeartbeatStep::WaitUntil(at) => {
                wait(&wake, Instant::from_std(at)).await;
                continue;
            }
            HeartbeatStep::LeaveForPollTimeout(fields) => {
                warn!(
                    group,
                    "no poll within max.poll.interval.ms: leaving the group; the next poll rejoins"
                );
                if let Err((_, e)) = send_heartbeat(&cluster, group, &fields, None).await {
                    debug!(error = %e, group, "leave heartbeat after poll timeout failed");
                }
                continue;
            }
            HeartbeatStep::Send(fields) => fields,
        };
        let answer = send_heartbeat(&cluster, group, &fields, None).await;
        // A fatal outcome is stored for `poll` while the member's lock is held for its move to
        // fatal: `poll` reads the member's state before the slot, so it never sees a fatal member
        // without the error that made it so (its first failure must be that error).
        let reaction = {
            let mut m = member.lock().expect("member lock poisoned");
            if let Err((_, e)) = &answer {
                if !e.is_retriable() {
                    // A broker without ConsumerGroupHeartbeat (classic-only, or group.version
                    // 0), refused authentication, ...: retrying cannot help.
                    warn!(error = %e, group, "heartbeat cannot be sent; the consumer group is unusable");
                    m.on_fatal(e.to_string());
                    let Err((_, e)) = answer else { unreachable!() };
                    *fatal.lock().expect("fatal slot poisoned") = Some(e);
                    return;
                }
            }
            let reaction = match &answer {
                Ok((_, a)) => m.on_heartbeat_response(a.clone()),
                Err((_, e)) => {
                    debug!(error = %e, group, "heartbeat failed");
                    m.on_heartbeat_failure()
                }
            };
            if reaction == Reaction::Fatal {
                let error = match answer {
                    Ok((_, a)) => {
                        let code = a.error.expect("fatal has a code");
                        Error::Broker {
                            api: crate::error::ApiKey::ConsumerGroupHeartbeat,
                            broker: None,
                            code: crate::error::ErrorCode::from_protocol(code),
                            message: Some(format!("group `{group}`: {code:?}")),
                            class: ErrorClass::Fatal,
                        }
                    }
                    Err((_, e)) => e,
                };
                *fatal.lock().expect("fatal slot poisoned") = Some(error);
                return;
            }
            reaction
        };
        let node = match &answer {
            Ok((node, _)) => Some(*node),
            Err((node, _)) => *node,
        };
        match reaction {
            Reaction::Done => backoff = cluster.retry_backoff(),
            Reaction::Rejoin => match answer.ok().map(|(_, a)| a) {
                Some(HeartbeatAnswer {
                    error: None,
                    member_epoch,
                    ..
                }) => warn!(
                    group,
                    member_epoch,
                    "heartbeat answered without an error but with an epoch the member cannot \
                     hold: partitions are lost, rejoining"
                ),
                a => info!(
                    group,
                    code = ?a.and_then(|a| a.error),
                    "fenced by the group coordinator: partitions are lost, rejoining"
                ),
            },
            Reaction::FindCoordinator | Reaction::RetryAfterBackoff | Reaction::RetryNow => {
                if let Ok((_, a)) = &answer {
                    if a.error == Some(ResponseError::TopicAuthorizationFailed) {
                        // The member stays as it is and recovers if the ACLs are added; the
                        // application hears of it meanwhile.
                        warn!(
                            group,
                            "heartbeat refused: TOPIC_AUTHORIZATION_FAILED; retrying"
                        );
                        *fatal.lock().expect("fatal slot poisoned") = Some(Error::Broker {
                            api: crate::error::ApiKey::ConsumerGroupHeartbeat,
                            broker: None,
                            code: crate::error::ErrorCode::from_protocol(
                                ResponseError::TopicAuthorizationFailed,
                            ),
                            message: Some(format!(
                                "group `{group}`: not authorized for a subscribed topic"
                            )),
                            class: ErrorClass::Rejected,
                        });
                    }
                }
                // A lost connection or a coordinator error: look the coordinator up again.
                let coordinator_gone = reaction == Reaction::FindCoordinator || answer.is_err();
                if let (true, Some(node)) = (coordinator_gone, node) {
                    cluster.invalidate_coordinator(CoordinatorKind::Group, group, node);
                }
                tokio::time::sleep(backoff.next_delay().max(retry_backoff)).await;
            }
            // Stored and returned above, under the member's lock.
            Reaction::Fatal => return,
        }
    }
}

/// How often an idle heartbeat loop looks at the member again (a wake comes sooner).
const IDLE_CHECK: Duration = Duration::from_millis(200);

async fn wait(wake: &Notify, until: Instant) {
    tokio::select! {
        () = wake.notified() => {}
        () = tokio::time::sleep_until(until) => {}
    }
}

type Sent = std::result::Result<(i32, HeartbeatAnswer), (Option<i32>, Error)>;

/// One ConsumerGroupHeartbeat: the coordinator's node and the answer, or the failure and the
/// node if one was reached.
async fn send_heartbeat(
    cluster: &Cluster,
    group_id: &str,
    fields: &HeartbeatFields,
    timeout: Option<Duration>,
) -> Sent {
    let (node, conn) = cluster
        .coordinator(CoordinatorKind::Group, group_id)
        .await
        .map_err(|e| (None, e))?;
    let request = request(group_id, fields);
    let version = conn
        .version_for::<ConsumerGroupHeartbeatRequest>()
        .map_err(|e| (Some(node), e))?;
    if fields.subscribed_topic_regex.is_some() && version < 1 {
        // SubscribedTopicRegex exists from v1 (Kafka 4.0): a broker without it cannot resolve
        // a pattern, and retrying will not change that.
        return Err((
            Some(node),
            Error::InvalidState(format!(
                "group `{group_id}`: broker {} speaks ConsumerGroupHeartbeat v{version}, and pattern \
                 subscriptions need v1 (Kafka 4.0 or later)",
                conn.broker()
            )),
        ));
    }
    let response = conn
        .send_version(&request, version, timeout)
        .await
        .map_err(|e| (Some(node), e))?;
    Ok((node, answer(response)))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn request(group_id: &str, f: &HeartbeatFields) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes(group_id)))
        .with_member_id(str_bytes(&f.member_id))
        .with_member_epoch(f.member_epoch)
        .with_instance_id(f.instance_id.as_deref().map(str_bytes))
        .with_rack_id(f.rack_id.as_deref().map(str_bytes))
        .with_rebalance_timeout_ms(f.rebalance_timeout_ms)
        .with_subscribed_topic_names(
            f.subscribed_topic_names
                .as_ref()
                .map(|topics| topics.iter().map(|t| TopicName(str_bytes(t))).collect()),
        )
        .with_subscribed_topic_regex(f.subscribed_topic_regex.as_deref().map(str_bytes))
        .with_server_assignor(f.server_assignor.as_deref().map(str_bytes))
        .with_topic_partitions(f.owned.as_ref().map(|owned| {
            owned
                .iter()
                .map(|(id, partitions)| {
                    TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_bytes(*id))
                        .with_partitions(partitions.iter().copied().collect())
                })
                .collect()
        }))
}

fn answer(response: ConsumerGroupHeartbeatResponse) -> HeartbeatAnswer {
    HeartbeatAnswer {
        error: ResponseError::try_from_code(response.error_code),
        member_id: response.member_id.map(|id| id.to_string()),
        member_epoch: response.member_epoch,
        heartbeat_interval_ms: response.heartbeat_interval_ms,
        assignment: response.assignment.map(|a| {
            let mut out = IdAssignment::new();
            for t in a.topic_partitions {
                out.entry(t.topic_id.into_bytes())
                    .or_default()
                    .extend(t.partitions);
            }
            out
        }),
    }
}

/// A member id as Java makes one: 16 random bytes in URL-safe base64 without padding.
pub(crate) fn new_member_id() -> String {
    use base64::Engine;
    let mut raw = [0u8; 16];
    if getrandom::fill(&mut raw).is_err() {
        // No OS randomness: the time and the process id still make collisions unlikely.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        raw.copy_from_slice(&(nanos ^ (u128::from(std::process::id()) << 64)).to_be_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

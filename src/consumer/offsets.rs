//! A group's committed offsets: OffsetCommit (as a member of the current generation) and
//! OffsetFetch (with `require_stable`, KIP-447), retried on coordinator errors until
//! `default.api.timeout.ms`.
//!
//! OffsetFetch always asks for stable offsets, as the Java consumer does: a partition whose offset
//! is part of a transaction still open answers UNSTABLE_OFFSET_COMMIT and is asked again, so a
//! consumer taking over partitions from a transactional producer never starts from an offset that
//! the producer's transaction may still abort.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::debug;

use crate::cluster::{Cluster, CoordinatorKind};
use crate::error::{Error, ErrorClass, Result};
use crate::metrics::registry::nanos;
use crate::record::TopicPartition;
use crate::state::consumer_member::ConsumerMember;
use crate::state::membership::{Membership, Reaction};

/// The member a consumer commits as: a classic member (its generation) or a KIP-848 member (its
/// member epoch, which OffsetCommit v9 carries in the same field).
#[derive(Debug, Clone)]
pub(crate) enum MemberHandle {
    Classic(Arc<Mutex<Membership>>),
    Consumer(Arc<Mutex<ConsumerMember>>),
}

impl MemberHandle {
    /// Member id, generation or epoch, and `group.instance.id`.
    pub fn identity(&self) -> (String, i32, Option<String>) {
        match self {
            MemberHandle::Classic(m) => {
                let m = m.lock().expect("membership lock poisoned");
                (
                    m.member_id().to_owned(),
                    m.generation(),
                    m.group_instance_id().map(str::to_owned),
                )
            }
            MemberHandle::Consumer(m) => {
                let m = m.lock().expect("membership lock poisoned");
                let (member_id, epoch) = m.commit_identity();
                let instance_id = (epoch > 0).then(|| m.instance_id().map(str::to_owned));
                (member_id, epoch, instance_id.flatten())
            }
        }
    }

    /// What an OffsetCommit is sent with: [`MemberHandle::identity`], or `None` while a classic
    /// member is rebalancing (see [`Membership::commit_identity`]).
    fn commit_identity(&self) -> Option<(String, i32, Option<String>)> {
        match self {
            MemberHandle::Classic(m) => {
                let m = m.lock().expect("membership lock poisoned");
                let (member_id, generation) = m.commit_identity()?;
                Some((
                    member_id,
                    generation,
                    m.group_instance_id().map(str::to_owned),
                ))
            }
            MemberHandle::Consumer(_) => Some(self.identity()),
        }
    }

    /// An OffsetCommit answer's error, for a commit sent with `generation`.
    fn on_commit_error(&self, generation: i32, code: ResponseError) -> Reaction {
        match self {
            MemberHandle::Classic(m) => m
                .lock()
                .expect("membership lock poisoned")
                .on_commit_error_for(generation, code),
            MemberHandle::Consumer(m) => m
                .lock()
                .expect("membership lock poisoned")
                .on_commit_error(code),
        }
    }
}

/// Commits `offsets` (the offset of the next record to read, per partition) for the member's
/// current generation. Partitions failing with a retriable error are sent again, alone, until
/// `timeout`.
///
/// Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS fail the commit (the
/// partitions may already belong to another member; Java's `CommitFailedException`) and make the
/// next `poll` rejoin. A classic member that is rebalancing sends nothing and fails at once
/// with a retriable REBALANCE_IN_PROGRESS (Java's `RebalanceInProgressException`).
///
/// Cancellation: dropping the future may leave a commit in flight; it is applied or not as a
/// whole per partition, and committing the same offset again is harmless.
pub(crate) async fn commit(
    cluster: &Cluster,
    group_id: &str,
    membership: &MemberHandle,
    offsets: &BTreeMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let result = commit_until_done(cluster, group_id, membership, offsets, timeout).await;
    let cells = &cluster.pool().metrics().0.consumer;
    let took = started.elapsed();
    let took_ms = took.as_secs_f64() * 1e3;
    match &result {
        Ok(()) => {
            cells.commit_latency.record(nanos(took));
            debug!(
                group_id,
                partitions = offsets.len(),
                took_ms,
                "offsets committed"
            );
        }
        Err(e) => {
            cells
                .failed_commit_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            debug!(group_id, partitions = offsets.len(), took_ms, error = %e, "commit failed");
        }
    }
    result
}

async fn commit_until_done(
    cluster: &Cluster,
    group_id: &str,
    membership: &MemberHandle,
    offsets: &BTreeMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<()> {
    let deadline = crate::clock::from_now(timeout);
    let mut backoff = cluster.retry_backoff();
    let mut pending = offsets.clone();
    while !pending.is_empty() {
        let Some((member_id, generation, instance_id)) = membership.commit_identity() else {
            return Err(Error::Broker {
                api: crate::error::ApiKey::OffsetCommit,
                broker: None,
                code: crate::error::ErrorCode::from_protocol(ResponseError::RebalanceInProgress),
                message: Some(format!(
                    "group `{group_id}`: offsets cannot be committed while this member is \
                     rebalancing; poll to complete the rebalance, then commit again"
                )),
                class: ErrorClass::Retriable,
            });
        };
        let attempt = async {
            let (node, conn) = cluster
                .coordinator(CoordinatorKind::Group, group_id)
                .await?;
            let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
            for (tp, offset) in &pending {
                let partition = OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1);
                match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
                    Some(t) => t.partitions.push(partition),
                    None => topics.push(
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partitions(vec![partition]),
                    ),
                }
            }
            let request = OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group_id.to_owned())))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(StrBytes::from_string(member_id.clone()))
                .with_group_instance_id(instance_id.clone().map(StrBytes::from_string))
                .with_retention_time_ms(-1)
                .with_topics(topics);
            let response = conn
                .send(&request)
                .await
                .inspect_err(|e| forget_silent_coordinator(cluster, group_id, node, e))?;
            Ok::<_, Error>((node, conn.broker().clone(), response))
        };
        let (node, broker, response) = match attempt.await {
            Ok(ok) => ok,
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                debug!(error = %e, group_id, "OffsetCommit will be retried");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        for topic in &response.topics {
            for p in &topic.partitions {
                let tp = TopicPartition::new(topic.name.0.as_str(), p.partition_index);
                let Some(code) = ResponseError::try_from_code(p.error_code) else {
                    pending.remove(&tp);
                    continue;
                };
                let reaction = membership.on_commit_error(generation, code);
                match reaction {
                    Reaction::RetryAfterBackoff | Reaction::RetryNow => {}
                    Reaction::FindCoordinator => {
                        cluster.invalidate_coordinator(CoordinatorKind::Group, group_id, node);
                    }
                    Reaction::Rejoin | Reaction::Fatal | Reaction::Done => {
                        // `Done`: refused for a generation the member has already left behind;
                        // committing again after the rebalance can succeed. A commit refused by a
                        // rebalance or for one partition leaves the consumer usable (Java's
                        // CommitFailedException, or that commit's error).
                        let refused = reaction == Reaction::Rejoin
                            || matches!(
                                code,
                                ResponseError::TopicAuthorizationFailed
                                    | ResponseError::OffsetMetadataTooLarge
                                    | ResponseError::InvalidCommitOffsetSize
                            );
                        let class = if code.is_retriable() || reaction == Reaction::Done {
                            ErrorClass::Retriable
                        } else if refused {
                            ErrorClass::Rejected
                        } else {
                            ErrorClass::Fatal
                        };
                        return Err(Error::Broker {
                            api: crate::error::ApiKey::OffsetCommit,
                            broker: Some(broker),
                            code: crate::error::ErrorCode::from_protocol(code),
                            message: Some(commit_failure_message(group_id, &tp, code)),
                            class,
                        });
                    }
                }
            }
        }
        if !pending.is_empty() {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    api: Some(crate::error::ApiKey::OffsetCommit),
                    broker: Some(broker),
                    after: timeout,
                    outcome_unknown: true,
                });
            }
            // Partitions the answer left out are not committed either (Java's classic consumer
            // takes such an answer as success; this one does not): they are sent again after the
            // same backoff as a retriable error, so a coordinator that keeps leaving them out is
            // not asked again at once until the deadline.
            debug!(
                group_id,
                partitions = pending.len(),
                "OffsetCommit not confirmed for every partition; retrying after backoff"
            );
            let wake = crate::clock::from_now(backoff.next_delay()).min(deadline);
            tokio::time::sleep_until(wake).await;
        }
    }
    Ok(())
}

fn commit_failure_message(group_id: &str, tp: &TopicPartition, code: ResponseError) -> String {
    match code {
        ResponseError::UnknownMemberId
        | ResponseError::IllegalGeneration
        | ResponseError::FencedMemberEpoch
        | ResponseError::StaleMemberEpoch
        | ResponseError::RebalanceInProgress => format!(
            "group `{group_id}`: commit of {tp} refused because the group rebalanced; the \
             partition may now belong to another member. Poll again to rejoin; records since the \
             last successful commit will be delivered again (to this member or another)"
        ),
        _ => format!("group `{group_id}`: commit of {tp} failed"),
    }
}

/// The group's committed offsets for `partitions` (`None` where nothing is committed), waiting
/// out transactions still open on them (UNSTABLE_OFFSET_COMMIT) until `timeout`.
///
/// Cancellation: safe; nothing is changed.
pub(crate) async fn fetch_committed(
    cluster: &Cluster,
    group_id: &str,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, Option<i64>>> {
    let deadline = crate::clock::from_now(timeout);
    let mut backoff = cluster.retry_backoff();
    let mut out = HashMap::new();
    let mut pending: Vec<TopicPartition> = partitions.to_vec();
    while !pending.is_empty() {
        let attempt = fetch_once(cluster, group_id, &pending).await;
        let retry = match attempt {
            Ok((answers, node)) => {
                let mut retry: Option<Error> = None;
                let mut still = Vec::new();
                for tp in pending.drain(..) {
                    match answers.get(&tp) {
                        Some(Ok(offset)) => {
                            out.insert(tp, (*offset >= 0).then_some(*offset));
                        }
                        Some(Err(code)) if is_retriable_fetch(*code) => {
                            if matches!(
                                code,
                                ResponseError::NotCoordinator
                                    | ResponseError::CoordinatorNotAvailable
                            ) {
                                cluster.invalidate_coordinator(
                                    CoordinatorKind::Group,
                                    group_id,
                                    node,
                                );
                            }
                            retry = Some(Error::from_code(
                                ApiKey::OffsetFetch,
                                None,
                                *code,
                                Some(format!("group `{group_id}`, partition {tp}")),
                            ));
                            still.push(tp);
                        }
                        Some(Err(code)) => {
                            return Err(Error::from_code(
                                ApiKey::OffsetFetch,
                                None,
                                *code,
                                Some(format!("group `{group_id}`, partition {tp}")),
                            ))
                        }
                        // Not in the answer: nothing committed.
                        None => {
                            out.insert(tp, None);
                        }
                    }
                }
                pending = still;
                retry
            }
            Err(e) if e.is_retriable() => Some(e),
            Err(e) => return Err(e),
        };
        if let Some(e) = retry {
            if Instant::now() >= deadline {
                return Err(e);
            }
            debug!(error = %e, group_id, "OffsetFetch will be retried");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    Ok(out)
}

/// After a request to the group coordinator failed in transit (timed out, connection lost), the
/// next attempt looks the coordinator up again instead of asking the same broker (Java marks the
/// coordinator unknown on a disconnect or timeout): a coordinator that hangs or moved is left.
fn forget_silent_coordinator(cluster: &Cluster, group_id: &str, node: i32, error: &Error) {
    if error.is_retriable() {
        cluster.invalidate_coordinator(CoordinatorKind::Group, group_id, node);
    }
}

fn is_retriable_fetch(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::UnstableOffsetCommit
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator
    ) || code.is_retriable()
}

type FetchAnswers = HashMap<TopicPartition, std::result::Result<i64, ResponseError>>;

/// One OffsetFetch round trip: per partition its offset or error code (a group-level error is
/// given to every partition).
async fn fetch_once(
    cluster: &Cluster,
    group_id: &str,
    partitions: &[TopicPartition],
) -> Result<(FetchAnswers, i32)> {
    let (node, conn) = cluster
        .coordinator(CoordinatorKind::Group, group_id)
        .await?;
    let version = conn.version_for::<OffsetFetchRequest>()?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let group = GroupId(StrBytes::from_string(group_id.to_owned()));
    let mut request = OffsetFetchRequest::default().with_require_stable(true);
    if version >= 8 {
        let topics = by_topic
            .iter()
            .map(|(t, ps)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                    .with_partition_indexes(ps.clone())
            })
            .collect();
        request.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(group)
            .with_topics(Some(topics))];
    } else {
        request.group_id = group;
        request.topics = Some(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        );
    }
    let response = conn
        .send_version(&request, version, None)
        .await
        .inspect_err(|e| forget_silent_coordinator(cluster, group_id, node, e))?;
    let mut answers = FetchAnswers::new();
    let mut group_error = ResponseError::try_from_code(response.error_code);
    let mut add = |topic: &str, partition: i32, offset: i64, code: i16| {
        let tp = TopicPartition::new(topic, partition);
        let answer = match ResponseError::try_from_code(code) {
            None => Ok(offset),
            Some(code) => Err(code),
        };
        answers.insert(tp, answer);
    };
    if version >= 8 {
        for g in &response.groups {
            if let Some(code) = ResponseError::try_from_code(g.error_code) {
                group_error = Some(code);
            }
            for t in &g.topics {
                for p in &t.partitions {
                    add(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    );
                }
            }
        }
    } else {
        for t in &response.topics {
            for p in &t.partitions {
                add(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                );
            }
        }
    }
    if let Some(code) = group_error {
        for tp in partitions {
            answers.insert(tp.clone(), Err(code));
        }
    }
    Ok((answers, node))
}

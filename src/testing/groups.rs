//! The mock's classic consumer groups: JoinGroup (with KIP-394 member ids and static members),
//! SyncGroup, Heartbeat, LeaveGroup, session and rebalance timeouts, and committed offsets
//! (OffsetCommit, OffsetFetch with `require_stable`, and the transactional offsets TxnOffsetCommit
//! leaves pending until the transaction ends).
//!
//! The rebalance is Java's classic one: a join moves the group to *joining*; it completes when
//! every known member has rejoined (or the rebalance timeout has passed, dropping the rest); the
//! leader's SyncGroup carries the assignment to every member.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::server::{encode, Reply};
use super::state::{code, now, State};

type Waiter = (i16, oneshot::Sender<Bytes>);
/// (topic, partition) → (offset, metadata).
pub(crate) type Offsets = BTreeMap<(String, i32), (i64, Option<String>)>;

#[derive(Debug)]
pub(crate) struct Member {
    instance_id: Option<String>,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    join_waiter: Option<Waiter>,
    sync_waiter: Option<Waiter>,
    assignment: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    Joining { deadline: Instant },
    AwaitingSync,
    Stable,
}

/// One group's membership and offsets.
#[derive(Debug)]
pub(crate) struct Group {
    generation: i32,
    phase: Phase,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending: HashSet<String>,
    pub(crate) offsets: Offsets,
    /// Offsets of open transactions, by producer id: applied or dropped by the EndTxn markers.
    pub(crate) pending_txn: HashMap<i64, Offsets>,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            generation: 0,
            phase: Phase::Empty,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashSet::new(),
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
        }
    }
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

impl Group {
    fn start_rebalance(&mut self) {
        if matches!(self.phase, Phase::Joining { .. }) {
            return;
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.phase = Phase::Joining {
            deadline: now() + timeout,
        };
        // Followers waiting for an assignment of the generation that is now over.
        for m in self.members.values_mut() {
            if let Some((v, tx)) = m.sync_waiter.take() {
                let answer =
                    SyncGroupResponse::default().with_error_code(code::REBALANCE_IN_PROGRESS);
                let _ = tx.send(encode(&answer, v));
            }
        }
    }

    fn try_complete_join(&mut self, force: bool) {
        if !matches!(self.phase, Phase::Joining { .. }) {
            return;
        }
        if !force && self.members.values().any(|m| m.join_waiter.is_none()) {
            return;
        }
        self.members.retain(|_, m| m.join_waiter.is_some());
        self.generation += 1;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.leader = None;
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        // The leader's first protocol that every member supports.
        let chosen = self.members[&leader]
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            });
        self.protocol = chosen.clone();
        let chosen = chosen.unwrap_or_default();
        let list: Vec<_> = self
            .members
            .iter()
            .map(|(id, m)| {
                let metadata = m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == chosen)
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                join_group_response::JoinGroupResponseMember::default()
                    .with_member_id(s(id))
                    .with_group_instance_id(m.instance_id.as_deref().map(s))
                    .with_metadata(metadata)
            })
            .collect();
        let at = now();
        for (id, m) in self.members.iter_mut() {
            m.last_seen = at;
            let Some((v, tx)) = m.join_waiter.take() else {
                continue;
            };
            let mut answer = JoinGroupResponse::default()
                .with_generation_id(self.generation)
                .with_protocol_type(self.protocol_type.as_deref().map(s))
                .with_protocol_name(Some(s(&chosen)))
                .with_leader(s(&leader))
                .with_member_id(s(id));
            if *id == leader {
                answer = answer.with_members(list.clone());
            }
            let _ = tx.send(encode(&answer, v));
        }
        self.phase = Phase::AwaitingSync;
    }

    fn remove_member(&mut self, id: &str) -> bool {
        self.pending.remove(id);
        if self.members.remove(id).is_none() {
            return false;
        }
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.generation += 1;
            self.leader = None;
        } else {
            self.start_rebalance();
            self.try_complete_join(false);
        }
        true
    }

    /// Expires members whose session ended and rebalances that ran out of time.
    fn tick(&mut self, at: Instant) {
        // As Java's heartbeat expiry: in every phase, except for members waiting in a join.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none() && at >= m.last_seen + m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id);
        }
        if let Phase::Joining { deadline } = self.phase {
            if at >= deadline {
                self.try_complete_join(true);
            }
        }
    }

    /// Checks the member and generation a TxnOffsetCommit carries (v3+; none before).
    pub(crate) fn check_txn_member(&self, member: &str, generation: i32) -> i16 {
        if member.is_empty() && generation < 0 {
            return code::NONE;
        }
        if !self.members.contains_key(member) {
            return code::UNKNOWN_MEMBER_ID;
        }
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        code::NONE
    }

    /// Checks a member and generation given with a commit (`generation < 0` means a commit from
    /// outside the group's membership, as simple consumers make).
    fn check_member(&self, member: &str, generation: i32) -> i16 {
        if generation < 0 && member.is_empty() {
            return code::NONE;
        }
        if !self.members.contains_key(member) {
            return code::UNKNOWN_MEMBER_ID;
        }
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        if self.phase == Phase::AwaitingSync {
            return code::REBALANCE_IN_PROGRESS;
        }
        code::NONE
    }
}

/// Runs the clock on every group.
pub(crate) fn tick(state: &mut State) {
    let at = now();
    for g in state.groups.values_mut() {
        g.tick(at);
    }
}

fn not_coordinator(state: &State, node: i32, group: &str) -> bool {
    state.coordinator(0, group) != node
}

pub(crate) fn join(
    state: &mut State,
    node: i32,
    v: i16,
    r: JoinGroupRequest,
    client_id: &str,
) -> Reply {
    let fail = |error: i16, member: &str| {
        let answer = JoinGroupResponse::default()
            .with_error_code(error)
            .with_generation_id(-1)
            .with_member_id(s(member));
        Reply::Now(encode(&answer, v))
    };
    let group_id = r.group_id.0.to_string();
    if not_coordinator(state, node, &group_id) {
        return fail(code::NOT_COORDINATOR, "");
    }
    let fresh_id = state.member_id(client_id);
    let group = state.groups.entry(group_id).or_default();
    let protocol_type = r.protocol_type.to_string();
    if !group.members.is_empty() && group.protocol_type.as_deref() != Some(protocol_type.as_str()) {
        return fail(code::INCONSISTENT_GROUP_PROTOCOL, "");
    }
    let instance_id = r.group_instance_id.as_ref().map(|i| i.to_string());
    let mut member_id = r.member_id.to_string();
    if member_id.is_empty() {
        member_id = fresh_id;
        if let Some(instance) = &instance_id {
            // A static member taking its place again replaces its previous incarnation.
            let old: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.instance_id.as_ref() == Some(instance))
                .map(|(id, _)| id.clone())
                .collect();
            for id in old {
                group.members.remove(&id);
                if group.leader.as_deref() == Some(id.as_str()) {
                    group.leader = None;
                }
            }
        } else if v >= 4 {
            group.pending.insert(member_id.clone());
            return fail(code::MEMBER_ID_REQUIRED, &member_id);
        }
    } else if !group.members.contains_key(&member_id) && !group.pending.remove(&member_id) {
        return fail(code::UNKNOWN_MEMBER_ID, &member_id);
    }
    group.protocol_type = Some(protocol_type);
    let (tx, rx) = oneshot::channel();
    let member = Member {
        instance_id,
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout: ms(r.session_timeout_ms),
        rebalance_timeout: ms(r.rebalance_timeout_ms.max(r.session_timeout_ms)),
        last_seen: now(),
        join_waiter: Some((v, tx)),
        sync_waiter: None,
        assignment: Bytes::new(),
    };
    group.members.insert(member_id, member);
    group.start_rebalance();
    group.try_complete_join(false);
    Reply::Later(rx)
}

pub(crate) fn sync(state: &mut State, node: i32, v: i16, r: SyncGroupRequest) -> Reply {
    let answer = |error: i16| {
        Reply::Now(encode(
            &SyncGroupResponse::default().with_error_code(error),
            v,
        ))
    };
    let group_id = r.group_id.0.to_string();
    if not_coordinator(state, node, &group_id) {
        return answer(code::NOT_COORDINATOR);
    }
    let Some(group) = state.groups.get_mut(&group_id) else {
        return answer(code::UNKNOWN_MEMBER_ID);
    };
    let member_id = r.member_id.to_string();
    if !group.members.contains_key(&member_id) {
        return answer(code::UNKNOWN_MEMBER_ID);
    }
    if r.generation_id != group.generation {
        return answer(code::ILLEGAL_GENERATION);
    }
    let reply = |group: &Group, assignment: Bytes, v: i16| {
        encode(
            &SyncGroupResponse::default()
                .with_protocol_type(group.protocol_type.as_deref().map(s))
                .with_protocol_name(group.protocol.as_deref().map(s))
                .with_assignment(assignment),
            v,
        )
    };
    match group.phase {
        Phase::Empty | Phase::Joining { .. } => answer(code::REBALANCE_IN_PROGRESS),
        Phase::Stable => {
            let assignment = group.members[&member_id].assignment.clone();
            Reply::Now(reply(group, assignment, v))
        }
        Phase::AwaitingSync => {
            if group.leader.as_deref() != Some(member_id.as_str()) {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.sync_waiter = Some((v, tx));
                    m.last_seen = now();
                }
                return Reply::Later(rx);
            }
            for a in &r.assignments {
                if let Some(m) = group.members.get_mut(a.member_id.as_str()) {
                    m.assignment = a.assignment.clone();
                }
            }
            group.phase = Phase::Stable;
            let waiting: Vec<(Waiter, Bytes)> = group
                .members
                .values_mut()
                .filter_map(|m| Some((m.sync_waiter.take()?, m.assignment.clone())))
                .collect();
            for ((wv, tx), assignment) in waiting {
                let _ = tx.send(reply(group, assignment, wv));
            }
            let own = group.members[&member_id].assignment.clone();
            Reply::Now(reply(group, own, v))
        }
    }
}

pub(crate) fn heartbeat(state: &mut State, node: i32, v: i16, r: HeartbeatRequest) -> Bytes {
    let group_id = r.group_id.0.to_string();
    let error = if not_coordinator(state, node, &group_id) {
        code::NOT_COORDINATOR
    } else {
        match state.groups.get_mut(&group_id) {
            None => code::UNKNOWN_MEMBER_ID,
            Some(group) => match group.members.get_mut(r.member_id.as_str()) {
                None => code::UNKNOWN_MEMBER_ID,
                Some(m) => {
                    m.last_seen = now();
                    if matches!(group.phase, Phase::Joining { .. }) {
                        code::REBALANCE_IN_PROGRESS
                    } else if r.generation_id != group.generation {
                        code::ILLEGAL_GENERATION
                    } else {
                        code::NONE
                    }
                }
            },
        }
    };
    encode(&HeartbeatResponse::default().with_error_code(error), v)
}

pub(crate) fn leave(state: &mut State, node: i32, v: i16, r: LeaveGroupRequest) -> Bytes {
    use leave_group_response::MemberResponse;
    let group_id = r.group_id.0.to_string();
    if not_coordinator(state, node, &group_id) {
        return encode(
            &LeaveGroupResponse::default().with_error_code(code::NOT_COORDINATOR),
            v,
        );
    }
    let group = state.groups.entry(group_id).or_default();
    if v < 3 {
        let error = if group.remove_member(r.member_id.as_str()) {
            code::NONE
        } else {
            code::UNKNOWN_MEMBER_ID
        };
        return encode(&LeaveGroupResponse::default().with_error_code(error), v);
    }
    let members = r
        .members
        .iter()
        .map(|m| {
            let mut id = m.member_id.to_string();
            if id.is_empty() {
                // A static member leaving by instance id.
                if let Some(instance) = &m.group_instance_id {
                    id = group
                        .members
                        .iter()
                        .find(|(_, x)| x.instance_id.as_deref() == Some(instance.as_str()))
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default();
                }
            }
            let error = if group.remove_member(&id) {
                code::NONE
            } else {
                code::UNKNOWN_MEMBER_ID
            };
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(error)
        })
        .collect();
    encode(&LeaveGroupResponse::default().with_members(members), v)
}

pub(crate) fn offset_commit(state: &mut State, node: i32, v: i16, r: OffsetCommitRequest) -> Bytes {
    use offset_commit_response::*;
    let group_id = r.group_id.0.to_string();
    let error = if not_coordinator(state, node, &group_id) {
        code::NOT_COORDINATOR
    } else {
        let group = state.groups.entry(group_id.clone()).or_default();
        group.check_member(r.member_id.as_str(), r.generation_id_or_member_epoch)
    };
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut e = error;
                    if e == code::NONE && state.partition(&topic, p.partition_index).is_none() {
                        e = code::UNKNOWN_TOPIC_OR_PARTITION;
                    }
                    if e == code::NONE {
                        if let Some(g) = state.groups.get_mut(&group_id) {
                            let md = p.committed_metadata.as_ref().map(|m| m.to_string());
                            g.offsets.insert(
                                (topic.clone(), p.partition_index),
                                (p.committed_offset, md),
                            );
                        }
                    }
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(e)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    encode(&OffsetCommitResponse::default().with_topics(topics), v)
}

/// One partition's committed offset as OffsetFetch reports it: (offset, metadata, error).
fn fetched(group: Option<&Group>, tp: &(String, i32), require_stable: bool) -> (i64, String, i16) {
    let Some(g) = group else {
        return (-1, String::new(), code::NONE);
    };
    if require_stable && g.pending_txn.values().any(|o| o.contains_key(tp)) {
        return (-1, String::new(), code::UNSTABLE_OFFSET_COMMIT);
    }
    match g.offsets.get(tp) {
        Some((o, md)) => (*o, md.clone().unwrap_or_default(), code::NONE),
        None => (-1, String::new(), code::NONE),
    }
}

/// The partitions asked for, or every partition with an offset when `None`.
fn wanted(
    group: Option<&Group>,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<i32>)> {
    topics.unwrap_or_else(|| {
        let mut all: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in group.map(|g| g.offsets.keys()).into_iter().flatten() {
            all.entry(t.clone()).or_default().push(*p);
        }
        all.into_iter().collect()
    })
}

pub(crate) fn offset_fetch(state: &mut State, node: i32, v: i16, r: OffsetFetchRequest) -> Bytes {
    use offset_fetch_response::*;
    if v < 8 {
        let group_id = r.group_id.0.to_string();
        if not_coordinator(state, node, &group_id) {
            return encode(
                &OffsetFetchResponse::default().with_error_code(code::NOT_COORDINATOR),
                v,
            );
        }
        let group = state.groups.get(&group_id);
        let asked = r.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let topics = wanted(group, asked)
            .into_iter()
            .map(|(t, ps)| {
                let partitions = ps
                    .iter()
                    .map(|&p| {
                        let (o, md, e) = fetched(group, &(t.clone(), p), r.require_stable);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                            .with_committed_leader_epoch(-1)
                            .with_metadata(Some(s(&md)))
                            .with_error_code(e)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(&t)))
                    .with_partitions(partitions)
            })
            .collect();
        return encode(&OffsetFetchResponse::default().with_topics(topics), v);
    }
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            let group_id = g.group_id.0.to_string();
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            if not_coordinator(state, node, &group_id) {
                return out.with_error_code(code::NOT_COORDINATOR);
            }
            let group = state.groups.get(&group_id);
            let asked = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let topics = wanted(group, asked)
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .iter()
                        .map(|&p| {
                            let (o, md, e) = fetched(group, &(t.clone(), p), r.require_stable);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(s(&md)))
                                .with_error_code(e)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(partitions)
                })
                .collect();
            out.with_topics(topics)
        })
        .collect();
    encode(&OffsetFetchResponse::default().with_groups(groups), v)
}

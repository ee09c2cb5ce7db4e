//! Classic-protocol (JoinGroup/SyncGroup) partition assignors, run by the group leader.
//!
//! Rules come from the Java client: `RangeAssignor` (`range`), `RoundRobinAssignor` (`roundrobin`),
//! `CooperativeStickyAssignor` over `AbstractStickyAssignor` (`cooperative-sticky`, KIP-54 sticky
//! assignment and KIP-429 incremental cooperative rebalancing), and member ordering from
//! `AbstractPartitionAssignor.MemberInfo` (KIP-345 static members first). Rack-aware placement
//! (KIP-881) is not done: the assignors here see no replica racks.
//!
//! The assignors are pure functions of the members' subscriptions and the topics' partition counts.
//! Names are compared as Java compares strings (UTF-16 code units) so a josefk leader orders members
//! and topics exactly as a Java leader would.
//!
//! The `consumer` protocol's Subscription and Assignment types and byte formats live in
//! [`super::consumer_protocol`] and are re-exported here.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use super::consumer_protocol::java_cmp;
pub use super::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignment,
    Subscription, CONSUMER_PROTOCOL_TYPE, CONSUMER_PROTOCOL_VERSION, DEFAULT_GENERATION,
};
use crate::record::TopicPartition;

/// One member of the group, as the leader sees it in the JoinGroup response. Member ids are unique
/// within a group (the coordinator assigns them); the assignors rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The coordinator-assigned member id (unique in the group).
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The member's decoded subscription.
    pub subscription: Subscription,
}

/// Member id → its partitions, sorted by topic then partition. Every member is present.
pub type GroupAssignment = BTreeMap<String, Vec<TopicPartition>>;

/// How members hand over partitions during a rebalance (Java `RebalanceProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before each rebalance.
    Eager,
    /// Members keep their partitions; only those moving are revoked, then reassigned in a
    /// follow-up rebalance (KIP-429).
    Cooperative,
}

/// The built-in assignors (`partition.assignment.strategy`), by their JoinGroup protocol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Assignor {
    /// `range`: each topic's partitions split into consecutive ranges, in member-id order.
    Range,
    /// `roundrobin`: all partitions dealt round the members in member-id order.
    RoundRobin,
    /// `cooperative-sticky`: keeps partitions where they are and moves only what must move,
    /// with the incremental (cooperative) rebalance protocol.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name every client in the group must agree on.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor with this protocol name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// The most capable rebalance protocol the assignor supports (Java `supportedProtocols`).
    pub(crate) fn rebalance_protocol(self) -> RebalanceProtocol {
        match self {
            Assignor::CooperativeSticky => RebalanceProtocol::Cooperative,
            _ => RebalanceProtocol::Eager,
        }
    }

    /// Runs the assignor.
    pub(crate) fn assign(
        self,
        members: &[GroupMember],
        partitions_per_topic: &HashMap<String, i32>,
    ) -> GroupAssignment {
        match self {
            Assignor::Range => range(members, partitions_per_topic),
            Assignor::RoundRobin => round_robin(members, partitions_per_topic),
            Assignor::CooperativeSticky => cooperative_sticky(members, partitions_per_topic),
        }
    }
}

/// Java `MemberInfo.compareTo`: static members by instance id first, then the rest by member id.
fn member_order(a: &GroupMember, b: &GroupMember) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => java_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| java_cmp(&a.member_id, &b.member_id))
}

fn subscribes(m: &GroupMember, topic: &str) -> bool {
    m.subscription.topics.iter().any(|t| t == topic)
}

/// Subscribed topics that exist, in Java string order.
fn subscribed_topics<'a>(
    members: &'a [GroupMember],
    counts: &HashMap<String, i32>,
) -> Vec<&'a str> {
    let mut topics: Vec<&str> = members
        .iter()
        .flat_map(|m| m.subscription.topics.iter().map(String::as_str))
        .filter(|t| counts.get(*t).is_some_and(|&n| n > 0))
        .collect();
    topics.sort_by(|a, b| java_cmp(a, b));
    topics.dedup();
    topics
}

fn empty_assignment(members: &[GroupMember]) -> GroupAssignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

fn sort_lists(mut out: GroupAssignment) -> GroupAssignment {
    for list in out.values_mut() {
        list.sort_by(|a, b| java_cmp(&a.topic, &b.topic).then(a.partition.cmp(&b.partition)));
    }
    out
}

/// Java `RangeAssignor` (without racks): per topic, the subscribed members in Java's member order
/// (static members by `group.instance.id`, then the others by member id) get consecutive ranges of
/// `n / m` partitions, and the first `n % m` of them one more.
pub fn range(
    members: &[GroupMember],
    partitions_per_topic: &HashMap<String, i32>,
) -> GroupAssignment {
    let mut sorted: Vec<&GroupMember> = members.iter().collect();
    sorted.sort_by(|a, b| member_order(a, b));
    let mut out = empty_assignment(members);
    for topic in subscribed_topics(members, partitions_per_topic) {
        let n = partitions_per_topic[topic];
        let consumers: Vec<&&GroupMember> =
            sorted.iter().filter(|m| subscribes(m, topic)).collect();
        let m = consumers.len() as i32;
        let (per, extra) = (n / m, n % m);
        for (i, c) in (0..).zip(consumers) {
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            let list = out.get_mut(&c.member_id).expect("member listed");
            list.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
        }
    }
    sort_lists(out)
}

/// Java `RoundRobinAssignor`: all partitions sorted by topic then partition, dealt in a circle to the
/// members in the same order as [`range`], skipping members not subscribed to the partition's topic.
pub fn round_robin(
    members: &[GroupMember],
    partitions_per_topic: &HashMap<String, i32>,
) -> GroupAssignment {
    let mut sorted: Vec<&GroupMember> = members.iter().collect();
    sorted.sort_by(|a, b| member_order(a, b));
    let mut out = empty_assignment(members);
    let mut next = 0;
    for topic in subscribed_topics(members, partitions_per_topic) {
        for p in 0..partitions_per_topic[topic] {
            // Some member subscribes `topic` (that is how it got listed), so this ends.
            while !subscribes(sorted[next], topic) {
                next = (next + 1) % sorted.len();
            }
            let list = out.get_mut(&sorted[next].member_id).expect("member listed");
            list.push(TopicPartition::new(topic, p));
            next = (next + 1) % sorted.len();
        }
    }
    out
}

/// The generation a member's owned partitions belong to, as `CooperativeStickyAssignor.memberData`
/// reads it: the v2+ field, else the 4-byte generation in the user data (written by
/// [`cooperative_sticky_user_data`]), else [`DEFAULT_GENERATION`].
pub fn member_generation(subscription: &Subscription) -> i32 {
    if let Some(g) = subscription.generation_id {
        return g;
    }
    match subscription.user_data.as_deref() {
        Some([a, b, c, d, ..]) => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => DEFAULT_GENERATION,
    }
}

/// The user data a `cooperative-sticky` member sends: its last generation as a big-endian int32, so
/// leaders that read only v0/v1 subscriptions still learn it.
pub fn cooperative_sticky_user_data(generation: i32) -> Bytes {
    Bytes::copy_from_slice(&generation.to_be_bytes())
}

/// The outcome of [`cooperative_sticky_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyPlan {
    /// What each member gets in this generation.
    pub assignment: GroupAssignment,
    /// Partitions moving to a new member that another member must revoke first: left out of
    /// `assignment` now, and assigned (to the member named) by the follow-up rebalance the revoking
    /// member triggers (Java `partitionsTransferringOwnership`, removed by `adjustAssignment`).
    pub transferring: BTreeMap<TopicPartition, String>,
}

/// Java `CooperativeStickyAssignor`: the [`cooperative_sticky_plan`]'s assignment.
pub fn cooperative_sticky(
    members: &[GroupMember],
    partitions_per_topic: &HashMap<String, i32>,
) -> GroupAssignment {
    cooperative_sticky_plan(members, partitions_per_topic).assignment
}

/// A balanced, sticky, cooperative assignment.
///
/// 1. Ownership: each still-existing partition a member claims in `owned_partitions` stays with
///    its claimant of the highest generation, if that claimant is unique and still subscribed to
///    the topic (Java `allSubscriptionsEqual`; two claimants of one generation both lose it).
/// 2. Partitions nobody keeps go, most-constrained topics first (fewest subscribers, Java
///    `TopicComparator`), to the subscribed member with the fewest partitions.
/// 3. Balance: while some member can pass a partition, directly or along a chain of members each
///    subscribed to what it receives, to a member with at least two fewer, do so, moving partitions
///    that were not already owned where possible. This ends where Java's `isBalanced` holds (and
///    chains fix cases Java's single moves leave uneven); with equal subscriptions counts differ by
///    at most one, and members keep `min(owned, final count)` of their partitions.
/// 4. Cooperative rule: a partition given to member `m` while another member of the same or a newer
///    generation than `m`'s claim still claims it is moved to [`StickyPlan::transferring`] instead.
pub fn cooperative_sticky_plan(
    members: &[GroupMember],
    partitions_per_topic: &HashMap<String, i32>,
) -> StickyPlan {
    let mut ms: Vec<&GroupMember> = members.iter().collect();
    ms.sort_by(|a, b| java_cmp(&a.member_id, &b.member_id));
    let topics = subscribed_topics(members, partitions_per_topic);
    let counts: Vec<i32> = topics.iter().map(|t| partitions_per_topic[*t]).collect();
    let index: HashMap<&str, usize> = topics.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let subs: Vec<Vec<bool>> = ms
        .iter()
        .map(|m| topics.iter().map(|t| subscribes(m, t)).collect())
        .collect();
    let generation: Vec<i32> = ms
        .iter()
        .map(|m| member_generation(&m.subscription))
        .collect();

    // Every claim on a partition that still exists, whatever the claimant now subscribes to.
    let mut claims: HashMap<(usize, i32), Vec<usize>> = HashMap::new();
    for (mi, m) in ms.iter().enumerate() {
        for tp in &m.subscription.owned_partitions {
            if let Some(&t) = index.get(tp.topic.as_str()) {
                if (0..counts[t]).contains(&tp.partition) {
                    let c = claims.entry((t, tp.partition)).or_default();
                    if !c.contains(&mi) {
                        c.push(mi);
                    }
                }
            }
        }
    }
    let mut held: Vec<BTreeSet<(usize, i32)>> = vec![BTreeSet::new(); ms.len()];
    for (&p, claimants) in &claims {
        let top = claimants
            .iter()
            .map(|&c| generation[c])
            .max()
            .unwrap_or(DEFAULT_GENERATION);
        let mut winners = claimants.iter().filter(|&&c| generation[c] == top);
        if let (Some(&w), None) = (winners.next(), winners.next()) {
            if subs[w][p.0] {
                held[w].insert(p);
            }
        }
    }
    let kept_before = held.clone();

    let subscribers = |t: usize| subs.iter().filter(|s| s[t]).count();
    let mut order: Vec<usize> = (0..topics.len()).collect();
    order.sort_by_key(|&t| (subscribers(t), t));
    let taken: BTreeSet<(usize, i32)> = held.iter().flatten().copied().collect();
    for t in order {
        for p in (0..counts[t]).filter(|&p| !taken.contains(&(t, p))) {
            let to = (0..ms.len())
                .filter(|&m| subs[m][t])
                .min_by_key(|&m| (held[m].len(), m));
            held[to.expect("topic has a subscriber")].insert((t, p));
        }
    }

    // Chains that move only partitions their holder did not own before cost no stickiness, so
    // they are tried first; owned partitions move only when nothing else balances.
    // What each member holds that it did not keep from before, kept alongside `held` so neither
    // the search nor a move scans a member's kept partitions to find them.
    let mut fresh: Vec<BTreeSet<(usize, i32)>> = held
        .iter()
        .zip(&kept_before)
        .map(|(h, k)| h.difference(k).copied().collect())
        .collect();
    while let Some(path) = find_improving_chain(&held, &subs, Some(&fresh))
        .or_else(|| find_improving_chain(&held, &subs, None))
    {
        for w in path.windows(2) {
            let (a, b) = (w[0], w[1]);
            let fresh_one = fresh[a].iter().rev().find(|p| subs[b][p.0]);
            let any = || held[a].iter().rev().find(|p| subs[b][p.0]);
            let p = *fresh_one.or_else(any).expect("edge exists");
            held[a].remove(&p);
            fresh[a].remove(&p);
            held[b].insert(p);
            if !kept_before[b].contains(&p) {
                fresh[b].insert(p);
            }
        }
    }

    let mut plan = StickyPlan {
        assignment: empty_assignment(members),
        transferring: BTreeMap::new(),
    };
    for (m, parts) in held.iter().enumerate() {
        for &(t, p) in parts {
            let tp = TopicPartition::new(topics[t], p);
            let claimants = claims.get(&(t, p)).map_or(&[][..], Vec::as_slice);
            let own_claim = claimants.contains(&m).then_some(generation[m]);
            let must_wait = claimants
                .iter()
                .any(|&c| c != m && own_claim.is_none_or(|g| generation[c] >= g));
            if must_wait {
                plan.transferring.insert(tp, ms[m].member_id.clone());
            } else {
                plan.assignment
                    .get_mut(&ms[m].member_id)
                    .expect("member")
                    .push(tp);
            }
        }
    }
    plan.assignment = sort_lists(plan.assignment);
    plan
}

/// A chain `src → … → dst` of members where each can take a partition from the previous one (it
/// subscribes to a topic the previous one holds) and `dst` has at least two fewer than `src`.
/// Sources are tried from the most loaded; among reachable targets the least loaded, then nearest.
/// With `fresh_only` (per member, what it holds but did not keep from before), a member passes on
/// only those.
///
/// The search walks member → topic → subscriber and expands each topic once per source, so one
/// call costs O(members × topics) time and memory: a member-to-member table would be quadratic in
/// the group's size, which a JoinGroup response of many small members makes huge. Members reached
/// from one member are queued in index order, as a scan of such a table would queue them, so the
/// chains (and the assignment) are the same.
fn find_improving_chain(
    held: &[BTreeSet<(usize, i32)>],
    subs: &[Vec<bool>],
    fresh_only: Option<&[BTreeSet<(usize, i32)>]>,
) -> Option<Vec<usize>> {
    let n = held.len();
    let load = |m: usize| held[m].len();
    let min_load = (0..n).map(load).min()?;
    let max_load = (0..n).map(load).max()?;
    if max_load < min_load + 2 {
        return None;
    }
    let topics = subs.first().map_or(0, Vec::len);
    // Who subscribes to each topic, in member order.
    let mut subscribers: Vec<Vec<usize>> = vec![Vec::new(); topics];
    for (m, row) in subs.iter().enumerate() {
        for (t, _) in row.iter().enumerate().filter(|(_, &s)| s) {
            subscribers[t].push(m);
        }
    }
    // The topics each member could pass on.
    let mut movable: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, parts) in fresh_only.unwrap_or(held).iter().enumerate() {
        for p in parts {
            if movable[u].last() != Some(&p.0) {
                movable[u].push(p.0);
            }
        }
    }
    let mut sources: Vec<usize> = (0..n).collect();
    sources.sort_by_key(|&m| (Reverse(load(m)), m));
    let mut prev = vec![usize::MAX; n];
    let mut dist = vec![usize::MAX; n];
    let mut expanded = vec![false; topics];
    let mut reached = Vec::new();
    for src in sources {
        if load(src) < min_load + 2 {
            break;
        }
        prev.fill(usize::MAX);
        dist.fill(usize::MAX);
        expanded.fill(false);
        dist[src] = 0;
        let mut queue = VecDeque::from([src]);
        let mut best: Option<usize> = None;
        while let Some(u) = queue.pop_front() {
            reached.clear();
            for &t in &movable[u] {
                if std::mem::replace(&mut expanded[t], true) {
                    // Everyone subscribed to `t` was reached from an earlier member.
                    continue;
                }
                for &v in &subscribers[t] {
                    if v != u && dist[v] == usize::MAX {
                        dist[v] = dist[u] + 1;
                        prev[v] = u;
                        reached.push(v);
                    }
                }
            }
            reached.sort_unstable();
            for &v in &reached {
                queue.push_back(v);
                let better = best.is_none_or(|b| (load(v), dist[v]) < (load(b), dist[b]));
                if load(v) + 2 <= load(src) && better {
                    best = Some(v);
                }
            }
        }
        if let Some(mut v) = best {
            let mut path = vec![v];
            while v != src {
                v = prev[v];
                path.push(v);
            }
            path.reverse();
            return Some(path);
        }
    }
    None
}

#[cfg(test)]
#[path = "tests/assignor.rs"]
mod tests;

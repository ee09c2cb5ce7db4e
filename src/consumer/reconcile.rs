//! The [`Consumer`]'s side of a KIP-848 `consumer` group (`group.protocol=consumer`): joining
//! on `subscribe`, and in every `poll` releasing lost partitions and reconciling the assignment
//! the broker sent, with the same [`RebalanceListener`](super::RebalanceListener) semantics as a
//! classic group.
//!
//! Reconciling (Java's `AbstractMembershipManager.maybeReconcile`): the target's topic ids are
//! resolved to names through metadata (a topic not in metadata yet is left for a later poll);
//! partitions no longer assigned are revoked first (committed under auto-commit, then
//! `on_partitions_revoked`, then dropped with their buffered records), the new ones are added
//! (`on_partitions_assigned`; positions from the committed offsets), and the member reports what
//! it owns so that the next heartbeat, sent at once, acknowledges it. The broker hands a revoked
//! partition to another member only after that acknowledgement, so no partition is fetched by two
//! members at once. Partitions of a fenced member, or of one that left after
//! `max.poll.interval.ms`, are released as *lost* (nothing committed, `on_partitions_lost`)
//! before it rejoins.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tracing::{debug, warn};

use super::heartbeat::ConsumerGroup;
use super::offsets::MemberHandle;
use super::Consumer;
use crate::cluster::TopicsQuery;
use crate::error::{Error, Result};
use crate::record::TopicPartition;
use crate::state::consumer_member::{ConsumerMember, IdAssignment};

impl Consumer {
    /// `subscribe` on a `consumer` group: starts the heartbeat task on first use, and hands the
    /// member its (new) subscription, which the next heartbeat carries at once.
    /// With `regex`, the member subscribes to it (the broker resolves it) instead of `topics`.
    pub(super) fn subscribe_consumer_group(
        &mut self,
        group_id: String,
        topics: Vec<String>,
        regex: Option<String>,
    ) {
        let Some(MemberHandle::Consumer(member)) = self.membership.clone() else {
            unreachable!("group.protocol=consumer makes a consumer-protocol member");
        };
        let cluster = self.cluster.clone();
        let backoff = self.config.client.retry_backoff;
        let timeout = self.config.client.request_timeout;
        let group = self
            .consumer_group
            .get_or_insert_with(|| ConsumerGroup::new(cluster, group_id, member, backoff, timeout));
        match regex {
            Some(regex) => group.member().subscribe_pattern(regex),
            None => group.member().subscribe(topics),
        }
        group.wake();
    }

    /// From `poll`: releases lost partitions (then a fenced member rejoins), reports an error the
    /// heartbeat task met, and reconciles a new target assignment. A fatal member's polls all fail
    /// (the first with the error itself), having released its partitions: fetching them on
    /// without heartbeats would read what the group has given another member.
    pub(super) async fn ensure_consumer_group(&mut self) -> Result<()> {
        let Some(group) = &self.consumer_group else {
            return Ok(());
        };
        // The state before the slot: the heartbeat task fills the slot while it holds the
        // member's lock for the move to fatal, so a fatal state read here has its error there.
        let fatal_reason = group.member().fatal_reason().map(str::to_owned);
        let reported = group.take_fatal();
        if group.member().lost_pending() {
            self.release_all(true).await;
            let group = self.consumer_group.as_ref().expect("checked above");
            group.member().on_lost_released();
            group.wake();
        }
        if let Some(e) = reported {
            return Err(e);
        }
        let group = self.consumer_group.as_ref().expect("checked above");
        if let Some(reason) = fatal_reason {
            return Err(Error::Failed(format!(
                "group `{}`: {reason}; the membership cannot recover, create a new consumer",
                self.config.group_id.as_deref().unwrap_or_default()
            )));
        }
        let target = group
            .member()
            .reconcile_target()
            .map(|(epoch, target)| (epoch, target.clone()));
        if let Some((epoch, target)) = target {
            self.reconcile(epoch, target).await;
        }
        Ok(())
    }

    async fn reconcile(&mut self, epoch: i32, target: IdAssignment) {
        // A reconciliation is this protocol's rebalance (Java's rebalance metrics count them).
        let started = tokio::time::Instant::now();
        let (owned_ids, wanted) = self.resolve(&target).await;
        if let Some(group) = &self.consumer_group {
            let mut member = group.member();
            if member.reconciled_since_join() && *member.owned() == owned_ids {
                // Only topics metadata cannot resolve yet differ from what is owned: nothing to
                // revoke or assign, so no listener call and no rebalance counted, at every
                // heartbeat that brings the same target back.
                member.on_reconciled(epoch, owned_ids);
                return;
            }
        }
        let revoked = self.revoke_all_but(&wanted).await;
        let added = self.add_partitions(wanted);
        debug!(
            epoch,
            added = added.len(),
            revoked = revoked.len(),
            "assignment reconciled"
        );
        self.assignment_changed();
        let took = started.elapsed();
        let cells = &self.cluster.pool().metrics().0.consumer;
        cells
            .rebalance_latency
            .record(crate::metrics::registry::nanos(took));
        self.listener.with(|l| l.on_partitions_assigned(&added));
        if let Some(group) = &self.consumer_group {
            group.member().on_reconciled(epoch, owned_ids);
            group.wake();
        }
    }

    /// The target's partitions whose topic id metadata knows, by id and by name. Unknown ids
    /// make metadata be looked up again, at most once per `retry.backoff.ms`. A topic the
    /// member owns keeps the name it was resolved with: metadata may leave it out for a moment
    /// (a topic answered with an error is dropped from the snapshot), and resolving it only
    /// there would revoke partitions the broker still assigns.
    async fn resolve(&mut self, target: &IdAssignment) -> (IdAssignment, BTreeSet<TopicPartition>) {
        let mut snapshot = self.cluster.metadata();
        let cached = std::mem::take(&mut self.owned_topic_names);
        let name_of = |s: &crate::cluster::MetadataSnapshot, id: &[u8; 16]| {
            s.topics
                .values()
                .find(|t| t.id == *id)
                .map(|t| t.name.clone())
                .or_else(|| cached.get(id).cloned())
        };
        let unknown = target.keys().any(|id| name_of(&snapshot, id).is_none());
        let due = self
            .last_id_lookup
            .is_none_or(|at| at.elapsed() >= self.config.client.retry_backoff);
        if unknown && due {
            self.last_id_lookup = Some(Instant::now());
            let topics: Vec<&str> = self.subscription.iter().map(String::as_str).collect();
            // A pattern's topics are known to the broker only: look at every topic.
            let query = if self.pattern.is_some() {
                TopicsQuery::All
            } else {
                TopicsQuery::Some(&topics)
            };
            match self.cluster.refresh_metadata(query).await {
                Ok(fresh) => snapshot = fresh,
                Err(e) => debug!(error = %e, "metadata lookup for assigned topic ids failed"),
            }
        }
        let mut ids = IdAssignment::new();
        let mut names = BTreeSet::new();
        for (id, partitions) in target {
            let Some(topic) = name_of(&snapshot, id) else {
                let looked_up = unknown && due;
                if looked_up && self.unresolved_ids.insert(*id) {
                    warn!(
                        topic_id = %uuid_text(id),
                        "assigned topic id not in metadata even after a lookup; its partitions \
                         are not consumed until it is"
                    );
                } else {
                    debug!("assigned topic id not in metadata yet; reconciling it later");
                }
                continue;
            };
            self.unresolved_ids.remove(id);
            ids.insert(*id, partitions.clone());
            for p in partitions {
                names.insert(TopicPartition::new(&topic, *p));
            }
            self.owned_topic_names.insert(*id, topic);
        }
        (ids, names)
    }
}

/// A topic id as Kafka prints one (URL-safe base64 without padding).
fn uuid_text(id: &[u8; 16]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// A `consumer`-protocol member for a new consumer.
pub(super) fn new_member(config: &super::ConsumerConfig) -> Arc<Mutex<ConsumerMember>> {
    Arc::new(Mutex::new(ConsumerMember::new(
        super::heartbeat::new_member_id(),
        config.group_instance_id.clone(),
        (!config.client_rack.is_empty()).then(|| config.client_rack.clone()),
        config.group_remote_assignor.clone(),
        config.max_poll_interval,
        std::time::Instant::now(),
    )))
}

//! The [`Consumer`]'s side of group membership: subscribing, what a rebalance does to the
//! assignment (revoke, lose, assign, and the [`RebalanceListener`] calls), committing offsets
//! (by hand, auto-commit, or before processing), and leaving on close.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::group::{Group, GroupSettings, JoinOutcome};
use super::offsets::MemberHandle;
use super::{offsets, CommitMode, Consumer, ConsumerRecord, PartitionState};
use crate::error::{Error, Result};
use crate::metrics::registry::nanos;
use crate::producer::ConsumerGroupMetadata;
use crate::record::TopicPartition;
use crate::state::assignor::RebalanceProtocol;
use crate::state::membership::MemberTimers;

/// Java's `KafkaConsumer.close()` bound (`DEFAULT_CLOSE_TIMEOUT_MS`), itself capped by
/// `request.timeout.ms` as Java's `createTimerForRequest` does.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Called inside [`Consumer::poll`] when a rebalance changes the assignment (Java
/// `ConsumerRebalanceListener`). Calls are synchronous and should be quick: a slow callback
/// delays the rebalance for the whole group.
///
/// Under auto-commit, josefk commits the positions of revoked partitions before
/// `on_partitions_revoked`. With manual commits, commit after processing each `poll`'s records
/// (as the examples do) and nothing is left uncommitted when a revocation comes at the next
/// `poll`.
pub trait RebalanceListener: Send {
    /// Partitions this member gives up in an orderly rebalance. The listener has no handle on
    /// the consumer, so unlike Java's it cannot commit here: under auto-commit josefk has
    /// committed their positions just before this call; with manual commits, commit after each
    /// `poll`'s records, so nothing is left uncommitted when a revocation comes.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions newly assigned; the next records come from their committed offsets.
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions that already belong to someone else (the member was removed from the group:
    /// session or poll timeout); committing them would fail. Defaults to
    /// `on_partitions_revoked`, as in Java.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// A commit started by [`Consumer::commit_async`]; resolves to its outcome. Dropping it does not
/// stop the commit.
#[derive(Debug)]
pub struct CommitHandle(tokio::task::JoinHandle<Result<()>>);

impl std::future::Future for CommitHandle {
    type Output = Result<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(Error::Failed(format!("commit task failed: {e}"))))
        })
    }
}

/// The consumer's optional listener. The mutex (never contended: only `&mut Consumer` calls it)
/// keeps the consumer `Sync` without asking listeners to be; the newtype keeps it `Debug`.
#[derive(Default)]
pub(super) struct Listener(Option<std::sync::Mutex<Box<dyn RebalanceListener>>>);

impl Listener {
    pub(super) fn with(&mut self, f: impl FnOnce(&mut dyn RebalanceListener)) {
        if let Some(l) = &mut self.0 {
            f(l.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut());
        }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Listener(set)"
        } else {
            "Listener(none)"
        })
    }
}

impl Consumer {
    /// Joins the consumer group (`group.id`) and consumes `topics`, with partitions assigned by
    /// the group. Replaces any previous subscription; the next `poll` (re)joins. Topics that do
    /// not exist yet, or partitions added later, are assigned after the member notices them
    /// (within `metadata.max.age.ms`) and the group rebalances.
    ///
    /// Fails without `group.id`, or while partitions are assigned by hand.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g").commit_mode(CommitMode::Manual)).await?;
    /// consumer.subscribe(&["orders", "refunds"])?; // joins the group at the next poll
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn subscribe<S: AsRef<str>>(&mut self, topics: &[S]) -> Result<()> {
        let Some(group_id) = self.config.group_id.clone() else {
            return Err(Error::InvalidState(
                "subscribe needs `group.id`; without a group, assign partitions with `assign`"
                    .into(),
            ));
        };
        if !self.subscribed() && !self.assignment.is_empty() {
            return Err(Error::InvalidState(
                "cannot subscribe while partitions are assigned by hand: assign an empty list \
                 first"
                    .into(),
            ));
        }
        if topics.is_empty() {
            return Err(Error::InvalidState(
                "subscribe needs at least one topic; call unsubscribe to leave the group".into(),
            ));
        }
        for t in topics {
            crate::cluster::validate_topic_name(t.as_ref())?;
        }
        let mut sorted: Vec<String> = topics.iter().map(|t| t.as_ref().to_owned()).collect();
        sorted.sort();
        sorted.dedup();
        let had_pattern = self.pattern.take().is_some();
        if self.subscribed() && sorted == self.subscription && !had_pattern {
            return Ok(());
        }
        self.join_group_with(group_id, sorted);
        Ok(())
    }

    /// Makes `topics` the subscription and (re)joins with it at the next poll, starting the
    /// group's tasks on first use.
    pub(super) fn join_group_with(&mut self, group_id: String, sorted: Vec<String>) {
        self.subscription = sorted.clone();
        let membership = match self.membership.clone() {
            Some(MemberHandle::Classic(m)) => m,
            Some(MemberHandle::Consumer(_)) => {
                self.subscribe_consumer_group(group_id, sorted, None);
                return;
            }
            None => unreachable!("a membership exists when group.id is set"),
        };
        let group = self.group.get_or_insert_with(|| {
            Group::new(
                self.cluster.clone(),
                GroupSettings {
                    group_id,
                    instance_id: self.config.group_instance_id.clone(),
                    timers: MemberTimers {
                        session_timeout: self.config.session_timeout,
                        heartbeat_interval: self.config.heartbeat_interval,
                        max_poll_interval: self.config.max_poll_interval,
                    },
                    assignors: self.config.partition_assignment_strategy.clone(),
                    rack: (!self.config.client_rack.is_empty())
                        .then(|| self.config.client_rack.clone()),
                    request_timeout: self.config.client.request_timeout,
                    retry_backoff: self.config.client.retry_backoff,
                },
                membership,
            )
        });
        group.member().request_rejoin("subscription changed");
    }

    /// The subscribed topics (empty when not subscribed). After
    /// [`Consumer::subscribe_pattern`]: on a classic group the topics the pattern matched when
    /// last looked at; on a `consumer` group empty, as the broker resolves the pattern (see
    /// [`Consumer::assignment`] for what it gave this member).
    pub fn subscription(&self) -> &[String] {
        &self.subscription
    }

    /// Sets the listener told about rebalances.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener.0 = Some(std::sync::Mutex::new(Box::new(listener)));
    }

    /// Leaves the group: commits under auto-commit, revokes every partition (telling the
    /// listener), sends LeaveGroup (dynamic members) and forgets the subscription.
    ///
    /// Cancellation: dropping the future may leave the member in the group until its session
    /// times out; the subscription is already gone.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.pattern = None;
        if let Some(mut group) = self.consumer_group.take() {
            self.subscription.clear();
            let lost = group.member().lost_pending();
            self.release_all(lost).await;
            return group.leave().await;
        }
        let Some(mut group) = self.group.take() else {
            return Ok(());
        };
        self.subscription.clear();
        self.release_all(false).await;
        group.leave("unsubscribed").await
    }

    /// Commits under auto-commit (subscribed or, with `group.id`, manually assigned partitions),
    /// leaves the group (a static member stays until its session times out, as Java's default
    /// close does) and closes the consumer.
    ///
    /// Dropping a consumer without `close` leaves like a crashed process: the group moves its
    /// partitions only after `session.timeout.ms`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g").commit_mode(CommitMode::Manual)).await?;
    /// # consumer.subscribe(&["orders"])?;
    /// let _records = consumer.poll(Duration::from_secs(1)).await?;
    /// consumer.close().await?; // commits (auto-commit modes) and leaves the group at once
    /// # Ok(()) }
    /// ```
    ///
    /// Bounded as Java's `close()`: 30 s, and no longer than `request.timeout.ms`, for the
    /// commit, the leave and the last metrics push together. Past it the consumer is closed
    /// anyway and `close` fails with [`Error::Timeout`] (outcome unknown: the commit or the leave
    /// may still have reached the broker); a member that did not leave is dropped by the group
    /// after `session.timeout.ms`.
    ///
    /// Cancellation: a dropped `close` may have committed (auto-commit modes) and may not have
    /// left the group; the group then drops this member after `session.timeout.ms`, as it always
    /// does a static member.
    pub async fn close(mut self) -> Result<()> {
        let telemetry = self.telemetry.take();
        // Only a commit can have been applied without an answer.
        let may_commit = self.membership.is_some()
            && (self.config.commit_mode == CommitMode::AutoAfterPoll
                || !self.background.auto_commits.is_empty());
        let bound = CLOSE_TIMEOUT.min(self.config.client.request_timeout);
        let deadline = crate::clock::from_now(bound);
        let result = match tokio::time::timeout_at(deadline, self.leave_on_close()).await {
            Ok(result) => result,
            Err(_) => {
                warn!(after = ?bound, "consumer close timed out before its last commit and leave were answered");
                Err(Error::Timeout {
                    api: None,
                    broker: None,
                    after: bound,
                    outcome_unknown: may_commit,
                })
            }
        };
        if let Some(telemetry) = telemetry {
            // The last metrics push (KIP-714), after the last commit and the leave.
            telemetry
                .close(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        result
    }

    /// `close`'s group part: the last commit and the leave.
    async fn leave_on_close(mut self) -> Result<()> {
        if let Some(mut group) = self.consumer_group.take() {
            let lost = group.member().lost_pending();
            self.release_all(lost).await;
            return group.leave().await;
        }
        let Some(mut group) = self.group.take() else {
            // Manual assignment with `group.id`: auto-commit's last commit.
            if self.membership.is_some() && self.config.commit_mode == CommitMode::AutoAfterPoll {
                self.commit_changed_positions(None).await?;
            }
            return Ok(());
        };
        let lost = group.member().partitions_lost();
        self.release_all(lost).await;
        group.leave("consumer closed").await
    }

    /// The group identity to pass to
    /// [`Producer::send_offsets_to_transaction`](crate::producer::Producer::send_offsets_to_transaction),
    /// so that the coordinator refuses the offsets if this member has lost its partitions
    /// (KIP-447). `None` without `group.id`.
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let group_id = self.config.group_id.clone()?;
        let (member_id, generation_id, group_instance_id) = self.membership.as_ref()?.identity();
        Some(ConsumerGroupMetadata {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
        })
    }

    /// Commits the current position of every assigned partition (Java `commitSync()`), retrying
    /// coordinator errors until `default.api.timeout.ms`.
    ///
    /// Errors: when the group rebalanced since this member's generation began (the partitions may
    /// now be another member's), the commit fails; the next `poll` rejoins. While this member's
    /// own rebalance is under way (between `poll`s), nothing is sent and the commit fails at once
    /// with a retriable REBALANCE_IN_PROGRESS, as Java's: `poll` to complete the rebalance, then
    /// commit again.
    ///
    /// Cancellation: see the module docs (a commit left in flight is harmless).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g").commit_mode(CommitMode::Manual)).await?;
    /// # consumer.subscribe(&["orders"])?;
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// for record in &records {
    ///     // process(record)
    /// }
    /// consumer.commit().await?; // the offsets after every record poll handed out
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "commit",
        level = "debug",
        skip_all,
        fields(messaging.system = "kafka", messaging.operation.type = "settle"),
        err(level = "debug")
    )]
    pub async fn commit(&mut self) -> Result<()> {
        self.group_id()?;
        let offsets = self.positions();
        self.commit_offsets_map(offsets).await
    }

    /// Starts committing the current positions without waiting (Java `commitAsync()`): the commit
    /// runs as its own task; await the handle for its outcome, or drop it. Commits started one
    /// after another are sent in order, but one retried after a coordinator error may land after
    /// a later one (so may an auto-commit still running under `CommitMode::AutoAfterPoll`):
    /// commit synchronously before closing or on revocation, as with Java.
    pub fn commit_async(&mut self) -> Result<CommitHandle> {
        self.group_id()?;
        let offsets = self.positions();
        self.spawn_commit(offsets)
    }

    /// [`Consumer::commit_offsets`] without waiting, as [`Consumer::commit_async`] does for the
    /// current positions.
    pub fn commit_offsets_async(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<CommitHandle> {
        self.spawn_commit(offsets.iter().cloned().collect())
    }

    fn spawn_commit(&mut self, offsets: BTreeMap<TopicPartition, i64>) -> Result<CommitHandle> {
        let group_id = self.group_id()?.to_owned();
        let cluster = self.cluster.clone();
        let membership = self
            .membership
            .clone()
            .expect("group.id implies membership");
        let timeout = self.config.default_api_timeout;
        Ok(CommitHandle(tokio::spawn(async move {
            if offsets.is_empty() {
                return Ok(());
            }
            offsets::commit(&cluster, &group_id, &membership, &offsets, timeout).await
        })))
    }

    /// Commits `offsets`: for each partition, the offset of the next record to consume (the last
    /// processed record's offset + 1).
    ///
    /// Cancellation: as [`Consumer::commit`].
    #[tracing::instrument(
        name = "commit",
        level = "debug",
        skip_all,
        fields(messaging.system = "kafka", messaging.operation.type = "settle"),
        err(level = "debug")
    )]
    pub async fn commit_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.commit_offsets_map(offsets.iter().cloned().collect())
            .await
    }

    /// The group's committed offsets for `partitions` (`None` where none is), waiting for
    /// transactions still open on them to end (KIP-447).
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let group_id = self.group_id()?;
        let found = offsets::fetch_committed(
            &self.cluster,
            group_id,
            partitions,
            self.config.default_api_timeout,
        )
        .await?;
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), found.get(tp).copied().flatten()))
            .collect())
    }

    /// Moves every assigned partition back to the group's committed offset (or per
    /// `auto.offset.reset` where none is), dropping buffered records: what an exactly-once
    /// application does after aborting a transaction. The lookup happens in the next `poll`.
    pub fn rewind_to_committed(&mut self) -> Result<()> {
        self.group_id()?;
        for state in self.assignment.values_mut() {
            state.position = None;
            state.reset_to = None;
        }
        let partitions: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        for tp in partitions {
            self.await_committed(tp);
        }
        self.buffered.clear();
        Ok(())
    }

    /// Whether the consumer is subscribed to a group (either protocol).
    pub(super) fn subscribed(&self) -> bool {
        self.group.is_some() || self.consumer_group.is_some()
    }

    /// The application polled: the member's `max.poll.interval.ms` clock restarts.
    pub(super) fn on_poll_member(&self) {
        let now = std::time::Instant::now();
        if let Some(group) = &self.group {
            group.member().on_poll(now);
        }
        if let Some(group) = &self.consumer_group {
            group.member().on_poll(now);
        }
    }

    pub(super) fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::InvalidState("offset commits need `group.id`".into()))
    }

    /// Current positions of assigned partitions that have one.
    fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.assignment
            .iter()
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect()
    }

    async fn commit_offsets_map(&mut self, offsets: BTreeMap<TopicPartition, i64>) -> Result<()> {
        // Not overtaken at the coordinator by an auto-commit still running.
        self.settle_auto_commit().await;
        if offsets.is_empty() {
            return Ok(());
        }
        let group_id = self.group_id()?.to_owned();
        let membership = self
            .membership
            .clone()
            .expect("group.id implies membership");
        offsets::commit(
            &self.cluster,
            &group_id,
            &membership,
            &offsets,
            self.config.default_api_timeout,
        )
        .await?;
        self.last_committed.extend(offsets);
        Ok(())
    }

    /// Commits positions that moved since the last commit (of `only` partitions, if given).
    async fn commit_changed_positions(&mut self, only: Option<&[TopicPartition]>) -> Result<()> {
        // Settled first: the auto-commit it may wait for changes what counts as changed.
        self.settle_auto_commit().await;
        let offsets = self.changed_positions(only);
        self.commit_offsets_map(offsets).await
    }

    /// Positions that moved since the last commit (of `only` partitions, if given).
    pub(super) fn changed_positions(
        &self,
        only: Option<&[TopicPartition]>,
    ) -> BTreeMap<TopicPartition, i64> {
        self.positions()
            .into_iter()
            .filter(|(tp, p)| {
                only.is_none_or(|o| o.contains(tp)) && self.last_committed.get(tp) != Some(p)
            })
            .collect()
    }

    /// At-most-once: commit the positions past `records` before handing them out. On failure the
    /// records are un-handed: their partitions seek back so the next `poll` returns them again.
    pub(super) async fn commit_before_processing(
        &mut self,
        records: &[ConsumerRecord],
    ) -> Result<()> {
        let mut first: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in records {
            first
                .entry(TopicPartition::new(&*r.topic, r.partition))
                .or_insert(r.offset);
        }
        let partitions: Vec<TopicPartition> = first.keys().cloned().collect();
        if let Err(e) = self.commit_changed_positions(Some(&partitions)).await {
            for (tp, offset) in first {
                if self.assignment.contains_key(&tp) {
                    self.seek(&tp, offset)?;
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Makes sure the member is in the group with a current assignment, joining if needed.
    /// `Ok(false)` when `deadline` passed first (the join goes on in the background); under the
    /// cooperative protocol a member that keeps partitions gets `Ok(true)` at once and consumes
    /// them while the join runs.
    pub(super) async fn ensure_group(&mut self, deadline: Instant) -> Result<bool> {
        if self.consumer_group.is_some() {
            // KIP-848: nothing waits for a join; poll consumes what the member owns meanwhile.
            self.ensure_consumer_group().await?;
            return Ok(true);
        }
        let Some(group) = &mut self.group else {
            return Ok(true);
        };
        group.ensure_heartbeat();
        if let Some(e) = group.take_fatal() {
            return Err(e);
        }
        if !group.joining() {
            let (needs, lost) = {
                let m = group.member();
                (m.needs_rejoin(), m.partitions_lost())
            };
            if !needs {
                return Ok(true);
            }
            let eager = group.settings.rebalance_protocol() == RebalanceProtocol::Eager;
            if lost || eager {
                self.release_all(lost).await;
            }
            let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            let topics = self.subscription.clone();
            self.group
                .as_mut()
                .expect("checked above")
                .start_join(topics, owned);
        }
        let group = self.group.as_mut().expect("checked above");
        // Cooperative rebalancing (KIP-429): a member keeping partitions goes on consuming them
        // while the join runs, so only look whether it finished.
        let keeps_consuming = group.settings.rebalance_protocol() == RebalanceProtocol::Cooperative
            && !self.assignment.is_empty();
        let wait_until = if keeps_consuming {
            Instant::now()
        } else {
            deadline
        };
        let joined = group.wait_join(wait_until).await;
        let cells = &self.cluster.pool().metrics().0.consumer;
        let took = group.join_started.elapsed();
        let took_ms = took.as_secs_f64() * 1e3;
        match &joined {
            Some(Ok(outcome)) => {
                cells.rebalance_latency.record(nanos(took));
                debug!(
                    group = %group.settings.group_id,
                    generation = outcome.generation,
                    partitions = outcome.assignment.len(),
                    took_ms,
                    "rebalance completed"
                );
            }
            Some(Err(e)) => {
                cells.failed_rebalance_total.fetch_add(1, Relaxed);
                debug!(group = %group.settings.group_id, error = %e, took_ms, "rebalance failed");
            }
            None => {}
        }
        match joined {
            None => Ok(keeps_consuming),
            Some(Err(e)) => Err(e),
            Some(Ok(outcome)) => {
                if group.joined_topics != self.subscription {
                    // subscribe() was called while the join ran.
                    group
                        .member()
                        .request_rejoin("subscription changed during the join");
                }
                // The leader compares with the counts it assigned from: partitions added while
                // the join ran (after the assignment was computed) then still make it rejoin.
                // A follower cannot know them and starts from what it sees now.
                self.group_topic_counts = outcome.assigned_from.as_ref().map(|counts| {
                    self.subscription
                        .iter()
                        .map(|t| (t.clone(), counts.get(t).map_or(0, |n| *n as usize)))
                        .collect()
                });
                self.apply_assignment(outcome).await;
                self.check_subscribed_topics_now().await;
                Ok(true)
            }
        }
    }

    /// Every `metadata.max.age.ms`, looks up the subscribed topics' partition counts; a topic
    /// created or grown since the last join makes the next poll rejoin, so its partitions get
    /// assigned (Java's metadata-change check). Lookup failures are retried at the next check.
    pub(super) async fn check_subscribed_topics(&mut self) {
        if self.last_group_metadata_check.elapsed() >= self.config.client.metadata_max_age {
            self.check_subscribed_topics_now().await;
        }
    }

    async fn check_subscribed_topics_now(&mut self) {
        self.last_group_metadata_check = Instant::now();
        let topics: Vec<&str> = self.subscription.iter().map(String::as_str).collect();
        let snapshot = match self
            .cluster
            .refresh_metadata(crate::cluster::TopicsQuery::Some(&topics))
            .await
        {
            Ok(snapshot) => snapshot,
            Err(e) => {
                debug!(error = %e, "metadata check of subscribed topics failed");
                return;
            }
        };
        let counts: BTreeMap<String, usize> = self
            .subscription
            .iter()
            .map(|t| {
                let n = snapshot
                    .topics
                    .get(t)
                    .map_or(0, |info| info.partitions.len());
                (t.clone(), n)
            })
            .collect();
        match &self.group_topic_counts {
            Some(before) if *before != counts => {
                if let Some(group) = &self.group {
                    group
                        .member()
                        .request_rejoin("subscribed topics' partitions changed");
                }
            }
            _ => {}
        }
        self.group_topic_counts = Some(counts);
    }

    /// Gives up every assigned partition: lost (nothing committed) or revoked (committed first
    /// under auto-commit).
    pub(super) async fn release_all(&mut self, lost: bool) {
        let held: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        if held.is_empty() {
            return;
        }
        if lost {
            debug!(partitions = held.len(), "partitions lost");
            // An auto-commit still retrying would be sent under the member's next identity and
            // could move back offsets the partitions' new owner has committed since.
            self.background.auto_commits.abort_all();
            self.listener.with(|l| l.on_partitions_lost(&held));
        } else {
            debug!(partitions = held.len(), "revoking every partition");
            self.commit_before_revoke(&held).await;
            self.listener.with(|l| l.on_partitions_revoked(&held));
        }
        self.drop_partitions(&held);
    }

    /// Revokes every assigned partition not in `keep` (committed first under auto-commit, then
    /// the listener's `on_partitions_revoked`, then dropped); returns them. Shared by classic
    /// joins and KIP-848 reconciliation, so both revoke the same way.
    pub(super) async fn revoke_all_but(
        &mut self,
        keep: &BTreeSet<TopicPartition>,
    ) -> Vec<TopicPartition> {
        let revoked: Vec<TopicPartition> = self
            .assignment
            .keys()
            .filter(|tp| !keep.contains(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            self.commit_before_revoke(&revoked).await;
            self.listener.with(|l| l.on_partitions_revoked(&revoked));
            self.drop_partitions(&revoked);
        }
        revoked
    }

    /// Assigns the partitions of `wanted` not yet assigned (positions to come from the committed
    /// offsets); returns them.
    pub(super) fn add_partitions(
        &mut self,
        wanted: BTreeSet<TopicPartition>,
    ) -> Vec<TopicPartition> {
        let added: Vec<TopicPartition> = wanted
            .into_iter()
            .filter(|tp| !self.assignment.contains_key(tp))
            .collect();
        for tp in &added {
            self.assignment
                .insert(tp.clone(), PartitionState::default());
            self.await_committed(tp.clone());
        }
        added
    }

    pub(super) async fn commit_before_revoke(&mut self, partitions: &[TopicPartition]) {
        if self.config.commit_mode == CommitMode::AutoAfterPoll {
            if let Err(e) = self.commit_changed_positions(Some(partitions)).await {
                warn!(error = %e, "commit before revoking partitions failed");
            }
        }
    }

    pub(super) fn drop_partitions(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.assignment.remove(tp);
            self.awaiting_committed.remove(tp);
            self.last_committed.remove(tp);
        }
        let assignment = &self.assignment;
        self.buffered.retain(|f| assignment.contains_key(&f.tp));
        self.assignment_changed();
    }

    /// Installs a join's assignment: revokes what a cooperative rebalance took away (and asks for
    /// the follow-up rebalance), adds the new partitions (their positions come from the committed
    /// offsets), and tells the listener.
    async fn apply_assignment(&mut self, outcome: JoinOutcome) {
        let new: BTreeSet<TopicPartition> = outcome.assignment.into_iter().collect();
        let revoked = self.revoke_all_but(&new).await;
        if !revoked.is_empty() {
            if let Some(group) = &self.group {
                group
                    .member()
                    .request_rejoin("partitions revoked in a cooperative rebalance");
            }
        }
        let added = self.add_partitions(new);
        debug!(
            generation = outcome.generation,
            member = %outcome.member_id,
            added = added.len(),
            revoked = revoked.len(),
            "assignment applied"
        );
        self.assignment_changed();
        self.listener.with(|l| l.on_partitions_assigned(&added));
    }
}

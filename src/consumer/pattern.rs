//! Pattern subscriptions ([`Consumer::subscribe_pattern`], Java's `subscribe(Pattern)`).
//!
//! - On a KIP-848 `consumer` group the broker resolves the regex (RE2/J syntax) and resolves
//!   it again after topics are created (at most every 10 s per group) and every
//!   `group.consumer.regex.refresh.interval.ms` (a broker setting, 10 minutes by default); the
//!   member only sends it in its heartbeats (ConsumerGroupHeartbeat v1, Kafka 4.0+).
//! - On a classic group josefk matches the cluster's topic names itself
//!   ([`TopicPattern`](crate::state::topic_pattern::TopicPattern), RE2 syntax, whole-name match,
//!   internal topics excluded): `poll` lists every topic (Metadata for all topics) before the
//!   first join and again every `metadata.max.age.ms`, and when the matched set changed the
//!   member subscribes to the new set and rejoins, so new topics get assigned and deleted ones
//!   revoked.

use tokio::time::Instant;
use tracing::{debug, info};

use super::offsets::MemberHandle;
use super::Consumer;
use crate::cluster::TopicsQuery;
use crate::error::{Error, Result};
use crate::state::topic_pattern::TopicPattern;

/// The pattern a consumer subscribed with.
#[derive(Debug)]
pub(super) struct PatternSubscription {
    /// Compiled for a classic group, which matches topic names itself; `None` on a `consumer`
    /// group, whose broker resolves the pattern.
    classic: Option<TopicPattern>,
    source: String,
    /// Whether topic names were matched at least once (classic).
    resolved: bool,
    /// When the topic list is looked at again (classic).
    next_check: Instant,
}

impl Consumer {
    /// Joins the consumer group (`group.id`) and consumes every topic whose whole name matches
    /// `pattern`, including topics created later; topics deleted later are revoked. Replaces any
    /// previous subscription; the next `poll` (re)joins. Internal topics are never matched.
    ///
    /// - On a `consumer` group (`group.protocol=consumer`, KIP-848) the broker resolves the
    ///   pattern in RE2/J syntax; it resolves it again after topics are created (at most every
    ///   10 s) and every `group.consumer.regex.refresh.interval.ms` (a broker setting, 10
    ///   minutes by default). An invalid pattern fails the next `poll` with
    ///   INVALID_REGULAR_EXPRESSION; a broker older than Kafka 4.0 fails it too.
    /// - On a classic group josefk matches topic names itself in RE2 syntax (the `regex`
    ///   crate; Java's classic consumer uses `java.util.regex`, which also allows backreferences
    ///   and lookaround), looking at the cluster's topics before joining and every
    ///   `metadata.max.age.ms`. An invalid pattern is refused here.
    ///
    /// Fails without `group.id`, while partitions are assigned by hand, or for an empty pattern.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use josefk::consumer::{CommitMode, Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g").commit_mode(CommitMode::Manual)).await?;
    /// consumer.subscribe_pattern("orders-.*")?; // orders-eu, orders-us, and any added later
    /// let records = consumer.poll(Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let Some(group_id) = self.config.group_id.clone() else {
            return Err(Error::InvalidState(
                "subscribe_pattern needs `group.id`; without a group, assign partitions with \
                 `assign`"
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
        if pattern.is_empty() {
            return Err(Error::InvalidArgument(
                "subscribe_pattern needs a non-empty pattern".into(),
            ));
        }
        if self.subscription_pattern() == Some(pattern) {
            return Ok(());
        }
        match self.membership.clone() {
            Some(MemberHandle::Consumer(_)) => {
                self.pattern = Some(PatternSubscription {
                    classic: None,
                    source: pattern.to_owned(),
                    resolved: true,
                    next_check: Instant::now(),
                });
                self.subscription.clear();
                self.subscribe_consumer_group(group_id, Vec::new(), Some(pattern.to_owned()));
            }
            Some(MemberHandle::Classic(_)) => {
                let compiled = TopicPattern::new(pattern).map_err(Error::InvalidArgument)?;
                self.pattern = Some(PatternSubscription {
                    classic: Some(compiled),
                    source: pattern.to_owned(),
                    resolved: false,
                    next_check: Instant::now(),
                });
                // Nothing matched yet: the first poll lists the topics before joining.
                self.join_group_with(group_id, Vec::new());
            }
            None => unreachable!("a membership exists when group.id is set"),
        }
        Ok(())
    }

    /// The pattern subscribed to with [`Consumer::subscribe_pattern`], if any. On a classic
    /// group [`Consumer::subscription`] lists the topics it matched when last looked at.
    pub fn subscription_pattern(&self) -> Option<&str> {
        self.pattern.as_ref().map(|p| p.source.as_str())
    }

    /// From `poll`, on a classic group subscribed with a pattern: matches the cluster's topics
    /// when due, and makes the member rejoin when the matched set changed. `Ok(false)` when
    /// nothing could be matched yet (the poll returns no records; the next one tries again);
    /// a non-retriable failure before the first match is the poll's error.
    pub(super) async fn resolve_pattern(&mut self, deadline: Instant) -> Result<bool> {
        let Some(p) = &self.pattern else {
            return Ok(true);
        };
        if p.classic.is_none() || Instant::now() < p.next_check {
            return Ok(p.resolved);
        }
        let looked_up = self.cluster.refresh_metadata(TopicsQuery::All).await;
        let p = self.pattern.as_mut().expect("checked above");
        let compiled = p.classic.as_ref().expect("checked above");
        let snapshot = match looked_up {
            Ok(snapshot) => snapshot,
            Err(e) if e.is_retriable() || p.resolved => {
                debug!(error = %e, pattern = %p.source, "listing topics for the pattern failed");
                let retry_at = crate::clock::from_now(self.config.client.retry_backoff);
                p.next_check = retry_at;
                if !p.resolved {
                    // Not a busy loop for a caller polling in a loop.
                    tokio::time::sleep_until(retry_at.min(deadline)).await;
                }
                return Ok(p.resolved);
            }
            Err(e) => return Err(e),
        };
        let matched = compiled.select(
            snapshot
                .topics
                .values()
                .map(|t| (t.name.as_str(), t.internal)),
        );
        p.resolved = true;
        p.next_check = crate::clock::from_now(self.config.client.metadata_max_age);
        if matched != self.subscription {
            info!(
                pattern = %p.source,
                topics = ?matched,
                "pattern matches other topics: rejoining"
            );
            self.subscription = matched;
            if let Some(group) = &self.group {
                group
                    .member()
                    .request_rejoin("pattern matches other topics");
            }
        }
        Ok(true)
    }
}

//! Work that `poll` starts but does not wait for past its timeout: position lookups (the group's
//! committed offsets, then `auto.offset.reset`'s ListOffsets) and auto-commits run as tasks the
//! consumer owns, at most one of each kind at a time; whichever `poll` sees one finish applies
//! its answer.
//!
//! Why tasks: awaited inline, a lookup or commit held `poll` for up to `default.api.timeout.ms`
//! (60 s) when the broker was slow or silent, whatever timeout the caller gave; cut off at the
//! caller's deadline instead, it would start over on every `poll` and a `poll(0)` loop would never
//! get a position. As in Java, whose consumer sends these requests and handles their answers in a
//! later `poll`, the work now carries on across polls.
//!
//! Stale answers: a committed-offset lookup started before a partition was assigned again (a
//! rebalance, `rewind_to_committed`) may hold an offset from before a commit made meanwhile, so
//! answers carry the assignment epoch they were asked in and are dropped when it moved. A reset
//! answer only fills positions still missing; a `seek` made meanwhile wins.

use std::collections::{BTreeMap, HashMap};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::offsets;
use super::{AutoOffsetReset, CommitMode, Consumer};
use crate::admin::{Admin, OffsetSpec};
use crate::error::{Error, Result};
use crate::record::IsolationLevel;
use crate::record::TopicPartition;

/// A finished position lookup.
#[derive(Debug)]
pub(super) enum LookupAnswer {
    /// The group's committed offsets (`None`: nothing committed), asked in assignment `epoch`.
    Committed {
        epoch: u64,
        partitions: Vec<TopicPartition>,
        found: Result<HashMap<TopicPartition, Option<i64>>>,
    },
    /// `auto.offset.reset`'s offsets.
    Reset {
        spec: OffsetSpec,
        found: Result<Vec<(TopicPartition, i64)>>,
    },
}

/// A finished auto-commit.
#[derive(Debug)]
pub(super) struct AutoCommitAnswer {
    offsets: BTreeMap<TopicPartition, i64>,
    result: Result<()>,
}

/// The consumer's background work and its bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Background {
    /// At most one position lookup.
    pub(super) lookups: JoinSet<LookupAnswer>,
    /// At most one auto-commit.
    pub(super) auto_commits: JoinSet<AutoCommitAnswer>,
    /// Bumped whenever partitions start waiting for their committed offsets.
    epoch: u64,
    /// After a failed lookup, the next one waits until then (`retry.backoff.ms`).
    pub(super) next_lookup: Option<Instant>,
    /// A lookup's error that retrying cannot mend (authorization, say), for the next `poll` (or
    /// `position`); retriable ones are only retried.
    pub(super) lookup_error: Option<Error>,
}

impl Background {
    /// Whether any background work is running.
    pub(super) fn busy(&self) -> bool {
        !self.lookups.is_empty() || !self.auto_commits.is_empty()
    }
}

impl Consumer {
    /// `tp` gets its position from the group's committed offset (looked up in the background).
    /// A lookup still running was asked before this and cannot be used: it is stopped (it only
    /// reads) rather than waited for, since it may be waiting out a dead owner's transaction.
    pub(super) fn await_committed(&mut self, tp: TopicPartition) {
        self.awaiting_committed.insert(tp);
        self.background.epoch += 1;
        self.background.lookups.abort_all();
    }

    /// Applies lookups and auto-commits that finished, without waiting.
    pub(super) fn take_finished_background(&mut self) {
        while let Some(joined) = self.background.lookups.try_join_next() {
            self.apply_lookup(joined);
        }
        while let Some(joined) = self.background.auto_commits.try_join_next() {
            self.apply_auto_commit(joined);
        }
    }

    /// Starts the next position lookup when partitions lack positions and none is running:
    /// committed offsets first, then `auto.offset.reset` for what has none. Fails at once under
    /// `auto.offset.reset=none` for partitions with nothing to look up.
    pub(super) fn start_position_lookup(&mut self) -> Result<()> {
        let now = Instant::now();
        if !self.background.lookups.is_empty()
            || self.background.next_lookup.is_some_and(|at| at > now)
        {
            return Ok(());
        }
        if !self.awaiting_committed.is_empty() {
            let group_id = self.group_id()?.to_owned();
            let partitions: Vec<TopicPartition> = self.awaiting_committed.iter().cloned().collect();
            let (cluster, timeout) = (self.cluster.clone(), self.config.default_api_timeout);
            let epoch = self.background.epoch;
            self.background.lookups.spawn(async move {
                let found =
                    offsets::fetch_committed(&cluster, &group_id, &partitions, timeout).await;
                LookupAnswer::Committed {
                    epoch,
                    partitions,
                    found,
                }
            });
            return Ok(());
        }
        let missing: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|(_, s)| s.position.is_none() && s.retry.ready(now))
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let spec = match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => OffsetSpec::Earliest,
            AutoOffsetReset::Latest => OffsetSpec::Latest,
            AutoOffsetReset::None => {
                let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
                return Err(Error::InvalidState(format!(
                    "no position for partition(s) {} and `auto.offset.reset` is none: call seek first",
                    names.join(", ")
                )));
            }
        };
        let admin = Admin::from_cluster(self.cluster.clone());
        let isolation = self.config.isolation_level;
        self.background.lookups.spawn(async move {
            let found = list_offsets(&admin, &missing, spec, isolation).await;
            LookupAnswer::Reset { spec, found }
        });
        Ok(())
    }

    /// Waits until the running position lookup finishes (and applies it) or `until` passes.
    pub(super) async fn wait_for_lookup(&mut self, until: Instant) {
        if self.background.lookups.is_empty() {
            tokio::time::sleep_until(until).await;
            return;
        }
        let joined = tokio::select! {
            joined = self.background.lookups.join_next() => joined,
            () = tokio::time::sleep_until(until) => None,
        };
        if let Some(joined) = joined {
            self.apply_lookup(joined);
        }
    }

    pub(super) fn apply_lookup(&mut self, joined: std::result::Result<LookupAnswer, JoinError>) {
        let failed = match joined {
            // Stopped by `await_committed`: the next lookup asks again.
            Err(e) if e.is_cancelled() => None,
            Err(e) => Some(Error::Failed(format!("position lookup task failed: {e}"))),
            Ok(LookupAnswer::Committed { epoch, .. }) if epoch != self.background.epoch => {
                debug!("committed offsets asked before the assignment changed: asking again");
                None
            }
            Ok(LookupAnswer::Committed {
                partitions, found, ..
            }) => match found {
                Err(e) => Some(e),
                Ok(found) => {
                    self.apply_committed(partitions, &found);
                    None
                }
            },
            Ok(LookupAnswer::Reset { spec, found }) => match found {
                Err(e) => Some(e),
                Ok(found) => {
                    self.apply_reset(spec, found);
                    None
                }
            },
        };
        match failed {
            None => self.background.next_lookup = None,
            Some(e) => {
                let retry = self.config.client.retry_backoff;
                self.background.next_lookup = Some(crate::clock::from_now(retry));
                if e.is_retriable() {
                    // As Java's offset reset: retried after the backoff, not thrown from poll
                    // (a caller's own timeout still ends `position`).
                    debug!(error = %e, "position lookup failed; asking again after the backoff");
                } else {
                    warn!(error = %e, "position lookup failed");
                    self.background.lookup_error.get_or_insert(e);
                }
            }
        }
    }

    fn apply_committed(
        &mut self,
        partitions: Vec<TopicPartition>,
        found: &HashMap<TopicPartition, Option<i64>>,
    ) {
        for tp in partitions {
            if !self.awaiting_committed.remove(&tp) {
                // Seeked or revoked meanwhile.
                continue;
            }
            let committed = found.get(&tp).copied().flatten();
            if let (Some(offset), Some(state)) = (committed, self.assignment.get_mut(&tp)) {
                if state.position.is_some() {
                    continue;
                }
                debug!(%tp, offset, "position from committed offset");
                state.position = Some(offset);
                state.reset_to = None;
                self.last_committed.insert(tp, offset);
            }
        }
    }

    fn apply_reset(&mut self, spec: OffsetSpec, found: Vec<(TopicPartition, i64)>) {
        let (initial, max) = (
            self.config.client.retry_backoff,
            self.config.client.retry_backoff_max,
        );
        for (tp, offset) in found {
            if self.awaiting_committed.contains(&tp) {
                // Assigned again meanwhile: its committed offset comes first.
                continue;
            }
            let Some(state) = self.assignment.get_mut(&tp) else {
                continue;
            };
            if state.position.is_some() {
                continue;
            }
            if offset < 0 {
                // No offset known (-1, UNKNOWN_OFFSET) though no error: like Java's OffsetFetcher,
                // the partition stays without a position and is asked again later. Taken as the
                // position, the fetch from it would be answered OFFSET_OUT_OF_RANGE and reset
                // again, round after round.
                let failures = state.retry.failed(Instant::now(), initial, max);
                debug!(%tp, offset, failures, "ListOffsets answered no offset; reset backs off");
                continue;
            }
            debug!(%tp, offset, ?spec, "position reset");
            state.position = Some(offset);
            state.reset_to = Some(offset);
        }
    }

    /// Auto-commit, from `poll`: the positions reached by earlier polls, once per interval, as a
    /// task (Java's auto-commit is asynchronous too); one still running skips this interval.
    /// Failures are logged; the next interval retries.
    ///
    /// `poll` takes finished work in first ([`Consumer::take_finished_background`]), so a finished
    /// auto-commit does not count as running.
    pub(super) fn maybe_auto_commit(&mut self) {
        if self.config.commit_mode != CommitMode::AutoAfterPoll
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
            || !self.background.auto_commits.is_empty()
        {
            return;
        }
        self.last_auto_commit = Instant::now();
        let offsets = self.changed_positions(None);
        let (Some(group_id), Some(membership)) =
            (self.config.group_id.clone(), self.membership.clone())
        else {
            return;
        };
        if offsets.is_empty() {
            return;
        }
        let (cluster, timeout) = (self.cluster.clone(), self.config.default_api_timeout);
        self.background.auto_commits.spawn(async move {
            let result = offsets::commit(&cluster, &group_id, &membership, &offsets, timeout).await;
            AutoCommitAnswer { offsets, result }
        });
    }

    pub(super) fn apply_auto_commit(
        &mut self,
        joined: std::result::Result<AutoCommitAnswer, JoinError>,
    ) {
        match joined {
            Ok(AutoCommitAnswer {
                offsets,
                result: Ok(()),
            }) => {
                // Partitions revoked meanwhile keep no entry (it would be stale if they came back).
                let assigned = &self.assignment;
                self.last_committed.extend(
                    offsets
                        .into_iter()
                        .filter(|(tp, _)| assigned.contains_key(tp)),
                );
            }
            // A rebalance under way refuses commits until it completes; the next interval
            // commits the same positions.
            Ok(AutoCommitAnswer { result: Err(e), .. }) if e.is_retriable() => {
                debug!(error = %e, "auto-commit failed; the next one tries again");
            }
            Ok(AutoCommitAnswer { result: Err(e), .. }) => warn!(error = %e, "auto-commit failed"),
            Err(e) => warn!(error = %e, "auto-commit task failed"),
        }
    }

    /// Waits for an auto-commit still running, so a commit made now cannot be overtaken by it at
    /// the coordinator (which would move the committed offsets back). Bounded by the
    /// auto-commit's own `default.api.timeout.ms`.
    pub(super) async fn settle_auto_commit(&mut self) {
        while let Some(joined) = self.background.auto_commits.join_next().await {
            self.apply_auto_commit(joined);
        }
    }
}

/// ListOffsets for `partitions`; the admin call's own deadline is the consumer's
/// `default.api.timeout.ms` (`Consumer::connect` gives it to the cluster's config).
pub(super) async fn list_offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
    isolation: IsolationLevel,
) -> Result<Vec<(TopicPartition, i64)>> {
    let specs: Vec<(TopicPartition, OffsetSpec)> =
        partitions.iter().map(|tp| (tp.clone(), spec)).collect();
    let answers = admin.list_offsets(&specs, isolation).await?;
    Ok(answers.into_iter().map(|(tp, o)| (tp, o.offset)).collect())
}

//! One incremental fetch session with one broker (KIP-227), as an IO-free state machine: what the
//! broker remembers of this consumer's fetch, and what the next Fetch request must say.
//!
//! The first request is *full*: every partition, session id 0, epoch 0, asking the broker to
//! create a session. If it does (a non-zero session id in the answer), later requests are
//! *incremental*: only partitions that are new or whose fetch parameters changed (offset, leader
//! epoch, max bytes) are sent, partitions no longer wanted are listed as forgotten, and the rest
//! stay in the session implicitly. The broker in turn answers only for partitions with something
//! to say. Each incremental request carries the next epoch; an answer of
//! FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH, or any failure after which the
//! client cannot know whether the broker saw the epoch, starts over with a full request (the Java
//! client's `FetchSessionHandler`).
//!
//! The broker updates its cached fetch offsets only from requests, so a partition whose position
//! moved is sent again; one whose position did not move (nothing new arrived) costs nothing.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::record::TopicPartition;

/// What the broker needs to know to fetch one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPartition {
    /// The offset to fetch from.
    pub fetch_offset: i64,
    /// The leader epoch the client knows (for fencing stale leaders).
    pub leader_epoch: i32,
    /// `max.partition.fetch.bytes`.
    pub max_bytes: i32,
}

/// The session fields and partitions of the next Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The session id (0 for a full request creating a session).
    pub session_id: i32,
    /// The session epoch (0 for a full request).
    pub epoch: i32,
    /// Whether this request lists every wanted partition.
    pub full: bool,
    /// Partitions to send with their parameters.
    pub to_send: Vec<(TopicPartition, SessionPartition)>,
    /// Partitions to drop from the session.
    pub to_forget: Vec<TopicPartition>,
}

/// Counters of what incremental fetch sessions (KIP-227) saved, from
/// `Consumer::fetch_session_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchSessionStats {
    /// Full requests built.
    pub full_requests: u64,
    /// Incremental requests built.
    pub incremental_requests: u64,
    /// Partitions written into requests.
    pub partitions_sent: u64,
    /// Partitions fetched without being written (implicit in an incremental request).
    pub partitions_implicit: u64,
}

/// One broker's fetch session. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct FetchSession {
    session_id: i32,
    /// 0 means the next request is full.
    next_epoch: i32,
    /// What the broker has in the session.
    partitions: BTreeMap<TopicPartition, SessionPartition>,
    /// The request in flight: whether it was full, and the partitions it makes the session hold.
    pending: Option<(bool, BTreeMap<TopicPartition, SessionPartition>)>,
    stats: FetchSessionStats,
}

impl FetchSession {
    /// A session not yet created.
    #[cfg(test)]
    pub fn new() -> Self {
        FetchSession::default()
    }

    /// The broker's session id (0 when none).
    #[cfg(test)]
    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// The counters.
    pub fn stats(&self) -> FetchSessionStats {
        self.stats
    }

    /// The next request for fetching exactly `wanted`. Only one request may be in flight per
    /// session: the answer (or failure) must be reported before the next `build`.
    pub fn build(&mut self, wanted: &BTreeMap<TopicPartition, SessionPartition>) -> SessionRequest {
        let request = if self.session_id == 0 || self.next_epoch == 0 {
            SessionRequest {
                session_id: 0,
                epoch: 0,
                full: true,
                to_send: wanted.iter().map(|(tp, p)| (tp.clone(), *p)).collect(),
                to_forget: Vec::new(),
            }
        } else {
            SessionRequest {
                session_id: self.session_id,
                epoch: self.next_epoch,
                full: false,
                to_send: wanted
                    .iter()
                    .filter(|(tp, p)| self.partitions.get(*tp) != Some(*p))
                    .map(|(tp, p)| (tp.clone(), *p))
                    .collect(),
                to_forget: self
                    .partitions
                    .keys()
                    .filter(|tp| !wanted.contains_key(*tp))
                    .cloned()
                    .collect(),
            }
        };
        if request.full {
            self.stats.full_requests += 1;
        } else {
            self.stats.incremental_requests += 1;
        }
        self.stats.partitions_sent += request.to_send.len() as u64;
        self.stats.partitions_implicit += (wanted.len() - request.to_send.len()) as u64;
        self.pending = Some((request.full, wanted.clone()));
        request
    }

    /// The broker answered the request in flight with top-level `error` (None for success) and
    /// `session_id`.
    pub fn on_response(&mut self, error: Option<ResponseError>, session_id: i32) {
        let Some((full, partitions)) = self.pending.take() else {
            return;
        };
        if error.is_some() {
            // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, or an error that leaves
            // the session's state unknown: start over.
            self.reset();
            return;
        }
        if full {
            if session_id == 0 {
                // The broker's session cache is full: fetch sessionless, asking again each time.
                self.reset();
                return;
            }
            self.session_id = session_id;
            self.next_epoch = 1;
        } else {
            if session_id != self.session_id {
                // An incremental answer from another session (as Java's FetchSessionHandler
                // checks): which partitions that session holds is unknown, so start over.
                self.reset();
                return;
            }
            self.next_epoch = if self.next_epoch == i32::MAX {
                1
            } else {
                self.next_epoch + 1
            };
        }
        self.partitions = partitions;
    }

    /// The request in flight failed without an answer (connection lost, timeout): the broker may
    /// or may not have moved to the next epoch, so start over.
    pub fn on_failure(&mut self) {
        self.pending = None;
        self.reset();
    }

    fn reset(&mut self) {
        self.session_id = 0;
        self.next_epoch = 0;
        self.partitions.clear();
    }
}

#[cfg(test)]
#[path = "tests/fetch_session.rs"]
mod tests;

//! One deadline per public [`Admin`] call, as Java's admin client bounds each call by its
//! `timeoutMs` (by default `default.api.timeout.ms`): every lookup, retry, backoff and wait of the
//! call runs under it, and when it passes the call fails with [`Error::Timeout`]. Each request
//! inside is still bounded by `request.timeout.ms`.
//!
//! The retry loops of the calls therefore keep no bound of their own: a broker that keeps
//! answering a retriable error is asked again after each backoff until the deadline ends the call.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Admin;
use crate::cluster::MetadataSnapshot;
use crate::error::{ApiKey, BrokerRef, Error, Result};
use crate::net::Connection;
use crate::protocol::codec::ApiRequest;

/// One public call: its deadline, and what the timeout error says when it passes.
#[derive(Debug)]
pub(super) struct Call {
    at: Instant,
    after: Duration,
    /// The API the timeout error names: the call's own, or what it waits for once its change is
    /// done (then the change is known to have been applied).
    api: Mutex<ApiKey>,
    /// Requests that change something, sent and not yet answered (a dropped send stays counted).
    in_flight: AtomicUsize,
    /// A request that changes something failed without its answer (connection lost after sending).
    unanswered: AtomicBool,
    /// The broker of the last request that changes something.
    broker: Mutex<Option<BrokerRef>>,
}

impl Call {
    fn new(api: kafka_protocol::messages::ApiKey, after: Duration) -> Call {
        Call {
            at: crate::clock::from_now(after),
            after,
            api: Mutex::new(ApiKey::from_protocol(api)),
            in_flight: AtomicUsize::new(0),
            unanswered: AtomicBool::new(false),
            broker: Mutex::new(None),
        }
    }

    /// Runs the call's body, ending it with [`Error::Timeout`] at the deadline.
    pub(super) async fn run<T>(&self, body: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout_at(self.at, body).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.at
    }

    /// What is left of the call's time.
    pub(super) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The `timeout_ms` of a request the broker works on for a while (CreateTopics, DeleteTopics,
    /// ...): `request.timeout.ms`, or what is left of the call if less, as Java sends.
    pub(super) fn broker_timeout_ms(&self, request_timeout: Duration) -> i32 {
        let ms = self.remaining().min(request_timeout).as_millis().max(1);
        ms.try_into().unwrap_or(i32::MAX)
    }

    /// The call's change was applied (an earlier attempt lost on the way no longer matters); a
    /// timeout from here on names `api`, what it waits for, and its outcome is known.
    pub(super) fn waiting_for(&self, api: kafka_protocol::messages::ApiKey) {
        *self.api.lock().expect("call lock poisoned") = ApiKey::from_protocol(api);
        self.unanswered.store(false, Ordering::SeqCst);
    }

    /// [`Connection::send`], remembering a request that changes something until its answer comes.
    pub(super) async fn send<R: ApiRequest>(
        &self,
        conn: &Connection,
        request: &R,
    ) -> Result<R::Response> {
        let version = conn.version_for::<R>()?;
        self.send_version(conn, request, version).await
    }

    /// [`Call::send`] at `version`.
    pub(super) async fn send_version<R: ApiRequest>(
        &self,
        conn: &Connection,
        request: &R,
        version: i16,
    ) -> Result<R::Response> {
        if ApiKey::from_protocol(R::KEY).only_reads() {
            return conn.send_version(request, version, None).await;
        }
        *self.broker.lock().expect("call lock poisoned") = Some(conn.broker().clone());
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = conn.send_version(request, version, None).await;
        // Not reached when the deadline drops the send: the request then stays unanswered.
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if result.as_ref().is_err_and(Error::outcome_unknown) {
            self.unanswered.store(true, Ordering::SeqCst);
        }
        result
    }

    fn timed_out(&self) -> Error {
        let outcome_unknown =
            self.in_flight.load(Ordering::SeqCst) > 0 || self.unanswered.load(Ordering::SeqCst);
        Error::Timeout {
            api: Some(*self.api.lock().expect("call lock poisoned")),
            broker: if outcome_unknown {
                self.broker.lock().expect("call lock poisoned").clone()
            } else {
                None
            },
            after: self.after,
            outcome_unknown,
        }
    }
}

impl Admin {
    /// A new call of `api` under `default.api.timeout.ms`.
    pub(super) fn call(&self, api: kafka_protocol::messages::ApiKey) -> Call {
        Call::new(api, self.cluster.config().default_api_timeout)
    }

    /// Metadata in which every topic of `topics` exists with a leader for each partition, waiting
    /// (and retrying failed lookups) until the call's deadline ends it.
    pub(super) async fn topics_ready(
        &self,
        call: &Call,
        topics: &[&str],
    ) -> Result<Arc<MetadataSnapshot>> {
        let mut backoff = self.cluster.retry_backoff();
        loop {
            match self.cluster.wait_for_topics(topics, call.remaining()).await {
                // Only reads: a Metadata request that went unanswered is asked again too.
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, ?topics, "topics not ready; waiting on");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }
}

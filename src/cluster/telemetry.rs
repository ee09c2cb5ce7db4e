//! KIP-714 client metrics push: one task per client drives [`crate::state::telemetry`] with
//! GetTelemetrySubscriptions and PushTelemetry on a control connection, pushing the client's
//! [`Metric`]s as OTLP (`metrics::otlp`) at the interval and with the prefixes the broker's
//! client-metrics subscription names.
//!
//! On with `enable.metrics.push=true` (Java's default). A broker that does not advertise the
//! telemetry APIs (Kafka before 3.7, or a broker with no client-telemetry plugin) turns the push
//! off for the client's life, with a `debug` line. Closing the client ([`TelemetryHandle::close`],
//! or dropping the handle) sends one last push with `terminating=true` when a subscription was in
//! force, then the task ends.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, GetTelemetrySubscriptionsRequest, PushTelemetryRequest};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use super::Cluster;
use crate::metrics::otlp::{self, LastValues, Payload};
use crate::metrics::Metric;
use crate::net::Lane;
use crate::protocol::compression::Compression;
use crate::state::telemetry::{Next, SubscriptionAnswer, Telemetry};

/// A client's side of its telemetry task: closing it (or dropping it) starts the terminating push.
#[derive(Debug)]
pub(crate) struct TelemetryHandle {
    close: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

impl TelemetryHandle {
    /// Asks the task to send its terminating push and waits, at most `timeout`, for it to end.
    ///
    /// Cancellation: dropping the future leaves the task finishing its terminating push alone.
    pub(crate) async fn close(&self, timeout: Duration) {
        self.close.send_replace(true);
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(timeout, done.wait_for(|d| *d)).await;
    }
}

/// Starts the telemetry task of the client using `cluster`; `snapshot` returns the client's
/// metrics (`None` once the client is gone). `None` when `enable.metrics.push` is off.
pub(crate) fn spawn(
    cluster: Cluster,
    snapshot: impl Fn() -> Option<Vec<Metric>> + Send + 'static,
) -> Option<TelemetryHandle> {
    if !cluster.config().metrics_push {
        return None;
    }
    let (close, close_rx) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);
    tokio::spawn(async move {
        run(cluster, snapshot, close_rx).await;
        done_tx.send_replace(true);
    });
    Some(TelemetryHandle { close, done })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn run(
    cluster: Cluster,
    snapshot: impl Fn() -> Option<Vec<Metric>>,
    mut close: watch::Receiver<bool>,
) {
    let start_ns = now_ns();
    let mut machine = Telemetry::new(start_ns ^ (std::process::id() as u64).rotate_left(32));
    let mut last = LastValues::default();
    let client_id = cluster.config().client_id.clone();
    let mut closing = false;
    loop {
        if !closing && *close.borrow() {
            closing = true;
            machine.close();
        }
        match machine.next(Instant::now().into_std()) {
            Next::Stop | Next::AwaitAnswer => break,
            Next::WaitUntil(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(Instant::from_std(at)) => {}
                    // A dropped handle closes too.
                    _ = close.changed() => {
                        closing = true;
                        machine.close();
                    }
                }
            }
            Next::GetSubscriptions { client_instance_id } => {
                let conn = match cluster.any_connection(Lane::Control).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        debug!(error = %e, "telemetry: no broker for GetTelemetrySubscriptions");
                        machine.on_failed(Instant::now().into_std(), true);
                        continue;
                    }
                };
                if conn
                    .versions()
                    .broker_range(ApiKey::GetTelemetrySubscriptions)
                    .is_none()
                {
                    // Asked again after the default interval, as Java does: in a cluster
                    // part-way through enabling a metrics plugin another broker may take it.
                    debug!(
                        broker = %conn.broker(),
                        "telemetry: the broker does not accept client metrics (KIP-714); asking again later"
                    );
                    machine.on_failed(Instant::now().into_std(), true);
                    continue;
                }
                let request = GetTelemetrySubscriptionsRequest::default()
                    .with_client_instance_id(uuid::Uuid::from_bytes(client_instance_id));
                match conn.send(&request).await {
                    Ok(r) => {
                        let answer = SubscriptionAnswer {
                            error_code: r.error_code,
                            client_instance_id: *r.client_instance_id.as_bytes(),
                            subscription_id: r.subscription_id,
                            accepted_compression_types: r.accepted_compression_types,
                            push_interval_ms: r.push_interval_ms,
                            telemetry_max_bytes: r.telemetry_max_bytes,
                            delta_temporality: r.delta_temporality,
                            requested_metrics: r
                                .requested_metrics
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                        };
                        debug!(
                            error_code = answer.error_code,
                            subscription_id = answer.subscription_id,
                            push_interval_ms = answer.push_interval_ms,
                            requested = ?answer.requested_metrics,
                            "telemetry: subscription"
                        );
                        if machine
                            .on_subscriptions(Instant::now().into_std(), answer)
                            .reset_last_values
                        {
                            last.clear();
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "telemetry: GetTelemetrySubscriptions failed");
                        machine.on_failed(Instant::now().into_std(), true);
                    }
                }
            }
            Next::Push { terminating } => {
                let metrics = match snapshot() {
                    Some(metrics) => metrics,
                    None if terminating => Vec::new(),
                    None => {
                        // The client is gone without closing: end with a terminating push.
                        machine.on_failed(Instant::now().into_std(), true);
                        closing = true;
                        machine.close();
                        continue;
                    }
                };
                let outcome = push(&cluster, &machine, &metrics, &mut last, terminating, {
                    Payload {
                        client_id: &client_id,
                        start_ns,
                        now_ns: now_ns(),
                        delta: machine.subscription().is_some_and(|s| s.delta_temporality),
                    }
                })
                .await;
                let now = Instant::now().into_std();
                match outcome {
                    Ok(code) => machine.on_push(now, code),
                    Err(e) => {
                        debug!(error = %e, terminating, "telemetry: PushTelemetry failed");
                        machine.on_failed(now, true);
                    }
                }
            }
        }
    }
    debug!("telemetry: task ended");
}

/// Encodes, compresses and sends one push; returns the answer's error code.
async fn push(
    cluster: &Cluster,
    machine: &Telemetry,
    metrics: &[Metric],
    last: &mut LastValues,
    terminating: bool,
    payload: Payload<'_>,
) -> crate::Result<i16> {
    let Some(subscription) = machine.subscription() else {
        return Ok(0);
    };
    let (encoded, count) = otlp::encode(
        metrics,
        |name| subscription.selector.selects(name),
        &payload,
        last,
    );
    let mut codec = machine.compression(|id| Compression::from_id(i16::from(id)).is_ok());
    let mut body = Bytes::from(encoded.clone());
    if codec != 0 {
        let mut out = BytesMut::new();
        match Compression::from_id(i16::from(codec)).map(|c| c.compress(&encoded, &mut out)) {
            Ok(Ok(())) => body = out.freeze(),
            _ => codec = 0,
        }
    }
    let request = PushTelemetryRequest::default()
        .with_client_instance_id(uuid::Uuid::from_bytes(subscription.client_instance_id))
        .with_subscription_id(subscription.subscription_id)
        .with_terminating(terminating)
        .with_compression_type(codec)
        .with_metrics(body.clone());
    let conn = cluster.any_connection(Lane::Control).await?;
    let response = conn.send(&request).await?;
    debug!(
        metrics = count,
        bytes = body.len(),
        compression = codec,
        terminating,
        error_code = response.error_code,
        "telemetry: pushed"
    );
    Ok(response.error_code)
}

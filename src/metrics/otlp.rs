//! KIP-714 payloads: a client's [`Metric`]s named as the KIP says (`org.apache.kafka.<group>.<name>`)
//! and encoded as an OpenTelemetry `MetricsData` protobuf message (opentelemetry-proto
//! `metrics/v1/metrics.proto`), by hand: the handful of message types needed do not justify a
//! protobuf crate or a build-time code generator.
//!
//! `*-total` counters become monotonic `Sum`s (cumulative since the client started, or deltas since
//! the last push when the subscription asks for delta temporality); everything else a `Gauge`.

use std::collections::HashMap;

use super::export::{Metric, MetricKind};

/// The telemetry name of a Java metric (Java's `TelemetryMetricNamingConvention`): lower case,
/// dashes become dots, `.metrics` is dropped from the group. `producer-topic-metrics` /
/// `record-send-total` → `org.apache.kafka.producer.topic.record.send.total`.
pub fn telemetry_name(group: &str, name: &str) -> String {
    let group = group.to_ascii_lowercase().replace('-', ".");
    let group = group.replace(".metrics", "");
    format!(
        "org.apache.kafka.{group}.{}",
        name.to_ascii_lowercase().replace('-', ".")
    )
}

/// A tag name in telemetry form: snake case (`node-id` → `node_id`).
fn attribute_name(tag: &str) -> String {
    tag.to_ascii_lowercase().replace('-', "_")
}

/// The values of the counters last pushed, for delta temporality: (telemetry name, attributes) →
/// (value, when, in ns since the epoch).
#[derive(Debug, Default)]
pub struct LastValues(HashMap<SeriesKey, (f64, u64)>);

/// A series: telemetry name and attributes.
type SeriesKey = (String, Vec<(String, String)>);

impl LastValues {
    /// Forgets every value (the subscription's temporality changed).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// What [`encode`] needs besides the metrics.
#[derive(Debug)]
pub struct Payload<'a> {
    /// The client's `client.id` (a resource attribute; Java leaves it off each point too).
    pub client_id: &'a str,
    /// When the client started, ns since the Unix epoch: the start of cumulative sums.
    pub start_ns: u64,
    /// Now, ns since the Unix epoch.
    pub now_ns: u64,
    /// Deltas (true) or cumulative values (false).
    pub delta: bool,
}

/// Encodes the metrics `selects` accepts (by telemetry name) as `MetricsData`; updates `last` with
/// the counters' values. Returns the bytes and how many metrics went in.
pub fn encode(
    metrics: &[Metric],
    selects: impl Fn(&str) -> bool,
    payload: &Payload<'_>,
    last: &mut LastValues,
) -> (Vec<u8>, usize) {
    let mut scope = Vec::new();
    // InstrumentationScope { name = 1 }
    let mut scope_id = Vec::new();
    string_field(&mut scope_id, 1, "josefk");
    message_field(&mut scope, 1, &scope_id);
    let mut count = 0;
    for m in metrics {
        let name = telemetry_name(m.group, m.name);
        if !selects(&name) {
            continue;
        }
        let attributes: Vec<(String, String)> = m
            .tags
            .iter()
            .filter(|(k, _)| *k != "client-id")
            .map(|(k, v)| (attribute_name(k), v.clone()))
            .collect();
        let mut point = Vec::new();
        for (k, v) in &attributes {
            message_field(&mut point, 7, &key_value(k, v));
        }
        let data = match m.kind {
            MetricKind::Counter => {
                let (start, value) = if payload.delta {
                    let previous = last
                        .0
                        .insert((name.clone(), attributes), (m.value, payload.now_ns));
                    match previous {
                        Some((value, at)) => (at, m.value - value),
                        None => (payload.start_ns, m.value),
                    }
                } else {
                    (payload.start_ns, m.value)
                };
                number_point_times(&mut point, start, payload.now_ns, value);
                // Sum { data_points = 1, aggregation_temporality = 2, is_monotonic = 3 }
                let mut sum = Vec::new();
                message_field(&mut sum, 1, &point);
                varint_field(&mut sum, 2, if payload.delta { 1 } else { 2 });
                varint_field(&mut sum, 3, 1);
                (7, sum)
            }
            MetricKind::Gauge => {
                number_point_times(&mut point, 0, payload.now_ns, m.value);
                // Gauge { data_points = 1 }
                let mut gauge = Vec::new();
                message_field(&mut gauge, 1, &point);
                (5, gauge)
            }
        };
        // Metric { name = 1, gauge = 5 | sum = 7 }
        let mut metric = Vec::new();
        string_field(&mut metric, 1, &name);
        message_field(&mut metric, data.0, &data.1);
        // ScopeMetrics { metrics = 2 }
        message_field(&mut scope, 2, &metric);
        count += 1;
    }
    // Resource { attributes = 1 }
    let mut resource = Vec::new();
    message_field(&mut resource, 1, &key_value("client_id", payload.client_id));
    message_field(
        &mut resource,
        1,
        &key_value("client_software_name", "josefk"),
    );
    // ResourceMetrics { resource = 1, scope_metrics = 2 }
    let mut resource_metrics = Vec::new();
    message_field(&mut resource_metrics, 1, &resource);
    message_field(&mut resource_metrics, 2, &scope);
    // MetricsData { resource_metrics = 1 }
    let mut out = Vec::new();
    message_field(&mut out, 1, &resource_metrics);
    (out, count)
}

/// NumberDataPoint's times (fixed64 2 and 3; a zero start is left out) and `as_double` (4).
fn number_point_times(point: &mut Vec<u8>, start_ns: u64, now_ns: u64, value: f64) {
    if start_ns != 0 {
        tag(point, 2, 1);
        point.extend_from_slice(&start_ns.to_le_bytes());
    }
    tag(point, 3, 1);
    point.extend_from_slice(&now_ns.to_le_bytes());
    tag(point, 4, 1);
    point.extend_from_slice(&value.to_le_bytes());
}

/// KeyValue { key = 1, value = 2: AnyValue { string_value = 1 } }.
fn key_value(key: &str, value: &str) -> Vec<u8> {
    let mut any = Vec::new();
    string_field(&mut any, 1, value);
    let mut kv = Vec::new();
    string_field(&mut kv, 1, key);
    message_field(&mut kv, 2, &any);
    kv
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    varint(out, v);
}

fn message_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn string_field(out: &mut Vec<u8>, field: u32, s: &str) {
    message_field(out, field, s.as_bytes());
}

#[cfg(test)]
mod tests;

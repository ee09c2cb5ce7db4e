//! The payload decodes as `MetricsData` with the KIP's names, the selected metrics only, and the
//! temporality asked for (a small protobuf reader stands in for the OTLP classes).

use super::*;

#[derive(Debug, Clone)]
enum V {
    Varint(u64),
    Fixed64(u64),
    Bytes(Vec<u8>),
}

/// Splits one protobuf message into (field number, value); panics on malformed input.
fn fields(mut b: &[u8]) -> Vec<(u32, V)> {
    fn read_varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = read_varint(&mut b);
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => V::Varint(read_varint(&mut b)),
            1 => {
                let v = u64::from_le_bytes(b[..8].try_into().unwrap());
                b = &b[8..];
                V::Fixed64(v)
            }
            2 => {
                let len = read_varint(&mut b) as usize;
                let v = b[..len].to_vec();
                b = &b[len..];
                V::Bytes(v)
            }
            t => panic!("wire type {t}"),
        };
        out.push((field, value));
    }
    out
}

fn get(msg: &[(u32, V)], field: u32) -> Vec<V> {
    msg.iter()
        .filter(|(f, _)| *f == field)
        .map(|(_, v)| v.clone())
        .collect()
}

fn bytes(v: &V) -> &[u8] {
    match v {
        V::Bytes(b) => b,
        other => panic!("not bytes: {other:?}"),
    }
}

fn string(v: &V) -> String {
    String::from_utf8(bytes(v).to_vec()).unwrap()
}

/// One decoded metric: name, "sum"/"gauge", temporality (sums), value, start, time, attributes.
#[derive(Debug)]
struct Decoded {
    name: String,
    kind: &'static str,
    temporality: u64,
    monotonic: bool,
    value: f64,
    start: u64,
    time: u64,
    attributes: Vec<(String, String)>,
}

fn decode(payload: &[u8]) -> (Vec<(String, String)>, Vec<Decoded>) {
    let data = fields(payload);
    let rms = get(&data, 1);
    assert_eq!(rms.len(), 1);
    let rm = fields(bytes(&rms[0]));
    let kv = |v: &V| {
        let kv = fields(bytes(v));
        let any = fields(bytes(&get(&kv, 2)[0]));
        (string(&get(&kv, 1)[0]), string(&get(&any, 1)[0]))
    };
    let resource = fields(bytes(&get(&rm, 1)[0]));
    let resource_attrs = get(&resource, 1).iter().map(kv).collect();
    let scope = fields(bytes(&get(&rm, 2)[0]));
    let mut out = Vec::new();
    for m in get(&scope, 2) {
        let m = fields(bytes(&m));
        let name = string(&get(&m, 1)[0]);
        let (kind, data) = match (get(&m, 5).first(), get(&m, 7).first()) {
            (Some(g), None) => ("gauge", fields(bytes(g))),
            (None, Some(s)) => ("sum", fields(bytes(s))),
            other => panic!("{other:?}"),
        };
        let points = get(&data, 1);
        assert_eq!(points.len(), 1);
        let p = fields(bytes(&points[0]));
        let fixed = |f| match get(&p, f).first() {
            Some(V::Fixed64(v)) => *v,
            None => 0,
            other => panic!("{other:?}"),
        };
        let varint = |f| match get(&data, f).first() {
            Some(V::Varint(v)) => *v,
            _ => 0,
        };
        out.push(Decoded {
            name,
            kind,
            temporality: varint(2),
            monotonic: varint(3) == 1,
            value: f64::from_bits(fixed(4)),
            start: fixed(2),
            time: fixed(3),
            attributes: get(&p, 7).iter().map(kv).collect(),
        });
    }
    (resource_attrs, out)
}

fn metric(group: &'static str, name: &'static str, kind: MetricKind, value: f64) -> Metric {
    Metric {
        group,
        name,
        kind,
        value,
        tags: vec![("client-id", "c1".to_owned())],
    }
}

fn sample(sent: f64) -> Vec<Metric> {
    let mut topic = metric(
        "producer-topic-metrics",
        "record-send-total",
        MetricKind::Counter,
        sent,
    );
    topic.tags.push(("topic", "t1".to_owned()));
    let mut node = metric(
        "producer-node-metrics",
        "request-latency-avg",
        MetricKind::Gauge,
        2.5,
    );
    node.tags.push(("node-id", "node-1".to_owned()));
    vec![
        metric(
            "producer-metrics",
            "record-send-total",
            MetricKind::Counter,
            sent,
        ),
        metric(
            "producer-metrics",
            "batch-size-avg",
            MetricKind::Gauge,
            120.0,
        ),
        topic,
        node,
        metric(
            "consumer-fetch-manager-metrics",
            "records-lag-max",
            MetricKind::Gauge,
            3.0,
        ),
    ]
}

#[test]
fn names_follow_the_kip() {
    assert_eq!(
        telemetry_name("producer-metrics", "record-send-total"),
        "org.apache.kafka.producer.record.send.total"
    );
    assert_eq!(
        telemetry_name("producer-topic-metrics", "byte-total"),
        "org.apache.kafka.producer.topic.byte.total"
    );
    assert_eq!(
        telemetry_name("consumer-fetch-manager-metrics", "records-lag-max"),
        "org.apache.kafka.consumer.fetch.manager.records.lag.max"
    );
    assert_eq!(
        telemetry_name("admin-client-node-metrics", "request-latency-avg"),
        "org.apache.kafka.admin.client.node.request.latency.avg"
    );
}

#[test]
fn cumulative_payload_decodes_with_selected_metrics_only() {
    let payload = Payload {
        client_id: "c1",
        start_ns: 1_000,
        now_ns: 5_000,
        delta: false,
    };
    let mut last = LastValues::default();
    let (bytes, count) = encode(
        &sample(40.0),
        |n| n.starts_with("org.apache.kafka.producer."),
        &payload,
        &mut last,
    );
    let (resource, metrics) = decode(&bytes);
    assert!(resource.contains(&("client_id".to_owned(), "c1".to_owned())));
    assert_eq!(count, 4);
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "org.apache.kafka.producer.record.send.total",
            "org.apache.kafka.producer.batch.size.avg",
            "org.apache.kafka.producer.topic.record.send.total",
            "org.apache.kafka.producer.node.request.latency.avg",
        ]
    );
    let sent = &metrics[0];
    assert_eq!(
        (sent.kind, sent.temporality, sent.monotonic),
        ("sum", 2, true)
    );
    assert_eq!((sent.value, sent.start, sent.time), (40.0, 1_000, 5_000));
    assert!(
        sent.attributes.is_empty(),
        "client-id is a resource attribute"
    );
    assert_eq!(metrics[1].kind, "gauge");
    assert_eq!(metrics[1].value, 120.0);
    assert_eq!(
        metrics[2].attributes,
        [("topic".to_owned(), "t1".to_owned())]
    );
    assert_eq!(
        metrics[3].attributes,
        [("node_id".to_owned(), "node-1".to_owned())]
    );
}

#[test]
fn delta_payloads_carry_the_difference_since_the_last_push() {
    let mut last = LastValues::default();
    let at = |now_ns| Payload {
        client_id: "c1",
        start_ns: 1_000,
        now_ns,
        delta: true,
    };
    let all = |_: &str| true;
    let (first, _) = encode(&sample(40.0), all, &at(5_000), &mut last);
    let (second, _) = encode(&sample(65.0), all, &at(9_000), &mut last);
    let first = decode(&first).1;
    let second = decode(&second).1;
    assert_eq!(
        (first[0].temporality, first[0].value, first[0].start),
        (1, 40.0, 1_000)
    );
    assert_eq!(
        (second[0].value, second[0].start, second[0].time),
        (25.0, 5_000, 9_000)
    );
    // Per attribute set: the topic's counter has its own previous value.
    assert_eq!(second[2].value, 25.0);
    // Gauges are values, not differences.
    assert_eq!(second[1].value, 120.0);
    last.clear();
    let (third, _) = encode(&sample(70.0), all, &at(12_000), &mut last);
    assert_eq!(decode(&third).1[0].value, 70.0);
}

#[test]
fn nothing_selected_is_an_empty_scope() {
    let mut last = LastValues::default();
    let payload = Payload {
        client_id: "c1",
        start_ns: 1,
        now_ns: 2,
        delta: false,
    };
    let (bytes, count) = encode(&sample(1.0), |_| false, &payload, &mut last);
    assert_eq!(count, 0);
    assert!(decode(&bytes).1.is_empty());
}

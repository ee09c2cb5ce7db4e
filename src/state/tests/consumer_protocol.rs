//! Unit tests for [`super`]: the Subscription and Assignment byte formats, checked against
//! `kafka-protocol`'s generated codecs and against corrupt input.

use super::*;

fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
    list.iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

fn full_subscription() -> Subscription {
    Subscription {
        topics: vec!["b".into(), "a".into()],
        user_data: Some(Bytes::from_static(b"ud")),
        owned_partitions: tps(&[("b", 1), ("a", 2), ("b", 0)]),
        generation_id: Some(12),
        rack_id: Some("rack-1".into()),
    }
}

#[test]
fn subscription_v0_exact_bytes() {
    let sub = Subscription::new(["t"]);
    let bytes = encode_subscription(&sub, 0).unwrap();
    assert_eq!(
        &bytes[..],
        &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(decode_subscription(&bytes).unwrap(), sub);
}

#[test]
fn subscription_versions_match_kafka_protocol() {
    use kafka_protocol::messages::ConsumerProtocolSubscription as Kp;
    use kafka_protocol::protocol::{Decodable, Encodable};
    let sub = full_subscription();
    for v in 0..=3i16 {
        let bytes = encode_subscription(&sub, v).unwrap();
        assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), v);
        let theirs = Kp::decode(&mut &bytes[2..], v).unwrap();
        let topics: Vec<&str> = theirs.topics.iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["a", "b"], "sorted like Java");
        let mut reencoded = BytesMut::new();
        reencoded.put_i16(v);
        theirs.encode(&mut reencoded, v).unwrap();
        assert_eq!(reencoded.freeze(), bytes, "v{v}");
        let back = decode_subscription(&bytes).unwrap();
        let owned = if v >= 1 {
            tps(&[("a", 2), ("b", 0), ("b", 1)])
        } else {
            vec![]
        };
        assert_eq!(back.owned_partitions, owned);
        assert_eq!(back.generation_id, (v >= 2).then_some(12));
        assert_eq!(back.rack_id.as_deref(), (v >= 3).then_some("rack-1"));
        assert_eq!(back.user_data, sub.user_data);
    }
}

#[test]
fn subscription_newer_versions_unknown_values_and_errors() {
    let mut bytes = BytesMut::from(&encode_subscription(&full_subscription(), 3).unwrap()[..]);
    bytes[1] = 9; // a future version that appended a field
    bytes.put_slice(b"future");
    assert_eq!(
        decode_subscription(&bytes).unwrap().rack_id.as_deref(),
        Some("rack-1")
    );
    let mut s = full_subscription();
    s.generation_id = None;
    s.rack_id = Some(String::new());
    let back = decode_subscription(&encode_subscription(&s, 3).unwrap()).unwrap();
    assert_eq!((back.generation_id, back.rack_id), (None, None));

    let good = encode_subscription(&full_subscription(), 3).unwrap();
    for cut in 0..good.len() {
        assert!(decode_subscription(&good[..cut]).is_err(), "cut at {cut}");
    }
    // A corrupt count fails without allocating for it.
    let huge = [0, 1, 0x7f, 0xff, 0xff, 0xff];
    let err = decode_subscription(&huge).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol {
                api: Some(ApiKey::JoinGroup),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        decode_subscription(&[0xff, 0xff]).is_err(),
        "negative version"
    );
    assert!(encode_subscription(&s, -1).is_err());
    let long = Subscription::new(["x".repeat(40_000)]);
    assert!(matches!(
        encode_subscription(&long, 0),
        Err(Error::Config(_))
    ));
}

#[test]
fn assignment_round_trip_and_layout_match_kafka_protocol() {
    use kafka_protocol::messages::ConsumerProtocolAssignment as Kp;
    use kafka_protocol::protocol::Decodable;
    let a = Assignment {
        partitions: tps(&[("b", 1), ("a", 0), ("b", 3)]),
        user_data: None,
    };
    for v in 0..=3i16 {
        let bytes = encode_assignment(&a, v).unwrap();
        let theirs = Kp::decode(&mut &bytes[2..], v).unwrap();
        let groups: Vec<(&str, &[i32])> = theirs
            .assigned_partitions
            .iter()
            .map(|tp| (tp.topic.0.as_str(), tp.partitions.as_slice()))
            .collect();
        assert_eq!(
            groups,
            [("b", &[1, 3][..]), ("a", &[0][..])],
            "grouped by first appearance"
        );
        let back = decode_assignment(&bytes).unwrap();
        assert_eq!(back.partitions, tps(&[("b", 1), ("b", 3), ("a", 0)]));
        assert_eq!(back.user_data, None);
    }
    let empty = Assignment {
        partitions: vec![],
        user_data: Some(Bytes::from_static(b"u")),
    };
    let bytes = encode_assignment(&empty, 0).unwrap();
    assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'u']);
    assert_eq!(decode_assignment(&bytes).unwrap(), empty);
    let err = decode_assignment(&bytes[..4]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Protocol {
                api: Some(ApiKey::SyncGroup),
                ..
            }
        ),
        "{err}"
    );
}

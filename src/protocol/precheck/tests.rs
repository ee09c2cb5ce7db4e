//! The descriptions agree with `kafka-protocol` for every API and version josefk may choose, and
//! the walker refuses counts and lengths the frame cannot hold.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{self, ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use super::sample::{sample_body, Fill};
use super::*;
use crate::protocol::codec::message_versions;
use crate::protocol::versions::client_versions;

/// What the conformance test asks of one response type.
struct Probe {
    /// `Default::default()` encoded at the version.
    default_body: fn(i16) -> Vec<u8>,
    /// Decodes a body and encodes it again; `Err` if it does not decode or not every byte was
    /// read.
    reencode: fn(i16, &[u8]) -> std::result::Result<Vec<u8>, String>,
    header_version: fn(i16) -> i16,
}

fn default_body<T: Encodable + Default>(version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    T::default()
        .encode(&mut out, version)
        .expect("a default response encodes");
    out.to_vec()
}

fn reencode<T: Encodable + Decodable>(
    version: i16,
    body: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Bytes::copy_from_slice(body);
    let decoded = T::decode(&mut buf, version).map_err(|e| format!("decode: {e:#}"))?;
    if !buf.is_empty() {
        return Err(format!("{} bytes left after decoding", buf.len()));
    }
    let mut out = BytesMut::new();
    decoded
        .encode(&mut out, version)
        .map_err(|e| format!("encode: {e:#}"))?;
    Ok(out.to_vec())
}

macro_rules! probes {
    ($($key:ident => $resp:ident,)*) => {
        fn probe(api: ApiKey) -> Option<Probe> {
            match api {
                $(ApiKey::$key => Some(Probe {
                    default_body: default_body::<messages::$resp>,
                    reencode: reencode::<messages::$resp>,
                    header_version: <messages::$resp as HeaderVersion>::header_version,
                }),)*
                _ => None,
            }
        }
    };
}

probes! {
    ApiVersions => ApiVersionsResponse,
    Metadata => MetadataResponse,
    Produce => ProduceResponse,
    Fetch => FetchResponse,
    ListOffsets => ListOffsetsResponse,
    OffsetCommit => OffsetCommitResponse,
    OffsetFetch => OffsetFetchResponse,
    FindCoordinator => FindCoordinatorResponse,
    JoinGroup => JoinGroupResponse,
    Heartbeat => HeartbeatResponse,
    LeaveGroup => LeaveGroupResponse,
    SyncGroup => SyncGroupResponse,
    DescribeGroups => DescribeGroupsResponse,
    CreateTopics => CreateTopicsResponse,
    DeleteTopics => DeleteTopicsResponse,
    InitProducerId => InitProducerIdResponse,
    AddPartitionsToTxn => AddPartitionsToTxnResponse,
    AddOffsetsToTxn => AddOffsetsToTxnResponse,
    EndTxn => EndTxnResponse,
    TxnOffsetCommit => TxnOffsetCommitResponse,
    DescribeCluster => DescribeClusterResponse,
    DescribeConfigs => DescribeConfigsResponse,
    DescribeProducers => DescribeProducersResponse,
    ListTransactions => ListTransactionsResponse,
    DescribeTransactions => DescribeTransactionsResponse,
    CreateAcls => CreateAclsResponse,
    DescribeAcls => DescribeAclsResponse,
    DeleteAcls => DeleteAclsResponse,
    WriteTxnMarkers => WriteTxnMarkersResponse,
    ListGroups => ListGroupsResponse,
    DeleteGroups => DeleteGroupsResponse,
    OffsetDelete => OffsetDeleteResponse,
    CreatePartitions => CreatePartitionsResponse,
    DeleteRecords => DeleteRecordsResponse,
    IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
    SaslHandshake => SaslHandshakeResponse,
    SaslAuthenticate => SaslAuthenticateResponse,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
    GetTelemetrySubscriptions => GetTelemetrySubscriptionsResponse,
    PushTelemetry => PushTelemetryResponse,
}

/// A frame (no length prefix): the response header at `header_version`, then `body`.
fn frame(header_version: i16, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(42)
        .encode(&mut out, header_version)
        .expect("header encodes");
    out.extend_from_slice(body);
    out.to_vec()
}

fn apis() -> Vec<ApiKey> {
    ApiKey::iter()
        .filter(|&api| message_versions(api).is_some())
        .collect()
}

/// The names of the tagged fields in `fields` and below at `version`.
fn tagged_field_names(fields: &'static [Field], version: i16) -> Vec<&'static str> {
    let mut names = Vec::new();
    for field in fields.iter().filter(|f| f.in_version(version)) {
        if field.tag.is_some() {
            names.push(field.name);
        }
        if let Kind::Array(inner) | Kind::Struct(inner) | Kind::NullableStruct(inner) = field.kind {
            names.extend(tagged_field_names(inner, version));
        }
    }
    names
}

#[test]
fn every_api_josefk_speaks_is_described_and_probed() {
    let apis = apis();
    assert!(apis.len() >= 31, "{apis:?}");
    for api in apis {
        assert!(schema(api).is_some(), "{api:?} has no description");
        assert!(probe(api).is_some(), "{api:?} is not probed");
    }
}

#[test]
fn walker_consumes_exactly_what_kafka_protocol_encodes_for_every_version() {
    let mut checked = 0;
    for api in apis() {
        let probe = probe(api).expect("probed");
        let versions = client_versions(api);
        for version in versions.min..=versions.max {
            let header_version = (probe.header_version)(version);
            let mut bodies = vec![("default", (probe.default_body)(version))];
            for fill in [Fill::Full, Fill::Nulls] {
                let sample = sample_body(api, version, fill).expect("described");
                let again = (probe.reencode)(version, &sample).unwrap_or_else(|e| {
                    panic!("{api:?} v{version} {fill:?}: kafka-protocol refuses the sample: {e}")
                });
                assert_eq!(
                    again, sample,
                    "{api:?} v{version} {fill:?}: kafka-protocol re-encodes the sample differently"
                );
                bodies.push((if fill == Fill::Full { "full" } else { "nulls" }, again));
            }
            for name in tagged_field_names(schema(api).expect("described").fields, version) {
                let padded = sample_body(api, version, Fill::Padded(name)).expect("described");
                let again = (probe.reencode)(version, &padded);
                assert!(
                    again.as_ref() != Ok(&padded),
                    "{api:?} v{version}: kafka-protocol does not know tagged field {name} \
                     under the tag and version described"
                );
            }
            for (what, body) in bodies {
                let frame = frame(header_version, &body);
                let used = check_response(api, version, header_version, &frame)
                    .unwrap_or_else(|v| panic!("{api:?} v{version} {what}: refused: {v}"));
                assert_eq!(
                    used,
                    frame.len(),
                    "{api:?} v{version} {what}: not all consumed"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} bodies checked");
}

#[test]
fn huge_counts_and_lengths_are_refused_naming_the_field() {
    // Metadata v12: throttle, then the brokers array count (compact: varint of count + 1).
    let mut body = 0i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    let e = check_response(ApiKey::Metadata, 12, 1, &frame(1, &body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "brokers: array count 2147483646 exceeds the 0 bytes left"
    );

    // Metadata v8 (not flexible): a topic whose partitions array claims i32::MAX elements.
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes()); // throttle
    body.extend_from_slice(&0i32.to_be_bytes()); // brokers: none
    body.extend_from_slice(&(-1i16).to_be_bytes()); // cluster id: null
    body.extend_from_slice(&1i32.to_be_bytes()); // controller
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&0i16.to_be_bytes()); // error code
    body.extend_from_slice(&1i16.to_be_bytes()); // name "t"
    body.push(b't');
    body.push(0); // is_internal
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
    body.extend_from_slice(&[0; 8]);
    let e = check_response(ApiKey::Metadata, 8, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "topics[0].partitions: array count 2147483647 exceeds the 8 bytes left"
    );

    // A negative count other than -1, and a string longer than the frame.
    let mut body = 0i16.to_be_bytes().to_vec();
    body.extend_from_slice(&(-2i32).to_be_bytes());
    let e = check_response(ApiKey::ApiVersions, 0, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(e.to_string(), "api_keys: negative length -2");
    let mut body = 0i32.to_be_bytes().to_vec(); // throttle
    body.extend_from_slice(&0i16.to_be_bytes()); // error code
    body.extend_from_slice(&(-1i16).to_be_bytes()); // error message: null
    body.extend_from_slice(&1i32.to_be_bytes()); // node id
    body.extend_from_slice(&300i16.to_be_bytes()); // host of 300 bytes
    let e = check_response(ApiKey::FindCoordinator, 2, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(e.to_string(), "host: string of 300 bytes but only 0 left");

    // SaslHandshake v1: an array of strings claiming more than the frame, then one whose second
    // string runs past the end.
    let mut body = 0i16.to_be_bytes().to_vec(); // error code
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let e = check_response(ApiKey::SaslHandshake, 1, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mechanisms: array count 2147483647 exceeds the 0 bytes left"
    );
    let mut body = 0i16.to_be_bytes().to_vec();
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(&[0, 5, b'P', b'L', b'A', b'I', b'N', 0, 9, b'x']);
    let e = check_response(ApiKey::SaslHandshake, 1, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mechanisms[1]: string of 9 bytes but only 1 left"
    );
}

#[test]
fn tagged_fields_are_bounded_and_known_ones_walked_within_their_size() {
    // Heartbeat v4: throttle, error code, then the tag section.
    let head = [0, 0, 0, 0, 0, 0];
    let mut body = head.to_vec();
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    let e = check_response(ApiKey::Heartbeat, 4, 1, &frame(1, &body)).unwrap_err();
    assert!(e.to_string().contains("tagged fields but only"), "{e}");
    // One unknown tag announcing 1000 bytes.
    let mut body = head.to_vec();
    body.extend_from_slice(&[1, 5, 0xe8, 0x07, 1, 2]);
    let e = check_response(ApiKey::Heartbeat, 4, 1, &frame(1, &body)).unwrap_err();
    assert!(e.to_string().contains("tagged field of 1000 bytes"), "{e}");
    // A varint that runs past 32 bits.
    let mut body = head.to_vec();
    body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x7f]);
    let e = check_response(ApiKey::Heartbeat, 4, 1, &frame(1, &body)).unwrap_err();
    assert!(e.to_string().contains("longer than 32 bits"), "{e}");
    // ApiVersions v3 with a known tag (finalized_features, 2) whose array claims more elements
    // than its declared size holds, though the frame has bytes to spare after it.
    let mut body = vec![0, 0, 1]; // error code, no api keys
    body.extend_from_slice(&[0, 0, 0, 0]); // throttle
    body.extend_from_slice(&[1, 2, 1, 100]); // one tag: 2, size 1, count 99
    body.extend_from_slice(&[0; 200]);
    let e = check_response(ApiKey::ApiVersions, 3, 0, &frame(0, &body)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "finalized_features: array count 99 exceeds the 0 bytes left"
    );
}

#[test]
fn header_tagged_fields_are_checked() {
    let e = check_response(ApiKey::Metadata, 12, 1, &[0, 0, 0, 1, 0xff, 0x0f]).unwrap_err();
    assert!(e.to_string().starts_with("header: "), "{e}");
    let e = check_response(ApiKey::Metadata, 12, 1, &[0, 0]).unwrap_err();
    assert!(e.to_string().starts_with("header: "), "{e}");
}

//! Golden bytes: requests josefk encodes, and responses it decodes, checked against frames written
//! out by hand from the Kafka protocol guide (<https://kafka.apache.org/protocol>) and the message
//! definitions (`clients/src/main/resources/common/message/*.json`), not against josefk's own output.
//!
//! Encoding rules used below:
//! - Every frame starts with an INT32 length of what follows.
//! - Request header v2 (flexible requests): INT16 api key, INT16 api version, INT32 correlation
//!   id, client id as a NULLABLE_STRING (INT16 length: the client id is never compact, KIP-482),
//!   then tagged fields.
//! - Response header v1 (flexible responses): INT32 correlation id, tagged fields. ApiVersions
//!   responses always use header v0 (correlation id only), so an old broker's answer can be read.
//! - Flexible versions: COMPACT_STRING is UNSIGNED_VARINT(length + 1) then the bytes; a compact
//!   array is UNSIGNED_VARINT(count + 1) then the elements (0 = null); each struct ends with its
//!   tagged fields, UNSIGNED_VARINT(count) then (tag, size, value) triples in tag order.

use bytes::Bytes;
use josefk::protocol::{decode_response, encode_request, ApiVersions};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;

const CORRELATION_ID: i32 = 7;

/// Encodes `request` as `version` with client id "golden" and correlation id 7.
fn encode<R: josefk::protocol::codec::ApiRequest>(request: &R, version: i16) -> Vec<u8> {
    let mut encoded = encode_request(request, version, "golden").unwrap();
    encoded.set_correlation_id(CORRELATION_ID);
    encoded.frame.to_vec()
}

/// Request header v2 for `api_key` at `version`, correlation id 7, client id "golden".
const fn header_v2(api_key: u8, version: u8) -> [u8; 17] {
    [
        0x00, api_key, // request_api_key: INT16
        0x00, version, // request_api_version: INT16
        0x00, 0x00, 0x00, 0x07, // correlation_id: INT32 7
        0x00, 0x06, b'g', b'o', b'l', b'd', b'e', b'n', // client_id: NULLABLE_STRING "golden"
        0x00, // header tagged fields: none
    ]
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn api_versions_v3_request() {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("josefk"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"));
    let expected = frame(&[
        &[0x00, 0x00, 0x00, 0x1f], // length: 17 (header) + 14 (body) = 31
        &header_v2(18, 3),         // ApiVersions = 18, v3
        // client_software_name: COMPACT_STRING "josefk" (6 + 1 = 7)
        &[0x07, b'j', b'o', b's', b'e', b'f', b'k'],
        // client_software_version: COMPACT_STRING "0.1.0" (5 + 1 = 6)
        &[0x06, b'0', b'.', b'1', b'.', b'0'],
        &[0x00], // tagged fields: none
    ]);
    assert_eq!(encode(&request, 3), expected);
}

#[test]
fn metadata_v12_request_for_one_topic() {
    let topic =
        MetadataRequestTopic::default().with_name(Some(StrBytes::from_static_str("orders").into()));
    let request = MetadataRequest::default()
        .with_topics(Some(vec![topic]))
        .with_allow_auto_topic_creation(true)
        .with_include_topic_authorized_operations(false);
    let expected = frame(&[
        &[0x00, 0x00, 0x00, 0x2d], // length: 17 (header) + 28 (body) = 45
        &header_v2(3, 12),         // Metadata = 3, v12
        &[0x02],                   // topics: COMPACT_NULLABLE_ARRAY, 1 element (1 + 1 = 2)
        &[0; 16],                  //   topic_id: UUID (v10+), zero: look up by name
        // name: COMPACT_NULLABLE_STRING "orders" (6 + 1 = 7)
        &[0x07, b'o', b'r', b'd', b'e', b'r', b's'],
        &[0x00], //   topic tagged fields: none
        &[0x01], // allow_auto_topic_creation: BOOLEAN true (v4+)
        // include_cluster_authorized_operations exists in v8-10 only: absent.
        &[0x00], // include_topic_authorized_operations: BOOLEAN false (v8+)
        &[0x00], // tagged fields: none
    ]);
    assert_eq!(encode(&request, 12), expected);
}

#[test]
fn find_coordinator_v4_request_for_a_transactional_id() {
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str("txn-a")]);
    let expected = frame(&[
        &[0x00, 0x00, 0x00, 0x1a], // length: 17 (header) + 9 (body) = 26
        &header_v2(10, 4),         // FindCoordinator = 10, v4
        // key (STRING) exists in v0-3 only: absent.
        &[0x01],                               // key_type: INT8 1 = transaction (v1+)
        &[0x02], // coordinator_keys: COMPACT_ARRAY of COMPACT_STRING, 1 element (v4+)
        &[0x06, b't', b'x', b'n', b'-', b'a'], //   "txn-a" (5 + 1 = 6)
        &[0x00], // tagged fields: none
    ]);
    assert_eq!(encode(&request, 4), expected);
}

#[test]
fn find_coordinator_v4_response_decodes() {
    // Length prefix already removed, as the connection hands frames over.
    let response = frame(&[
        &[0x00, 0x00, 0x00, 0x07], // response header v1: correlation_id INT32 7
        &[0x00],                   //   header tagged fields: none
        &[0x00, 0x00, 0x00, 0x0a], // throttle_time_ms: INT32 10
        // error_code, error_message, node_id, host, port exist in v0-3 only: absent.
        &[0x02],                               // coordinators: COMPACT_ARRAY, 1 element
        &[0x06, b't', b'x', b'n', b'-', b'a'], //   key: COMPACT_STRING "txn-a"
        &[0x00, 0x00, 0x00, 0x03],             //   node_id: INT32 3
        // host: COMPACT_STRING "broker-3" (8 + 1 = 9)
        &[0x09, b'b', b'r', b'o', b'k', b'e', b'r', b'-', b'3'],
        &[0x00, 0x00, 0x23, 0x84], //   port: INT32 9092
        &[0x00, 0x00],             //   error_code: INT16 0
        &[0x00],                   //   error_message: COMPACT_NULLABLE_STRING null
        &[0x00],                   //   coordinator tagged fields: none
        &[0x00],                   // tagged fields: none
    ]);
    let decoded =
        decode_response::<FindCoordinatorRequest>(Bytes::from(response), 4, None).unwrap();
    assert_eq!(decoded.throttle_time_ms, 10);
    assert_eq!(decoded.coordinators.len(), 1);
    let c = &decoded.coordinators[0];
    assert_eq!(c.key.as_str(), "txn-a");
    assert_eq!(*c.node_id, 3);
    assert_eq!(c.host.as_str(), "broker-3");
    assert_eq!(c.port, 9092);
    assert_eq!(c.error_code, 0);
    assert_eq!(c.error_message, None);
}

#[test]
fn api_versions_v3_response_with_finalized_features_decodes() {
    let response = frame(&[
        // Response header v0, even though v3 is a flexible version: no header tagged fields.
        &[0x00, 0x00, 0x00, 0x07], // correlation_id: INT32 7
        &[0x00, 0x00],             // error_code: INT16 0
        &[0x03],                   // api_keys: COMPACT_ARRAY, 2 elements
        // api_key INT16 18 (ApiVersions), min INT16 0, max INT16 4, tagged fields: none
        &[0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00],
        // api_key INT16 3 (Metadata), min INT16 0, max INT16 12, tagged fields: none
        &[0x00, 0x03, 0x00, 0x00, 0x00, 0x0c, 0x00],
        &[0x00, 0x00, 0x00, 0x00], // throttle_time_ms: INT32 0
        &[0x02],                   // tagged fields: 2
        // tag 1 FinalizedFeaturesEpoch, size 8: INT64 5
        &[0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x05],
        // tag 2 FinalizedFeatures, size 26: COMPACT_ARRAY of 1 element
        &[0x02, 0x1a, 0x02],
        //   name: COMPACT_STRING "transaction.version" (19 + 1 = 20)
        &[0x14],
        b"transaction.version",
        &[0x00, 0x02], //   max_version_level: INT16 2
        &[0x00, 0x00], //   min_version_level: INT16 0
        &[0x00],       //   feature tagged fields: none
    ]);
    let decoded = decode_response::<ApiVersionsRequest>(Bytes::from(response), 3, None).unwrap();
    assert_eq!(decoded.error_code, 0);
    assert_eq!(decoded.finalized_features_epoch, 5);
    let versions = ApiVersions::from_response(&decoded);
    assert_eq!(versions.broker_range(ApiKey::ApiVersions), Some((0, 4)));
    assert_eq!(versions.broker_range(ApiKey::Metadata), Some((0, 12)));
    assert_eq!(versions.broker_range(ApiKey::Produce), None);
    assert_eq!(versions.finalized_feature("transaction.version"), Some(2));
}

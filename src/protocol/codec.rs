//! Request encoding and response decoding: headers, correlation ids, and the one place where
//! `kafka-protocol`'s `anyhow` errors become [`Error::Protocol`].
//!
//! A request is encoded by the caller's task (so the connection task only moves bytes) with a
//! placeholder correlation id that the connection task patches in when it writes the frame; the
//! response is decoded by the caller's task too. The connection task only reads the correlation id.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self, ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, StrBytes, VersionRange,
};

use crate::error::{BrokerRef, Error, Result};
use crate::protocol::frame::LENGTH_PREFIX;
use crate::protocol::precheck;

/// A request message josefk can send: its API key and the response it expects.
///
/// `kafka-protocol` only provides this mapping when both its `client` and `broker` features are on;
/// josefk builds with `client` alone, so it keeps its own list of the APIs it speaks.
pub trait ApiRequest: Encodable + Message + HeaderVersion {
    /// The API key.
    const KEY: ApiKey;
    /// The response message.
    type Response: Decodable + HeaderVersion;
}

macro_rules! api_requests {
    ($($key:ident => $req:ident, $resp:ident;)*) => {
        $(
            impl ApiRequest for messages::$req {
                const KEY: ApiKey = ApiKey::$key;
                type Response = messages::$resp;
            }
        )*

        /// The versions `kafka-protocol` can both encode the request and decode the response of,
        /// for the APIs josefk speaks. Its `ApiKey::valid_versions` can list more (InitProducerId
        /// v6, OffsetFetch v10 in 0.18) than its message types handle.
        pub fn message_versions(api: ApiKey) -> Option<VersionRange> {
            match api {
                $(ApiKey::$key => {
                    let req = <messages::$req as Message>::VERSIONS;
                    let resp = <messages::$resp as Message>::VERSIONS;
                    Some(VersionRange {
                        min: req.min.max(resp.min),
                        max: req.max.min(resp.max),
                    })
                })*
                _ => None,
            }
        }

        /// Decodes a response frame of `api` through [`decode_response`] and drops the result,
        /// for the fuzz targets and the corpus replay; `None` if josefk does not speak `api`.
        #[cfg(feature = "fuzzing")]
        pub(crate) fn decode_response_of(
            api: ApiKey,
            version: i16,
            frame: Bytes,
        ) -> Option<Result<()>> {
            match api {
                $(ApiKey::$key => {
                    Some(decode_response::<messages::$req>(frame, version, None).map(drop))
                })*
                _ => None,
            }
        }
    };
}

api_requests! {
    ApiVersions => ApiVersionsRequest, ApiVersionsResponse;
    Metadata => MetadataRequest, MetadataResponse;
    Produce => ProduceRequest, ProduceResponse;
    Fetch => FetchRequest, FetchResponse;
    ListOffsets => ListOffsetsRequest, ListOffsetsResponse;
    OffsetCommit => OffsetCommitRequest, OffsetCommitResponse;
    OffsetFetch => OffsetFetchRequest, OffsetFetchResponse;
    FindCoordinator => FindCoordinatorRequest, FindCoordinatorResponse;
    JoinGroup => JoinGroupRequest, JoinGroupResponse;
    Heartbeat => HeartbeatRequest, HeartbeatResponse;
    LeaveGroup => LeaveGroupRequest, LeaveGroupResponse;
    SyncGroup => SyncGroupRequest, SyncGroupResponse;
    DescribeGroups => DescribeGroupsRequest, DescribeGroupsResponse;
    ListGroups => ListGroupsRequest, ListGroupsResponse;
    DeleteGroups => DeleteGroupsRequest, DeleteGroupsResponse;
    OffsetDelete => OffsetDeleteRequest, OffsetDeleteResponse;
    CreatePartitions => CreatePartitionsRequest, CreatePartitionsResponse;
    DeleteRecords => DeleteRecordsRequest, DeleteRecordsResponse;
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
    CreateTopics => CreateTopicsRequest, CreateTopicsResponse;
    DeleteTopics => DeleteTopicsRequest, DeleteTopicsResponse;
    InitProducerId => InitProducerIdRequest, InitProducerIdResponse;
    AddPartitionsToTxn => AddPartitionsToTxnRequest, AddPartitionsToTxnResponse;
    AddOffsetsToTxn => AddOffsetsToTxnRequest, AddOffsetsToTxnResponse;
    EndTxn => EndTxnRequest, EndTxnResponse;
    TxnOffsetCommit => TxnOffsetCommitRequest, TxnOffsetCommitResponse;
    DescribeCluster => DescribeClusterRequest, DescribeClusterResponse;
    DescribeConfigs => DescribeConfigsRequest, DescribeConfigsResponse;
    DescribeProducers => DescribeProducersRequest, DescribeProducersResponse;
    ListTransactions => ListTransactionsRequest, ListTransactionsResponse;
    DescribeTransactions => DescribeTransactionsRequest, DescribeTransactionsResponse;
    CreateAcls => CreateAclsRequest, CreateAclsResponse;
    DescribeAcls => DescribeAclsRequest, DescribeAclsResponse;
    DeleteAcls => DeleteAclsRequest, DeleteAclsResponse;
    WriteTxnMarkers => WriteTxnMarkersRequest, WriteTxnMarkersResponse;
    SaslHandshake => SaslHandshakeRequest, SaslHandshakeResponse;
    SaslAuthenticate => SaslAuthenticateRequest, SaslAuthenticateResponse;
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse;
    ConsumerGroupDescribe => ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse;
    GetTelemetrySubscriptions => GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse;
    PushTelemetry => PushTelemetryRequest, PushTelemetryResponse;
}

/// Byte offset of the correlation id in an encoded request frame: after the length prefix, the
/// api key (2 bytes) and api version (2 bytes). It sits there in every request header version.
pub const CORRELATION_ID_OFFSET: usize = LENGTH_PREFIX + 4;

/// A request encoded into one complete frame, waiting for its correlation id. `Debug` shows the
/// frame's length, not its bytes (a SaslAuthenticate frame holds credentials).
pub struct EncodedRequest {
    /// The API.
    pub api_key: ApiKey,
    /// The version the body was encoded with.
    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // read by the tests
    pub api_version: i16,
    /// The whole frame, length prefix included. Its correlation id is 0 until
    /// [`EncodedRequest::set_correlation_id`].
    pub frame: BytesMut,
    /// False only for Produce with `acks=0`, which the broker never answers.
    pub expects_response: bool,
}

impl std::fmt::Debug for EncodedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedRequest")
            .field("api_key", &self.api_key)
            .field("api_version", &self.api_version)
            .field("frame_len", &self.frame.len())
            .field("expects_response", &self.expects_response)
            .finish()
    }
}

impl EncodedRequest {
    /// Writes the correlation id into the frame.
    pub fn set_correlation_id(&mut self, id: i32) {
        self.frame[CORRELATION_ID_OFFSET..CORRELATION_ID_OFFSET + 4]
            .copy_from_slice(&id.to_be_bytes());
    }
}

/// `kafka-protocol`'s error as one line: anyhow's alternate form joins the chain, and the trim
/// drops the newline some of its messages end with ("Not enough bytes remaining in buffer!\n").
fn anyhow_message(e: anyhow::Error) -> String {
    format!("{e:#}").trim_end().to_owned()
}

fn encode_error(api: ApiKey, version: i16, e: anyhow::Error) -> Error {
    Error::Protocol {
        api: Some(crate::error::ApiKey::from_protocol(api)),
        broker: None,
        message: format!("cannot encode version {version}: {}", anyhow_message(e)),
    }
}

/// Encodes `body` as version `version` of its API into one frame, with a placeholder correlation
/// id. Encoding fails (as [`Error::Protocol`]) if `body` uses a field that version lacks.
pub fn encode_request<R: ApiRequest>(
    body: &R,
    version: i16,
    client_id: &str,
) -> Result<EncodedRequest> {
    let api = R::KEY;
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(0)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = R::header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?))
        .map_err(|e| encode_error(api, version, e))?;
    let len = i32::try_from(size).map_err(|_| Error::Protocol {
        api: Some(crate::error::ApiKey::from_protocol(api)),
        broker: None,
        message: format!("request of {size} bytes is too large to frame"),
    })?;
    let mut frame = BytesMut::with_capacity(LENGTH_PREFIX + size);
    frame.put_i32(len);
    header
        .encode(&mut frame, header_version)
        .and_then(|()| body.encode(&mut frame, version))
        .map_err(|e| encode_error(api, version, e))?;
    debug_assert_eq!(frame.len(), LENGTH_PREFIX + size);
    Ok(EncodedRequest {
        api_key: api,
        api_version: version,
        frame,
        expects_response: true,
    })
}

/// Reads the correlation id at the start of a response frame (length prefix already removed).
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    frame
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a response frame (length prefix removed) as version `version` of `R`'s response,
/// skipping its header. Keys, values and other byte fields of the result are slices of `frame`,
/// not copies.
///
/// The frame is first walked by the bounds pre-check ([`super::precheck`]): `kafka-protocol`
/// reserves memory from array counts it reads, so it only sees frames whose every count and
/// length fits in the bytes that arrived.
pub fn decode_response<R: ApiRequest>(
    mut frame: Bytes,
    version: i16,
    broker: Option<&BrokerRef>,
) -> Result<R::Response> {
    let protocol_error = |message: String| Error::Protocol {
        api: Some(crate::error::ApiKey::from_protocol(R::KEY)),
        broker: broker.cloned(),
        message: format!("cannot decode response version {version}: {message}"),
    };
    let header_version = R::Response::header_version(version);
    precheck::check_response(R::KEY, version, header_version, &frame)
        .map_err(|v| protocol_error(v.to_string()))?;
    ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| protocol_error(format!("header: {}", anyhow_message(e))))?;
    R::Response::decode(&mut frame, version).map_err(|e| protocol_error(anyhow_message(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    #[test]
    fn encoded_frame_has_length_header_and_patchable_correlation_id() {
        let mut req = encode_request(&MetadataRequest::default(), 12, "cid").unwrap();
        let len = i32::from_be_bytes(req.frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, req.frame.len());
        assert_eq!(&req.frame[4..6], &(ApiKey::Metadata as i16).to_be_bytes());
        assert_eq!(&req.frame[6..8], &12i16.to_be_bytes());
        req.set_correlation_id(0x0102_0304);
        assert_eq!(&req.frame[8..12], &[1, 2, 3, 4]);
        // Header v2: client id as a nullable string (i16 length), then tagged fields.
        assert_eq!(&req.frame[12..14], &3i16.to_be_bytes());
        assert_eq!(&req.frame[14..17], b"cid");
    }

    #[test]
    fn decode_rejects_garbage_with_the_api_named() {
        let e = decode_response::<MetadataRequest>(Bytes::from_static(&[0, 0, 0, 1, 9]), 12, None)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Protocol {
                    api: Some(crate::error::ApiKey::Metadata),
                    ..
                }
            ),
            "{e}"
        );
        let _: Option<MetadataResponse> = None;
    }

    #[test]
    fn decode_errors_are_one_line_naming_the_version() {
        // Refused by the pre-check.
        let e = decode_response::<MetadataRequest>(Bytes::from_static(&[0, 0, 0, 1]), 0, None)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("version 0") && text.contains("brokers"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text:?}");
        // kafka-protocol's buffer error ends in a newline; josefk's message must not.
        // (One broker whose host claims 10 bytes that are not there.)
        let mut short = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 10]);
        let raw = MetadataResponse::decode(&mut short, 0).unwrap_err();
        assert!(format!("{raw:#}").ends_with('\n'), "{raw:#?}");
        assert_eq!(anyhow_message(raw), "Not enough bytes remaining in buffer!");
    }

    #[test]
    fn correlation_id_needs_four_bytes() {
        assert_eq!(response_correlation_id(&[0, 0, 0, 7, 1]), Some(7));
        assert_eq!(response_correlation_id(&[0, 0]), None);
    }
}

//! Entry points for the fuzz targets (`fuzz/`) and the corpus replay test
//! (`protocol-tests/tests/fuzz_corpus.rs`), behind the `fuzzing` feature. Not public API: nothing
//! here is stable, and it exists so both run exactly josefk's own decode path.

mod sasl;

pub use sasl::{fuzz_sasl, sasl_input, sasl_seed_inputs, SaslOutcome, SaslTarget};

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::error::Result;
use crate::protocol::codec::decode_response_of;
use crate::protocol::precheck::sample::{sample_body, Fill};
use crate::protocol::versions::client_versions;

/// Every API josefk decodes responses of, with the versions it may choose.
pub fn response_apis() -> Vec<(ApiKey, i16, i16)> {
    ApiKey::iter()
        .filter_map(|api| {
            let range = client_versions(api);
            decode_response_of(api, range.min, Bytes::new())?.ok();
            Some((api, range.min, range.max))
        })
        .collect()
}

/// Fuzz input for one response: `[api key: i16][version: i16][frame without length prefix]`.
/// The version is folded into the range josefk may choose for that API, so the fuzzer spends no
/// time on versions `kafka-protocol` refuses up front. `None` for an API josefk does not decode.
pub fn decode_response_input(data: &[u8]) -> Option<Result<()>> {
    let (head, frame) = data.split_at_checked(4)?;
    let api = ApiKey::try_from(i16::from_be_bytes([head[0], head[1]])).ok()?;
    let range = client_versions(api);
    let span = i32::from(range.max) - i32::from(range.min) + 1;
    if span <= 0 {
        return None;
    }
    let raw = i32::from(i16::from_be_bytes([head[2], head[3]]));
    let version = (i32::from(range.min) + raw.rem_euclid(span)) as i16;
    decode_response_of(api, version, Bytes::copy_from_slice(frame))
}

/// A fuzz input for [`decode_response_input`].
pub fn response_input(api: ApiKey, version: i16, frame: &[u8]) -> Vec<u8> {
    let range = client_versions(api);
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&(api as i16).to_be_bytes());
    out.extend_from_slice(&(version - range.min).to_be_bytes());
    out.extend_from_slice(frame);
    out
}

/// Sample response frames (header and body, no length prefix) written from josefk's descriptions:
/// `(api, version, frame)` for every API and version josefk may choose, filled with data and with
/// nulls.
pub fn sample_response_frames() -> Vec<(ApiKey, i16, Vec<u8>)> {
    let mut out = Vec::new();
    for (api, min, max) in response_apis() {
        for version in min..=max {
            for fill in [Fill::Full, Fill::Nulls] {
                if let Some(body) = sample_body(api, version, fill) {
                    let mut frame = 7i32.to_be_bytes().to_vec(); // correlation id
                    if api.response_header_version(version) >= 1 {
                        frame.push(0); // no tagged fields
                    }
                    frame.extend_from_slice(&body);
                    out.push((api, version, frame));
                }
            }
        }
    }
    out
}

/// Largest frame the frame-splitting target accepts (a small cap, so the cap path is exercised).
const FUZZ_MAX_FRAME: usize = 1 << 16;

/// Frame splitting as the connection task does it: `data[0]` chooses the size of the reads, the
/// rest is the byte stream. Every frame taken must be exactly what its length prefix said, and the
/// stream must be consumed in order.
pub fn fuzz_frames(data: &[u8]) {
    use crate::protocol::frame::{split_frame, LENGTH_PREFIX};
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut buf = bytes::BytesMut::new();
    let mut taken = 0;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match split_frame(&mut buf, FUZZ_MAX_FRAME) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= FUZZ_MAX_FRAME);
                    assert_eq!(before - buf.len(), LENGTH_PREFIX + frame.len());
                    assert_eq!(&frame[..], &stream[taken + LENGTH_PREFIX..][..frame.len()]);
                    taken += LENGTH_PREFIX + frame.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Largest decompressed batch the record target allows (the consumer's default is far larger).
const FUZZ_MAX_DECOMPRESSED: usize = 1 << 20;

/// Record batch decoding as the consumer does it: `data[0]` bit 0 turns CRC checking on (off lets
/// the fuzzer reach the codecs), the rest is a partition's `records` bytes. Every batch, record,
/// header and control record is read.
pub fn fuzz_records(data: &[u8]) {
    use crate::protocol::records::{DecodeOptions, RecordBatches};
    let Some((&flags, records)) = data.split_first() else {
        return;
    };
    let options = DecodeOptions {
        check_crc: flags & 1 == 1,
        max_decompressed_bytes: FUZZ_MAX_DECOMPRESSED,
    };
    for batch in RecordBatches::with_options(Bytes::copy_from_slice(records), options) {
        let Ok(batch) = batch else { break };
        let _ = batch.control_record();
        let Ok(records) = batch.records() else {
            continue;
        };
        for record in records {
            let Ok(record) = record else { break };
            for header in record.headers.iter() {
                let _ = header.key_str();
            }
        }
    }
}

/// ConsumerProtocol bytes from a JoinGroup (Subscription) or SyncGroup (Assignment) answer. What
/// decodes must re-encode and decode to the same value once normalised (encoding sorts and groups by topic).
pub fn fuzz_consumer_protocol(data: &[u8]) {
    use crate::state::consumer_protocol::{
        decode_assignment, decode_subscription, encode_assignment, encode_subscription,
        CONSUMER_PROTOCOL_VERSION,
    };
    if let Ok(sub) = decode_subscription(data) {
        let once = encode_subscription(&sub, CONSUMER_PROTOCOL_VERSION)
            .and_then(|b| decode_subscription(&b))
            .expect("a decoded subscription re-encodes");
        let twice = encode_subscription(&once, CONSUMER_PROTOCOL_VERSION)
            .and_then(|b| decode_subscription(&b))
            .expect("a normalised subscription re-encodes");
        assert_eq!(once, twice);
    }
    if let Ok(assignment) = decode_assignment(data) {
        let once = encode_assignment(&assignment, CONSUMER_PROTOCOL_VERSION)
            .and_then(|b| decode_assignment(&b))
            .expect("a decoded assignment re-encodes");
        let twice = encode_assignment(&once, CONSUMER_PROTOCOL_VERSION)
            .and_then(|b| decode_assignment(&b))
            .expect("a normalised assignment re-encodes");
        assert_eq!(once, twice);
    }
}

/// A response fuzz input: see [`decode_response_input`]. Never panics; errors are expected.
pub fn fuzz_response(data: &[u8]) {
    let _ = decode_response_input(data);
}

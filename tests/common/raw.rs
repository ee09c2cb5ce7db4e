//! An independent raw Kafka client for judging what josefk did: plain TCP, the `kafka-protocol`
//! crate's message types and record decoder, no josefk code at all.
//!
//! Tests use it to put records on a partition below the producer, hold long polls open below the
//! consumer, ask the broker what it stored, and read logs batch by batch (control batches
//! included). Because it shares nothing with josefk's connection, codec or record layers, a bug
//! there cannot hide in the judge. PLAINTEXT listeners only; versions are fixed per API to ones
//! Kafka 4.x serves and whose fields these helpers fill in.

use std::collections::HashMap;
use std::io::{Error as IoError, ErrorKind, Read};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// What a raw call returns: I/O and codec failures as `std::io::Error`, so callers `expect` them.
pub type RawResult<T> = std::io::Result<T>;

fn invalid(what: impl std::fmt::Display) -> IoError {
    IoError::new(ErrorKind::InvalidData, what.to_string())
}

/// The version each API is sent at: served by Kafka 4.x, and the one whose fields the request
/// builders in `tests/common` fill in (names, not topic ids).
fn version_of(key: i16) -> i16 {
    match key {
        0 => 9,  // Produce
        1 => 12, // Fetch (v13 addresses topics by id)
        2 => 7,  // ListOffsets
        3 => 12, // Metadata
        9 => 8,  // OffsetFetch (v8: groups array, names)
        18 => 3, // ApiVersions
        32 => 4, // DescribeConfigs
        60 => 0, // DescribeCluster
        other => panic!("tests/common/raw.rs: add a version for API key {other}"),
    }
}

/// One connection to one broker; requests are sent one at a time.
pub struct RawConnection {
    stream: Mutex<TcpStream>,
    correlation: AtomicI32,
}

impl RawConnection {
    /// Connects to `host:port`.
    pub async fn connect(address: &str) -> RawResult<RawConnection> {
        let stream = tokio::time::timeout(Duration::from_secs(15), TcpStream::connect(address))
            .await
            .map_err(|_| IoError::new(ErrorKind::TimedOut, format!("connect to {address}")))??;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream: Mutex::new(stream),
            correlation: AtomicI32::new(1),
        })
    }

    /// Sends `request` at its fixed version and decodes the answer (30 s bound, for long polls).
    pub async fn send<R: Request>(&self, request: &R) -> RawResult<R::Response> {
        let version = version_of(R::KEY);
        let correlation = self.correlation.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("josefk-test-judge")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(invalid)?;
        request.encode(&mut body, version).map_err(invalid)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);

        let mut stream = self.stream.lock().await;
        let exchange = async {
            stream.write_all(&frame).await?;
            let size = stream.read_i32().await?;
            let size = usize::try_from(size).map_err(|_| invalid("negative frame size"))?;
            let mut answer = vec![0u8; size];
            stream.read_exact(&mut answer).await?;
            Ok::<_, IoError>(Bytes::from(answer))
        };
        let mut answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| IoError::new(ErrorKind::TimedOut, "no answer within 30 s"))??;
        let header = ResponseHeader::decode(
            &mut answer,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(invalid)?;
        if header.correlation_id != correlation {
            return Err(invalid(format!(
                "correlation id {} answered for {correlation}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut answer, version).map_err(invalid)
    }

    /// The finalized level of a cluster feature (`transaction.version`, `group.version`), by
    /// ApiVersions; `None` when the cluster did not finalize it.
    pub async fn finalized_feature(&self, name: &str) -> RawResult<Option<i16>> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("josefk-test-judge"))
            .with_client_software_version(StrBytes::from_static_str("0"));
        let response = self.send(&request).await?;
        Ok(response
            .finalized_features
            .iter()
            .find(|f| f.name.as_str() == name)
            .map(|f| f.max_version_level))
    }
}

/// Connections to every broker of a cluster, found from a bootstrap list.
pub struct RawCluster {
    bootstrap: String,
    nodes: Mutex<HashMap<i32, Arc<RawConnection>>>,
}

impl RawCluster {
    /// A cluster reached through `bootstrap` (comma-separated `host:port`); connects lazily.
    pub fn new(bootstrap: &str) -> RawCluster {
        RawCluster {
            bootstrap: bootstrap.to_owned(),
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// A connection to the first bootstrap server that answers.
    pub async fn any(&self) -> Arc<RawConnection> {
        let mut last = None;
        for address in self.bootstrap.split(',') {
            match RawConnection::connect(address.trim()).await {
                Ok(conn) => return Arc::new(conn),
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "no bootstrap server of {} answered: {last:?}",
            self.bootstrap
        )
    }

    /// Metadata for `topics` (all topics when `None`).
    pub async fn metadata(&self, topics: Option<&[&str]>) -> MetadataResponse {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(super::topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        self.any()
            .await
            .send(&request)
            .await
            .unwrap_or_else(|e| panic!("Metadata from {}: {e}", self.bootstrap))
    }

    /// A connection to broker `node`, opened once and reused.
    pub async fn node(&self, node: i32) -> Arc<RawConnection> {
        if let Some(conn) = self.nodes.lock().await.get(&node) {
            return conn.clone();
        }
        let metadata = self.metadata(Some(&[])).await;
        let broker = metadata
            .brokers
            .iter()
            .find(|b| b.node_id.0 == node)
            .unwrap_or_else(|| panic!("broker {node} not in metadata"));
        let address = format!("{}:{}", broker.host.as_str(), broker.port);
        let conn = Arc::new(
            RawConnection::connect(&address)
                .await
                .unwrap_or_else(|e| panic!("connect to broker {node} at {address}: {e}")),
        );
        self.nodes.lock().await.insert(node, conn.clone());
        conn
    }

    /// The leader of `topic`-`partition`, waiting up to 10 s for one to be known.
    pub async fn leader(&self, topic: &str, partition: i32) -> i32 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let metadata = self.metadata(Some(&[topic])).await;
            let leader = metadata
                .topics
                .iter()
                .filter(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .map(|p| p.leader_id.0)
                .filter(|id| *id >= 0);
            if let Some(leader) = leader {
                return leader;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{topic}-{partition} has no leader after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A connection to the leader of `topic`-`partition`.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Arc<RawConnection> {
        let leader = self.leader(topic, partition).await;
        self.node(leader).await
    }
}

/// A codec as named in a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawCodec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy (raw or xerial-framed).
    Snappy,
    /// LZ4 frame.
    Lz4,
    /// zstd.
    Zstd,
}

impl RawCodec {
    /// The codec a `compression.type` value names (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> RawCodec {
        match name {
            "none" => RawCodec::None,
            "gzip" => RawCodec::Gzip,
            "snappy" => RawCodec::Snappy,
            "lz4" => RawCodec::Lz4,
            "zstd" => RawCodec::Zstd,
            other => panic!("unknown codec {other}"),
        }
    }
}

/// One record header; a record may repeat a key, and the judge keeps every one, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// The header key's bytes.
    pub key: Bytes,
    /// The value (`None` for a null value).
    pub value: Option<Bytes>,
}

impl RawHeader {
    /// The key as text, if it is UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp (ms).
    pub timestamp: i64,
    /// Key (`None` for null).
    pub key: Option<Bytes>,
    /// Value (`None` for null: a tombstone).
    pub value: Option<Bytes>,
    /// Headers in stored order.
    pub headers: Vec<RawHeader>,
}

/// One whole record batch cut from a Fetch answer, CRC checked, records decompressed with the
/// pure-Rust codecs below and parsed here — not by josefk's record layer.
pub struct RawBatch {
    /// The batch's codec.
    pub compression: RawCodec,
    /// Producer id (-1 without idempotence).
    pub producer_id: i64,
    /// Whether the batch is part of a transaction.
    pub transactional: bool,
    /// Whether it is a control batch (transaction marker).
    pub control: bool,
    /// The batch's first offset.
    pub base_offset: i64,
    /// The batch's last offset (`base_offset + last_offset_delta`).
    pub last_offset: i64,
    /// Every record of the batch, in offset order.
    pub records: Vec<RawRecord>,
}

/// The v2 batch header's size: base offset (8), length (4), leader epoch (4), magic (1), crc (4),
/// attributes (2), last offset delta (4), first/max timestamp (8+8), producer id (8), producer
/// epoch (2), base sequence (4), record count (4).
const BATCH_HEADER: usize = 61;

/// The whole batches in `data` (a Fetch answer's records); a partial batch at the end (cut by the
/// fetch size) is left out, as every consumer does.
pub fn batches(mut data: Bytes) -> RawResult<Vec<RawBatch>> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let length = i32::from_be_bytes(data[8..12].try_into().unwrap());
        let length = usize::try_from(length).map_err(|_| invalid("negative batch length"))?;
        if data.len() < 12 + length {
            break;
        }
        out.push(batch(data.split_to(12 + length))?);
    }
    Ok(out)
}

fn batch(mut b: Bytes) -> RawResult<RawBatch> {
    if b.len() < BATCH_HEADER {
        return Err(invalid("batch shorter than its header"));
    }
    if b[16] != 2 {
        return Err(invalid(format!("record batch magic {}", b[16])));
    }
    let crc = u32::from_be_bytes(b[17..21].try_into().unwrap());
    if crc32c::crc32c(&b[21..]) != crc {
        return Err(invalid("batch CRC mismatch"));
    }
    let base_offset = b.get_i64();
    b.advance(4 + 4 + 1 + 4); // length, leader epoch, magic, crc
    let attributes = b.get_i16();
    let last_offset_delta = b.get_i32();
    let first_timestamp = b.get_i64();
    b.advance(8); // max timestamp
    let producer_id = b.get_i64();
    b.advance(2 + 4); // producer epoch, base sequence
    let count = b.get_i32();
    let compression = match attributes & 7 {
        0 => RawCodec::None,
        1 => RawCodec::Gzip,
        2 => RawCodec::Snappy,
        3 => RawCodec::Lz4,
        4 => RawCodec::Zstd,
        other => return Err(invalid(format!("codec {other}"))),
    };
    let mut body = decompress(&b, compression)?;
    let mut records = Vec::new();
    for _ in 0..count {
        let length = varint(&mut body)?;
        let length = usize::try_from(length).map_err(|_| invalid("negative record length"))?;
        if body.len() < length {
            return Err(invalid("record longer than its batch"));
        }
        let mut r = body.split_to(length);
        need(&r, 1)?;
        r.advance(1); // attributes
        let timestamp_delta = varint(&mut r)?;
        let offset_delta = varint(&mut r)?;
        let key = bytes_field(&mut r)?;
        let value = bytes_field(&mut r)?;
        let header_count = varint(&mut r)?;
        let mut headers = Vec::new();
        for _ in 0..header_count.max(0) {
            let key = bytes_field(&mut r)?.ok_or_else(|| invalid("null header key"))?;
            let value = bytes_field(&mut r)?;
            headers.push(RawHeader { key, value });
        }
        records.push(RawRecord {
            offset: base_offset + offset_delta,
            timestamp: first_timestamp + timestamp_delta,
            key,
            value,
            headers,
        });
    }
    Ok(RawBatch {
        compression,
        producer_id,
        transactional: attributes & 0x10 != 0,
        control: attributes & 0x20 != 0,
        base_offset,
        last_offset: base_offset + i64::from(last_offset_delta),
        records,
    })
}

fn need(b: &Bytes, n: usize) -> RawResult<()> {
    if b.len() < n {
        return Err(invalid("record cut short"));
    }
    Ok(())
}

/// A zig-zag varint (protobuf style), as record fields are written.
fn varint(b: &mut Bytes) -> RawResult<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        need(b, 1)?;
        let byte = b.get_u8();
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(invalid("varint longer than 10 bytes"))
}

/// A varint length (-1 = null) and that many bytes.
fn bytes_field(b: &mut Bytes) -> RawResult<Option<Bytes>> {
    let length = varint(b)?;
    if length < 0 {
        return Ok(None);
    }
    let length = length as usize;
    need(b, length)?;
    Ok(Some(b.split_to(length)))
}

/// Decompresses a batch's records section with pure-Rust codecs.
fn decompress(data: &Bytes, codec: RawCodec) -> RawResult<Bytes> {
    let mut out = Vec::new();
    match codec {
        RawCodec::None => return Ok(data.clone()),
        RawCodec::Gzip => {
            flate2::read::GzDecoder::new(data.as_ref()).read_to_end(&mut out)?;
        }
        RawCodec::Snappy => out = snappy(data).map_err(invalid)?,
        RawCodec::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(data.as_ref()).read_to_end(&mut out)?;
        }
        RawCodec::Zstd => {
            ruzstd::decoding::StreamingDecoder::new(data.as_ref())
                .map_err(invalid)?
                .read_to_end(&mut out)?;
        }
    }
    Ok(Bytes::from(out))
}

/// Snappy as Kafka writers produce it: xerial-framed (Java's snappy-java) or one raw block.
fn snappy(data: &[u8]) -> Result<Vec<u8>, String> {
    const XERIAL: &[u8] = b"\x82SNAPPY\x00";
    let mut decoder = snap::raw::Decoder::new();
    if !data.starts_with(XERIAL) {
        return decoder
            .decompress_vec(data)
            .map_err(|e| format!("snappy: {e}"));
    }
    // Magic (8), version (4), compatible version (4), then (length i32, block) chunks.
    let mut rest = data.get(16..).ok_or("snappy: short xerial header")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let length = rest.get(..4).ok_or("snappy: short chunk length")?;
        let length = u32::from_be_bytes(length.try_into().unwrap()) as usize;
        let block = rest.get(4..4 + length).ok_or("snappy: short chunk")?;
        out.extend(
            decoder
                .decompress_vec(block)
                .map_err(|e| format!("snappy: {e}"))?,
        );
        rest = &rest[4 + length..];
    }
    Ok(out)
}

//! Kafka record batches (message format v2, "magic 2"): josefk's own encoder and decoder.
//!
//! `kafka-protocol` has a batch codec, but for a client it has sharp edges (see
//! `shared/notes/eos-reference.md` §7): `decode_all` fails outright when a fetch response ends in a
//! truncated batch (which brokers send routinely), it reserves memory for a record count read from
//! the wire, it folds duplicate header keys into a map, and it builds an owned struct repeating every
//! batch field for each record. This module replaces it for produce and fetch payloads:
//!
//! - [`encode`]: [`BatchBuilder`] appends records straight into a caller-provided `BytesMut` (no
//!   allocation per record), then fills in lengths, counts and the CRC; [`rewrite_producer_state`]
//!   re-stamps producer id, epoch and base sequence in an already-encoded batch, which the idempotent
//!   producer needs after an epoch bump.
//! - [`decode`]: [`RecordBatches`] walks a fetched buffer batch by batch, stops quietly at a truncated
//!   tail, checks CRCs, and hands out records whose keys, values and headers are zero-copy slices of
//!   the input (or of the decompressed payload).
//!
//! The layout is the one in the Kafka documentation (<https://kafka.apache.org/documentation/#recordbatch>):
//!
//! ```text
//! baseOffset: int64 | batchLength: int32 | partitionLeaderEpoch: int32 | magic: int8 (= 2)
//! crc: uint32 (CRC-32C of everything after it) | attributes: int16 | lastOffsetDelta: int32
//! baseTimestamp: int64 | maxTimestamp: int64 | producerId: int64 | producerEpoch: int16
//! baseSequence: int32 | recordCount: int32 | records...
//! ```

use std::fmt;

use crate::protocol::compression::CompressionError;

pub mod decode;
pub mod encode;

#[cfg(test)]
mod tests;

#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use decode::{
    DecodeOptions, DecodedHeader, Headers, HeadersIter, Record, RecordBatch, RecordBatches, Records,
};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use encode::{
    encode_batch, record_fields_len, record_size, rewrite_producer_state, set_base_offset,
    BatchBuilder, BatchInfo, BatchOptions, RecordInput,
};

/// The record batch format this module reads and writes.
pub const MAGIC_V2: i8 = 2;
/// Bytes before a batch's `batchLength` counts from: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header, up to and including the record count.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// `producerId` of a batch from a producer without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// `producerEpoch` of a batch from a producer without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `baseSequence` of a batch from a producer without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// `partitionLeaderEpoch` a producer writes; the broker stamps the real one.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Byte offsets of the header fields, from the start of the batch.
pub(crate) mod layout {
    pub const LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    /// Where the CRC-covered part starts.
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORD_COUNT: usize = 57;
    pub const RECORDS: usize = 61;
}

/// Bits of the batch `attributes` field (bits 0–2 are the codec).
pub(crate) mod attr {
    pub const TIMESTAMP_TYPE: i16 = 0x08;
    pub const TRANSACTIONAL: i16 = 0x10;
    pub const CONTROL: i16 = 0x20;
    pub const DELETE_HORIZON: i16 = 0x40;
}

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer (`CreateTime`); what producers always write.
    #[default]
    CreateTime,
    /// Set by the broker when it appended the batch (`LogAppendTime` topics): every record's
    /// timestamp is the batch's `maxTimestamp`.
    LogAppendTime,
}

/// Why a batch could not be encoded or decoded. Decode errors name the batch's base offset, so a
/// consumer can report (or seek past) the bad batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// The batch is in an older message format (v0/v1, Kafka < 0.11) or an unknown one.
    #[error(
        "batch at offset {base_offset} has magic {magic}: only v2 record batches (Kafka 0.11+) are supported"
    )]
    UnsupportedMagic {
        /// The batch's base offset.
        base_offset: i64,
        /// The magic byte found.
        magic: i8,
    },
    /// The stored CRC-32C does not match the batch's bytes.
    #[error("batch at offset {base_offset} failed its CRC check (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// The batch's base offset.
        base_offset: i64,
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the bytes received.
        computed: u32,
    },
    /// The batch's structure is invalid (bad lengths, counts or varints).
    #[error("batch at offset {base_offset} is corrupt: {reason}")]
    Corrupt {
        /// The batch's base offset.
        base_offset: i64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The batch's payload could not be decompressed (corrupt, unknown codec, or over the limit).
    #[error("batch at offset {base_offset}: {source}")]
    Decompress {
        /// The batch's base offset.
        base_offset: i64,
        /// The codec's error.
        source: CompressionError,
    },
    /// A control batch's record is not a valid control record.
    #[error("control batch at offset {base_offset}: {reason}")]
    InvalidControlRecord {
        /// The batch's base offset.
        base_offset: i64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The records do not fit the format's limits (i32 lengths and counts).
    #[error("cannot encode record batch: {0}")]
    Encode(&'static str),
    /// The codec failed while compressing.
    #[error("cannot compress record batch: {0}")]
    Compress(#[source] CompressionError),
}

/// A record header as the encoder reads it: a key and an optional value, in bytes.
///
/// Implemented for josefk's [`Header`](crate::record::Header), for decoded headers, and for pairs
/// such as `(String, Option<Bytes>)` or `(&str, Option<&[u8]>)`.
pub trait RecordHeader {
    /// The header key (UTF-8 by convention; Java writes and reads it as a string).
    fn key(&self) -> &[u8];
    /// The header value; `None` is a null value, distinct from an empty one.
    fn value(&self) -> Option<&[u8]>;
}

impl RecordHeader for crate::record::Header {
    fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }
    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> RecordHeader for (K, Option<V>) {
    fn key(&self) -> &[u8] {
        self.0.as_ref()
    }
    fn value(&self) -> Option<&[u8]> {
        self.1.as_ref().map(AsRef::as_ref)
    }
}

/// The kind of a control record (the `type` in its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// Transaction marker: the producer's transaction was aborted (type 0).
    Abort,
    /// Transaction marker: the producer's transaction was committed (type 1).
    Commit,
    /// Any other type (KRaft's leader-change and snapshot markers, or future ones); consumers skip
    /// these.
    Other(i16),
}

/// A parsed control record: what a control batch's single record says.
///
/// Key: `version: int16, type: int16`. Value of a transaction marker: `version: int16,
/// coordinatorEpoch: int32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// The key's version (0 today; newer versions are read as long as the layout starts the same).
    pub version: i16,
    /// Which control record this is.
    pub kind: ControlRecordType,
    /// The transaction coordinator's epoch, for commit and abort markers whose value is present.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// Parses a control record's key and value. Like Java's `ControlRecordType.parse`, a negative
    /// key version or a key shorter than 4 bytes is rejected; unknown types are kept as
    /// [`ControlRecordType::Other`].
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, &'static str> {
        let key = key.ok_or("control record has a null key")?;
        let (Some(version), Some(kind)) = (be_i16(key, 0), be_i16(key, 2)) else {
            return Err("control record key is shorter than 4 bytes");
        };
        if version < 0 {
            return Err("control record key has a negative version");
        }
        let kind = match kind {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        };
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let value = value.ok_or("transaction marker has a null value")?;
                Some(be_i32(value, 2).ok_or("transaction marker value is shorter than 6 bytes")?)
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(ControlRecord {
            version,
            kind,
            coordinator_epoch,
        })
    }

    /// The key and value of a version-0 transaction marker, as a transaction coordinator writes
    /// them (for fake brokers and tests).
    #[cfg(test)]
    pub fn marker(commit: bool, coordinator_epoch: i32) -> ([u8; 4], [u8; 6]) {
        let mut key = [0u8; 4];
        key[2..].copy_from_slice(&i16::from(commit).to_be_bytes());
        let mut value = [0u8; 6];
        value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
        (key, value)
    }
}

impl fmt::Display for ControlRecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlRecordType::Abort => f.write_str("ABORT"),
            ControlRecordType::Commit => f.write_str("COMMIT"),
            ControlRecordType::Other(t) => write!(f, "control type {t}"),
        }
    }
}

/// Adds `increment` to a producer sequence number the way Kafka does: sequences run from 0 to
/// `i32::MAX` and then wrap to 0 (Java's `DefaultRecordBatch.incrementSequence`).
#[cfg(any(test, feature = "testing"))]
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

// ---- Varints (zigzag, as in protobuf) and big-endian helpers shared by encode and decode. ----

/// Bytes a zigzag varint/varlong takes on the wire (1–10).
pub(crate) fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    // Each byte carries 7 bits; at least one byte even for zero.
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes a zigzag varlong (a varint is the same encoding of a smaller value).
pub(crate) fn put_varlong(out: &mut bytes::BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    // Most varints in a batch (deltas, short lengths, -1 for null) fit in one byte.
    if z < 0x80 {
        out.extend_from_slice(&[z as u8]);
        return;
    }
    let mut tmp = [0u8; 10];
    let mut n = 0;
    while z >= 0x80 {
        tmp[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    tmp[n] = z as u8;
    out.extend_from_slice(&tmp[..=n]);
}

/// Reads a zigzag varint of at most `max_bytes` bytes (5 for int32, 10 for int64) at `*pos`,
/// advancing `*pos`. `None` if the data ends first or the varint is too long.
pub(crate) fn get_varlong(data: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut z: u64 = 0;
    for i in 0..max_bytes {
        let b = *data.get(*pos + i)?;
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *pos += i + 1;
            // Keep only the bits of the declared width, as Java does; then undo the zigzag.
            let z = if max_bytes <= 5 { z & 0xffff_ffff } else { z };
            return Some(if max_bytes <= 5 {
                let z = z as u32;
                ((z >> 1) as i32 ^ -((z & 1) as i32)) as i64
            } else {
                (z >> 1) as i64 ^ -((z & 1) as i64)
            });
        }
    }
    None
}

/// Reads a zigzag int32 varint.
pub(crate) fn get_varint(data: &[u8], pos: &mut usize) -> Option<i32> {
    get_varlong(data, pos, 5).map(|v| v as i32)
}

pub(crate) fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(*b.get(at..at + 2)?.first_chunk()?))
}

pub(crate) fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(*b.get(at..at + 4)?.first_chunk()?))
}

pub(crate) fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_be_bytes(*b.get(at..at + 8)?.first_chunk()?))
}

//! Reading v2 record batches from a fetched buffer: [`RecordBatches`] iterates batches, a
//! [`RecordBatch`] carries its header fields and iterates its [`Record`]s lazily.
//!
//! Nothing read from the wire sizes an allocation: the record count only bounds the iteration, and
//! every length is checked against the bytes actually present before it is used. Keys, values and
//! headers are `Bytes` slices of the input (zero-copy) or, for compressed batches, of the one buffer
//! the payload was decompressed into. Decompression happens only when a batch's records are asked
//! for, so a consumer can skip aborted or already-consumed batches without paying for it.

use std::iter::FusedIterator;

use bytes::Bytes;

#[cfg(any(test, feature = "testing"))]
use super::increment_sequence;
use super::{attr, be_i16, be_i32, be_i64, get_varint, get_varlong, layout};
use super::{
    ControlRecord, RecordHeader, RecordsError, TimestampType, LOG_OVERHEAD, MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
};
use crate::protocol::compression::{Compression, CompressionError, DEFAULT_MAX_DECOMPRESSED_BYTES};

/// Most bytes a compressed control batch may decompress to. A control batch holds one control
/// record (Kafka's record format docs): a transaction marker is about 20 bytes (a 4-byte key, a
/// 6-byte value, a few varints), and the KRaft control records of `__cluster_metadata` (leader
/// change, voters, snapshot header and footer) are a few hundred bytes for any real quorum.
/// Brokers write control batches uncompressed anyway (`MemoryRecords.withEndTransactionMarker`
/// uses no compression), so this only bounds what a hostile or broken broker can make one cost.
pub(crate) const MAX_CONTROL_BATCH_BYTES: usize = 4096;

/// Why a control batch over [`MAX_CONTROL_BATCH_BYTES`] is refused (the figure repeated, as the
/// reason is static text).
const CONTROL_BATCH_TOO_LARGE: &str =
    "compressed control batch decompresses to more than 4096 bytes (a control record is a few \
     dozen bytes); refused without decompressing the rest";

/// Smallest `batchLength` that can be any message format at all (Java's
/// `LegacyRecord.RECORD_OVERHEAD_V0`); shorter means the length field itself is garbage.
const MIN_ANY_BATCH_LENGTH: i32 = 14;

/// How batches are checked and decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify each batch's CRC-32C (the consumer's `check.crcs`, default true).
    pub check_crc: bool,
    /// Refuse to decompress one batch's records to more than this many bytes.
    pub max_decompressed_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            check_crc: true,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// Iterates the batches in a fetched partition's `records` bytes.
///
/// Ends (`None`) at the end of the buffer or at a truncated final batch: brokers cut the last
/// batch of a response at the fetch size limit, so that is normal, not an error. After `None`,
/// [`remaining`](Self::remaining) is the size of that partial tail; a response holding *only* a
/// partial batch means the fetch size is smaller than the batch. After the first error the
/// iterator ends.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    buf: Bytes,
    pos: usize,
    opts: DecodeOptions,
    done: bool,
}

impl RecordBatches {
    /// Batches of `buf`, with the default options.
    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // tests/ decode fetched bytes with it
    pub fn new(buf: Bytes) -> Self {
        Self::with_options(buf, DecodeOptions::default())
    }

    /// Batches of `buf`, with the given options.
    pub fn with_options(buf: Bytes, opts: DecodeOptions) -> Self {
        RecordBatches {
            buf,
            pos: 0,
            opts,
            done: false,
        }
    }

    /// Bytes not yet consumed; once iteration has ended without error, the partial batch's size.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Once iteration ended at a truncated batch: its base offset and the size its header
    /// declares (length field plus [`LOG_OVERHEAD`]), when enough of the header arrived to say.
    pub fn truncated_batch(&self) -> Option<(i64, usize)> {
        let rest = &self.buf[self.pos..];
        let base_offset = be_i64(rest, 0)?;
        let length = be_i32(rest, layout::LENGTH)?;
        let declared = usize::try_from(length).ok()?.checked_add(LOG_OVERHEAD)?;
        (declared > rest.len()).then_some((base_offset, declared))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, RecordsError> {
        let rest = &self.buf[self.pos..];
        let (Some(base_offset), Some(length)) = (be_i64(rest, 0), be_i32(rest, layout::LENGTH))
        else {
            return Ok(None);
        };
        let corrupt = |reason| RecordsError::Corrupt {
            base_offset,
            reason,
        };
        if length < MIN_ANY_BATCH_LENGTH {
            return Err(corrupt("batch length is smaller than any record batch"));
        }
        let size = LOG_OVERHEAD + length as usize;
        if size > rest.len() {
            return Ok(None); // truncated tail
        }
        let magic = rest[layout::MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordsError::UnsupportedMagic { base_offset, magic });
        }
        if size < RECORD_BATCH_OVERHEAD {
            return Err(corrupt("batch length is smaller than the v2 header"));
        }
        let raw = self.buf.slice(self.pos..self.pos + size);
        let batch = RecordBatch::parse(raw, &self.opts)?;
        self.pos += size;
        Ok(Some(batch))
    }
}

impl Iterator for RecordBatches {
    type Item = Result<RecordBatch, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

impl FusedIterator for RecordBatches {}

/// One v2 batch: its header fields, and its records on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Epoch of the partition leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// The raw attributes field.
    pub attributes: i16,
    /// Codec of the records (attribute bits 0–2).
    pub compression: Compression,
    /// Meaning of the timestamps (attribute bit 3).
    pub timestamp_type: TimestampType,
    /// Part of a transaction (attribute bit 4).
    pub is_transactional: bool,
    /// Holds a control record, e.g. a transaction marker (attribute bit 5).
    pub is_control: bool,
    /// Compaction set a delete horizon; `base_timestamp` is then that horizon (bit 6, KIP-534).
    pub has_delete_horizon: bool,
    /// Offset of the last record minus `base_offset`. Compaction can remove records, so this,
    /// not the record count, gives the next offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (or the delete horizon).
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the append time for `LogAppendTime`).
    pub max_timestamp: i64,
    /// Producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Record count as stated in the header (not trusted for anything but iteration).
    pub record_count: i32,
    /// The stored CRC-32C.
    pub crc: u32,
    raw: Bytes,
    max_decompressed_bytes: usize,
}

impl RecordBatch {
    fn parse(raw: Bytes, opts: &DecodeOptions) -> Result<Self, RecordsError> {
        // `raw` is at least RECORD_BATCH_OVERHEAD long and v2: checked by the caller.
        let field64 = |at| be_i64(&raw, at).unwrap_or_default();
        let field32 = |at| be_i32(&raw, at).unwrap_or_default();
        let base_offset = field64(0);
        let crc = field32(layout::CRC) as u32;
        if opts.check_crc {
            let computed = crc32c::crc32c(&raw[layout::ATTRIBUTES..]);
            if computed != crc {
                return Err(RecordsError::CrcMismatch {
                    base_offset,
                    stored: crc,
                    computed,
                });
            }
        }
        let attributes = be_i16(&raw, layout::ATTRIBUTES).unwrap_or_default();
        let compression = Compression::from_attributes(attributes).map_err(|source| {
            RecordsError::Decompress {
                base_offset,
                source,
            }
        })?;
        let record_count = field32(layout::RECORD_COUNT);
        if record_count < 0 {
            return Err(RecordsError::Corrupt {
                base_offset,
                reason: "negative record count",
            });
        }
        Ok(RecordBatch {
            base_offset,
            partition_leader_epoch: field32(layout::PARTITION_LEADER_EPOCH),
            attributes,
            compression,
            timestamp_type: if attributes & attr::TIMESTAMP_TYPE != 0 {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            is_transactional: attributes & attr::TRANSACTIONAL != 0,
            is_control: attributes & attr::CONTROL != 0,
            has_delete_horizon: attributes & attr::DELETE_HORIZON != 0,
            last_offset_delta: field32(layout::LAST_OFFSET_DELTA),
            base_timestamp: field64(layout::BASE_TIMESTAMP),
            max_timestamp: field64(layout::MAX_TIMESTAMP),
            producer_id: field64(layout::PRODUCER_ID),
            producer_epoch: be_i16(&raw, layout::PRODUCER_EPOCH).unwrap_or_default(),
            base_sequence: field32(layout::BASE_SEQUENCE),
            record_count,
            crc,
            raw,
            max_decompressed_bytes: opts.max_decompressed_bytes,
        })
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(self.last_offset_delta.into())
    }

    /// The offset to fetch next after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Sequence of the last record (wrapping as Kafka does), or -1 without idempotence.
    #[cfg(any(test, feature = "testing"))]
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return super::NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Size of the whole batch in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.raw.len()
    }

    /// The batch exactly as received, base offset to last byte.
    #[cfg(any(test, feature = "testing"))]
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The records, decompressing the payload first if the batch is compressed.
    pub fn records(&self) -> Result<Records, RecordsError> {
        self.records_within(self.max_decompressed_bytes)
    }

    /// Whether reading the records decompresses a payload (the batch is compressed and not empty),
    /// so that [`Records::byte_len`] is memory of its own rather than a slice of the input.
    pub fn needs_decompression(&self) -> bool {
        self.compression != Compression::None && self.record_count > 0
    }

    /// [`RecordBatch::records`] with a tighter bound: decompressing to more than `max_len` bytes
    /// (or more than the options' limit) fails with [`CompressionError::TooLarge`] inside
    /// [`RecordsError::Decompress`]. A consumer uses it to fit a batch into what is left of one
    /// poll's memory budget.
    ///
    /// [`CompressionError::TooLarge`]: crate::protocol::compression::CompressionError::TooLarge
    pub fn records_within(&self, max_len: usize) -> Result<Records, RecordsError> {
        let max_len = max_len.min(self.max_decompressed_bytes);
        let payload = self.raw.slice(layout::RECORDS..);
        let data =
            match self.compression {
                // Compaction keeps emptied batches of idempotent producers (to remember their last
                // sequence); like Java, do not try to decompress those.
                _ if self.record_count == 0 => Bytes::new(),
                Compression::None => payload,
                codec => codec.decompress(&payload, max_len).map_err(|source| {
                    RecordsError::Decompress {
                        base_offset: self.base_offset,
                        source,
                    }
                })?,
            };
        Ok(Records {
            data,
            pos: 0,
            left: self.record_count,
            base_offset: self.base_offset,
            base_timestamp: self.base_timestamp,
            log_append_time: (self.timestamp_type == TimestampType::LogAppendTime)
                .then_some(self.max_timestamp),
            done: false,
        })
    }

    /// For a control batch, its control record (a commit or abort marker on data partitions);
    /// `None` for data batches.
    ///
    /// A compressed control batch is decompressed to at most 4 KiB: a larger one is a
    /// [`RecordsError::InvalidControlRecord`], whatever the options' limit.
    pub fn control_record(&self) -> Result<Option<ControlRecord>, RecordsError> {
        if !self.is_control {
            return Ok(None);
        }
        let invalid = |reason| RecordsError::InvalidControlRecord {
            base_offset: self.base_offset,
            reason,
        };
        // Only the first record is read, and the consumer reads it for every control batch
        // outside any poll's decompression budget: the full per-batch limit would let each small
        // compressed control batch of a fetch cost that much decompression.
        let mut records = match self.records_within(MAX_CONTROL_BATCH_BYTES) {
            Err(RecordsError::Decompress {
                source: CompressionError::TooLarge { .. },
                ..
            }) => return Err(invalid(CONTROL_BATCH_TOO_LARGE)),
            other => other?,
        };
        let record = records
            .next()
            .ok_or_else(|| invalid("control batch has no record"))??;
        ControlRecord::parse(record.key.as_deref(), record.value.as_deref())
            .map(Some)
            .map_err(invalid)
    }
}

/// The records of one batch, decoded one at a time.
///
/// Ends after `record_count` records; a batch whose bytes end before that, or that has bytes left
/// after it, yields an error (as Java does), after which the iterator ends.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    pos: usize,
    left: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    done: bool,
}

impl Records {
    /// Bytes of record data the batch holds: the decompressed payload of a compressed batch (what
    /// every record handed out keeps alive), or the slice of the input of an uncompressed one.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Every record was read and the batch ended cleanly: the next `next()` is `None`.
    pub fn finished(&self) -> bool {
        self.left == 0 && self.pos == self.data.len()
    }

    fn corrupt(&self, reason: &'static str) -> RecordsError {
        RecordsError::Corrupt {
            base_offset: self.base_offset,
            reason,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, RecordsError> {
        if self.left == 0 {
            if self.pos != self.data.len() {
                return Err(self.corrupt("bytes left after the last record"));
            }
            return Ok(None);
        }
        let mut pos = self.pos;
        let data = &self.data[..];
        let len =
            get_varint(data, &mut pos).ok_or_else(|| self.corrupt("record length is truncated"))?;
        let len = usize::try_from(len).map_err(|_| self.corrupt("negative record length"))?;
        if len > data.len() - pos {
            return Err(self.corrupt("record runs past the end of the batch"));
        }
        let end = pos + len;
        let record = self
            .parse_body(pos, end)
            .ok_or_else(|| self.corrupt("record fields do not match the record length"))?;
        self.pos = end;
        self.left -= 1;
        Ok(Some(record))
    }

    /// Parses the record occupying `data[pos..end]`; `None` if any field is malformed or the
    /// fields do not end exactly at `end`.
    fn parse_body(&self, mut pos: usize, end: usize) -> Option<Record> {
        let body = &self.data[..end];
        pos += 1; // attributes: unused by v2
        let timestamp_delta = get_varlong(body, &mut pos, 10)?;
        let offset_delta = get_varint(body, &mut pos)?;
        let key = self.nullable(body, &mut pos)?;
        let value = self.nullable(body, &mut pos)?;
        let count = u32::try_from(get_varint(body, &mut pos)?).ok()?;
        // Walk the headers once to validate them; the count cannot exceed the bytes present, so
        // this loop is bounded by the record's size.
        let headers_start = pos;
        for _ in 0..count {
            let key_len = usize::try_from(get_varint(body, &mut pos)?).ok()?;
            pos = pos.checked_add(key_len).filter(|&p| p <= end)?;
            skip_nullable(body, &mut pos)?;
        }
        if pos != end {
            return None;
        }
        Some(Record {
            offset: self.base_offset.wrapping_add(offset_delta.into()),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers: Headers {
                data: self.data.slice(headers_start..end),
                count,
            },
        })
    }

    /// Reads a nullable byte string as a slice of the batch data. `Some(None)` is a null.
    fn nullable(&self, body: &[u8], pos: &mut usize) -> Option<Option<Bytes>> {
        let len = get_varint(body, pos)?;
        if len < 0 {
            return (len == -1).then_some(None);
        }
        let start = *pos;
        *pos = start
            .checked_add(len as usize)
            .filter(|&e| e <= body.len())?;
        Some(Some(self.data.slice(start..*pos)))
    }
}

/// Skips a nullable byte string (varint length, -1 for null, then the bytes) within `body`.
fn skip_nullable(body: &[u8], pos: &mut usize) -> Option<()> {
    let len = get_varint(body, pos)?;
    if len < -1 {
        return None;
    }
    if len > 0 {
        *pos = pos.checked_add(len as usize).filter(|&p| p <= body.len())?;
    }
    Some(())
}

impl Iterator for Records {
    type Item = Result<Record, RecordsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every record takes at least 7 bytes, so the data bounds the count from above as well.
        let by_bytes = (self.data.len() - self.pos) / 7;
        (0, Some((self.left as usize).min(by_bytes + 1)))
    }
}

impl FusedIterator for Records {}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Milliseconds since the epoch (the append time for `LogAppendTime` batches).
    pub timestamp: i64,
    /// The key; `None` is a null key.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// The headers, in order, duplicates kept.
    pub headers: Headers,
}

/// A record's headers, kept as the validated bytes of the header section so that a record with
/// headers costs no allocation until they are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    data: Bytes,
    count: u32,
}

impl Headers {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in order.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter {
            headers: self,
            pos: 0,
            left: self.count,
        }
    }

    /// The value of the last header named `key` (Java's `Headers.lastHeader`): `Some(None)` for a
    /// header with a null value, `None` when there is no such header.
    pub fn last(&self, key: &str) -> Option<Option<Bytes>> {
        self.iter()
            .filter(|h| h.key.as_ref() == key.as_bytes())
            .last()
            .map(|h| h.value)
    }

    /// The headers as josefk's [`Header`](crate::record::Header) values (keys decoded as UTF-8,
    /// invalid sequences replaced, as Java's `Utils.utf8` does).
    pub fn to_vec(&self) -> Vec<crate::record::Header> {
        self.iter().map(DecodedHeader::into_header).collect()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = DecodedHeader;
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Headers`].
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    headers: &'a Headers,
    pos: usize,
    left: u32,
}

impl Iterator for HeadersIter<'_> {
    type Item = DecodedHeader;

    fn next(&mut self) -> Option<DecodedHeader> {
        if self.left == 0 {
            return None;
        }
        // The section was validated when the record was decoded, so these reads succeed.
        let data = &self.headers.data;
        let key_len = usize::try_from(get_varint(data, &mut self.pos)?).ok()?;
        let key = data.slice(self.pos..self.pos.checked_add(key_len).filter(|&e| e <= data.len())?);
        self.pos += key_len;
        let value_len = get_varint(data, &mut self.pos)?;
        let value = match usize::try_from(value_len) {
            Err(_) => None,
            Ok(n) => {
                let v = data.slice(self.pos..self.pos.checked_add(n).filter(|&e| e <= data.len())?);
                self.pos += n;
                Some(v)
            }
        };
        self.left -= 1;
        Some(DecodedHeader { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for HeadersIter<'_> {}

/// A decoded header: zero-copy slices of the batch data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedHeader {
    /// The key bytes (UTF-8 by convention).
    pub key: Bytes,
    /// The value; `None` is a null value.
    pub value: Option<Bytes>,
}

impl DecodedHeader {
    /// The key as text, if it is valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// Converts to josefk's [`Header`](crate::record::Header), replacing invalid UTF-8 in the key.
    pub fn into_header(self) -> crate::record::Header {
        crate::record::Header {
            key: String::from_utf8_lossy(&self.key).into_owned(),
            value: self.value,
        }
    }
}

impl RecordHeader for DecodedHeader {
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn value(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }
}

//! Writing v2 record batches: [`BatchBuilder`] for the producer's accumulator, [`encode_batch`] for
//! one-shot use, and in-place rewrites of producer state ([`rewrite_producer_state`]) and base offset
//! ([`set_base_offset`]) in batches already encoded.
//!
//! Records are written once, straight into their final buffer: the caller's buffer for uncompressed
//! batches, a reusable scratch buffer for compressed ones (compressed into the caller's buffer when
//! the batch is finished). Each record's length prefix is computed arithmetically beforehand, so no
//! record is staged or copied, and nothing is allocated per record.

use bytes::BytesMut;

use super::{
    attr, layout, put_varlong, varlong_len, RecordHeader, RecordsError, MAGIC_V2,
    RECORD_BATCH_OVERHEAD,
};
use super::{NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE};
use crate::protocol::compression::Compression;

/// The batch-level fields a producer chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Codec for the records.
    pub compression: Compression,
    /// Producer id, or [`NO_PRODUCER_ID`] without idempotence.
    pub producer_id: i64,
    /// Producer epoch, or [`NO_PRODUCER_EPOCH`].
    pub producer_epoch: i16,
    /// Sequence number of the first record, or [`NO_SEQUENCE`].
    pub base_sequence: i32,
    /// Whether the batch is part of a transaction.
    pub transactional: bool,
    /// Whether the batch holds control records (only brokers write these; for fake brokers).
    pub control: bool,
    /// Partition leader epoch; producers write [`NO_PARTITION_LEADER_EPOCH`] and the broker stamps it.
    pub partition_leader_epoch: i32,
    /// Base offset; 0 for produce requests (the broker assigns offsets).
    pub base_offset: i64,
}

impl Default for BatchOptions {
    /// An uncompressed, non-idempotent, non-transactional data batch at offset 0.
    fn default() -> Self {
        BatchOptions {
            compression: Compression::None,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            base_offset: 0,
        }
    }
}

impl BatchOptions {
    fn attributes(&self) -> i16 {
        let mut a = self.compression.id();
        if self.transactional {
            a |= attr::TRANSACTIONAL;
        }
        if self.control {
            a |= attr::CONTROL;
        }
        a
    }
}

/// One record for [`encode_batch`]. `H` is any [`RecordHeader`], e.g. [`Header`](crate::record::Header).
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a, H> {
    /// Milliseconds since the epoch (`CreateTime`).
    pub timestamp: i64,
    /// The key; `None` is a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order; duplicate keys are kept.
    pub headers: &'a [H],
}

/// Where a finished batch is in the buffer and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Offset of the batch's first byte in the returned buffer.
    pub start: usize,
    /// Size of the batch in bytes (0 if no record was appended: nothing is written then).
    pub len: usize,
    /// Number of records.
    pub record_count: i32,
    /// Size the batch would have uncompressed (equal to `len` without compression).
    pub uncompressed_len: usize,
    /// The largest record timestamp.
    pub max_timestamp: i64,
}

/// What [`BatchBuilder::finish`] hands back.
#[derive(Debug)]
#[cfg(any(test, feature = "unstable-internals"))]
pub struct FinishedBatch {
    /// The caller's buffer with the batch appended at `info.start..info.start + info.len`.
    pub buf: BytesMut,
    /// The scratch buffer, emptied, for the next compressed batch (empty if never used).
    pub scratch: BytesMut,
    /// The batch's position and counts.
    pub info: BatchInfo,
}

/// Builds one v2 batch record by record.
///
/// Uncompressed records are appended directly after a reserved header in the caller's buffer;
/// compressed ones go to a scratch buffer (pass one in with [`with_scratch`](Self::with_scratch) to
/// reuse its allocation) and are compressed into the caller's buffer by [`finish`](Self::finish).
/// The base timestamp is the first record's, as in Java's `MemoryRecordsBuilder` (deltas may be
/// negative); offsets deltas are 0, 1, 2, ...
#[derive(Debug)]
pub struct BatchBuilder {
    opts: BatchOptions,
    out: BytesMut,
    start: usize,
    scratch: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    /// Starts a batch at the end of `out` (existing contents are kept).
    pub fn new(opts: BatchOptions, out: BytesMut) -> Self {
        Self::with_scratch(opts, out, BytesMut::new())
    }

    /// Like [`new`](Self::new), with a scratch buffer for compressed records whose allocation is
    /// reused (see [`FinishedBatch::scratch`]).
    pub fn with_scratch(opts: BatchOptions, mut out: BytesMut, mut scratch: BytesMut) -> Self {
        let start = out.len();
        // Reserve the header; finish() fills it in once the counts and the CRC are known.
        out.resize(start + RECORD_BATCH_OVERHEAD, 0);
        scratch.clear();
        BatchBuilder {
            opts,
            out,
            start,
            scratch,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Size of the batch so far before compression: header plus encoded records. The producer's
    /// batch-size check uses this (or an estimate of the compression ratio on top of it).
    #[cfg(test)]
    pub fn uncompressed_len(&self) -> usize {
        RECORD_BATCH_OVERHEAD + self.records_len()
    }

    #[cfg(test)]
    fn records_len(&self) -> usize {
        match self.opts.compression {
            Compression::None => self.out.len() - self.start - RECORD_BATCH_OVERHEAD,
            _ => self.scratch.len(),
        }
    }

    /// Appends one record and returns its encoded size in bytes (length prefix included).
    pub fn append<H: RecordHeader>(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[H],
    ) -> Result<usize, RecordsError> {
        if self.count == i32::MAX {
            return Err(RecordsError::Encode(
                "more than i32::MAX records in one batch",
            ));
        }
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count;

        // Body size first: the record starts with its own length as a varint.
        let mut body = 1 // attributes (unused, always 0)
            + varlong_len(timestamp_delta)
            + varlong_len(offset_delta.into())
            + nullable_len(key)?
            + nullable_len(value)?
            + varlong_len(i64::try_from(headers.len()).unwrap_or(i64::MAX));
        for h in headers {
            body += nullable_len(Some(h.key()))? + nullable_len(h.value())?;
        }
        let body_i32 = i32::try_from(body)
            .map_err(|_| RecordsError::Encode("record larger than i32::MAX bytes"))?;
        let total = varlong_len(body_i32.into()) + body;

        let dst = match self.opts.compression {
            Compression::None => &mut self.out,
            _ => &mut self.scratch,
        };
        dst.reserve(total);
        put_varlong(dst, body_i32.into());
        dst.extend_from_slice(&[0]);
        put_varlong(dst, timestamp_delta);
        put_varlong(dst, offset_delta.into());
        put_nullable(dst, key);
        put_nullable(dst, value);
        put_varlong(dst, headers.len() as i64);
        for h in headers {
            put_nullable(dst, Some(h.key()));
            put_nullable(dst, h.value());
        }

        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        Ok(total)
    }

    /// Completes the batch: compresses the records if asked, fills in the header and the CRC.
    ///
    /// A builder with no records writes nothing (Kafka has no empty data batches) and returns a
    /// zero-length [`BatchInfo`]. The only errors (a batch over 2 GiB, a codec failure) drop the
    /// buffers; [`encode_batch`] keeps the caller's buffer instead.
    #[cfg(any(test, feature = "unstable-internals"))] // and benches/micro.rs
    pub fn finish(mut self) -> Result<FinishedBatch, RecordsError> {
        let info = self.complete()?;
        Ok(FinishedBatch {
            buf: self.out,
            scratch: self.scratch,
            info,
        })
    }

    /// The work of `finish`, in place; on error the output is cut back to where the batch began.
    fn complete(&mut self) -> Result<BatchInfo, RecordsError> {
        let (opts, start, count) = (self.opts, self.start, self.count);
        let out = &mut self.out;
        if count == 0 {
            out.truncate(start);
            self.scratch.clear();
            return Ok(BatchInfo {
                start,
                len: 0,
                record_count: 0,
                uncompressed_len: 0,
                max_timestamp: -1,
            });
        }
        let records_len = match opts.compression {
            Compression::None => out.len() - start - RECORD_BATCH_OVERHEAD,
            codec => {
                let n = self.scratch.len();
                let compressed = codec.compress(&self.scratch, out);
                self.scratch.clear();
                if let Err(e) = compressed {
                    out.truncate(start);
                    return Err(RecordsError::Compress(e));
                }
                n
            }
        };
        let len = out.len() - start;
        let Ok(batch_length) = i32::try_from(len - super::LOG_OVERHEAD) else {
            out.truncate(start);
            return Err(RecordsError::Encode("batch larger than i32::MAX bytes"));
        };

        let h = &mut out[start..start + RECORD_BATCH_OVERHEAD];
        h[..8].copy_from_slice(&opts.base_offset.to_be_bytes());
        h[layout::LENGTH..][..4].copy_from_slice(&batch_length.to_be_bytes());
        h[layout::PARTITION_LEADER_EPOCH..][..4]
            .copy_from_slice(&opts.partition_leader_epoch.to_be_bytes());
        h[layout::MAGIC] = MAGIC_V2 as u8;
        h[layout::ATTRIBUTES..][..2].copy_from_slice(&opts.attributes().to_be_bytes());
        h[layout::LAST_OFFSET_DELTA..][..4].copy_from_slice(&(count - 1).to_be_bytes());
        h[layout::BASE_TIMESTAMP..][..8].copy_from_slice(&self.base_timestamp.to_be_bytes());
        h[layout::MAX_TIMESTAMP..][..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        h[layout::PRODUCER_ID..][..8].copy_from_slice(&opts.producer_id.to_be_bytes());
        h[layout::PRODUCER_EPOCH..][..2].copy_from_slice(&opts.producer_epoch.to_be_bytes());
        h[layout::BASE_SEQUENCE..][..4].copy_from_slice(&opts.base_sequence.to_be_bytes());
        h[layout::RECORD_COUNT..][..4].copy_from_slice(&count.to_be_bytes());
        write_crc(&mut out[start..]);

        Ok(BatchInfo {
            start,
            len,
            record_count: count,
            uncompressed_len: RECORD_BATCH_OVERHEAD + records_len,
            max_timestamp: self.max_timestamp,
        })
    }
}

/// Encodes `records` as one batch appended to `out`; returns where it is and what it holds.
///
/// Convenience over [`BatchBuilder`] (the compressed path allocates a scratch buffer per call). On
/// error `out` is left as it was.
pub fn encode_batch<'a, H, I>(
    out: &mut BytesMut,
    opts: &BatchOptions,
    records: I,
) -> Result<BatchInfo, RecordsError>
where
    H: RecordHeader + 'a,
    I: IntoIterator<Item = RecordInput<'a, H>>,
{
    let mut builder = BatchBuilder::new(*opts, std::mem::take(out));
    let result = records
        .into_iter()
        .try_for_each(|r| {
            builder
                .append(r.timestamp, r.key, r.value, r.headers)
                .map(drop)
        })
        .and_then(|()| builder.complete());
    *out = builder.out;
    if result.is_err() {
        out.truncate(builder.start);
    }
    result
}

/// Bytes a record's key, value, header count and headers take on the wire: everything but the
/// length prefix, attributes and the two deltas, which depend on the batch it joins (see
/// [`record_size`]). Lengths beyond `i32::MAX` (which [`BatchBuilder::append`] refuses) saturate.
pub fn record_fields_len<H: RecordHeader>(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[H],
) -> usize {
    let field = |b: Option<&[u8]>| nullable_len(b).unwrap_or(usize::MAX / 4);
    let mut len = field(key)
        .saturating_add(field(value))
        .saturating_add(varlong_len(headers.len() as i64));
    for h in headers {
        len = len
            .saturating_add(field(Some(h.key())))
            .saturating_add(field(h.value()));
    }
    len
}

/// The exact encoded size of a record (length prefix included) whose fields take `fields` bytes
/// ([`record_fields_len`]), written `offset_delta` records and `timestamp_delta` ms after its
/// batch's first record, as [`BatchBuilder::append`] writes it (Java `DefaultRecord.sizeInBytes`).
pub fn record_size(fields: usize, timestamp_delta: i64, offset_delta: i32) -> usize {
    let body = (1 + varlong_len(timestamp_delta) + varlong_len(offset_delta.into()))
        .saturating_add(fields);
    varlong_len(i64::try_from(body).unwrap_or(i64::MAX)).saturating_add(body)
}

/// Re-stamps producer id, epoch and base sequence in an encoded v2 batch and recomputes its CRC.
///
/// The idempotent producer needs this when it bumps its epoch (or gets a new producer id) and
/// re-sequences batches already built. `batch` must be exactly one batch. The CRC covers attributes
/// to the end, so this costs one CRC pass and no re-encoding.
#[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // protocol-tests' scripted broker
pub fn rewrite_producer_state(
    batch: &mut [u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<(), RecordsError> {
    check_single_batch(batch)?;
    batch[layout::PRODUCER_ID..][..8].copy_from_slice(&producer_id.to_be_bytes());
    batch[layout::PRODUCER_EPOCH..][..2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[layout::BASE_SEQUENCE..][..4].copy_from_slice(&base_sequence.to_be_bytes());
    write_crc(batch);
    Ok(())
}

/// Sets the base offset of an encoded v2 batch (a broker's job; for fake brokers and tests). The
/// base offset is outside the CRC, so nothing else changes.
#[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // protocol-tests' scripted broker
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), RecordsError> {
    check_single_batch(batch)?;
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

#[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // protocol-tests' scripted broker
fn check_single_batch(batch: &[u8]) -> Result<(), RecordsError> {
    let corrupt = |reason| RecordsError::Corrupt {
        base_offset: super::be_i64(batch, 0).unwrap_or(-1),
        reason,
    };
    if batch.len() < RECORD_BATCH_OVERHEAD {
        return Err(corrupt("buffer shorter than a batch header"));
    }
    if batch[layout::MAGIC] as i8 != MAGIC_V2 {
        return Err(RecordsError::UnsupportedMagic {
            base_offset: super::be_i64(batch, 0).unwrap_or(-1),
            magic: batch[layout::MAGIC] as i8,
        });
    }
    let length = super::be_i32(batch, layout::LENGTH).unwrap_or(-1);
    if usize::try_from(length)
        .ok()
        .map(|l| l + super::LOG_OVERHEAD)
        != Some(batch.len())
    {
        return Err(corrupt("buffer is not exactly one batch"));
    }
    Ok(())
}

/// Writes the CRC-32C of `batch[ATTRIBUTES..]` into its CRC field.
fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[layout::ATTRIBUTES..]);
    batch[layout::CRC..][..4].copy_from_slice(&crc.to_be_bytes());
}

/// Wire size of a nullable byte string: varint length (-1 for null) plus the bytes.
fn nullable_len(b: Option<&[u8]>) -> Result<usize, RecordsError> {
    Ok(match b {
        None => 1,
        Some(b) => {
            let n = i32::try_from(b.len())
                .map_err(|_| RecordsError::Encode("field larger than i32::MAX bytes"))?;
            varlong_len(n.into()) + b.len()
        }
    })
}

fn put_nullable(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

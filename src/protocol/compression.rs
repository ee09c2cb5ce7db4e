//! Record-batch compression: the five codecs Kafka names in a batch's attributes (none, gzip,
//! snappy, lz4, zstd), all in pure Rust.
//!
//! `kafka-protocol`'s own lz4 and zstd support compiles C, so josefk carries its codecs here and the
//! record-batch code in [`super::records`] calls them directly. Each codec writes the framing the
//! Java client writes and reads what the Java client (and librdkafka, franz-go, Sarama) write:
//!
//! - gzip: a standard gzip member (RFC 1952); reading accepts several concatenated members, as
//!   `java.util.zip.GZIPInputStream` does.
//! - snappy: snappy-java's *xerial* framing (a 16-byte header, then `[u32 big-endian length][raw
//!   snappy block]` for each 32 KiB of input). Reading also accepts plain raw snappy, as
//!   `SnappyInputStream` does when the header is missing (librdkafka wrote raw snappy for years).
//! - lz4: the standard LZ4 *frame* format with independent 64 KiB blocks and no checksums, exactly
//!   what `KafkaLZ4BlockOutputStream` writes for message format v1 and later (KIP-57 fixed the header
//!   checksum that v0 got wrong).
//! - zstd: a standard zstd frame with a content checksum. The compressor is `ruzstd`'s "fastest"
//!   level (about zstd level 1; it has no higher levels yet), so `compression.zstd.level` cannot be
//!   honoured; any zstd decoder, zstd-jni included, reads the frames.
//!
//! Decompression is always bounded: every decoder stops and fails once the output would pass the
//! caller's limit, so a small hostile batch cannot make the client allocate gigabytes.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

/// The default limit on the decompressed size of one record batch: 128 MiB.
///
/// Far above any batch a broker accepts by default (`message.max.bytes` is 1 MiB compressed), yet
/// small enough that a decompression bomb cannot exhaust memory.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 128 * 1024 * 1024;

/// A record-batch compression codec: the low three bits of a v2 batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records are stored as they are.
    #[default]
    None,
    /// gzip (DEFLATE).
    Gzip,
    /// Snappy, in snappy-java's xerial framing.
    Snappy,
    /// LZ4, in the LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// Why a codec could not compress or decompress.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The batch attributes name a codec id Kafka does not define (5, 6 or 7).
    #[error("unknown compression codec id {0}")]
    UnknownCodec(i16),
    /// A `compression.type` string that is not one of Kafka's names.
    #[error("unknown compression type {0:?} (expected none, gzip, snappy, lz4 or zstd)")]
    UnknownName(String),
    /// The decompressed data would be larger than the caller's limit.
    #[error("{codec} data decompresses to more than the {limit}-byte limit")]
    TooLarge {
        /// The codec that was decompressing.
        codec: Compression,
        /// The limit that was reached.
        limit: usize,
    },
    /// The compressed data is not valid for the codec.
    #[error("corrupt {codec} data: {reason}")]
    Corrupt {
        /// The codec that rejected the data.
        codec: Compression,
        /// What was wrong, as the codec reported it.
        reason: String,
    },
    /// The codec failed to compress (only for inputs beyond the codec's size limits).
    #[error("{codec} compression failed: {reason}")]
    Compress {
        /// The codec that failed.
        codec: Compression,
        /// What went wrong.
        reason: String,
    },
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec id written in the low three bits of a batch's attributes.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec named by a codec id.
    pub fn from_id(id: i16) -> Result<Self, CompressionError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(CompressionError::UnknownCodec(other)),
        }
    }

    /// The codec named by a v2 batch's attributes (bits 0–2).
    pub fn from_attributes(attributes: i16) -> Result<Self, CompressionError> {
        Self::from_id(attributes & 0x07)
    }

    /// The `compression.type` name: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Appends the compressed form of `input` to `out`.
    ///
    /// `None` copies `input` as it is.
    pub fn compress(self, input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
        match self {
            Compression::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            Compression::Gzip => gzip_compress(input, out),
            Compression::Snappy => snappy_compress(input, out),
            Compression::Lz4 => lz4_compress(input, out),
            Compression::Zstd => {
                // ruzstd's writer calls are infallible for an in-memory sink; Fastest is the only
                // compressing level it implements (the others panic with `unimplemented!`).
                ruzstd::encoding::compress(
                    input,
                    out.writer(),
                    ruzstd::encoding::CompressionLevel::Fastest,
                );
                Ok(())
            }
        }
    }

    /// Decompresses `input`, failing with [`CompressionError::TooLarge`] rather than producing
    /// more than `max_len` bytes.
    ///
    /// `None` returns a copy of `input` (callers that want zero-copy slice the input themselves).
    pub fn decompress(self, input: &[u8], max_len: usize) -> Result<Bytes, CompressionError> {
        let out = match self {
            Compression::None => {
                if input.len() > max_len {
                    return Err(self.too_large(max_len));
                }
                input.to_vec()
            }
            Compression::Gzip => read_bounded(
                flate2::read::MultiGzDecoder::new(input),
                self,
                input.len(),
                max_len,
            )?,
            Compression::Snappy => snappy_decompress(input, max_len)?,
            Compression::Lz4 => read_bounded(
                lz4_flex::frame::FrameDecoder::new(input),
                self,
                input.len(),
                max_len,
            )?,
            Compression::Zstd => zstd_decompress(input, max_len)?,
        };
        Ok(Bytes::from(out))
    }

    fn too_large(self, limit: usize) -> CompressionError {
        CompressionError::TooLarge { codec: self, limit }
    }

    fn corrupt(self, reason: impl fmt::Display) -> CompressionError {
        CompressionError::Corrupt {
            codec: self,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = CompressionError;

    /// Parses a producer `compression.type` value (case-insensitive, as Java is).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| CompressionError::UnknownName(s.to_owned()))
    }
}

impl From<Compression> for kafka_protocol::records::Compression {
    fn from(c: Compression) -> Self {
        use kafka_protocol::records::Compression as K;
        match c {
            Compression::None => K::None,
            Compression::Gzip => K::Gzip,
            Compression::Snappy => K::Snappy,
            Compression::Lz4 => K::Lz4,
            Compression::Zstd => K::Zstd,
        }
    }
}

impl From<kafka_protocol::records::Compression> for Compression {
    fn from(c: kafka_protocol::records::Compression) -> Self {
        use kafka_protocol::records::Compression as K;
        match c {
            K::None => Compression::None,
            K::Gzip => Compression::Gzip,
            K::Snappy => Compression::Snappy,
            K::Lz4 => Compression::Lz4,
            K::Zstd => Compression::Zstd,
        }
    }
}

/// Reads a streaming decoder to its end, but never more than `max_len` bytes: one byte past the
/// limit is requested so that "exactly at the limit" and "over it" can be told apart.
fn read_bounded(
    reader: impl Read,
    codec: Compression,
    input_len: usize,
    max_len: usize,
) -> Result<Vec<u8>, CompressionError> {
    // A guess at the output size that saves a few reallocations; never more than the limit.
    let mut out = Vec::with_capacity(input_len.saturating_mul(4).min(max_len));
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    let n = reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| codec.corrupt(e))?;
    if n > max_len {
        return Err(codec.too_large(max_len));
    }
    Ok(out)
}

fn gzip_compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    // Level 6 is java.util.zip's default (Kafka's compression.gzip.level default).
    let mut enc = flate2::write::GzEncoder::new(out.writer(), flate2::Compression::new(6));
    enc.write_all(input)
        .and_then(|()| enc.try_finish())
        .map_err(|e| CompressionError::Compress {
            codec: Compression::Gzip,
            reason: e.to_string(),
        })
}

/// snappy-java's stream header: magic `\x82SNAPPY\0`, then version 1 and minimum compatible version
/// 1 as big-endian i32s.
const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// The magic alone; what decides between xerial and raw snappy.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// snappy-java's default block size (`SnappyOutputStream.DEFAULT_BLOCK_SIZE`).
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

fn snappy_compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    out.extend_from_slice(&XERIAL_HEADER);
    let mut enc = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK_SIZE) {
        let len_at = out.len();
        let body_at = len_at + 4;
        // Compress straight into the output buffer: reserve the worst case, then cut back.
        out.resize(body_at + snap::raw::max_compress_len(block.len()), 0);
        let n =
            enc.compress(block, &mut out[body_at..])
                .map_err(|e| CompressionError::Compress {
                    codec: Compression::Snappy,
                    reason: e.to_string(),
                })?;
        out.truncate(body_at + n);
        // A block is at most max_compress_len(32 KiB) bytes, far below u32::MAX.
        out[len_at..body_at].copy_from_slice(&(n as u32).to_be_bytes());
    }
    Ok(())
}

fn snappy_decompress(input: &[u8], max_len: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    // Like SnappyInputStream: without a complete xerial header the data is raw snappy.
    if input.len() < XERIAL_HEADER.len() || &input[..8] != XERIAL_MAGIC {
        let n = snap::raw::decompress_len(input).map_err(|e| codec.corrupt(e))?;
        if n > max_len {
            return Err(codec.too_large(max_len));
        }
        return snap::raw::Decoder::new()
            .decompress_vec(input)
            .map_err(|e| codec.corrupt(e));
    }
    let mut out = Vec::new();
    let mut dec = snap::raw::Decoder::new();
    let mut rest = &input[XERIAL_HEADER.len()..];
    while !rest.is_empty() {
        // A second header in the middle: snappy-java accepts concatenated streams.
        if rest.len() >= XERIAL_HEADER.len() && &rest[..8] == XERIAL_MAGIC {
            rest = &rest[XERIAL_HEADER.len()..];
            continue;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(codec.corrupt("truncated xerial block length"));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(codec.corrupt("xerial block runs past the end of the data"));
        }
        let (block, tail) = tail.split_at(len);
        // The block states its decompressed length up front: check it before allocating.
        let n = snap::raw::decompress_len(block).map_err(|e| codec.corrupt(e))?;
        let start = out.len();
        if n > max_len - start {
            return Err(codec.too_large(max_len));
        }
        out.resize(start + n, 0);
        dec.decompress(block, &mut out[start..])
            .map_err(|e| codec.corrupt(e))?;
        rest = tail;
    }
    Ok(out)
}

fn lz4_compress(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    // The frame descriptor KafkaLZ4BlockOutputStream writes: independent 64 KiB blocks, no block
    // or content checksum, no content size (Kafka's reader ignores those fields anyway).
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false)
        .content_size(None);
    let mut enc = FrameEncoder::with_frame_info(info, out.writer());
    enc.write_all(input)
        .map_err(|e| e.to_string())
        .and_then(|()| enc.finish().map(drop).map_err(|e| e.to_string()))
        .map_err(|reason| CompressionError::Compress {
            codec: Compression::Lz4,
            reason,
        })
}

fn zstd_decompress(input: &[u8], max_len: usize) -> Result<Vec<u8>, CompressionError> {
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    use ruzstd::decoding::StreamingDecoder;
    let codec = Compression::Zstd;
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(max_len));
    let mut src = input;
    // zstd-jni reads every frame in the stream; do the same, skipping skippable frames.
    while !src.is_empty() {
        let mut dec = match StreamingDecoder::new(&mut src) {
            Ok(dec) => dec,
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let length = length as usize;
                if length > src.len() {
                    return Err(codec.corrupt("skippable frame runs past the end of the data"));
                }
                src = &src[length..];
                continue;
            }
            Err(e) => return Err(codec.corrupt(e)),
        };
        // The frame header's window size is capped by ruzstd (128 MiB, as zstd's default), so a
        // hostile header cannot reserve more than that; the output itself is capped here.
        let room = max_len - out.len();
        let n = (&mut dec)
            .take(room as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| codec.corrupt(e))?;
        if n > room {
            return Err(codec.too_large(max_len));
        }
        // ruzstd reads the content checksum but leaves comparing it to the caller.
        let frame = &dec.decoder;
        if let (Some(stored), Some(computed)) = (
            frame.get_checksum_from_data(),
            frame.get_calculated_checksum(),
        ) {
            if stored != computed {
                return Err(codec.corrupt("content checksum mismatch"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text every reference vector below compresses.
    const TEXT: &[u8] = b"josefk: the quick brown fox jumps over the lazy dog; \
the quick brown fox jumps over the lazy dog.";

    /// Deterministic pseudo-random bytes (xorshift), mixed with runs so codecs find matches.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 64) % 3 == 0 {
                    b'a' + (i % 7) as u8
                } else {
                    x as u8
                }
            })
            .collect()
    }

    fn round_trip(codec: Compression, data: &[u8]) {
        let mut out = BytesMut::from(&b"prefix"[..]);
        codec.compress(data, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix", "{codec}: compress must append");
        let back = codec.decompress(&out[6..], data.len()).unwrap();
        assert_eq!(
            &back[..],
            data,
            "{codec} round trip of {} bytes",
            data.len()
        );
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in Compression::ALL {
            for len in [
                0,
                1,
                97,
                4096,
                32 * 1024,
                32 * 1024 + 1,
                64 * 1024 + 7,
                300_000,
            ] {
                round_trip(codec, &sample(len, len as u64 + 1));
            }
            round_trip(codec, TEXT);
        }
    }

    #[test]
    fn ids_names_and_attributes() {
        for codec in Compression::ALL {
            assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
            assert_eq!(
                codec.name().to_uppercase().parse::<Compression>().unwrap(),
                codec
            );
            let k: kafka_protocol::records::Compression = codec.into();
            assert_eq!(Compression::from(k), codec);
        }
        // Bits above the codec (timestamp type, transactional, control) are ignored.
        assert_eq!(
            Compression::from_attributes(0x30 | 3).unwrap(),
            Compression::Lz4
        );
        assert!(matches!(
            Compression::from_id(5),
            Err(CompressionError::UnknownCodec(5))
        ));
        assert!("brotli".parse::<Compression>().is_err());
    }

    /// `gzip.compress(TEXT, compresslevel=6, mtime=0)` from CPython (zlib).
    const GZIP_REF: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\xca\x2f\x4e\x4d\xcb\xb6\x52\x28\xc9\x48\x55\x28\x2c\xcd\x4c\xce\x56\x48\x2a\xca\x2f\xcf\x53\x48\xcb\xaf\x50\xc8\x2a\xcd\x2d\x28\x56\xc8\x2f\x4b\x2d\x02\x4b\xe7\x24\x56\x55\x2a\xa4\xe4\xa7\x5b\x93\xa2\x58\x0f\x00\x3c\xe6\x9d\x8f\x61\x00\x00\x00";

    /// liblz4 1.9.4 (python `lz4.frame`) with Kafka's settings: 64 KiB independent blocks, no
    /// checksums, no content size.
    const LZ4_REF_KAFKA: &[u8] = b"\x04\x22\x4d\x18\x60\x40\x82\x40\x00\x00\x00\xf1\x17\x6a\x6f\x73\x65\x66\x6b\x3a\x20\x74\x68\x65\x20\x71\x75\x69\x63\x6b\x20\x62\x72\x6f\x77\x6e\x20\x66\x6f\x78\x20\x6a\x75\x6d\x70\x73\x20\x6f\x76\x65\x72\x1f\x00\x91\x6c\x61\x7a\x79\x20\x64\x6f\x67\x3b\x0e\x00\x0f\x2d\x00\x10\x50\x20\x64\x6f\x67\x2e\x00\x00\x00\x00";

    /// liblz4 1.9.4 with every optional field: linked blocks, block and content checksums, content
    /// size. Other clients may write these.
    const LZ4_REF_ALL_FLAGS: &[u8] = b"\x04\x22\x4d\x18\x7c\x40\x61\x00\x00\x00\x00\x00\x00\x00\xd9\x40\x00\x00\x00\xf1\x17\x6a\x6f\x73\x65\x66\x6b\x3a\x20\x74\x68\x65\x20\x71\x75\x69\x63\x6b\x20\x62\x72\x6f\x77\x6e\x20\x66\x6f\x78\x20\x6a\x75\x6d\x70\x73\x20\x6f\x76\x65\x72\x1f\x00\x91\x6c\x61\x7a\x79\x20\x64\x6f\x67\x3b\x0e\x00\x0f\x2d\x00\x10\x50\x20\x64\x6f\x67\x2e\x39\x82\xa1\x96\x00\x00\x00\x00\x67\x4c\x79\x4e";

    /// libzstd 1.5.7 (python `zstandard`), level 3, one-shot: content size and checksum present.
    const ZSTD_REF_ONESHOT: &[u8] = b"\x28\xb5\x2f\xfd\x24\x61\xd5\x01\x00\x04\x03\x6a\x6f\x73\x65\x66\x6b\x3a\x20\x74\x68\x65\x20\x71\x75\x69\x63\x6b\x20\x62\x72\x6f\x77\x6e\x20\x66\x6f\x78\x20\x6a\x75\x6d\x70\x73\x20\x6f\x76\x65\x72\x6c\x61\x7a\x79\x20\x64\x6f\x67\x3b\x2e\x02\x00\x41\x65\x8e\x85\xa0\x9e\x2e\xd1\x14\x70";

    /// libzstd 1.5.7, level 3, streaming (as zstd-jni's output stream): no content size, no checksum.
    const ZSTD_REF_STREAM: &[u8] = b"\x28\xb5\x2f\xfd\x00\x58\xd5\x01\x00\x04\x03\x6a\x6f\x73\x65\x66\x6b\x3a\x20\x74\x68\x65\x20\x71\x75\x69\x63\x6b\x20\x62\x72\x6f\x77\x6e\x20\x66\x6f\x78\x20\x6a\x75\x6d\x70\x73\x20\x6f\x76\x65\x72\x6c\x61\x7a\x79\x20\x64\x6f\x67\x3b\x2e\x02\x00\x41\x65\x8e\x85\xa0\x9e";

    #[test]
    fn decodes_reference_frames() {
        let cases: [(Compression, &[u8]); 5] = [
            (Compression::Gzip, GZIP_REF),
            (Compression::Lz4, LZ4_REF_KAFKA),
            (Compression::Lz4, LZ4_REF_ALL_FLAGS),
            (Compression::Zstd, ZSTD_REF_ONESHOT),
            (Compression::Zstd, ZSTD_REF_STREAM),
        ];
        for (codec, frame) in cases {
            let out = codec.decompress(frame, 1024).unwrap();
            assert_eq!(&out[..], TEXT, "{codec} reference frame");
        }
    }

    #[test]
    fn lz4_writes_kafkas_frame_descriptor() {
        let mut out = BytesMut::new();
        Compression::Lz4.compress(TEXT, &mut out).unwrap();
        // Magic, FLG (version 01, independent blocks), BD (64 KiB), header checksum: byte for byte
        // what liblz4 writes for the same settings.
        assert_eq!(&out[..7], &LZ4_REF_KAFKA[..7]);
        assert_eq!(
            &out[out.len() - 4..],
            &[0, 0, 0, 0],
            "end mark, no content checksum"
        );
    }

    /// Snappy vectors built by hand from the format description: a literal-only block, and a block
    /// with a literal and a one-byte-offset copy.
    #[test]
    fn snappy_raw_and_xerial_vectors() {
        // varint length 5, literal tag (5-1)<<2, "hello".
        let raw_hello = b"\x05\x10hello";
        let out = Compression::Snappy.decompress(raw_hello, 64).unwrap();
        assert_eq!(&out[..], b"hello");
        // "abcabcabc": length 9, literal "abc" (tag 2<<2), copy len 6 offset 3 (tag (6-4)<<2|1, 3).
        let raw_abc = b"\x09\x08abc\x09\x03";
        assert_eq!(
            &Compression::Snappy.decompress(raw_abc, 64).unwrap()[..],
            b"abcabcabc"
        );
        // Xerial: header, then [len][block] twice, then a second header (concatenated streams).
        let mut xerial = XERIAL_HEADER.to_vec();
        xerial.extend_from_slice(&(raw_hello.len() as u32).to_be_bytes());
        xerial.extend_from_slice(raw_hello);
        xerial.extend_from_slice(&XERIAL_HEADER);
        xerial.extend_from_slice(&(raw_abc.len() as u32).to_be_bytes());
        xerial.extend_from_slice(raw_abc);
        let out = Compression::Snappy.decompress(&xerial, 64).unwrap();
        assert_eq!(&out[..], b"helloabcabcabc");
    }

    #[test]
    fn snappy_writes_xerial_framing() {
        let data = sample(70_000, 9);
        let mut out = BytesMut::new();
        Compression::Snappy.compress(&data, &mut out).unwrap();
        assert_eq!(&out[..16], &XERIAL_HEADER);
        // Three blocks of at most 32 KiB each, every one independently raw-snappy decodable.
        let mut rest = &out[16..];
        let mut blocks = 0;
        let mut joined = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            joined.extend(
                snap::raw::Decoder::new()
                    .decompress_vec(&rest[4..4 + len])
                    .unwrap(),
            );
            rest = &rest[4 + len..];
            blocks += 1;
        }
        assert_eq!(blocks, 3);
        assert_eq!(joined, data);
    }

    #[test]
    fn decompression_is_bounded() {
        // 4 MiB of zeros compresses to a few KiB; a 1 MiB limit must stop every codec.
        let zeros = vec![0u8; 4 << 20];
        for codec in Compression::ALL {
            let mut out = BytesMut::new();
            codec.compress(&zeros, &mut out).unwrap();
            match codec.decompress(&out, 1 << 20) {
                Err(CompressionError::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
                other => panic!("{codec}: expected TooLarge, got {other:?}"),
            }
            // Exactly at the limit is fine.
            assert_eq!(codec.decompress(&out, 4 << 20).unwrap().len(), 4 << 20);
        }
        // A raw snappy block that claims 2^32-1 bytes is refused before any allocation.
        let claims_huge = b"\xff\xff\xff\xff\x0f\x00";
        assert!(matches!(
            Compression::Snappy.decompress(claims_huge, 1 << 20),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        for codec in Compression::ALL.into_iter().skip(1) {
            let mut out = BytesMut::new();
            codec.compress(&sample(5000, 3), &mut out).unwrap();
            // Truncations and bit flips at many positions: errors (or, rarely, a different
            // output for codecs without checksums), never panics.
            for cut in (0..out.len()).step_by(97) {
                let _ = codec.decompress(&out[..cut], 1 << 20);
                let mut flipped = out.to_vec();
                flipped[cut] ^= 0x5a;
                let _ = codec.decompress(&flipped, 1 << 20);
            }
            assert!(
                codec.decompress(b"not compressed at all", 1 << 20).is_err(),
                "{codec}"
            );
        }
        // zstd's content checksum catches a flipped literal byte.
        let mut bad = ZSTD_REF_ONESHOT.to_vec();
        bad[20] ^= 1;
        assert!(Compression::Zstd.decompress(&bad, 1024).is_err());
    }
}

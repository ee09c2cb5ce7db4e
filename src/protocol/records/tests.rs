//! Tests of the v2 batch encoder and decoder: round trips with every codec, a golden batch laid out
//! by hand from the Kafka documentation, batches written by the Java client (kafka-clients 3.9.1)
//! and by `kafka-protocol`, truncation, corruption and hostile input.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::compression::Compression;
use crate::record::Header;

/// Batches written by Java's `MemoryRecordsBuilder` (kafka-clients 3.9.1, zstd-jni 1.5.6-4,
/// lz4-java 1.8.0, snappy-java 1.1.10.5): base offset 100, partition leader epoch 5, producer
/// 42/3, base sequence 7, transactional, three records at timestamps T+10, T+5, T (T =
/// 1_700_000_000_000) with keys "key-0", "key-1", null, values "value-i " × 12, and on the second
/// record the headers dup=a, dup=b, nul=null. See `java_record(i)`.
const JAVA_BATCHES: [(Compression, &str); 5] = [
    (Compression::None, "000000000000006400000187000000050220b97b670010000000020000018bcfe5680a0000018bcfe5680a000000000000002a00030000000700000003d8010000000a6b65792d30c00176616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302076616c75652d302000fa010009020a6b65792d31c00176616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312076616c75652d312006066475700261066475700262066e756c01ce0100130401c00176616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322076616c75652d322000"),
    (Compression::Gzip, "00000000000000640000008800000005027b52b2e80011000000020000018bcfe5680a0000018bcfe5680a000000000000002a000300000007000000031f8b08000000000000ffbbc1c8c0c0c0959d5aa96b7080b12c31a73455d740815634c32f46064e26b06d8630db0c156845b3b1a59416302582c924b6bcd21cc6738c0cc22c8c309b8d146845330000e4bf57c156010000"),
    (Compression::Snappy, "00000000000000640000009f0000000502f84bc75f0012000000020000018bcfe5680a0000018bcfe5680a000000000000002a0003000000070000000382534e415050590000000001000000010000005ad60250d8010000000a6b65792d30c00176616c75652d3020fe08005e08001400fa01000902056e0031116e00310d6efe0800460800180606647570026105062c62066e756c01ce0100130401117a00320d7afe08004608000000"),
    (Compression::Lz4, "0000000000000064000000960000000502fe1ea9fc0013000000020000018bcfe5680a0000018bcfe5680a000000000000002a0003000000070000000304224d1860408256000000ff06d8010000000a6b65792d30c00176616c75652d30200800456100fa010009026e0014316e0013316e000f08003f71060664757002610600c462066e756c01ce01001304017a0013327a000f08003b50652d32200000000000"),
    (Compression::Zstd, "0000000000000064000000a40000000502d0f8bead0014000000020000018bcfe5680a0000018bcfe5680a000000000000002a0003000000070000000328b52ffd00583c0300e403d8010000000a6b65792d30c00176616c75652d302000fa0100090231310606647570026162066e756c01ce010013040132323232323232323232323220001200200bc807320359403e9019c802f281cc4016c8776d28a55cf6000170078fc541806b53b903010000"),
];

const T: i64 = 1_700_000_000_000;

fn unhex(s: &str) -> Bytes {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

/// The records of `JAVA_BATCHES`: (timestamp, key, value, headers).
fn java_record(i: usize) -> (i64, Option<Vec<u8>>, Vec<u8>, Vec<Header>) {
    let key = (i != 2).then(|| format!("key-{i}").into_bytes());
    let value = format!("value-{i} ").repeat(12).into_bytes();
    let headers = if i == 1 {
        vec![
            header("dup", Some("a")),
            header("dup", Some("b")),
            header("nul", None),
        ]
    } else {
        vec![]
    };
    (T + 10 - 5 * i as i64, key, value, headers)
}

fn header(key: &str, value: Option<&str>) -> Header {
    match value {
        Some(v) => Header::new(key, Bytes::copy_from_slice(v.as_bytes())),
        None => Header::null(key),
    }
}

fn java_options(compression: Compression) -> BatchOptions {
    BatchOptions {
        compression,
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 7,
        transactional: true,
        partition_leader_epoch: 5,
        base_offset: 100,
        ..BatchOptions::default()
    }
}

/// Encodes the `java_record`s with josefk's encoder.
fn encode_java_records(compression: Compression) -> Bytes {
    let records: Vec<_> = (0..3).map(java_record).collect();
    let mut out = BytesMut::new();
    let info = encode_batch(
        &mut out,
        &java_options(compression),
        records.iter().map(|(ts, k, v, h)| RecordInput {
            timestamp: *ts,
            key: k.as_deref(),
            value: Some(v),
            headers: h,
        }),
    )
    .unwrap();
    assert_eq!((info.start, info.len, info.record_count), (0, out.len(), 3));
    out.freeze()
}

fn all_records(batch: &RecordBatch) -> Vec<Record> {
    batch.records().unwrap().collect::<Result<_, _>>().unwrap()
}

/// Checks a decoded batch against the `java_record`s.
fn assert_java_batch(batch: &RecordBatch, compression: Compression) {
    assert_eq!(batch.compression, compression);
    assert_eq!(
        (
            batch.base_offset,
            batch.last_offset_delta,
            batch.record_count
        ),
        (100, 2, 3)
    );
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, batch.base_sequence),
        (42, 3, 7)
    );
    assert_eq!(batch.last_sequence(), 9);
    assert_eq!(batch.partition_leader_epoch, 5);
    assert!(batch.is_transactional && !batch.is_control && !batch.has_delete_horizon);
    assert_eq!(batch.timestamp_type, TimestampType::CreateTime);
    // Java's base timestamp is the first record's, not the smallest.
    assert_eq!(
        (batch.base_timestamp, batch.max_timestamp),
        (T + 10, T + 10)
    );
    let records = all_records(batch);
    assert_eq!(records.len(), 3);
    for (i, r) in records.iter().enumerate() {
        let (ts, key, value, headers) = java_record(i);
        assert_eq!(r.offset, 100 + i as i64);
        assert_eq!(r.timestamp, ts);
        assert_eq!(r.key.as_deref(), key.as_deref());
        assert_eq!(r.value.as_deref(), Some(&value[..]));
        assert_eq!(
            r.headers.to_vec(),
            headers,
            "headers keep order and duplicates"
        );
        if i == 1 {
            assert_eq!(r.headers.last("dup"), Some(Some(Bytes::from_static(b"b"))));
            assert_eq!(r.headers.last("nul"), Some(None));
            assert_eq!(r.headers.last("none"), None);
        }
    }
}

#[test]
fn decodes_batches_written_by_the_java_client() {
    for (codec, hex) in JAVA_BATCHES {
        let mut batches = RecordBatches::new(unhex(hex));
        let batch = batches.next().unwrap().unwrap();
        assert_java_batch(&batch, codec);
        assert!(batches.next().is_none());
        assert_eq!(batches.remaining(), 0);
    }
}

#[test]
fn uncompressed_encoding_matches_the_java_client_byte_for_byte() {
    assert_eq!(
        encode_java_records(Compression::None),
        unhex(JAVA_BATCHES[0].1)
    );
}

#[test]
fn round_trip_with_every_codec() {
    for codec in Compression::ALL {
        let encoded = encode_java_records(codec);
        let batch = RecordBatches::new(encoded.clone()).next().unwrap().unwrap();
        assert_java_batch(&batch, codec);
        assert_eq!(batch.raw(), &encoded);
        assert_eq!(batch.size_in_bytes(), encoded.len());
    }
}

#[test]
fn uncompressed_records_are_slices_of_the_input() {
    let encoded = encode_java_records(Compression::None);
    let range = encoded.as_ptr_range();
    let batch = RecordBatches::new(encoded.clone()).next().unwrap().unwrap();
    for r in all_records(&batch) {
        let value = r.value.unwrap();
        assert!(
            range.contains(&value.as_ptr()),
            "value must point into the fetched buffer"
        );
        for h in r.headers.iter() {
            assert!(range.contains(&h.key.as_ptr()));
        }
    }
}

/// A batch laid out by hand from <https://kafka.apache.org/documentation/#recordbatch>, with the
/// CRC-32C computed independently (bitwise, in Python) over attributes..end.
const GOLDEN: [u8; 85] = [
    0, 0, 0, 0, 0, 0, 0, 0, // baseOffset 0
    0, 0, 0, 73, // batchLength: 85 - 12
    0xff, 0xff, 0xff, 0xff, // partitionLeaderEpoch -1
    2,    // magic
    0x83, 0x9e, 0x08, 0xef, // crc
    0x00, 0x10, // attributes: transactional, no compression, CreateTime
    0, 0, 0, 1, // lastOffsetDelta
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // baseTimestamp 1_700_000_000_000
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, // maxTimestamp +5
    0, 0, 0, 0, 0, 0, 0, 42, // producerId
    0, 3, // producerEpoch
    0, 0, 0, 7, // baseSequence
    0, 0, 0, 2, // recordCount
    // record 0: length 16, attributes, timestampDelta 0, offsetDelta 0, key "k", value "v1",
    // 2 headers: "h"="x", "h"=null. Varints are zigzag: 1 -> 0x02, -1 -> 0x01.
    0x20, 0x00, 0x00, 0x00, 0x02, b'k', 0x04, b'v', b'1', 0x04, 0x02, b'h', 0x02, b'x', 0x02, b'h',
    0x01,
    // record 1: length 6, attributes, timestampDelta 5, offsetDelta 1, key null, value "", 0 headers.
    0x0c, 0x00, 0x0a, 0x02, 0x01, 0x00, 0x00,
];

#[test]
fn golden_batch_from_the_spec() {
    let opts = BatchOptions {
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 7,
        transactional: true,
        ..BatchOptions::default()
    };
    let mut builder = BatchBuilder::new(opts, BytesMut::new());
    let headers = [("h", Some(&b"x"[..])), ("h", None)];
    assert_eq!(
        builder
            .append(T, Some(b"k"), Some(b"v1"), &headers)
            .unwrap(),
        17
    );
    assert_eq!(
        builder
            .append::<Header>(T + 5, None, Some(b""), &[])
            .unwrap(),
        7
    );
    assert_eq!(builder.uncompressed_len(), GOLDEN.len());
    let finished = builder.finish().unwrap();
    assert_eq!(&finished.buf[..], &GOLDEN[..]);

    let batch = RecordBatches::new(Bytes::from_static(&GOLDEN))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.crc, 0x839e_08ef);
    assert_eq!((batch.base_timestamp, batch.max_timestamp), (T, T + 5));
    let records = all_records(&batch);
    assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    let headers: Vec<_> = records[0].headers.iter().collect();
    assert_eq!(headers.len(), 2);
    assert_eq!(
        (headers[0].key_str(), headers[0].value.as_deref()),
        (Some("h"), Some(&b"x"[..]))
    );
    assert_eq!(
        (headers[1].key_str(), headers[1].value.as_deref()),
        (Some("h"), None)
    );
    assert_eq!((records[1].offset, records[1].timestamp), (1, T + 5));
    assert_eq!(
        (records[1].key.as_deref(), records[1].value.as_deref()),
        (None, Some(&b""[..]))
    );
    assert!(records[1].headers.is_empty());
}

#[test]
fn interop_with_kafka_protocol_encoder_and_decoder() {
    use kafka_protocol::records as kp;
    let mut kp_headers = kafka_protocol::indexmap::IndexMap::new();
    kp_headers.insert(
        kafka_protocol::protocol::StrBytes::from_static_str("h"),
        Some(Bytes::from_static(b"x")),
    );
    let kp_records: Vec<kp::Record> = (0..4)
        .map(|i| kp::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 9,
            producer_epoch: 1,
            timestamp_type: kp::TimestampType::Creation,
            offset: i,
            sequence: 20 + i as i32,
            timestamp: T + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: (i != 3).then(|| Bytes::from(format!("v{i}"))),
            headers: kp_headers.clone(),
        })
        .collect();
    for codec in Compression::ALL {
        // kafka-protocol's encoder with josefk's codecs plugged in ...
        let mut buf = BytesMut::new();
        let opts = kp::RecordEncodeOptions {
            version: 2,
            compression: codec.into(),
        };
        kp::RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            &kp_records,
            &opts,
            Some(
                |records: &mut BytesMut, out: &mut BytesMut, c: kp::Compression| {
                    Compression::from(c)
                        .compress(records, out)
                        .map_err(anyhow::Error::from)
                },
            ),
        )
        .unwrap();
        // ... read by josefk's decoder.
        let batch = RecordBatches::new(buf.freeze()).next().unwrap().unwrap();
        assert_eq!(
            (batch.producer_id, batch.producer_epoch, batch.base_sequence),
            (9, 1, 20)
        );
        for (r, k) in all_records(&batch).iter().zip(&kp_records) {
            assert_eq!((r.offset, r.timestamp), (k.offset, k.timestamp));
            assert_eq!((&r.key, &r.value), (&k.key, &k.value));
            let h = r.headers.iter().next().unwrap();
            assert_eq!(
                (&h.key[..], h.value.as_deref()),
                (&b"h"[..], Some(&b"x"[..]))
            );
        }

        // And the other way: josefk's batch read by kafka-protocol's decoder.
        let mut encoded = encode_java_records(codec);
        let set = kp::RecordBatchDecoder::decode_with_custom_compression(
            &mut encoded,
            Some(|data: &mut Bytes, c: kp::Compression| {
                Compression::from(c)
                    .decompress(data, 1 << 20)
                    .map_err(anyhow::Error::from)
            }),
        )
        .unwrap();
        assert_eq!(set.records.len(), 3);
        for (i, r) in set.records.iter().enumerate() {
            let (ts, key, value, _) = java_record(i);
            assert_eq!(
                (r.offset, r.timestamp, r.sequence),
                (100 + i as i64, ts, 7 + i as i32)
            );
            assert_eq!(
                (r.key.as_deref(), r.value.as_deref()),
                (key.as_deref(), Some(&value[..]))
            );
        }
    }
}

/// Two batches back to back, at base offsets 0 and 3.
fn two_batches() -> Bytes {
    let mut out = BytesMut::new();
    for base_offset in [0, 3] {
        let opts = BatchOptions {
            base_offset,
            ..BatchOptions::default()
        };
        let mut b = BatchBuilder::new(opts, out);
        for i in 0..3 {
            b.append::<Header>(T + i, None, Some(b"payload"), &[])
                .unwrap();
        }
        out = b.finish().unwrap().buf;
    }
    out.freeze()
}

#[test]
fn truncated_tail_ends_iteration_without_error() {
    let full = two_batches();
    let first_len = RecordBatches::new(full.clone())
        .next()
        .unwrap()
        .unwrap()
        .size_in_bytes();
    for cut in 0..=full.len() {
        let mut batches = RecordBatches::new(full.slice(..cut));
        let decoded: Vec<_> = batches.by_ref().collect::<Result<_, _>>().unwrap();
        let expected = usize::from(cut >= first_len) + usize::from(cut == full.len());
        assert_eq!(decoded.len(), expected, "cut at {cut}");
        let consumed: usize = decoded.iter().map(RecordBatch::size_in_bytes).sum();
        assert_eq!(batches.remaining(), cut - consumed);
    }
}

#[test]
fn crc_corruption_is_detected_and_names_the_offset() {
    let mut bytes = encode_java_records(Compression::None).to_vec();
    set_base_offset(&mut bytes, 1234).unwrap();
    assert!(RecordBatches::new(Bytes::from(bytes.clone()))
        .next()
        .unwrap()
        .is_ok());
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let err = RecordBatches::new(Bytes::from(bytes.clone()))
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            RecordsError::CrcMismatch {
                base_offset: 1234,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("offset 1234"));
    // With check.crcs off the batch is read (the damage here is in a value byte).
    let opts = DecodeOptions {
        check_crc: false,
        ..DecodeOptions::default()
    };
    assert!(RecordBatches::with_options(Bytes::from(bytes), opts)
        .next()
        .unwrap()
        .is_ok());
}

#[test]
fn older_message_formats_are_rejected_clearly() {
    for magic in [0u8, 1, 3] {
        let mut bytes = GOLDEN.to_vec();
        bytes[16] = magic;
        let mut batches = RecordBatches::new(Bytes::from(bytes));
        let err = batches.next().unwrap().unwrap_err();
        assert!(matches!(err, RecordsError::UnsupportedMagic { magic: m, .. } if m as u8 == magic));
        assert!(err.to_string().contains("only v2"));
        assert!(batches.next().is_none(), "iteration ends after an error");
    }
}

#[test]
fn huge_record_count_in_a_tiny_batch_is_an_error_not_an_allocation() {
    let mut bytes = GOLDEN.to_vec();
    bytes[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    rewrite_producer_state(&mut bytes, 42, 3, 7).unwrap(); // recomputes the CRC
    let batch = RecordBatches::new(Bytes::from(bytes))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.record_count, i32::MAX);
    let records = batch.records().unwrap();
    assert!(
        records.size_hint().1.unwrap() <= 4,
        "bounded by the bytes present"
    );
    // kafka-protocol 0.18 would reserve i32::MAX records here; josefk reads two and stops.
    let result: Result<Vec<_>, _> = records.collect();
    assert!(matches!(result, Err(RecordsError::Corrupt { .. })));
}

#[test]
fn random_bytes_and_mutated_batches_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let exercise = |bytes: Vec<u8>, check_crc: bool| {
        let opts = DecodeOptions {
            check_crc,
            max_decompressed_bytes: 1 << 16,
        };
        for batch in RecordBatches::with_options(Bytes::from(bytes), opts).flatten() {
            let _ = batch.control_record();
            if let Ok(records) = batch.records() {
                for r in records.flatten() {
                    let _ = r.headers.to_vec();
                }
            }
        }
    };
    let valid: Vec<Vec<u8>> = Compression::ALL
        .iter()
        .map(|&c| encode_java_records(c).to_vec())
        .collect();
    for i in 0..4000 {
        // Pure noise, sometimes behind a plausible v2 header prefix.
        let len = (next() % 300) as usize;
        let mut noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && len > 17 {
            noise[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
            noise[16] = 2;
        }
        exercise(noise, false);
        // A valid batch with a few bytes changed after the CRC, then the CRC fixed up so that the
        // damage reaches the record parser and the codecs.
        let mut mutated = valid[i % valid.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = 21 + (next() as usize) % (mutated.len() - 21);
            mutated[at] = next() as u8;
        }
        let crc = crc32c::crc32c(&mutated[21..]);
        mutated[17..21].copy_from_slice(&crc.to_be_bytes());
        exercise(mutated, true);
    }
}

#[test]
fn control_batches_parse_into_markers() {
    for (commit, kind) in [
        (true, ControlRecordType::Commit),
        (false, ControlRecordType::Abort),
    ] {
        let (key, value) = ControlRecord::marker(commit, 17);
        let opts = BatchOptions {
            control: true,
            transactional: true,
            producer_id: 5,
            producer_epoch: 0,
            ..BatchOptions::default()
        };
        let mut out = BytesMut::new();
        let record = RecordInput::<Header> {
            timestamp: T,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        };
        encode_batch(&mut out, &opts, [record]).unwrap();
        let batch = RecordBatches::new(out.freeze()).next().unwrap().unwrap();
        assert!(batch.is_control && batch.is_transactional);
        let marker = batch.control_record().unwrap().unwrap();
        assert_eq!(
            marker,
            ControlRecord {
                version: 0,
                kind,
                coordinator_epoch: Some(17)
            }
        );
    }
    // Unknown types are kept, bad keys rejected, data batches have none.
    let other = ControlRecord::parse(Some(&[0, 0, 0, 3]), None).unwrap();
    assert_eq!(other.kind, ControlRecordType::Other(3));
    assert!(ControlRecord::parse(Some(&[0, 0, 1]), None).is_err());
    assert!(ControlRecord::parse(Some(&[0xff, 0xff, 0, 1]), Some(&[0; 6])).is_err());
    assert!(ControlRecord::parse(Some(&[0, 0, 0, 1]), Some(&[0; 3])).is_err());
    let data = RecordBatches::new(Bytes::from_static(&GOLDEN))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(data.control_record().unwrap(), None);
}

#[test]
fn a_compressed_control_batch_is_decoded_within_a_few_kib() {
    // A marker first, then a record of 8 MiB of zeros: a few KiB once compressed.
    let (key, value) = ControlRecord::marker(false, 3);
    let zeros = vec![0u8; 8 << 20];
    let encode = |codec, padded: bool| {
        let opts = BatchOptions {
            control: true,
            transactional: true,
            producer_id: 5,
            producer_epoch: 0,
            compression: codec,
            ..BatchOptions::default()
        };
        let marker = RecordInput::<Header> {
            timestamp: T,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        };
        let padding = RecordInput::<Header> {
            timestamp: T,
            key: None,
            value: Some(&zeros),
            headers: &[],
        };
        let records = if padded {
            vec![marker, padding]
        } else {
            vec![marker]
        };
        let mut out = BytesMut::new();
        encode_batch(&mut out, &opts, records).unwrap();
        let decode = DecodeOptions {
            check_crc: true,
            max_decompressed_bytes: 128 << 20,
        };
        RecordBatches::with_options(out.freeze(), decode)
            .next()
            .unwrap()
            .unwrap()
    };
    for codec in Compression::ALL {
        if codec == Compression::None {
            continue;
        }
        let small = encode(codec, false);
        assert_eq!(
            small.control_record().unwrap().unwrap().kind,
            ControlRecordType::Abort,
            "{codec}"
        );
        let big = encode(codec, true);
        assert!(
            big.size_in_bytes() < 1 << 20,
            "{codec}: {}",
            big.size_in_bytes()
        );
        match big.control_record() {
            Err(RecordsError::InvalidControlRecord { reason, .. }) => {
                assert!(reason.contains("more than 4096 bytes"), "{codec}: {reason}");
            }
            other => panic!("{codec}: expected a refused control batch, got {other:?}"),
        }
        // The message's figure is the limit.
        assert_eq!(super::decode::MAX_CONTROL_BATCH_BYTES, 4096);
    }
}

#[test]
fn rewriting_producer_state_matches_a_fresh_encoding() {
    for codec in Compression::ALL {
        let mut bytes = encode_java_records(codec).to_vec();
        rewrite_producer_state(&mut bytes, 77, 4, 1000).unwrap();
        let batch = RecordBatches::new(Bytes::from(bytes.clone()))
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            (batch.producer_id, batch.producer_epoch, batch.base_sequence),
            (77, 4, 1000)
        );
        assert_eq!(all_records(&batch).len(), 3);
        // Same bytes as encoding with that state in the first place (every codec here is
        // deterministic).
        let mut fresh = BytesMut::new();
        let opts = BatchOptions {
            producer_id: 77,
            producer_epoch: 4,
            base_sequence: 1000,
            ..java_options(codec)
        };
        let records: Vec<_> = (0..3).map(java_record).collect();
        let inputs = records.iter().map(|(ts, k, v, h)| RecordInput {
            timestamp: *ts,
            key: k.as_deref(),
            value: Some(v),
            headers: h,
        });
        encode_batch(&mut fresh, &opts, inputs).unwrap();
        assert_eq!(&fresh[..], &bytes[..], "{codec}");
    }
    // Not exactly one batch: refused.
    let mut two = two_batches().to_vec();
    assert!(rewrite_producer_state(&mut two, 1, 1, 1).is_err());
    assert!(rewrite_producer_state(&mut [0u8; 10], 1, 1, 1).is_err());
}

#[test]
fn log_append_time_batches_use_the_max_timestamp() {
    let mut bytes = GOLDEN.to_vec();
    bytes[22] |= 0x08;
    rewrite_producer_state(&mut bytes, 42, 3, 7).unwrap();
    let batch = RecordBatches::new(Bytes::from(bytes))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.timestamp_type, TimestampType::LogAppendTime);
    assert!(all_records(&batch).iter().all(|r| r.timestamp == T + 5));
}

#[test]
fn builder_appends_after_existing_bytes_and_reuses_scratch() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    let mut scratch = BytesMut::new();
    let mut spans = Vec::new();
    for codec in [Compression::Lz4, Compression::Zstd, Compression::None] {
        let opts = BatchOptions {
            compression: codec,
            base_offset: spans.len() as i64 * 10,
            ..BatchOptions::default()
        };
        let mut b = BatchBuilder::with_scratch(opts, out, scratch);
        for i in 0..10 {
            b.append(
                T,
                Some(format!("k{i}").as_bytes()),
                Some(&[b'x'; 200]),
                &[("a", Some("b"))],
            )
            .unwrap();
        }
        let f = b.finish().unwrap();
        assert!(f.scratch.is_empty());
        assert_eq!(
            f.info.uncompressed_len > f.info.len,
            codec != Compression::None
        );
        spans.push(f.info.start..f.info.start + f.info.len);
        (out, scratch) = (f.buf, f.scratch);
    }
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(spans[0].start, 6);
    let batches: Vec<_> = RecordBatches::new(out.freeze().slice(6..))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(batches.len(), 3);
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::next_offset)
            .collect::<Vec<_>>(),
        [10, 20, 30]
    );
    for b in &batches {
        assert_eq!(all_records(b).len(), 10);
    }
}

#[test]
fn an_empty_builder_writes_nothing() {
    let f = BatchBuilder::new(BatchOptions::default(), BytesMut::from(&b"ab"[..]))
        .finish()
        .unwrap();
    assert_eq!(&f.buf[..], b"ab");
    assert_eq!((f.info.start, f.info.len, f.info.record_count), (2, 0, 0));
}

#[test]
fn compressed_payload_over_the_limit_is_refused() {
    let opts = BatchOptions {
        compression: Compression::Gzip,
        ..BatchOptions::default()
    };
    let mut out = BytesMut::new();
    let zeros = vec![0u8; 1 << 20];
    let record = RecordInput::<Header> {
        timestamp: T,
        key: None,
        value: Some(&zeros),
        headers: &[],
    };
    encode_batch(&mut out, &opts, [record]).unwrap();
    let opts = DecodeOptions {
        max_decompressed_bytes: 1 << 16,
        ..DecodeOptions::default()
    };
    let batch = RecordBatches::with_options(out.freeze(), opts)
        .next()
        .unwrap()
        .unwrap();
    assert!(matches!(
        batch.records(),
        Err(RecordsError::Decompress { base_offset: 0, .. })
    ));
}

#[test]
fn varints_round_trip_at_the_edges() {
    let values = [
        0,
        1,
        -1,
        63,
        -64,
        64,
        -65,
        8191,
        8192,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ];
    for v in values {
        let mut buf = BytesMut::new();
        put_varlong(&mut buf, v);
        assert_eq!(buf.len(), varlong_len(v), "{v}");
        let mut pos = 0;
        assert_eq!(get_varlong(&buf, &mut pos, 10), Some(v));
        assert_eq!(pos, buf.len());
        if let Ok(v32) = i32::try_from(v) {
            let mut pos = 0;
            assert_eq!(get_varint(&buf, &mut pos), Some(v32));
        }
    }
    // Six bytes is too long for an int32 varint; a varint cut short is an error.
    let mut pos = 0;
    assert_eq!(
        get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos),
        None
    );
    assert_eq!(get_varint(&[0x80], &mut 0), None);
}

#[test]
fn sequences_wrap_like_kafka() {
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
}

#[test]
fn emptied_batches_kept_by_compaction_have_no_records() {
    // Header only: length 49, record count 0, gzip, lastOffsetDelta 1 (the records were compacted
    // away, the offsets stay used).
    let mut bytes = GOLDEN[..RECORD_BATCH_OVERHEAD].to_vec();
    bytes[8..12].copy_from_slice(&49i32.to_be_bytes());
    bytes[22] |= Compression::Gzip.id() as u8;
    bytes[57..61].copy_from_slice(&0i32.to_be_bytes());
    rewrite_producer_state(&mut bytes, 42, 3, 7).unwrap();
    let batch = RecordBatches::new(Bytes::from(bytes))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        (batch.record_count, batch.compression),
        (0, Compression::Gzip)
    );
    assert_eq!(batch.records().unwrap().count(), 0);
    assert_eq!(batch.next_offset(), 2);
}

#[test]
fn record_size_is_what_the_builder_writes() {
    // Deltas and lengths around each varint width boundary, nulls, empty and repeated headers.
    let big = vec![b'v'; 20_000];
    let values: [Option<&[u8]>; 5] = [
        None,
        Some(b""),
        Some(&big[..63]),
        Some(&big[..64]),
        Some(&big),
    ];
    let headers = [
        header("a", Some("x")),
        header("dup", None),
        header("dup", Some("")),
    ];
    let deltas = [
        0i64,
        1,
        -1,
        63,
        64,
        -64,
        -65,
        8191,
        8192,
        1 << 40,
        i64::MIN / 2,
    ];
    let mut builder = BatchBuilder::new(BatchOptions::default(), BytesMut::new());
    let mut count = 0i32;
    // Twice over, so offset deltas reach two varint bytes (64 and up).
    for (i, value) in values.iter().chain(&values).enumerate() {
        for (d, delta) in deltas.iter().enumerate() {
            let key: Option<&[u8]> = if d % 2 == 0 { None } else { Some(b"key") };
            let hs = &headers[..(i + d) % 4];
            // The first record sets the base timestamp T; each later one is `delta` after it.
            let timestamp = if count == 0 {
                T
            } else {
                T.wrapping_add(*delta)
            };
            let expected = record_size(
                record_fields_len(key, *value, hs),
                timestamp.wrapping_sub(T),
                count,
            );
            let written = builder.append(timestamp, key, *value, hs).unwrap();
            assert_eq!(
                written, expected,
                "record {count}: delta {delta}, value {i}"
            );
            count += 1;
        }
    }
    assert!(count > 64);
    // The widest deltas bound every record.
    let fields = record_fields_len::<Header>(Some(b"k"), Some(b"v"), &[]);
    assert_eq!(
        record_size(fields, i64::MIN, i32::MAX),
        record_size(fields, 0, 0) + 9 + 4
    );
}

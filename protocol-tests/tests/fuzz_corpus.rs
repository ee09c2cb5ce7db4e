//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through the same functions the
//! cargo-fuzz targets call (`josefk::__fuzz`), on stable and in `cargo test`: whatever the fuzzer
//! once found or was seeded with keeps decoding without a panic or an abort.
//!
//! `cargo test -p protocol-tests --test fuzz_corpus -- --ignored write_seeds` writes the seed
//! inputs (responses written from josefk's descriptions for every API and version it may choose,
//! record batches with every codec, ConsumerProtocol bytes of every version, framed streams,
//! SASL exchanges of every mechanism and OIDC token endpoint answers).

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use josefk::__fuzz;
use josefk::protocol::records::{encode_batch, BatchOptions, RecordInput};
use josefk::protocol::Compression;
use josefk::state::consumer_protocol::{
    encode_assignment, encode_subscription, Assignment, Subscription,
};
use josefk::{Header, TopicPartition};

/// What a fuzz target runs on one input.
type Target = fn(&[u8]);

/// The fuzz targets and the function each one runs.
const TARGETS: [(&str, Target); 5] = [
    ("frames", __fuzz::fuzz_frames),
    ("responses", __fuzz::fuzz_response),
    ("records", __fuzz::fuzz_records),
    ("consumer_protocol", __fuzz::fuzz_consumer_protocol),
    ("sasl", __fuzz::fuzz_sasl),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()));
    let mut files: Vec<_> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("corpus file");
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_replays_without_panic() {
    for (target, run) in TARGETS {
        let files = corpus(target);
        assert!(
            files.len() >= 5,
            "{target}: only {} corpus files (run write_seeds?)",
            files.len()
        );
        for (path, bytes) in files {
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panics", path.display());
        }
    }
}

#[test]
fn seed_responses_decode_and_huge_counts_anywhere_do_not_abort() {
    // Every sample decodes through josefk's path, and a truncated copy does not. Then, at every
    // position in turn, the sample gets the largest i32 written over four bytes, and the largest
    // 32-bit unsigned varint in place of one byte: wherever a count or length sits, some variant
    // makes it huge. Without the pre-check, kafka-protocol aborts on one of them.
    let samples = __fuzz::sample_response_frames();
    assert!(samples.len() > 300, "{}", samples.len());
    let mut refused = 0;
    for (api, version, frame) in samples {
        let input = __fuzz::response_input(api, version, &frame);
        let outcome = __fuzz::decode_response_input(&input).expect("josefk decodes this API");
        assert!(outcome.is_ok(), "{api:?} v{version}: {outcome:?}");
        let cut = __fuzz::decode_response_input(&input[..input.len() - 1]).unwrap();
        assert!(
            cut.is_err(),
            "{api:?} v{version}: a truncated frame decodes"
        );
        for i in 8..input.len() {
            let mut wide = input.clone();
            let end = (i + 4).min(wide.len());
            wide.splice(i..end, i32::MAX.to_be_bytes());
            let mut compact = input.clone();
            compact.splice(i..=i, [0xff, 0xff, 0xff, 0xff, 0x0f]);
            for variant in [wide, compact] {
                if __fuzz::decode_response_input(&variant).is_some_and(|r| r.is_err()) {
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 10_000, "only {refused} variants refused");
}

#[test]
fn sasl_seeds_reach_their_outcome_and_every_cut_of_them_is_a_clear_refusal_or_unfinished() {
    // The seeds are complete exchanges, so the fuzzer starts from inputs that get past the
    // nonce, signature and framing checks; a cut copy must still end cleanly (a few cuts only:
    // every SCRAM input that gets past the server-first costs a PBKDF2 run). The target byte
    // alone is left out (to PLAIN and OAUTHBEARER it is the broker's empty success answer), and
    // so is the last byte (a chunked answer is complete without its final CRLF).
    let seeds = __fuzz::sasl_seed_inputs();
    assert!(seeds.len() >= 20, "{}", seeds.len());
    for (name, input, outcome) in seeds {
        assert_eq!(__fuzz::sasl_input(&input), Some(outcome), "{name}");
        for cut in [2, 3, input.len() / 2] {
            if cut < 2 || cut >= input.len() {
                continue;
            }
            let outcome = __fuzz::sasl_input(&input[..cut]);
            assert_ne!(
                outcome,
                Some(__fuzz::SaslOutcome::Accepted),
                "{name} cut at {cut}"
            );
        }
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn write_seeds() {
    let samples = __fuzz::sample_response_frames();
    for (i, (api, version, frame)) in samples.iter().enumerate() {
        let input = __fuzz::response_input(*api, *version, frame);
        write(
            "responses",
            &format!("{api:?}-v{version}-{}", i % 2),
            &input,
        );
    }

    // Framed streams: a few responses back to back, read in chunks of 1, 7 and 255 bytes.
    for (chunk, take) in [(1u8, 2usize), (7, 5), (255, 9)] {
        let mut stream = vec![chunk];
        for (_, _, frame) in samples.iter().step_by(37).take(take) {
            stream.extend_from_slice(&(frame.len() as i32).to_be_bytes());
            stream.extend_from_slice(frame);
        }
        stream.extend_from_slice(&[0, 0, 1]); // a cut-off length prefix
        write("frames", &format!("chunk{chunk}"), &stream);
    }
    write("frames", "negative", &[3, 0xff, 0xff, 0xff, 0xf0, 1, 2]);
    write("frames", "oversized", &[3, 0x7f, 0xff, 0xff, 0xff, 1, 2]);

    let headers = [
        Header {
            key: "trace".into(),
            value: Some(bytes::Bytes::from_static(b"abc")),
        },
        Header {
            key: "trace".into(),
            value: None,
        },
    ];
    let value = b"a value that compresses: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(3);
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for transactional in [false, true] {
            let options = BatchOptions {
                compression: codec,
                producer_id: if transactional { 4000 } else { -1 },
                producer_epoch: if transactional { 3 } else { -1 },
                base_sequence: if transactional { 10 } else { -1 },
                transactional,
                base_offset: 100,
                ..BatchOptions::default()
            };
            let records = [
                RecordInput {
                    timestamp: 1_700_000_000_000,
                    key: Some(&b"k1"[..]),
                    value: Some(&value[..]),
                    headers: &headers[..],
                },
                RecordInput {
                    timestamp: 1_700_000_000_005,
                    key: None,
                    value: None,
                    headers: &[],
                },
                RecordInput {
                    timestamp: 1_699_999_999_000,
                    key: Some(&b"k3"[..]),
                    value: Some(&b"v3"[..]),
                    headers: &headers[..1],
                },
            ];
            let mut out = BytesMut::new();
            encode_batch(&mut out, &options, records).expect("batch encodes");
            // Flags first: 0 skips the CRC check so mutations reach the codec, 1 checks it.
            for check_crc in [0u8, 1] {
                let mut input = vec![check_crc];
                input.extend_from_slice(&out);
                write(
                    "records",
                    &format!("{codec:?}-txn{}-crc{check_crc}", u8::from(transactional)),
                    &input,
                );
            }
            // Two batches, the second cut short (a fetch's truncated tail).
            let mut two = vec![0u8];
            two.extend_from_slice(&out);
            two.extend_from_slice(&out[..out.len() / 2]);
            write(
                "records",
                &format!("{codec:?}-txn{}-tail", u8::from(transactional)),
                &two,
            );
        }
    }

    let owned = vec![
        TopicPartition::new("orders", 0),
        TopicPartition::new("orders", 3),
        TopicPartition::new("audit", 1),
    ];
    let subscription = Subscription {
        topics: vec!["orders".into(), "audit".into()],
        user_data: Some(bytes::Bytes::from_static(&[0, 0, 0, 5])),
        owned_partitions: owned.clone(),
        generation_id: Some(5),
        rack_id: Some("rack-a".into()),
    };
    let assignment = Assignment {
        partitions: owned,
        user_data: None,
    };
    for version in 0..=3 {
        let sub = encode_subscription(&subscription, version).expect("subscription encodes");
        write(
            "consumer_protocol",
            &format!("subscription-v{version}"),
            &sub,
        );
        let asg = encode_assignment(&assignment, version).expect("assignment encodes");
        write("consumer_protocol", &format!("assignment-v{version}"), &asg);
    }
    let bare = encode_subscription(&Subscription::new(["t"]), 0).expect("encodes");
    write("consumer_protocol", "subscription-bare", &bare);

    for (name, input, _) in __fuzz::sasl_seed_inputs() {
        write("sasl", &name, &input);
    }
}

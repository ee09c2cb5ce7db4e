//! Unit tests for [`super`]: key hashing and the sticky partitioner.

use super::*;
use std::collections::BTreeMap;

/// `(key, Utils.murmur2(key), partitionForKey(key, 3), (.., 7), (.., 100))`.
///
/// Every value was produced by calling the real `org.apache.kafka.common.utils.Utils.murmur2`
/// and `BuiltInPartitioner.partitionForKey` from `kafka-clients-4.4.0.jar` under jshell, on the
/// UTF-8 bytes of each key. The hashes of "21", "abc", "foobar" and
/// "a-little-bit-long-string" also appear in Kafka's own `UtilsTest.testMurmur2`.
const JAVA_VECTORS: &[(&str, i32, i32, i32, i32)] = &[
    ("", 275646681, 0, 2, 81),
    ("a", -1563381124, 1, 5, 24),
    ("ab", 316155434, 2, 0, 34),
    ("abc", 479470107, 0, 4, 7),
    ("abcd", -1323649548, 2, 5, 0),
    ("abcde", 461995741, 1, 4, 41),
    ("21", -973932308, 0, 3, 40),
    ("foobar", -790332482, 0, 0, 66),
    ("a-little-bit-long-string", -985981536, 2, 1, 12),
    ("héllo wörld", 439213890, 0, 3, 90),
    ("日本語キー", 1445825182, 1, 4, 82),
    ("order-42", 501153024, 0, 1, 24),
];

#[test]
fn murmur2_matches_the_java_client() {
    for &(key, hash, p3, p7, p100) in JAVA_VECTORS {
        let b = key.as_bytes();
        assert_eq!(murmur2(b), hash, "murmur2({key:?})");
        assert_eq!(partition_for_key(b, 3), p3, "{key:?} % 3");
        assert_eq!(partition_for_key(b, 7), p7, "{key:?} % 7");
        assert_eq!(partition_for_key(b, 100), p100, "{key:?} % 100");
    }
    // High bytes must be read unsigned (Java's `& 0xff`); from the same jar run.
    let bin = [0xff, 0x80, 0x00, 0x7f, 0xfe];
    assert_eq!(murmur2(&bin), 768357719);
    assert_eq!(partition_for_key(&bin, 7), 3);
    // The two longer keys of `UtilsTest.testMurmur2`, as published there.
    assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971
    );
}

/// A second, independent transcription of `Utils.murmur2` on `i32` with Java's operators
/// spelled out (`>>>` as a cast to u32, `& 0xff` on sign-extended bytes, case fall-through),
/// checked against the production code on inputs of every tail length.
fn java_transcription(data: &[u8]) -> i32 {
    let length = data.len() as i32;
    let m: i32 = 0x5bd1e995;
    let mut h: i32 = (0x9747b28c_u32 as i32) ^ length;
    let byte = |i: i32| (data[i as usize] as i8 as i32) & 0xff;
    for i in 0..length / 4 {
        let i4 = i * 4;
        let mut k = byte(i4)
            .wrapping_add(byte(i4 + 1) << 8)
            .wrapping_add(byte(i4 + 2) << 16)
            .wrapping_add(byte(i4 + 3) << 24);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let base = length & !3;
    let rem = length % 4;
    if rem == 3 {
        h ^= byte(base + 2) << 16;
    }
    if rem >= 2 {
        h ^= byte(base + 1) << 8;
    }
    if rem >= 1 {
        h ^= byte(base);
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

#[test]
fn murmur2_agrees_with_an_independent_transcription() {
    let data: Vec<u8> = (0..97u32).map(|i| (i * 37 + 11) as u8).collect();
    for len in 0..data.len() {
        assert_eq!(
            murmur2(&data[..len]),
            java_transcription(&data[..len]),
            "len {len}"
        );
    }
}

#[test]
fn to_positive_clears_the_sign_bit_only() {
    assert_eq!(to_positive(-1), i32::MAX);
    assert_eq!(to_positive(i32::MIN), 0);
    assert_eq!(to_positive(5), 5);
}

#[test]
fn default_partitioner_hashes_keys_and_leaves_keyless_records_to_sticky() {
    let p = DefaultPartitioner::default();
    assert_eq!(p.partition("t", Some(b"21"), None, 7), Some(3));
    assert_eq!(p.partition("t", None, Some(b"v"), 7), None);
    let ignoring = DefaultPartitioner { ignore_keys: true };
    assert_eq!(ignoring.partition("t", Some(b"21"), None, 7), None);
}

#[test]
fn a_custom_partitioner_plugs_in_through_the_trait() {
    #[derive(Debug)]
    struct ByValueLength;
    impl Partitioner for ByValueLength {
        fn partition(&self, _: &str, _: Option<&[u8]>, v: Option<&[u8]>, n: i32) -> Option<i32> {
            v.map(|v| v.len() as i32 % n)
        }
    }
    let p: Box<dyn Partitioner> = Box::new(ByValueLength);
    assert_eq!(p.partition("t", None, Some(b"hello"), 3), Some(2));
}

#[test]
fn sticks_until_a_batch_worth_was_sent_then_switches() {
    let mut s = StickyPartitioner::new(100, 42);
    let all = [0, 1, 2, 3];
    let first = s.partition(&all, 4);
    for _ in 0..9 {
        assert_eq!(s.on_append(10, true, &all, 4), None);
        assert_eq!(s.partition(&all, 4), first);
    }
    // The 100th byte completes a batch's worth: the next record may go elsewhere.
    let switched = s.on_append(10, true, &all, 4);
    assert!(switched.is_some());
    assert_eq!(s.partition(&all, 4), switched.unwrap());
}

#[test]
fn an_unfinished_batch_delays_the_switch_up_to_twice_the_batch_size() {
    let mut s = StickyPartitioner::new(100, 7);
    s.partition(&[0, 1], 2);
    assert_eq!(s.on_append(150, false, &[0, 1], 2), None);
    assert!(s.on_append(50, false, &[0, 1], 2).is_some());
}

#[test]
fn chooses_only_available_partitions_or_any_when_none_is() {
    let mut s = StickyPartitioner::new(1, 3);
    s.partition(&[2, 5], 8);
    for _ in 0..50 {
        let p = s.on_append(1, true, &[2, 5], 8).unwrap();
        assert!(p == 2 || p == 5, "{p}");
    }
    let mut seen = BTreeMap::new();
    for _ in 0..400 {
        *seen
            .entry(s.on_append(1, true, &[], 4).unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

#[test]
fn adaptive_load_stats_favour_short_queues() {
    let mut s = StickyPartitioner::new(1, 11);
    s.partition(&[0, 1], 2);
    // Queues 0 and 9: weights 10 and 1, so partition 0 should win about 10 times in 11.
    s.update_load_stats(&[(0, 0), (1, 9)], 2);
    let mut zero = 0;
    for _ in 0..1100 {
        if s.on_append(1, true, &[0, 1], 2) == Some(0) {
            zero += 1;
        }
    }
    assert!((900..1100).contains(&zero), "{zero}");
    // Equal queues over every partition: back to uniform (no table).
    s.update_load_stats(&[(0, 3), (1, 3)], 2);
    assert!(s.load.is_none());
    // A partition without a leader is left out of the table and never chosen.
    s.update_load_stats(&[(1, 0), (2, 0)], 3);
    for _ in 0..100 {
        assert_ne!(s.on_append(1, true, &[1, 2], 3), Some(0));
    }
}

#[test]
fn a_load_table_from_other_metadata_never_names_a_partition_the_caller_cannot_use() {
    let mut s = StickyPartitioner::new(1, 5);
    s.partition(&[], 4);
    // Made when the topic had 4 partitions, 3 of them much busier than partition 3.
    s.update_load_stats(&[(0, 9), (1, 9), (2, 9), (3, 0)], 4);
    for _ in 0..200 {
        // The caller's metadata says 2 partitions now (the topic was recreated smaller).
        let p = s.on_append(1, true, &[0, 1], 2).unwrap();
        assert!((0..2).contains(&p), "{p}");
    }
    for _ in 0..200 {
        // Same count, but partition 3 has no leader in the caller's metadata.
        let p = s.on_append(1, true, &[0, 1, 2], 4).unwrap();
        assert_ne!(p, 3);
    }
    // Forgotten: uniform again over what the caller offers.
    s.clear_load_stats();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(s.on_append(1, true, &[0, 1, 2, 3], 4).unwrap());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

#[test]
fn same_seed_same_choices() {
    let mut a = StickyPartitioner::new(1, 9);
    let mut b = StickyPartitioner::new(1, 9);
    let xs: Vec<_> = (0..20)
        .map(|_| a.partition(&[], 16) + a.on_append(1, true, &[], 16).unwrap())
        .collect();
    let ys: Vec<_> = (0..20)
        .map(|_| b.partition(&[], 16) + b.on_append(1, true, &[], 16).unwrap())
        .collect();
    assert_eq!(xs, ys);
}

#[test]
fn the_sticky_partition_is_left_when_it_loses_its_leader_and_others_have_one() {
    let mut s = StickyPartitioner::new(16_384, 7);
    // No partition has a leader yet: any may be chosen, and it is kept while none has one.
    let first = s.partition(&[], 4);
    assert_eq!(s.partition(&[], 4), first);
    // Now the others have leaders but not this one: the next record goes to one of them.
    let others: Vec<i32> = (0..4).filter(|&p| p != first).collect();
    let next = s.partition(&others, 4);
    assert!(others.contains(&next), "{next} of {others:?}");
    // And it sticks there while it keeps its leader.
    assert_eq!(s.partition(&others, 4), next);
    assert_eq!(s.partition(&[0, 1, 2, 3], 4), next);
}

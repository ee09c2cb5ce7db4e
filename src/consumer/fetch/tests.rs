//! Tests of one partition's fetched data on its way to the user.

use super::*;
use crate::protocol::records::{encode_batch, ControlRecord, RecordInput};

fn batch(
    base_offset: i64,
    n: usize,
    producer_id: i64,
    transactional: bool,
    control: Option<bool>,
) -> Bytes {
    let mut out = bytes::BytesMut::new();
    let (key, value) = ControlRecord::marker(control.unwrap_or(false), 0);
    let records: Vec<RecordInput<'_, crate::record::Header>> = match control {
        Some(_) => vec![RecordInput {
            timestamp: 0,
            key: Some(&key),
            value: Some(&value),
            headers: &[],
        }],
        None => (0..n)
            .map(|_| RecordInput {
                timestamp: 1,
                key: Some(b"k"),
                value: Some(b"v"),
                headers: &[],
            })
            .collect(),
    };
    let options = crate::protocol::records::BatchOptions {
        base_offset,
        producer_id,
        producer_epoch: if producer_id >= 0 { 0 } else { -1 },
        base_sequence: if producer_id >= 0 { 0 } else { -1 },
        transactional,
        control: control.is_some(),
        ..Default::default()
    };
    encode_batch(&mut out, &options, records).expect("encodes");
    out.freeze()
}

fn concat(parts: &[Bytes]) -> Bytes {
    let mut all = bytes::BytesMut::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    all.freeze()
}

fn fetch(
    data: Bytes,
    offset: i64,
    isolation: IsolationLevel,
    aborted: &[AbortedTransaction],
) -> PartitionFetch {
    PartitionFetch::new(
        TopicPartition::new("t", 0),
        None,
        offset,
        data,
        isolation,
        -1,
        aborted.iter().copied(),
        true,
        usize::MAX,
    )
}

fn unlimited() -> DecompressBudget {
    DecompressBudget::new(usize::MAX)
}

#[test]
fn read_committed_skips_aborted_data_and_markers_but_advances() {
    // pid 7: aborted txn at 0..=2, ABORT marker at 3; pid 8: committed at 4..=5, COMMIT at 6.
    let data = concat(&[
        batch(0, 3, 7, true, None),
        batch(3, 1, 7, true, Some(false)),
        batch(4, 2, 8, true, None),
        batch(6, 1, 8, true, Some(true)),
    ]);
    let mut f = fetch(
        data.clone(),
        0,
        IsolationLevel::ReadCommitted,
        &[AbortedTransaction::new(7, 0)],
    );
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![4, 5]);
    assert_eq!(f.next_offset(), 7);
    assert!(f.is_drained());

    let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 4, 5]);
    assert_eq!(f.next_offset(), 7);
}

#[test]
fn only_aborted_data_still_advances_the_position() {
    let data = concat(&[
        batch(10, 4, 3, true, None),
        batch(14, 1, 3, true, Some(false)),
    ]);
    let mut f = fetch(
        data,
        10,
        IsolationLevel::ReadCommitted,
        &[AbortedTransaction::new(3, 10)],
    );
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    assert!(out.is_empty());
    assert_eq!(f.next_offset(), 15);
}

#[test]
fn limit_and_fetch_offset_inside_a_batch_are_respected() {
    let data = concat(&[batch(0, 5, -1, false, None), batch(5, 5, -1, false, None)]);
    let mut f = fetch(data, 2, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    f.drain(4, &mut unlimited(), &mut out);
    let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3, 4, 5]);
    assert_eq!(f.next_offset(), 6);
    assert!(!f.is_drained());
    out.clear();
    f.drain(100, &mut unlimited(), &mut out);
    assert_eq!(out.len(), 4);
    assert_eq!(f.next_offset(), 10);
    assert!(f.is_drained());
}

#[test]
fn truncated_tail_is_normal_and_crc_error_names_partition_and_offset() {
    let good = batch(0, 2, -1, false, None);
    let next = batch(2, 2, -1, false, None);
    let data = concat(&[good.clone(), next.slice(..next.len() - 3)]);
    let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    assert_eq!(out.len(), 2);
    assert!(f.take_error().is_none());
    assert_eq!(f.next_offset(), 2);

    let mut corrupt = next.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let data = concat(&[good, Bytes::from(corrupt)]);
    let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    assert_eq!(out.len(), 2, "records before the bad batch are delivered");
    assert_eq!(f.next_offset(), 2, "position stays at the bad batch");
    let text = f.take_error().expect("crc error").to_string();
    assert!(text.contains("t-0"), "{text}");
    assert!(text.contains("offset 2"), "{text}");
    assert!(text.contains("CRC"), "{text}");
}

/// A gzip batch at `base_offset` of `n` records whose values are `value_len` zero bytes.
fn gzip_batch(base_offset: i64, n: usize, value_len: usize) -> Bytes {
    let value = vec![0u8; value_len];
    let records: Vec<RecordInput<'_, crate::record::Header>> = (0..n)
        .map(|_| RecordInput {
            timestamp: 1,
            key: None,
            value: Some(&value),
            headers: &[],
        })
        .collect();
    let options = crate::protocol::records::BatchOptions {
        base_offset,
        compression: Compression::Gzip,
        ..Default::default()
    };
    let mut out = bytes::BytesMut::new();
    encode_batch(&mut out, &options, records).expect("encodes");
    out.freeze()
}

fn offsets(out: &[ConsumerRecord]) -> Vec<i64> {
    out.iter().map(|r| r.offset).collect()
}

#[test]
fn a_poll_stops_before_a_batch_that_does_not_fit_its_decompression_budget() {
    // Three gzip batches of 2 records × 40 KiB (80 KiB and a little each); 200 KiB per poll.
    let data = concat(&[
        gzip_batch(0, 2, 40 << 10),
        gzip_batch(2, 2, 40 << 10),
        gzip_batch(4, 2, 40 << 10),
    ]);
    let mut f = PartitionFetch::new(
        TopicPartition::new("t", 0),
        None,
        0,
        data,
        IsolationLevel::ReadUncommitted,
        -1,
        [],
        true,
        200 << 10,
    );
    let mut out = Vec::new();
    let mut budget = DecompressBudget::new(200 << 10);
    f.drain(100, &mut budget, &mut out);
    assert_eq!(
        offsets(&out),
        vec![0, 1, 2, 3],
        "two batches fit, the third waits"
    );
    assert!(budget.is_full());
    assert!(budget.held <= 200 << 10, "{}", budget.held);
    assert_eq!(f.next_offset(), 4);
    assert!(!f.is_drained() && !f.has_error());

    // The next poll opens the waiting batch.
    out.clear();
    let mut budget = DecompressBudget::new(200 << 10);
    f.drain(100, &mut budget, &mut out);
    assert_eq!(offsets(&out), vec![4, 5]);
    assert!(f.is_drained());
    assert!(f.stall().is_none());
}

#[test]
fn a_batch_carried_over_to_the_next_poll_is_charged_again() {
    let data = concat(&[gzip_batch(0, 4, 40 << 10), gzip_batch(4, 4, 40 << 10)]);
    let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    let mut budget = DecompressBudget::new(200 << 10);
    f.drain(2, &mut budget, &mut out);
    assert_eq!(offsets(&out), vec![0, 1]);
    // Records 2 and 3 share the first batch's buffer: the next poll pays for it again, so
    // the second batch (another 160 KiB) does not fit beside it.
    out.clear();
    let mut budget = DecompressBudget::new(200 << 10);
    f.drain(100, &mut budget, &mut out);
    assert_eq!(offsets(&out), vec![2, 3]);
    assert!(budget.is_full());
}

#[test]
fn a_batch_larger_than_the_whole_budget_is_an_error_naming_partition_and_offset() {
    let data = concat(&[batch(0, 2, -1, false, None), gzip_batch(2, 2, 1 << 20)]);
    let mut f = PartitionFetch::new(
        TopicPartition::new("t", 3),
        None,
        0,
        data,
        IsolationLevel::ReadUncommitted,
        -1,
        [],
        true,
        1 << 20,
    );
    let mut out = Vec::new();
    f.drain(100, &mut DecompressBudget::new(1 << 20), &mut out);
    assert_eq!(
        offsets(&out),
        vec![0, 1],
        "uncompressed records are not charged"
    );
    let text = f.take_error().expect("too large").to_string();
    assert!(text.contains("t-3"), "{text}");
    assert!(text.contains("offset 2"), "{text}");
    assert!(text.contains("max.poll.decompressed.bytes"), "{text}");
    assert!(text.contains("seek to offset 4"), "{text}");
    assert_eq!(f.next_offset(), 2);
}

#[test]
fn data_the_position_cannot_move_past_says_why() {
    // Only a truncated batch.
    let whole = batch(5, 3, -1, false, None);
    let mut f = fetch(
        whole.slice(..whole.len() - 10),
        5,
        IsolationLevel::ReadUncommitted,
        &[],
    );
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    assert!(out.is_empty() && f.is_drained() && !f.has_error());
    let why = f.stall().expect("no progress");
    assert!(why.contains("truncated batch"), "{why}");
    assert!(why.contains("offset 5"), "{why}");
    assert!(
        why.contains(&format!("declares {} bytes", whole.len())),
        "{why}"
    );

    // Only records before the position: skipped without being handed out again.
    let data = concat(&[batch(0, 3, -1, false, None), batch(3, 2, -1, false, None)]);
    let mut f = fetch(data, 5, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    f.drain(100, &mut unlimited(), &mut out);
    assert!(out.is_empty());
    assert_eq!(f.next_offset(), 5);
    let why = f.stall().expect("no progress");
    assert!(
        why.contains("before the position (2 batch(es) up to offset 4"),
        "{why}"
    );

    // Progress (even through skipped batches) is no stall.
    let mut f = fetch(
        batch(0, 3, -1, false, None),
        0,
        IsolationLevel::ReadUncommitted,
        &[],
    );
    f.drain(100, &mut unlimited(), &mut Vec::new());
    assert!(f.stall().is_none());
}

/// A gzip control batch (an abort marker of producer 7) at `base_offset`; with `padding`, a
/// second record of that many zero bytes follows the marker.
fn gzip_control_batch(base_offset: i64, padding: usize) -> Bytes {
    let (key, value) = ControlRecord::marker(false, 0);
    let zeros = vec![0u8; padding];
    let marker = RecordInput::<crate::record::Header> {
        timestamp: 0,
        key: Some(&key),
        value: Some(&value),
        headers: &[],
    };
    let mut records = vec![marker];
    if padding > 0 {
        records.push(RecordInput {
            timestamp: 0,
            key: None,
            value: Some(&zeros),
            headers: &[],
        });
    }
    let options = crate::protocol::records::BatchOptions {
        base_offset,
        producer_id: 7,
        producer_epoch: 0,
        transactional: true,
        control: true,
        compression: Compression::Gzip,
        ..Default::default()
    };
    let mut out = bytes::BytesMut::new();
    encode_batch(&mut out, &options, records).expect("encodes");
    out.freeze()
}

#[test]
fn an_oversized_compressed_control_batch_is_an_error_not_a_decompression() {
    // A valid marker followed by 32 MiB of zeros, well under the per-batch limit of 128 MiB.
    let bomb = gzip_control_batch(2, 32 << 20);
    assert!(bomb.len() < 1 << 20, "{} bytes on the wire", bomb.len());
    // read_uncommitted never opens a control batch: skipped whole, nothing decompressed.
    let data = concat(&[batch(0, 2, 7, true, None), bomb.clone()]);
    let mut f = fetch(data, 0, IsolationLevel::ReadUncommitted, &[]);
    let mut out = Vec::new();
    let mut budget = DecompressBudget::new(128 << 20);
    f.drain(100, &mut budget, &mut out);
    assert_eq!(offsets(&out), vec![0, 1]);
    assert!(f.take_error().is_none());
    assert_eq!(f.next_offset(), 4, "past the control batch");
    {
        let isolation = IsolationLevel::ReadCommitted;
        let data = concat(&[batch(0, 2, 7, true, None), bomb.clone()]);
        let mut f = PartitionFetch::new(
            TopicPartition::new("t", 0),
            None,
            0,
            data,
            isolation,
            -1,
            [],
            true,
            128 << 20,
        );
        let mut out = Vec::new();
        let mut budget = DecompressBudget::new(128 << 20);
        f.drain(100, &mut budget, &mut out);
        assert_eq!(offsets(&out), vec![0, 1], "{isolation:?}");
        let text = f.take_error().expect("refused").to_string();
        for needle in ["t-0", "control batch at offset 2", "more than 4096 bytes"] {
            assert!(text.contains(needle), "{isolation:?}: `{needle}` in {text}");
        }
        assert_eq!(
            f.next_offset(),
            2,
            "{isolation:?}: the position stays at it"
        );
    }
}

#[test]
fn a_malformed_marker_stops_read_committed_only() {
    // A control batch whose one record's key is 1 byte: no marker can be read from it.
    let mut out = bytes::BytesMut::new();
    let record = RecordInput::<crate::record::Header> {
        timestamp: 0,
        key: Some(b"x"),
        value: None,
        headers: &[],
    };
    let options = crate::protocol::records::BatchOptions {
        base_offset: 2,
        producer_id: 7,
        producer_epoch: 0,
        transactional: true,
        control: true,
        ..Default::default()
    };
    encode_batch(&mut out, &options, [record]).expect("encodes");
    let data = concat(&[
        batch(0, 2, 7, true, None),
        out.freeze(),
        batch(3, 1, -1, false, None),
    ]);
    let mut f = fetch(data.clone(), 0, IsolationLevel::ReadUncommitted, &[]);
    let mut got = Vec::new();
    f.drain(100, &mut unlimited(), &mut got);
    assert_eq!(offsets(&got), vec![0, 1, 3], "skipped unread, as Java does");
    assert!(f.take_error().is_none());
    let mut f = fetch(data, 0, IsolationLevel::ReadCommitted, &[]);
    let mut got = Vec::new();
    f.drain(100, &mut unlimited(), &mut got);
    assert_eq!(offsets(&got), vec![0, 1]);
    assert!(f.take_error().is_some(), "read_committed needs the marker");
}

#[test]
fn compressed_control_batches_are_read_and_count_against_the_poll_budget() {
    // Ten small gzip abort markers, then two records: a poll allowed three markers' worth of
    // decompression reads three of them and leaves the rest to the next polls.
    let mut parts: Vec<Bytes> = (0..10).map(|i| gzip_control_batch(i, 0)).collect();
    parts.push(batch(10, 2, -1, false, None));
    let mut f = fetch(concat(&parts), 0, IsolationLevel::ReadCommitted, &[]);
    let mut out = Vec::new();
    let mut budget = DecompressBudget::new(3 * MAX_CONTROL_BATCH_BYTES);
    f.drain(100, &mut budget, &mut out);
    assert!(out.is_empty() && budget.is_full());
    assert_eq!(f.next_offset(), 3);
    let mut polls = 1;
    while !f.is_drained() {
        polls += 1;
        assert!(polls < 10, "no progress");
        let mut budget = DecompressBudget::new(3 * MAX_CONTROL_BATCH_BYTES);
        f.drain(100, &mut budget, &mut out);
    }
    assert_eq!(offsets(&out), vec![10, 11]);
    assert_eq!(polls, 4, "3 + 3 + 3 + 1 markers");
    assert!(f.take_error().is_none());
}

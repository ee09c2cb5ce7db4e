//! Peak memory of a consumer reading gzip bombs (issue #10): 16 batches that each inflate to
//! 120 MiB from about 120 KiB on the wire, all in one fetch response. Every poll may hold at most
//! `max.poll.decompressed.bytes` (128 MiB by default) of decompressed data, so the process's peak
//! RSS stays far below the 2 GiB the batches add up to.
//!
//! A test binary of its own: the peak (`VmHWM` in `/proc/self/status`) is the whole process's, so
//! no other test may run beside it.

mod consumer_support;

use std::time::{Duration, Instant};

use bytes::Bytes;

use consumer_support::{concat, gzip_bomb_batch, FetchAnswer, FetchCluster};

const MIB: usize = 1 << 20;
const BATCHES: i64 = 16;
const VALUE_LEN: usize = 120 * MIB - 1;
/// The bound the issue asks for.
const MAX_PEAK_RSS: usize = 300 * 1000 * 1000;

/// The process's peak resident set size in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

#[tokio::test]
async fn sixteen_gzip_bombs_of_120_mib_stay_under_300_mb_peak_rss() {
    let one = gzip_bomb_batch(0, VALUE_LEN);
    let batches: Vec<Bytes> = (0..BATCHES)
        .map(|i| {
            let mut b = one.to_vec();
            b[..8].copy_from_slice(&i.to_be_bytes());
            Bytes::from(b)
        })
        .collect();
    let data = concat(&batches);
    let wire = data.len();
    let cluster = FetchCluster::start(move |f| {
        if f.offset == 0 {
            FetchAnswer::Records(data.clone())
        } else {
            FetchAnswer::EmptyAfterWait
        }
    })
    .await;
    let mut consumer = cluster.consumer(cluster.config(), 0).await;
    let started = Instant::now();
    let mut offsets = Vec::new();
    let end = Instant::now() + Duration::from_secs(600);
    while offsets.len() < BATCHES as usize && Instant::now() < end {
        let records = consumer.poll(Duration::from_secs(1)).await.expect("poll");
        for r in &records {
            let value = r.value.as_ref().expect("value");
            assert_eq!(value.len(), VALUE_LEN);
            assert_eq!((value[0], value[VALUE_LEN - 1]), (0, 0));
            offsets.push(r.offset);
        }
        // `records` is dropped here, before the next poll, as an application would.
    }
    let peak = peak_rss();
    eprintln!(
        "{BATCHES} batches, {wire} bytes on the wire, {} MiB inflated: read in {:?}, peak RSS {} MB",
        BATCHES as usize * (VALUE_LEN + 1) / MIB,
        started.elapsed(),
        peak / 1_000_000
    );
    assert_eq!(offsets, (0..BATCHES).collect::<Vec<i64>>());
    assert!(
        peak < MAX_PEAK_RSS,
        "peak RSS {peak} bytes is over {MAX_PEAK_RSS}"
    );
}

//! Which partition a record goes to: Kafka's murmur2 key hash, the sticky choice for keyless
//! records, and the [`Partitioner`] trait for custom rules.
//!
//! Keyed records must land where every other Kafka client puts them, so the hash is the Java
//! client's `Utils.murmur2` bit for bit and the partition is `toPositive(hash) % partitions`
//! (`BuiltInPartitioner.partitionForKey`). Keyless records follow KIP-480 (sticky partitioning) as
//! refined by KIP-794 (`BuiltInPartitioner`): stay on one partition until about `batch.size` bytes
//! went to it, then switch, choosing among partitions that have a leader and, when queue lengths
//! are known, preferring partitions with shorter queues. Everything here is driven by explicit
//! calls; the random source is a seeded xorshift so tests are deterministic.

use std::fmt;

/// Kafka's 32-bit murmur2 hash, exactly as the Java client's `Utils.murmur2` computes it (seed
/// `0x9747b28c`), including its little-endian word reads and tail handling.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java does this arithmetic on `int`, which wraps; u32 wrapping gives the same bits.
    let mut h: u32 = 0x9747_b28c ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    // Java's switch falls through from case 3 to case 1; the multiply happens once for any tail.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner gives a key: `toPositive(murmur2(key)) % partitions`.
///
/// # Panics
///
/// If `num_partitions` is not positive (a topic always has at least one partition).
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % num_partitions
}

/// A user-supplied rule mapping a record to a partition (Java's `Partitioner` interface).
///
/// `num_partitions` is the topic's current partition count (at least 1). Returning `None` means "no
/// preference": the record then goes to the sticky partition, as with Java's built-in
/// partitioner. A returned partition outside `0..num_partitions` is an error for the caller to
/// report.
pub trait Partitioner: fmt::Debug + Send + Sync {
    /// The partition for a record of `topic` with this key and value.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        num_partitions: i32,
    ) -> Option<i32>;
}

/// The built-in rule: keyed records by murmur2, keyless ones left to the producer's
/// sticky choice (KIP-480/KIP-794: one partition per batch, fewer to busy brokers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultPartitioner {
    /// `partitioner.ignore.keys` (KIP-794): when true, keys are not hashed and every record is
    /// placed by the sticky partitioner. Default false.
    pub ignore_keys: bool,
}

impl Partitioner for DefaultPartitioner {
    fn partition(
        &self,
        _topic: &str,
        key: Option<&[u8]>,
        _value: Option<&[u8]>,
        num_partitions: i32,
    ) -> Option<i32> {
        key.filter(|_| !self.ignore_keys)
            .map(|k| partition_for_key(k, num_partitions))
    }
}

/// Sticky partition choice for the keyless records of one topic (KIP-480, KIP-794).
///
/// Call [`StickyPartitioner::partition`] for each keyless record, append it to that partition, then
/// report the appended bytes with [`StickyPartitioner::on_append`], which may switch partitions.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    /// Bytes to send to one partition before switching: `batch.size`, so a switch lines up with a
    /// completed batch (`BuiltInPartitioner.stickyBatchSize`).
    sticky_batch_size: usize,
    /// The partition keyless records go to now; `None` until the first record.
    current: Option<i32>,
    /// Bytes appended to `current` since it was chosen.
    produced_bytes: usize,
    /// KIP-794 adaptive weights, from the last [`StickyPartitioner::update_load_stats`]; `None`
    /// means uniform choice.
    load: Option<LoadStats>,
    /// xorshift64 state (never zero).
    rng: u64,
}

/// A cumulative frequency table over partitions: a uniform draw below the last entry picks the
/// first partition whose entry is greater, so shorter queues are picked more often.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoadStats {
    cumulative: Vec<u64>,
    partitions: Vec<i32>,
    /// The topic's partition count when the table was made: a caller placing a record with
    /// other metadata (newer, or a send's older snapshot) gets a uniform choice instead.
    num_partitions: usize,
}

impl StickyPartitioner {
    /// A partitioner switching after `batch_size` bytes, with a random sequence from `seed`.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        StickyPartitioner {
            sticky_batch_size: batch_size.max(1),
            current: None,
            produced_bytes: 0,
            load: None,
            rng: seed | 1,
        }
    }

    /// The partition for the next keyless record. Chooses one on first use; otherwise stays on the
    /// current one while it has a leader or none has. `available` (sorted) lists the partitions
    /// that have a leader now; when it is empty any of `0..num_partitions` may be chosen (Java
    /// `BuiltInPartitioner.nextPartition`).
    pub fn partition(&mut self, available: &[i32], num_partitions: i32) -> i32 {
        let usable = |p: i32| available.is_empty() || available.binary_search(&p).is_ok();
        match self.current {
            Some(p) if p < num_partitions && usable(p) => p,
            _ => {
                let p = self.next_partition(available, num_partitions);
                self.current = Some(p);
                self.produced_bytes = 0;
                p
            }
        }
    }

    /// Records that `appended_bytes` went to the current partition and switches when enough was
    /// sent. Returns the new partition when it switched.
    ///
    /// `enable_switch` is whether the partition's last batch is now full (Java passes
    /// `allBatchesFull`): switching while a batch is still filling would leave a small batch
    /// behind, so the switch waits for it, up to twice `batch.size` (Java
    /// `updatePartitionInfo`).
    pub fn on_append(
        &mut self,
        appended_bytes: usize,
        enable_switch: bool,
        available: &[i32],
        num_partitions: i32,
    ) -> Option<i32> {
        self.current?;
        self.produced_bytes = self.produced_bytes.saturating_add(appended_bytes);
        let enough = self.produced_bytes >= self.sticky_batch_size && enable_switch;
        let far_too_much = self.produced_bytes >= self.sticky_batch_size.saturating_mul(2);
        if !(enough || far_too_much) {
            return None;
        }
        let p = self.next_partition(available, num_partitions);
        self.current = Some(p);
        self.produced_bytes = 0;
        Some(p)
    }

    /// Updates the KIP-794 adaptive weights from the queue length of each partition that has a
    /// leader (`(partition, queued batches)`); `num_partitions` is the topic's partition count.
    ///
    /// Mirrors `BuiltInPartitioner.updatePartitionLoadStats`: weights are `max + 1 - queue`, so the
    /// longest queue keeps weight 1 and is never starved entirely; with fewer than two partitions,
    /// or when every partition is listed with the same length, choice stays uniform.
    pub fn update_load_stats(&mut self, queues: &[(i32, usize)], num_partitions: usize) {
        if queues.is_empty() || num_partitions < 2 {
            self.load = None;
            return;
        }
        let max = queues.iter().map(|&(_, q)| q).max().unwrap_or(0) as u64;
        let all_equal = queues.iter().all(|&(_, q)| q as u64 == max);
        if all_equal && queues.len() == num_partitions {
            self.load = None;
            return;
        }
        // Rebuilt in place: the sender calls this on every pass.
        let load = self.load.get_or_insert_with(|| LoadStats {
            cumulative: Vec::new(),
            partitions: Vec::new(),
            num_partitions,
        });
        load.num_partitions = num_partitions;
        load.cumulative.clear();
        load.partitions.clear();
        let mut running = 0u64;
        for &(p, q) in queues {
            running += max + 1 - q as u64;
            load.cumulative.push(running);
            load.partitions.push(p);
        }
    }

    /// Forgets the adaptive weights: the next choices are uniform.
    pub fn clear_load_stats(&mut self) {
        self.load = None;
    }

    fn next_partition(&mut self, available: &[i32], num_partitions: i32) -> i32 {
        let random = to_positive(self.next_i32()) as u64;
        if let Some(load) = &self.load {
            let total = *load.cumulative.last().unwrap_or(&1);
            let draw = random % total.max(1);
            let idx = load.cumulative.partition_point(|&c| c <= draw);
            let p = load.partitions[idx.min(load.partitions.len() - 1)];
            // The table was made from the sender's last snapshot; the caller's may differ. Only a
            // choice that is valid in the caller's metadata stands.
            let known = load.num_partitions == num_partitions.max(0) as usize
                && (available.is_empty() || available.contains(&p));
            if known {
                return p;
            }
        }
        if available.is_empty() {
            (random % num_partitions.max(1) as u64) as i32
        } else {
            available[(random % available.len() as u64) as usize]
        }
    }

    fn next_i32(&mut self) -> i32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 32) as i32
    }
}

#[cfg(test)]
#[path = "tests/partitioner.rs"]
mod tests;

//! A sample user project for `josefk::testing`: the application code is [`Copier`], an
//! exactly-once topic copier (consume → transform → produce → send offsets → commit, one
//! transaction per poll), and [`scenarios`] are its tests, written once against a
//! `bootstrap.servers` string.
//!
//! `tests/mock.rs` runs every scenario against [`josefk::testing::MockCluster`] with plain
//! `cargo test -p josefk-testing-sample` (no Java, no broker); josefk's own `tests/testing_parity.rs`
//! runs the same scenario code against a real Kafka through the harness, so the mock is held to
//! the broker's behaviour.

pub mod scenarios;

use std::collections::BTreeMap;
use std::time::Duration;

use josefk::consumer::{AutoOffsetReset, Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::{ClientConfig, ErrorClass, Guarantee, ProducerRecord, TopicPartition};

/// Suffix the copier appends to every value.
pub const COPIED: &str = " (copied)";

/// Copies one topic to another exactly once, as a member of a consumer group.
#[derive(Debug)]
pub struct Copier {
    consumer: Consumer,
    producer: Producer,
    output: String,
}

impl Copier {
    /// Joins `group` reading `input`, and starts a transactional producer (`transactional_id`)
    /// writing `output`; `init_transactions` fences any earlier copier with the same id.
    pub async fn start(
        client: ClientConfig,
        input: &str,
        output: &str,
        group: &str,
        transactional_id: &str,
    ) -> josefk::Result<Copier> {
        let mut consumer = Consumer::connect(
            ConsumerConfig::with_client(client.clone())
                .guarantee(Guarantee::ExactlyOnce)
                .group_id(group)
                // Static membership: a copier restarted after a crash takes its predecessor's
                // place at once instead of waiting for its session to time out.
                .group_instance_id(format!("{transactional_id}-member"))
                .session_timeout(Duration::from_secs(20))
                // Small transactions, so a test sees many of them.
                .max_poll_records(25)
                .auto_offset_reset(AutoOffsetReset::Earliest),
        )
        .await?;
        consumer.subscribe(&[input])?;
        let producer = Producer::connect(
            ProducerConfig::with_client(client)
                .guarantee(Guarantee::ExactlyOnce)
                .transactional_id(transactional_id),
        )
        .await?;
        producer.init_transactions().await?;
        Ok(Copier {
            consumer,
            producer,
            output: output.to_owned(),
        })
    }

    /// One poll, copied in one transaction with the consumer's next offsets. Returns how many
    /// records were committed: 0 when the poll was empty, or when an abortable error made the
    /// copier abort and rewind to the committed offsets (the records come again).
    pub async fn step(&mut self, timeout: Duration) -> josefk::Result<usize> {
        let records = self.consumer.poll(timeout).await?;
        if records.is_empty() {
            return Ok(0);
        }
        self.producer.begin_transaction()?;
        let result = async {
            let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
            for r in &records {
                let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                let mut out = ProducerRecord::new(&self.output, format!("{value}{COPIED}"))
                    .partition(r.partition)
                    .header("source.offset", r.offset.to_string());
                if let Some(key) = &r.key {
                    out = out.key(key.clone());
                }
                // commit_transaction fails if any record of the transaction failed.
                drop(self.producer.send(out).await?);
                next.insert(r.topic_partition(), r.offset + 1);
            }
            let offsets: Vec<_> = next.into_iter().map(|(tp, o)| (tp, o, None)).collect();
            let group = self
                .consumer
                .group_metadata()
                .expect("the copier's consumer has a group.id");
            self.producer
                .send_offsets_to_transaction(&offsets, &group)
                .await?;
            self.producer.commit_transaction().await
        }
        .await;
        match result {
            Ok(()) => Ok(records.len()),
            Err(e) if e.class() == ErrorClass::Fatal => Err(e),
            Err(_) => {
                self.producer.abort_transaction().await?;
                self.consumer.rewind_to_committed()?;
                Ok(0)
            }
        }
    }

    /// Simulates a crash inside a transaction (for tests): polls until records arrive (at most
    /// `wait`), writes their copies and the next offsets in a transaction and flushes them, then drops the clients
    /// without committing or leaving. Returns how many records the open transaction holds; the
    /// next copier's `init_transactions` aborts it.
    pub async fn crash_mid_transaction(mut self, wait: Duration) -> josefk::Result<usize> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut records = Vec::new();
        while records.is_empty() && tokio::time::Instant::now() < deadline {
            records = self.consumer.poll(Duration::from_millis(200)).await?;
        }
        if records.is_empty() {
            return Ok(0);
        }
        self.producer.begin_transaction()?;
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in &records {
            let out = ProducerRecord::new(&self.output, "written by a copier that crashed")
                .partition(r.partition);
            drop(self.producer.send(out).await?);
            next.insert(r.topic_partition(), r.offset + 1);
        }
        // Crash at the worst moment: records and offsets sent, the commit not.
        let offsets: Vec<_> = next.into_iter().map(|(tp, o)| (tp, o, None)).collect();
        let group = self
            .consumer
            .group_metadata()
            .expect("the copier's consumer has a group.id");
        self.producer
            .send_offsets_to_transaction(&offsets, &group)
            .await?;
        self.producer.flush().await?;
        Ok(records.len())
    }

    /// The partitions the group gave this copier.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.assignment()
    }

    /// Leaves the group and closes the producer.
    pub async fn close(self) -> josefk::Result<()> {
        self.producer.close(Duration::from_secs(30)).await?;
        self.consumer.close().await
    }
}

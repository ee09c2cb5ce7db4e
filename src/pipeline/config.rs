//! [`PipelineConfig`]: what a [`Pipeline`](super::Pipeline) reads, writes and how often it
//! commits, and [`TransformErrorPolicy`].

use std::time::Duration;

use crate::consumer::ConsumerConfig;
use crate::error::{Error, Result};
use crate::producer::ProducerConfig;
use crate::{ClientConfig, Guarantee, IsolationLevel};

/// The pipeline's `transaction.timeout.ms`, Kafka Streams' under exactly-once: how long
/// `read_committed` readers of the output may be held up by the open transaction of an instance
/// that crashed and does not come back.
const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What a [`Pipeline`](super::Pipeline) does when the transform returns an error for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformErrorPolicy {
    /// Abort the open transaction and stop the pipeline with [`Error::Transform`]. Nothing
    /// since the last commit is written; the next run reads the failed record again.
    Fail,
    /// Write the input record (key, value, headers) to this topic inside the same transaction,
    /// with headers `josefk.dlq.error`, `josefk.dlq.topic`, `josefk.dlq.partition` and
    /// `josefk.dlq.offset`, and go on: the dead letter commits, or aborts, with the records
    /// around it, so it is written exactly once.
    ///
    /// An output the producer refuses as made (a bad topic name, a record over
    /// `max.request.size`, a partition the topic does not have) is a failure of its input record
    /// too. All of a record's outputs are checked before the first is sent, so a record is
    /// written all or nothing: its outputs, or its dead letter alone.
    ///
    /// A dead letter that would itself exceed `max.request.size` is written without its value,
    /// with a header `josefk.dlq.value-dropped` saying why. One still too large (its key and
    /// headers alone) stops the pipeline with [`Error::Transform`] naming the input record.
    DeadLetter(String),
}

/// Settings of a [`Pipeline`](super::Pipeline): a `read_committed` group consumer of
/// `input` and a transactional producer, committing every `commit_interval` or every
/// `commit_records` input records, whichever comes first.
///
/// The consumer and producer settings are ordinary [`ConsumerConfig`] and [`ProducerConfig`]
/// (Java property names through their `set`); the pipeline forces what exactly-once needs on top
/// of them: `isolation.level=read_committed`, no consumer commits, idempotence, `acks=all`.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub(crate) consumer: ConsumerConfig,
    pub(crate) producer: ProducerConfig,
    /// Given to [`PipelineConfig::new`]; re-applied over whatever `consumer`/`producer` set.
    group_id: String,
    transactional_id: String,
    pub(crate) input: Vec<String>,
    pub(crate) commit_interval: Duration,
    pub(crate) commit_records: usize,
    pub(crate) max_in_flight_partitions: usize,
    pub(crate) on_transform_error: TransformErrorPolicy,
    pub(crate) max_producer_recreations: u32,
}

impl PipelineConfig {
    /// A pipeline in consumer group `group_id` reading `input`, whose producer uses
    /// `transactional_id`. Give each running instance its own `transactional_id` (and the same
    /// one again when an instance restarts: that fences the previous process, KIP-447).
    ///
    /// Defaults: commit every 100 ms or 1,000 input records (`commit.interval.ms`-style),
    /// 8 partitions transformed at once, [`TransformErrorPolicy::Fail`], and the producer's
    /// `transaction.timeout.ms` at 10 s (as Kafka Streams sets it under exactly-once; the
    /// producer's own default is 60 s): see the module docs for what it bounds.
    pub fn new<S: AsRef<str>>(
        client: ClientConfig,
        group_id: impl Into<String>,
        transactional_id: impl Into<String>,
        input: &[S],
    ) -> Self {
        let (group_id, transactional_id) = (group_id.into(), transactional_id.into());
        PipelineConfig {
            consumer: ConsumerConfig::with_client(client.clone()).group_id(group_id.clone()),
            producer: ProducerConfig::with_client(client)
                .transactional_id(transactional_id.clone())
                .transaction_timeout(DEFAULT_TRANSACTION_TIMEOUT),
            group_id,
            transactional_id,
            input: input.iter().map(|t| t.as_ref().to_owned()).collect(),
            commit_interval: Duration::from_millis(100),
            commit_records: 1_000,
            max_in_flight_partitions: 8,
            on_transform_error: TransformErrorPolicy::Fail,
            max_producer_recreations: 5,
        }
    }

    /// Commits once the open transaction is this old (and has records).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Commits once the open transaction holds this many input records. Checked between polls,
    /// so a transaction may hold up to one poll's records more (`max.poll.records` - 1).
    pub fn commit_records(mut self, records: usize) -> Self {
        self.commit_records = records;
        self
    }

    /// How many input partitions are transformed at the same time. Records of one partition are
    /// always transformed, and their outputs sent, one after the other, in offset order.
    pub fn max_in_flight_partitions(mut self, partitions: usize) -> Self {
        self.max_in_flight_partitions = partitions;
        self
    }

    /// What to do with a record the transform fails on.
    pub fn on_transform_error(mut self, policy: TransformErrorPolicy) -> Self {
        self.on_transform_error = policy;
        self
    }

    /// How many times in a row, without a commit in between, the pipeline may replace its
    /// producer after a transaction the coordinator aborted for running past
    /// `transaction.timeout.ms` (default 5). Past that the error is returned.
    pub fn max_producer_recreations(mut self, times: u32) -> Self {
        self.max_producer_recreations = times;
        self
    }

    /// Changes the consumer's settings (`session.timeout.ms`, `max.poll.records`, ...). The
    /// group id given to [`new`](Self::new) and the exactly-once settings are kept: they are
    /// applied again over what `f` returns (even a config built from scratch).
    pub fn consumer(mut self, f: impl FnOnce(ConsumerConfig) -> ConsumerConfig) -> Self {
        self.consumer = f(self.consumer);
        self
    }

    /// Changes the producer's settings (`transaction.timeout.ms`, `linger.ms`, ...). The
    /// transactional id given to [`new`](Self::new) and the exactly-once settings are kept: they
    /// are applied again over what `f` returns (even a config built from scratch, which then has
    /// the producer's default `transaction.timeout.ms` of 60 s, not the pipeline's 10 s).
    pub fn producer(mut self, f: impl FnOnce(ProducerConfig) -> ProducerConfig) -> Self {
        self.producer = f(self.producer);
        self
    }

    /// The producer's `transactional.id`.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// Applies the ids given to `new` and the exactly-once settings, and checks every rule.
    pub(crate) fn validated(mut self) -> Result<Self> {
        self.consumer = self
            .consumer
            .group_id(self.group_id.clone())
            .guarantee(Guarantee::ExactlyOnce);
        self.producer = self
            .producer
            .transactional_id(self.transactional_id.clone())
            .guarantee(Guarantee::ExactlyOnce);
        if self.group_id.is_empty() {
            return Err(Error::Config(
                "a pipeline needs a non-empty `group.id`".into(),
            ));
        }
        if self.transactional_id.is_empty() {
            return Err(Error::Config(
                "a pipeline needs a non-empty `transactional.id`".into(),
            ));
        }
        if self.input.is_empty() {
            return Err(Error::Config(
                "a pipeline needs at least one input topic".into(),
            ));
        }
        if self.commit_records == 0 || self.commit_interval.is_zero() {
            return Err(Error::Config(
                "the pipeline's commit interval and record count must be positive".into(),
            ));
        }
        if self.commit_interval >= self.producer.transaction_timeout {
            // Every transaction would outlive its timeout and be aborted by the coordinator.
            return Err(Error::Config(format!(
                "the pipeline's commit interval ({:?}) must be shorter than \
                 `transaction.timeout.ms` ({:?})",
                self.commit_interval, self.producer.transaction_timeout
            )));
        }
        if self.max_in_flight_partitions == 0 {
            return Err(Error::Config(
                "max_in_flight_partitions must be at least 1".into(),
            ));
        }
        if let TransformErrorPolicy::DeadLetter(topic) = &self.on_transform_error {
            crate::cluster::validate_topic_name(topic)?;
        }
        debug_assert_eq!(self.consumer.isolation_level, IsolationLevel::ReadCommitted);
        self.consumer.validate()?;
        self.producer.validate()?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::CommitMode;

    #[test]
    fn the_exactly_once_settings_are_forced_and_names_checked() {
        let client = ClientConfig::new("127.0.0.1:9092");
        let config = PipelineConfig::new(client.clone(), "g", "t-1", &["in"])
            .consumer(|c| {
                c.isolation_level(IsolationLevel::ReadUncommitted)
                    .commit_mode(CommitMode::AutoAfterPoll)
            })
            .validated()
            .unwrap();
        assert_eq!(
            config.consumer.isolation_level,
            IsolationLevel::ReadCommitted
        );
        assert_eq!(config.consumer.commit_mode, CommitMode::Manual);
        assert!(config.producer.enable_idempotence);
        assert_eq!(config.transactional_id(), "t-1");
        let none: [&str; 0] = [];
        for bad in [
            PipelineConfig::new(client.clone(), "", "t", &["in"]),
            PipelineConfig::new(client.clone(), "g", "", &["in"]),
            PipelineConfig::new(client.clone(), "g", "t", &none),
            PipelineConfig::new(client.clone(), "g", "t", &["in"]).commit_records(0),
            PipelineConfig::new(client.clone(), "g", "t", &["in"]).max_in_flight_partitions(0),
            PipelineConfig::new(client.clone(), "g", "t", &["in"])
                .commit_interval(Duration::from_secs(60)),
            PipelineConfig::new(client.clone(), "g", "t", &["in"])
                .on_transform_error(TransformErrorPolicy::DeadLetter("bad name!".into())),
        ] {
            assert!(bad.validated().is_err());
        }
    }

    #[test]
    fn the_ids_given_to_new_survive_the_consumer_and_producer_closures() {
        let client = ClientConfig::new("127.0.0.1:9092");
        let config = PipelineConfig::new(client.clone(), "g", "t-1", &["in"])
            .consumer(|c| c.group_id("other").max_poll_records(7))
            .producer(|p| {
                p.transactional_id("t-other")
                    .linger(Duration::from_millis(3))
            })
            .validated()
            .unwrap();
        assert_eq!(config.consumer.group_id.as_deref(), Some("g"));
        assert_eq!(
            config.consumer.max_poll_records, 7,
            "other settings are kept"
        );
        assert_eq!(config.producer.transactional_id.as_deref(), Some("t-1"));
        assert_eq!(config.producer.linger, Duration::from_millis(3));
        assert_eq!(config.transactional_id(), "t-1");
        assert_eq!(config.producer.transaction_timeout, Duration::from_secs(10));
        // Configs built from scratch, without the ids.
        let config = PipelineConfig::new(client, "g", "t-1", &["in"])
            .consumer(|_| ConsumerConfig::new("127.0.0.1:9092"))
            .producer(|_| ProducerConfig::new("127.0.0.1:9092"))
            .validated()
            .expect("the ids given to new are enough");
        assert_eq!(config.consumer.group_id.as_deref(), Some("g"));
        assert_eq!(config.producer.transactional_id.as_deref(), Some("t-1"));
        assert_eq!(
            config.consumer.isolation_level,
            IsolationLevel::ReadCommitted
        );
        assert!(config.producer.enable_idempotence);
    }
}

//! Plain data shared by every layer: topic-partitions and offsets.

use std::fmt;
use std::sync::Arc;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Which records a reader sees (`isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions. Java's default.
    #[default]
    ReadUncommitted,
    /// Only records of committed transactions (and non-transactional ones), up to the last
    /// stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    /// The wire value used by Fetch and ListOffsets.
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// A record header. Kafka allows several headers with the same key; order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key (UTF-8).
    pub key: String,
    /// The value; `None` is distinct from empty.
    pub value: Option<bytes::Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<bytes::Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header whose value is null (distinct from empty).
    pub fn null(key: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: None,
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target topic.
    pub topic: String,
    /// Target partition; `None` lets the partitioner choose (murmur2 of the key, or sticky for
    /// keyless records).
    pub partition: Option<i32>,
    /// Key; `None` is a null key.
    pub key: Option<bytes::Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<bytes::Bytes>,
    /// Headers, in order, duplicates kept.
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` takes the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and no key.
    pub fn new(topic: impl Into<String>, value: impl Into<bytes::Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A tombstone: a record with a key and a null value, which log compaction reads as "delete
    /// this key" (Java: `new ProducerRecord<>(topic, key, null)`).
    ///
    /// ```
    /// use josefk::ProducerRecord;
    /// let delete = ProducerRecord::tombstone("accounts", "account-17");
    /// assert_eq!(delete.value, None);
    /// ```
    pub fn tombstone(topic: impl Into<String>, key: impl Into<bytes::Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A record with an optional key and an optional value (`None`: a tombstone), as a consumed
    /// record carries them, so one can be forwarded as it is.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// use josefk::ProducerRecord;
    /// # let (key, value): (Option<Bytes>, Option<Bytes>) = (Some(Bytes::from("k")), None);
    /// // key, value: a consumed record's `Option<Bytes>`s
    /// let copy = ProducerRecord::from_parts("copy", key, value);
    /// assert_eq!(copy.value, None);
    /// ```
    pub fn from_parts(
        topic: impl Into<String>,
        key: Option<bytes::Bytes>,
        value: Option<bytes::Bytes>,
    ) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key,
            value,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<bytes::Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Appends a header (duplicates allowed).
    pub fn header(mut self, key: impl Into<String>, value: impl Into<bytes::Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordMetadata {
    /// The topic (use it as a `&str`: `&*meta.topic`, `meta.topic.as_ref()`). Shared by every
    /// record of its batch, so resolving a delivery copies no string.
    pub topic: Arc<str>,
    /// The partition (as in [`ConsumerRecord`](crate::consumer::ConsumerRecord)).
    pub partition: i32,
    /// The record's offset, or `None` when the broker does not say: `acks=0`, or a retried batch the
    /// broker recognised as a duplicate of one it already had (DUPLICATE_SEQUENCE_NUMBER).
    pub offset: Option<i64>,
    /// The timestamp the broker logged (`LogAppendTime` topics) or the record's own.
    pub timestamp: i64,
}

impl RecordMetadata {
    /// The record's topic-partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

//! Owns the member metadata a consumer sends in JoinGroup ([`Subscription`]) and the partitions
//! the group leader hands each member through SyncGroup ([`Assignment`]), with their byte formats.
//!
//! The wire formats are the Java client's `ConsumerProtocol` with the
//! `ConsumerProtocolSubscription`/`ConsumerProtocolAssignment` schemas (v0–v3). Topic names are
//! sorted as Java compares strings (UTF-16 code units), so the bytes match a Java member's.
//!
//! The codec is written by hand rather than with `kafka-protocol`'s generated types: those reserve
//! memory for an array count read from the wire, and these bytes are written by *other group
//! members* (any client), not by the broker, so a corrupt count must fail cleanly instead.
//!
//! The assignors that read and produce these live in [`crate::state::assignor`], which re-exports
//! everything public here.
//!
//! [`Subscription`]: crate::state::consumer_protocol::Subscription
//! [`Assignment`]: crate::state::consumer_protocol::Assignment

use std::cmp::Ordering;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ApiKey, Error, Result};
use crate::record::TopicPartition;

/// The JoinGroup `protocol_type` of consumer groups.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The newest Subscription/Assignment version (the Java client's `HIGHEST_SUPPORTED_VERSION`).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;
/// The generation of a member that has none (Java `DEFAULT_GENERATION`).
pub const DEFAULT_GENERATION: i32 = -1;

/// What a member sends in JoinGroup (Java `ConsumerPartitionAssignor.Subscription`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Assignor-specific data (`cooperative-sticky` puts the generation here for old leaders).
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (v1+); the sticky assignors keep them where possible.
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation `owned_partitions` belong to (v2+); `None` when unknown.
    pub generation_id: Option<i32>,
    /// The member's `client.rack` (v3+).
    pub rack_id: Option<String>,
}

impl Subscription {
    /// A subscription to `topics` with nothing owned.
    #[cfg_attr(not(feature = "unstable-internals"), allow(dead_code))] // protocol-tests' corpus
    pub fn new<T: Into<String>>(topics: impl IntoIterator<Item = T>) -> Self {
        Subscription {
            topics: topics.into_iter().map(Into::into).collect(),
            ..Subscription::default()
        }
    }
}

/// What the leader sends each member in SyncGroup (Java `ConsumerPartitionAssignor.Assignment`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// The member's partitions.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

/// Java's `String.compareTo`: UTF-16 code units, which differs from Rust's byte order above U+FFFF.
pub(super) fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn check_version(version: i16, what: &str) -> Result<i16> {
    if version < 0 {
        return Err(Error::InvalidState(format!(
            "{what} version {version} is negative"
        )));
    }
    // Newer versions only append fields, so Java reads them with the newest schema it knows.
    Ok(version.min(CONSUMER_PROTOCOL_VERSION))
}

fn put_str(buf: &mut BytesMut, s: Option<&str>) -> Result<()> {
    match s {
        None => buf.put_i16(-1),
        Some(s) => {
            let len = i16::try_from(s.len()).map_err(|_| {
                Error::Config(format!(
                    "string of {} bytes is too long for the consumer protocol",
                    s.len()
                ))
            })?;
            buf.put_i16(len);
            buf.put_slice(s.as_bytes());
        }
    }
    Ok(())
}

fn put_bytes(buf: &mut BytesMut, b: Option<&Bytes>) {
    match b {
        None => buf.put_i32(-1),
        Some(b) => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Writes `[topic, [partition]]` groups, one per topic in order of first appearance.
fn put_partitions(buf: &mut BytesMut, parts: &[TopicPartition]) -> Result<()> {
    let mut groups: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in parts {
        match groups.iter_mut().find(|g| g.0 == tp.topic) {
            Some(g) => g.1.push(tp.partition),
            None => groups.push((&tp.topic, vec![tp.partition])),
        }
    }
    buf.put_i32(groups.len() as i32);
    for (topic, ps) in groups {
        put_str(buf, Some(topic))?;
        buf.put_i32(ps.len() as i32);
        ps.iter().for_each(|&p| buf.put_i32(p));
    }
    Ok(())
}

/// Encodes a Subscription, version-prefixed, as Java's `ConsumerProtocol.serializeSubscription`
/// does: topics sorted, owned partitions grouped by topic in sorted order, fields of later versions
/// left out. Versions above 3 are written as 3.
pub fn encode_subscription(sub: &Subscription, version: i16) -> Result<Bytes> {
    let version = check_version(version, "subscription")?;
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    let mut topics: Vec<&str> = sub.topics.iter().map(String::as_str).collect();
    topics.sort_by(|a, b| java_cmp(a, b));
    buf.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut buf, Some(t))?;
    }
    put_bytes(&mut buf, sub.user_data.as_ref());
    if version >= 1 {
        let mut owned = sub.owned_partitions.clone();
        owned.sort_by(|a, b| java_cmp(&a.topic, &b.topic).then(a.partition.cmp(&b.partition)));
        put_partitions(&mut buf, &owned)?;
    }
    if version >= 2 {
        buf.put_i32(sub.generation_id.unwrap_or(DEFAULT_GENERATION));
    }
    if version >= 3 {
        put_str(&mut buf, sub.rack_id.as_deref())?;
    }
    Ok(buf.freeze())
}

/// Encodes an Assignment, version-prefixed (the layout is the same in v0–v3).
pub fn encode_assignment(assignment: &Assignment, version: i16) -> Result<Bytes> {
    let version = check_version(version, "assignment")?;
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    put_partitions(&mut buf, &assignment.partitions)?;
    put_bytes(&mut buf, assignment.user_data.as_ref());
    Ok(buf.freeze())
}

/// A bounds-checked reader; every failure is a protocol error naming the JoinGroup/SyncGroup API.
struct Reader<'a> {
    buf: &'a [u8],
    api: ApiKey,
}

impl Reader<'_> {
    fn fail<T>(&self, what: &str) -> Result<T> {
        Err(Error::Protocol {
            api: Some(self.api),
            broker: None,
            message: format!("consumer protocol: {what}"),
        })
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.buf.len() < n {
            return self.fail("truncated data");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// An array count, refused if the rest of the data cannot hold that many `min_size` elements,
    /// so nothing is allocated for a corrupt count.
    fn count(&mut self, min_size: usize) -> Result<usize> {
        match usize::try_from(self.i32()?) {
            Ok(n) if n.saturating_mul(min_size) <= self.buf.len() => Ok(n),
            Ok(_) => self.fail("array count larger than the data"),
            Err(_) => self.fail("null or negative array count"),
        }
    }
    fn opt_str(&mut self) -> Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                self.fail("negative string length")
            };
        }
        match std::str::from_utf8(self.take(len as usize)?) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => self.fail("string is not UTF-8"),
        }
    }
    fn str(&mut self) -> Result<String> {
        self.opt_str()?.map_or_else(|| self.fail("null string"), Ok)
    }
    fn opt_bytes(&mut self) -> Result<Option<Bytes>> {
        let len = self.i32()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                self.fail("negative bytes length")
            };
        }
        Ok(Some(Bytes::copy_from_slice(self.take(len as usize)?)))
    }
    fn partitions(&mut self) -> Result<Vec<TopicPartition>> {
        let mut out = Vec::new();
        for _ in 0..self.count(6)? {
            let topic = self.str()?;
            for _ in 0..self.count(4)? {
                out.push(TopicPartition::new(topic.clone(), self.i32()?));
            }
        }
        Ok(out)
    }
    fn version(&mut self) -> Result<i16> {
        let v = self.i16()?;
        if v < 0 {
            return self.fail("negative version");
        }
        Ok(v.min(CONSUMER_PROTOCOL_VERSION))
    }
}

/// Decodes a version-prefixed Subscription (a JoinGroup member's metadata). Versions above 3 are
/// read as 3 and trailing bytes ignored, as Java does; an empty rack id reads as `None`.
pub fn decode_subscription(data: &[u8]) -> Result<Subscription> {
    let mut r = Reader {
        buf: data,
        api: ApiKey::JoinGroup,
    };
    let version = r.version()?;
    let mut sub = Subscription::default();
    for _ in 0..r.count(2)? {
        sub.topics.push(r.str()?);
    }
    sub.user_data = r.opt_bytes()?;
    if version >= 1 {
        sub.owned_partitions = r.partitions()?;
    }
    if version >= 2 {
        sub.generation_id = Some(r.i32()?).filter(|g| *g >= 0);
    }
    if version >= 3 {
        sub.rack_id = r.opt_str()?.filter(|s| !s.is_empty());
    }
    Ok(sub)
}

/// Decodes a version-prefixed Assignment (a SyncGroup response's assignment).
pub fn decode_assignment(data: &[u8]) -> Result<Assignment> {
    let mut r = Reader {
        buf: data,
        api: ApiKey::SyncGroup,
    };
    r.version()?;
    let partitions = r.partitions()?;
    Ok(Assignment {
        partitions,
        user_data: r.opt_bytes()?,
    })
}

#[cfg(test)]
#[path = "tests/consumer_protocol.rs"]
mod tests;

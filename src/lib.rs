//! josefk: a pure-Rust async client for Apache Kafka whose headline is exactly-once delivery with
//! no C dependency.
//!
//! # Layers
//!
//! Dependencies point one way only (see ARCHITECTURE.md):
//!
//! ```text
//! record, error  ←  state  ←  protocol  ←  net  ←  cluster  ←  admin, producer, consumer
//! ```
//!
//! - [`record`], [`error`]: plain data and the one public [`Error`] type.
//! - [`trace_context`]: W3C `traceparent` in record headers (off unless a producer is given one).
//! - [`metrics`]: counters and latencies every layer records, snapshots and `metrics` export.
//! - `state` (internal): IO-free state machines (no tokio, time passed in).
//! - `protocol` (internal): framing, headers, version choice over the `kafka-protocol` crate.
//! - `net` (internal): one task per broker connection owns the socket; handles talk to it over
//!   channels.
//! - `cluster` (internal): metadata and coordinator caches shared by every role.
//! - [`admin`]: topic management and cluster inspection.
//! - [`producer`]: at-most-once, at-least-once and idempotent producing.
//! - [`pipeline`]: consume → transform → produce as exactly-once transactions.
//! - [`consumer`]: fetching assigned or group-assigned partitions with read_uncommitted or
//!   read_committed, and committing offsets.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> josefk::Result<()> {
//! use josefk::{admin::{Admin, NewTopic}, ClientConfig};
//!
//! let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
//! admin.create_topics(&[NewTopic::new("events", 6, 1)]).await?;
//! for topic in admin.describe_topics(&["events"]).await? {
//!     println!("{} has {} partitions", topic.name, topic.partitions.len());
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs, unsafe_code, rust_2018_idioms)]
#![warn(missing_debug_implementations)]

/// Declares the internal layers: private, or public but hidden under the `unstable-internals`
/// feature (for protocol-tests, josefk's own tests and benches; not covered by semver).
macro_rules! internal_modules {
    ($($name:ident),*) => {$(
        #[cfg(feature = "unstable-internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "unstable-internals"))]
        mod $name;
    )*};
}

/// A method that hands out an internal layer's type: public but hidden under the
/// `unstable-internals` feature (the tests reach connections through it), crate-private otherwise.
macro_rules! internal_fn {
    ($(#[$meta:meta])* fn $($rest:tt)*) => {
        $(#[$meta])*
        #[cfg(feature = "unstable-internals")]
        #[doc(hidden)]
        pub fn $($rest)*
        $(#[$meta])*
        #[cfg(not(feature = "unstable-internals"))]
        #[allow(dead_code)] // only the tests call some of them
        pub(crate) fn $($rest)*
    };
}

pub mod admin;
mod clock;
pub mod config;
pub mod consumer;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod producer;
mod properties;
pub mod record;
pub mod security;
internal_modules!(cluster, net, protocol, state);
pub mod trace_context;

/// An in-process mock Kafka cluster for tests (feature `testing`); a test double, not a broker.
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;

/// The shared, cheaply cloned byte buffer of record keys, values and headers (the `bytes`
/// crate's), re-exported so that applications need not depend on `bytes` to name it.
pub use bytes::Bytes;
pub use config::{ClientConfig, Guarantee};
pub use consumer::{Headers, TimestampType};
pub use error::{ApiKey, BrokerRef, Error, ErrorClass, ErrorCode, Result};
pub use record::{Header, IsolationLevel, ProducerRecord, RecordMetadata, TopicPartition};
pub use security::{Password, SecurityProtocol};

/// The README's code blocks, compiled and run by `cargo test --doc` so the front page never shows
/// code that does not build.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

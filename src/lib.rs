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
//! - [`state`]: IO-free state machines (no tokio, time passed in).
//! - [`protocol`]: framing, headers, version choice over the `kafka-protocol` crate.
//! - [`net`]: one task per broker connection owns the socket; handles talk to it over channels.
//! - [`cluster`]: metadata and coordinator caches shared by every role.
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

pub mod admin;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod error;
pub mod net;
pub mod pipeline;
pub mod producer;
pub mod protocol;
pub mod record;
pub mod security;
pub mod state;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz;

pub use config::{ClientConfig, Guarantee};
pub use error::{BrokerRef, Error, ErrorClass, Result};
pub use record::{Header, IsolationLevel, ProducerRecord, RecordMetadata, TopicPartition};
pub use security::{Password, SecurityProtocol};

/// The `kafka-protocol` crate josefk is built on, for callers that build raw requests.
pub use kafka_protocol;

/// The README's code blocks, compiled and run by `cargo test --doc` so the front page never shows
/// code that does not build.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

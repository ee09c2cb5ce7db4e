//! IO-free state machines: no tokio, no sockets, time passed in as values.
//!
//! Everything here is driven by method calls and returns decisions, so it can be unit-tested
//! step by step without a runtime or a broker (the quinn-proto "sans-IO" model). The async layers
//! (`net`, `cluster`, the roles) own the I/O and the clock and feed this module.
//!
//! The producer's pieces fit together like this: [`partitioner`] picks a partition, the
//! [`accumulator`] batches records per partition, [`sequence`] stamps idempotent sequence numbers
//! as batches are drained and decides what each produce outcome means, and [`transaction`] holds
//! the transaction state machine and classifies coordinator errors.
//!
//! The consumer's: [`membership`] follows a classic group member through JoinGroup, SyncGroup and
//! heartbeats, [`consumer_member`] a KIP-848 `consumer` group member through its
//! ConsumerGroupHeartbeats and reconciliations,
//! the [`assignor`]s split partitions when this member leads, [`fetch_session`] keeps each
//! broker's incremental fetch session, and [`isolation`] filters aborted transactions out of
//! fetched batches under `read_committed`.

pub mod accumulator;
pub mod assignor;
pub mod backoff;
pub mod consumer_member;
/// The `consumer` protocol's Subscription and Assignment types and their byte formats.
///
pub mod consumer_protocol;
pub mod fetch_session;
pub mod isolation;
pub mod marker_pacing;
pub mod membership;
pub mod partitioner;
pub mod sequence;
pub mod telemetry;
pub mod topic_pattern;
pub mod transaction;
mod transaction_errors;

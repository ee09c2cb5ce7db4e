//! The producer role: configuration now; the `Producer` handle, sender task and idempotence driver
//! are being built (see the producer issue).

pub mod config;

pub use config::{Acks, ProducerConfig};

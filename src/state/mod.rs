//! IO-free state machines: no tokio, no sockets, time passed in as values.
//!
//! Everything here is driven by method calls and returns decisions, so it can be unit-tested
//! step by step without a runtime or a broker (the quinn-proto "sans-IO" model). The async layers
//! (`net`, `cluster`, the roles) own the I/O and the clock and feed this module.

pub mod backoff;

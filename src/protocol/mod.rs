//! Bytes on the wire: Kafka's length-prefixed framing, request/response headers, and the choice of
//! API version, over the message types of the `kafka-protocol` crate.
//!
//! This is the only place where `kafka-protocol`'s `anyhow` errors are seen: they are turned into
//! [`Error::Protocol`](crate::Error::Protocol) once, here, naming the API. Nothing in this module does
//! I/O; `net` moves the bytes.
//!
//! References: the Kafka protocol guide (<https://kafka.apache.org/protocol>), KIP-482 (flexible
//! versions and tagged fields), KIP-511 (client name and version in ApiVersions).

pub mod codec;
pub mod compression;
pub mod frame;
pub(crate) mod precheck;
pub mod records;
mod response_schemas;
pub mod versions;

#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use codec::{decode_response, encode_request, EncodedRequest};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use compression::Compression;
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use frame::{split_frame, FrameError};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use versions::{client_versions, ApiVersions};

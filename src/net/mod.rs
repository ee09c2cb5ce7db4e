//! Sockets. The only module that touches the network.
//!
//! [`Connection`] is one broker connection: a task that owns the socket and a cloneable handle that
//! talks to it over a channel (the tokio-postgres / mini-redis pattern). [`BrokerPool`] keeps one
//! connection per broker and [`Lane`], opening them lazily and redialling with backoff.

pub mod connection;
pub mod pool;
pub mod sasl;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

pub(crate) use connection::request_span;
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use connection::{Connection, ConnectionOptions, ConnectionSecurity, PendingResponse};
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use pool::{BrokerPool, Endpoint, Lane};
#[cfg(feature = "tls")]
#[cfg_attr(not(feature = "unstable-internals"), allow(unused_imports))] // the tests' facade
pub use tls::TlsConnector;

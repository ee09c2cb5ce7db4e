//! The byte streams a broker connection runs over, and how each splits into a read half and a
//! write half for the connection task.
//!
//! The connection task is generic over [`Transport`], so a plaintext connection compiles to the
//! same code it did before TLS existed: a `TcpStream` splits into its owned halves (no lock), and
//! needs no flush. A TLS stream splits through `tokio::io::split` (an uncontended lock: both halves
//! are polled by the one connection task) and must be flushed, because the TLS layer may accept a
//! frame's bytes into its own buffer without writing them to the socket yet.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A connected, set-up byte stream to a broker (plain TCP or TLS over TCP).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The half the connection task reads responses from.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The half the connection task writes requests to.
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// Whether bytes accepted by `write` may stay buffered until `flush` (TLS records).
    const NEEDS_FLUSH: bool;
    /// Splits the stream for the connection task.
    fn split(self) -> (Self::Reader, Self::Writer);
}

impl Transport for TcpStream {
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    const NEEDS_FLUSH: bool = false;

    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

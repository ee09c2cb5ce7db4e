//! Kafka framing: every request and response is a 4-byte big-endian length followed by that many
//! bytes. The length is checked against a cap *before* any buffer is reserved for the frame, so a
//! corrupt or hostile length cannot make josefk allocate without bound.

use bytes::{Buf, BytesMut};

/// Size of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Why a frame could not be taken from the read buffer. Both close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is larger than the configured maximum response size.
    TooLarge {
        /// The length the peer announced.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// The length prefix is negative.
    NegativeLength(i32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => write!(
                f,
                "response frame of {len} bytes exceeds the {max}-byte cap (receive.message.max.bytes)"
            ),
            FrameError::NegativeLength(len) => write!(f, "negative frame length {len}"),
        }
    }
}

/// The length of the frame starting `buf` (without its prefix), or `None` until the prefix has
/// arrived. A negative length or one over `max` is an error, before anything is reserved for it.
pub fn frame_length(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*prefix);
    if len < 0 {
        return Err(FrameError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Takes one complete frame (without its length prefix) off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed; in that case `buf` has been given room for the
/// rest of the frame (never more than `max` bytes), so the next read can fill it without
/// repeated reallocation.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(len) = frame_length(buf, max)? else {
        return Ok(None);
    };
    let total = LENGTH_PREFIX + len;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX);
    Ok(Some(buf.split_to(len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn splits_back_to_back_frames_and_waits_for_partial_ones() {
        let mut buf = BytesMut::new();
        buf.put_slice(&framed(b"abc"));
        buf.put_slice(&framed(b""));
        let partial = framed(b"hello");
        buf.put_slice(&partial[..6]);
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"abc");
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"");
        assert_eq!(split_frame(&mut buf, 100).unwrap(), None);
        buf.put_slice(&partial[6..]);
        assert_eq!(&split_frame(&mut buf, 100).unwrap().unwrap()[..], b"hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_length_is_refused_before_reserving() {
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        let cap_before = buf.capacity();
        assert_eq!(
            split_frame(&mut buf, 1 << 20),
            Err(FrameError::TooLarge {
                len: i32::MAX as usize,
                max: 1 << 20
            })
        );
        assert_eq!(buf.capacity(), cap_before);
        let mut neg = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut neg, 100),
            Err(FrameError::NegativeLength(-5))
        );
    }

    #[test]
    fn fewer_than_four_bytes_needs_more() {
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(split_frame(&mut buf, 100).unwrap(), None);
    }
}

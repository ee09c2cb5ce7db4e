//! The connection task's receive buffers: where each read lands and how complete response frames
//! are taken out (IO-free; the task does the reads).
//!
//! Small frames share one read buffer of about [`READ_CHUNK`] bytes, so a burst of small answers
//! costs one read and no allocation per frame. A frame larger than [`SMALL_FRAME`] that is still
//! arriving gets a buffer of exactly its own size, which the rest of it is read straight into:
//! the frame is then a whole allocation of its own, freed as soon as the last slice of it (a
//! consumer record, a buffered fetch partition) is dropped. Growing the shared buffer instead
//! (as josefk did before) kept one allocation of twice the largest Fetch response that every later
//! frame was read into, so a few records still held from one response pinned all of it, and the
//! response after it came in a second such allocation (peak RSS, issue #15).

use bytes::{Buf, Bytes, BytesMut};

use crate::protocol::frame::{frame_length, FrameError, LENGTH_PREFIX};

/// Reads are done into at least a quarter of this much spare room, so small responses need one
/// syscall.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// Frames up to this size are read into the shared buffer; larger ones still arriving into their
/// own. A larger frame that arrived whole within one read is cut from the shared buffer as it is
/// (it then pins that buffer's allocation, at most about 2 × [`READ_CHUNK`], while held).
pub(super) const SMALL_FRAME: usize = READ_CHUNK / 4;

/// A frame larger than [`SMALL_FRAME`] being read into its own buffer.
#[derive(Debug)]
struct LargeFrame {
    /// Holds the frame's bytes received so far (without the length prefix); allocated with room
    /// for exactly `len` bytes.
    buf: BytesMut,
    len: usize,
}

/// The receive side of one connection: a shared buffer for small frames, an own one for the
/// large frame arriving, and the cap every frame length is checked against before anything is
/// reserved for it.
#[derive(Debug)]
pub(super) struct FrameReader {
    buf: BytesMut,
    large: Option<LargeFrame>,
    max_frame: usize,
}

impl FrameReader {
    /// A reader refusing frames over `max_frame` bytes.
    pub(super) fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: BytesMut::with_capacity(READ_CHUNK),
            large: None,
            max_frame,
        }
    }

    /// The buffer the next read should fill; it has spare room. While a large frame arrives that
    /// is its own buffer, whose spare room is exactly what is missing of it, so no read takes
    /// bytes of the next frame into it.
    pub(super) fn read_target(&mut self) -> &mut BytesMut {
        if let Some(large) = &mut self.large {
            // A full buffer would make the read reserve more room and take bytes of the next
            // frame into this one; `next_frame` hands the frame out before that can happen.
            debug_assert!(large.buf.len() < large.len, "read into a complete frame");
            return &mut large.buf;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// The next complete frame (without its length prefix), or `None` until more is read. A frame
    /// length over the cap or negative is an error before any room is reserved for it.
    pub(super) fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(large) = &self.large {
            if large.buf.len() < large.len {
                return Ok(None);
            }
            let mut large = self.large.take().expect("checked above");
            if large.buf.len() > large.len {
                // Only if the allocator gave more room than asked and a read filled it: those
                // bytes start the next frame (the shared buffer is empty while a large frame
                // arrives).
                let next = large.buf.split_off(large.len);
                self.buf.extend_from_slice(&next);
            }
            return Ok(Some(large.buf.freeze()));
        }
        let Some(len) = frame_length(&self.buf, self.max_frame)? else {
            return Ok(None);
        };
        let total = LENGTH_PREFIX + len;
        if self.buf.len() >= total {
            self.buf.advance(LENGTH_PREFIX);
            return Ok(Some(self.buf.split_to(len).freeze()));
        }
        if len <= SMALL_FRAME {
            // At most SMALL_FRAME + 4 bytes: room in (or next to) the shared buffer.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        // The shared buffer ends inside this frame: move what arrived of it into the frame's own
        // buffer (at most one read, ≤ READ_CHUNK) and read the rest straight there.
        let mut own = BytesMut::with_capacity(len);
        own.extend_from_slice(&self.buf[LENGTH_PREFIX..]);
        self.buf.clear();
        self.large = Some(LargeFrame { buf: own, len });
        Ok(None)
    }
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

    /// Feeds `bytes` as the socket would: each read fills at most the spare room of the target
    /// (and at most `read_size`), then every complete frame is taken out.
    fn feed(reader: &mut FrameReader, mut bytes: &[u8], read_size: usize) -> Vec<Bytes> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let target = reader.read_target();
            let room = target.capacity() - target.len();
            assert!(room > 0, "a read target always has room");
            let n = room.min(read_size).min(bytes.len());
            target.put_slice(&bytes[..n]);
            bytes = &bytes[n..];
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        frames
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn a_large_buffer_with_more_room_than_asked_gives_the_next_frames_bytes_back() {
        // `BytesMut::with_capacity` promises at least the size asked; should an allocator give
        // more, a read may fill the room past the frame's end with the next frame's start.
        let first = payload(SMALL_FRAME + 100, 1);
        let second = payload(10, 2);
        let mut wire = framed(&first);
        wire.extend(framed(&second));
        let mut reader = FrameReader::new(1 << 20);
        reader.read_target().put_slice(&wire[..100]);
        assert!(reader.next_frame().unwrap().is_none());
        let large = reader.large.as_mut().expect("a large frame is arriving");
        let mut roomy = BytesMut::with_capacity(large.len + 64);
        roomy.extend_from_slice(&large.buf);
        large.buf = roomy;
        let target = reader.read_target();
        let room = target.capacity() - target.len();
        let rest = &wire[100..];
        assert!(
            room >= rest.len(),
            "one read takes the rest and the next frame"
        );
        target.put_slice(rest);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            frames.push(frame);
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..], &first[..]);
        assert_eq!(&frames[1][..], &second[..]);
    }

    #[test]
    fn small_and_large_frames_come_out_whole_and_in_order() {
        let sizes = [
            0,
            3,
            SMALL_FRAME,
            SMALL_FRAME + 1,
            3 * READ_CHUNK,
            17,
            6 << 20,
            5,
        ];
        let payloads: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(n, i as u8))
            .collect();
        let wire: Vec<u8> = payloads.iter().flat_map(|p| framed(p)).collect();
        for read_size in [1, 7, 4096, usize::MAX] {
            if read_size == 1 && wire.len() > 1 << 20 {
                // One byte at a time over 6 MiB is slow; the small frames cover it below.
                continue;
            }
            let mut reader = FrameReader::new(8 << 20);
            let frames = feed(&mut reader, &wire, read_size);
            assert_eq!(frames.len(), payloads.len(), "read size {read_size}");
            for (frame, expected) in frames.iter().zip(&payloads) {
                assert_eq!(&frame[..], &expected[..], "read size {read_size}");
            }
        }
        let small: Vec<u8> = payloads[..4].iter().flat_map(|p| framed(p)).collect();
        let mut reader = FrameReader::new(8 << 20);
        assert_eq!(feed(&mut reader, &small, 1).len(), 4);
    }

    #[test]
    fn a_large_frame_is_read_into_exactly_its_own_size() {
        let len = 6 << 20;
        let wire = framed(&payload(len, 1));
        let mut reader = FrameReader::new(8 << 20);
        // The first read: the prefix and the frame's first bytes, in the shared buffer.
        let first = reader.read_target().capacity();
        reader
            .read_target()
            .put_slice(&wire[..first.min(wire.len())]);
        assert!(reader.next_frame().unwrap().is_none());
        // From now on reads go into the frame's own buffer, sized to the frame.
        let own = reader.read_target();
        assert_eq!(
            own.capacity(),
            len,
            "the frame's buffer is exactly its size"
        );
        assert_eq!(own.len(), first - LENGTH_PREFIX);
        let rest = &wire[first..];
        own.put_slice(rest);
        let frame = reader.next_frame().unwrap().expect("complete");
        assert_eq!(frame.len(), len);
        // The shared buffer did not grow for it.
        assert!(reader.read_target().capacity() <= 2 * READ_CHUNK);
    }

    #[test]
    fn the_shared_buffer_stays_small_after_large_frames() {
        // Fetch-like answers of mixed sizes, the last few still held (records not yet handed
        // out) while the next arrive, as the consumer does; reads as large as the room allows.
        let sizes = [
            6 << 20,
            100,
            1 << 20,
            40,
            1 << 20,
            3 << 20,
            200 << 10,
            1 << 20,
            6 << 20,
            9,
        ];
        let mut reader = FrameReader::new(8 << 20);
        let mut held: std::collections::VecDeque<Bytes> = Default::default();
        for round in 0..3 {
            for (i, &size) in sizes.iter().enumerate() {
                let wire = framed(&payload(size, i as u8));
                let frames = feed(&mut reader, &wire, usize::MAX);
                assert_eq!(frames.len(), 1);
                held.extend(frames);
                if held.len() > 2 {
                    held.pop_front();
                }
                // Between frames only the shared buffer is left: never the size of a large frame.
                let capacity = reader.read_target().capacity();
                assert!(
                    capacity <= 2 * READ_CHUNK,
                    "round {round}, after a {size}-byte frame: shared buffer capacity {capacity}"
                );
            }
        }
    }

    #[test]
    fn lengths_are_checked_before_anything_is_reserved() {
        let mut reader = FrameReader::new(1 << 20);
        reader
            .read_target()
            .put_slice(&((1 << 20) + 1i32).to_be_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(FrameError::TooLarge {
                len: (1 << 20) + 1,
                max: 1 << 20
            })
        );
        assert!(reader.large.is_none());
        let mut reader = FrameReader::new(1 << 20);
        reader.read_target().put_slice(&(-5i32).to_be_bytes());
        assert_eq!(reader.next_frame(), Err(FrameError::NegativeLength(-5)));
    }
}

//! Outgoing frames without an allocation each: a connection encodes its frames into one
//! buffer and splits each off it as a `Bytes` that shares the buffer (tungstenite copies a
//! frame into its own write buffer, masking it, and drops it). Once every frame split from a
//! buffer has been written, the buffer is reused in place; while frames are still queued, a
//! full buffer is replaced by a larger one (doubling, up to [`MAX_CHUNK`]), so a burst costs
//! an allocation per chunk, not per frame.

use crate::protocol::TextOut;
use bytes::BytesMut;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// The largest buffer a burst grows to.
pub(crate) const MAX_CHUNK: usize = 16 << 10;

/// A connection's frame buffer (see the module docs).
#[derive(Default)]
pub(crate) struct FrameBuf {
    buf: BytesMut,
    /// The size of the last buffer allocated (0: none since the last `reclaim`).
    chunk: usize,
}

impl FrameBuf {
    /// Room for `len` more bytes: the buffer's spare room, the whole buffer again once every
    /// frame split from it is gone, or a new buffer.
    fn reserve(&mut self, len: usize) {
        if self.buf.capacity() >= len || self.buf.try_reclaim(len) {
            return;
        }
        // The first buffer is the frame's exact size (an idle socket keeps little); each one
        // after it, allocated while earlier frames are still queued, is twice as large.
        self.chunk = (self.chunk * 2).min(MAX_CHUNK).max(len);
        self.buf = BytesMut::with_capacity(self.chunk);
    }

    /// A text frame of exactly `len` bytes written by `write`.
    pub(crate) fn text(&mut self, len: usize, write: impl FnOnce(&mut TextBuf<'_>)) -> Utf8Bytes {
        self.reserve(len);
        debug_assert!(self.buf.is_empty());
        write(&mut TextBuf(&mut self.buf));
        let bytes = self.buf.split().freeze();
        // SAFETY: the buffer was empty and `TextBuf` appends only whole `&str`s, so the bytes
        // are UTF-8.
        unsafe { Utf8Bytes::from_bytes_unchecked(bytes) }
    }

    /// Gives the buffer back (once per heartbeat, see `reclaim`): frames of it still queued
    /// keep it until they are written; the next frame starts again from its exact size.
    pub(crate) fn reclaim(&mut self) {
        self.buf = BytesMut::new();
        self.chunk = 0;
    }

    /// Bytes the buffer holds room for.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A frame being written: appends only `&str`s, so what it writes stays UTF-8.
pub(crate) struct TextBuf<'a>(&'a mut BytesMut);

impl TextOut for TextBuf<'_> {
    fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_share_a_buffer_that_is_reused_once_they_are_written() {
        let mut f = FrameBuf::default();
        let a = f.text(5, |t| t.push_str("hello"));
        assert_eq!(a.as_str(), "hello");
        assert_eq!(f.capacity(), 0, "the first buffer is the frame's size");
        // Still queued: the next one needs a new buffer, twice the size.
        let b = f.text(5, |t| t.push_str("world"));
        assert_eq!((a.as_str(), b.as_str()), ("hello", "world"));
        assert_eq!(f.capacity(), 5);
        let c = f.text(3, |t| t.push_str("abc"));
        assert_eq!(c.as_str(), "abc");
        assert_eq!(f.capacity(), 2);
        // Written (dropped): the buffer is reused, no new allocation.
        drop((a, b, c));
        let ptr = |u: &Utf8Bytes| u.as_str().as_ptr();
        let d = f.text(8, |t| t.push_str("12345678"));
        let first = ptr(&d);
        drop(d);
        let e = f.text(8, |t| t.push_str("abcdefgh"));
        assert_eq!(ptr(&e), first, "reused in place");
        assert_eq!(e.as_str(), "abcdefgh");
        // Given back; the frames still queued keep their bytes.
        f.reclaim();
        assert_eq!(f.capacity(), 0);
        assert_eq!(e.as_str(), "abcdefgh");
        let g = f.text(4, |t| t.push_str("next"));
        assert_eq!((g.as_str(), f.chunk), ("next", 4));
    }

    #[test]
    fn a_burst_grows_the_buffer_up_to_its_cap() {
        let mut f = FrameBuf::default();
        let mut held = Vec::new();
        for _ in 0..2000 {
            held.push(f.text(100, |t| t.push_str(&"x".repeat(100))));
        }
        assert_eq!(f.chunk, MAX_CHUNK);
        assert!(held.iter().all(|h| h.len() == 100));
    }
}

//! Extra HTTP/2 frames from a hyper server: hyper (its `h2`) cannot send ORIGIN or ALTSVC
//! frames, so this writer wrapper watches the bytes the server writes and, right after its
//! first frame (the server's SETTINGS, RFC 9113 §3.4), writes the given raw frames. Used by
//! lab scenarios and tests whose server announces an origin set or alternatives; plus the
//! frame builders.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::probe::frames::{ALTSVC, FRAME_HEADER_LEN, ORIGIN};

/// Largest payload a frame header can state (24 bits).
const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// A frame of `frame_type` with `flags` on `stream`: the 9-byte header, then `payload` (cut
/// to the 24-bit length a header can state).
pub fn raw_frame(frame_type: u8, flags: u8, stream: u32, payload: &[u8]) -> Bytes {
    let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
    let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + payload.len());
    let len = payload.len() as u32;
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(frame_type);
    out.put_u8(flags);
    out.put_u32(stream & 0x7fff_ffff);
    out.put_slice(payload);
    out.freeze()
}

/// An ORIGIN frame (stream 0) listing `origins` ("https://b.example", …) as given.
pub fn origin_frame(origins: &[&str]) -> Bytes {
    let mut payload = Vec::new();
    for origin in origins {
        let bytes = &origin.as_bytes()[..origin.len().min(usize::from(u16::MAX))];
        payload.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        payload.extend_from_slice(bytes);
    }
    raw_frame(ORIGIN, 0, 0, &payload)
}

/// An ALTSVC frame: on stream 0 `origin` names whom it is for; on a stream it must be empty
/// (RFC 7838 §4). `value` is an Alt-Svc field value (`h3=":443"; ma=86400`).
pub fn altsvc_frame(origin: &str, value: &str, stream: u32) -> Bytes {
    let origin = &origin.as_bytes()[..origin.len().min(usize::from(u16::MAX))];
    let mut payload = Vec::with_capacity(2 + origin.len() + value.len());
    payload.extend_from_slice(&(origin.len() as u16).to_be_bytes());
    payload.extend_from_slice(origin);
    payload.extend_from_slice(value.as_bytes());
    raw_frame(ALTSVC, 0, stream, &payload)
}

/// Where the writer is in the server's first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// `n` bytes of the first frame's header written so far.
    Header(usize),
    /// `n` bytes of the first frame's payload still to write.
    Payload(usize),
    /// The first frame is out: the extra frames are written (from `pending`) before anything
    /// else, then bytes pass untouched.
    After,
}

/// `stream` whose writes get `frames` inserted after the first frame written.
pub struct FrameInjector<S> {
    inner: S,
    watch: Watch,
    head: [u8; FRAME_HEADER_LEN],
    /// Extra frames still to write, and how much of the first of them is written.
    pending: Vec<Bytes>,
    offset: usize,
}

/// Wrap the stream a hyper HTTP/2 server serves so that `frames` (whole frames: see
/// `raw_frame`, `origin_frame`, `altsvc_frame`) follow its SETTINGS frame on the wire. Only
/// for a connection that speaks HTTP/2 (ALPN h2): the first bytes of an HTTP/1.1 answer are
/// no frame header.
pub fn with_frames_after_settings<S>(stream: S, frames: Vec<Bytes>) -> FrameInjector<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut pending = frames;
    // Written front to back by popping: keep them reversed.
    pending.reverse();
    FrameInjector {
        inner: stream,
        watch: Watch::Header(0),
        head: [0; FRAME_HEADER_LEN],
        pending,
        offset: 0,
    }
}

impl<S: AsyncWrite + Unpin> FrameInjector<S> {
    /// Write what is pending (once the first frame is out); Ready(Ok) when nothing is left.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.watch != Watch::After {
            return Poll::Ready(Ok(()));
        }
        while let Some(frame) = self.pending.last() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[self.offset..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.offset += n;
            if self.offset == frame.len() {
                self.pending.pop();
                self.offset = 0;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Follow the first frame through `written`, bytes the inner stream accepted.
    fn observe(&mut self, written: &[u8]) {
        let mut rest = written;
        while !rest.is_empty() {
            match self.watch {
                Watch::Header(n) => {
                    let take = (FRAME_HEADER_LEN - n).min(rest.len());
                    self.head[n..n + take].copy_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    self.watch = if n + take < FRAME_HEADER_LEN {
                        Watch::Header(n + take)
                    } else {
                        let len = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]);
                        match len {
                            0 => Watch::After,
                            len => Watch::Payload(len as usize),
                        }
                    };
                }
                Watch::Payload(left) => {
                    let take = left.min(rest.len());
                    rest = &rest[take..];
                    self.watch = if take == left {
                        Watch::After
                    } else {
                        Watch::Payload(left - take)
                    };
                }
                Watch::After => return,
            }
        }
    }

    /// Bytes of `len` that may be written before the first frame ends.
    fn allowed(&self, len: usize) -> usize {
        match self.watch {
            Watch::Header(n) => len.min(FRAME_HEADER_LEN - n),
            Watch::Payload(left) => len.min(left),
            Watch::After => len,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameInjector<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameInjector<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if this.watch == Watch::After {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        let allowed = this.allowed(buf.len());
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
        this.observe(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn builders() {
        let f = raw_frame(0x4, 0x1, 0x8000_0003, b"abc");
        assert_eq!(&f[..], &[0, 0, 3, 4, 1, 0, 0, 0, 3, b'a', b'b', b'c']);
        let f = origin_frame(&["https://a.test", ""]);
        assert_eq!(&f[..9], &[0, 0, 18, ORIGIN, 0, 0, 0, 0, 0]);
        assert_eq!(&f[9..11], &[0, 14]);
        assert_eq!(&f[25..], &[0, 0]);
        let f = altsvc_frame("", "h3=\":443\"", 1);
        assert_eq!(&f[3..9], &[ALTSVC, 0, 0, 0, 0, 1]);
        assert_eq!(&f[9..11], &[0, 0]);
        assert_eq!(&f[11..], b"h3=\":443\"");
    }

    #[tokio::test]
    async fn frames_follow_the_first_frame_whatever_the_writes() {
        let settings = raw_frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        let extra = vec![origin_frame(&["https://b.test"]), altsvc_frame("", "clear", 0)];
        let after = raw_frame(0x4, 0x1, 0, &[]);
        let mut expected = settings.to_vec();
        for f in &extra {
            expected.extend_from_slice(f);
        }
        expected.extend_from_slice(&after);
        let mut stream_bytes = settings.to_vec();
        stream_bytes.extend_from_slice(&after);
        // Writes of every size, from one byte to all at once.
        for chunk in 1..=stream_bytes.len() {
            let (ours, mut theirs) = tokio::io::duplex(4096);
            let mut w = with_frames_after_settings(ours, extra.clone());
            for piece in stream_bytes.chunks(chunk) {
                w.write_all(piece).await.unwrap();
            }
            w.flush().await.unwrap();
            drop(w);
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, expected, "writes of {chunk}");
        }
        // A server that writes SETTINGS and only flushes still gets them out.
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut w = with_frames_after_settings(ours, extra.clone());
        w.write_all(&settings).await.unwrap();
        w.flush().await.unwrap();
        let mut got = vec![0u8; expected.len() - after.len()];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(got, expected[..got.len()]);
    }
}

//! The server's HTTP/3 control stream, read beside h3: h3 drops the frames it does not know,
//! among them ORIGIN (RFC 9412, type 0x0c), which Chromium reads to waive its IP check over
//! HTTP/3. `Tap` wraps the QUIC connection h3 runs on and hands every incoming unidirectional
//! stream to h3 unchanged, copying the bytes of the server's control stream (type 0x00) to a
//! bounded reader (`ControlReader`) on the way.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId};

use crate::engine::probe::frames::add_origin_entries;
use crate::engine::probe::signals::OriginSet;

/// HTTP/3 frame type of ORIGIN (RFC 9412 §2).
const ORIGIN_H3: u64 = 0x0c;
/// Unidirectional stream type of the control stream (RFC 9114 §6.2.1).
const CONTROL: u64 = 0x00;
/// Largest ORIGIN frame payload kept; a longer one is skipped and the set marked cut short.
const MAX_ORIGIN_PAYLOAD: u64 = 64 * 1024;
/// ORIGIN frames read at most; later ones are counted, not read.
const MAX_ORIGIN_FRAMES: u32 = 64;
/// The frame type an ORIGIN frame not read is skipped as (reserved: a grease value).
const SKIPPED: u64 = 0x21;

/// What the server's control stream said, as far as read.
#[derive(Debug, Default)]
pub struct ControlReader {
    /// Bytes of the frame header (or the stream type) not complete yet.
    head: Vec<u8>,
    /// Within a frame: (its type, bytes of payload left).
    frame: Option<(u64, u64)>,
    /// The payload of the ORIGIN frame being read.
    payload: Vec<u8>,
    /// The stream type was read (the control stream's own 0x00).
    typed: bool,
    /// A frame header after the stream type was read: the server's SETTINGS (the control
    /// stream's first frame), so whatever it sends right after is in or on its way.
    settings: bool,
    /// A control stream feeds this reader already: another one (a protocol violation, which
    /// h3 answers by closing the connection) is not read into it.
    claimed: bool,
    /// The ORIGIN frames received (None: none).
    origin: Option<OriginSet>,
}

/// What a connection's control stream said of ORIGIN, when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlSeen {
    /// The control stream's SETTINGS have not been read: nothing is known yet.
    Unknown,
    /// SETTINGS read, and these ORIGIN frames (None: none so far).
    Read(Option<OriginSet>),
}

impl ControlReader {
    /// The ORIGIN set received so far (None: no ORIGIN frame yet).
    pub fn origin(&self) -> Option<OriginSet> {
        self.origin.clone()
    }

    /// What is known so far.
    pub fn seen(&self) -> ControlSeen {
        if self.settings {
            ControlSeen::Read(self.origin.clone())
        } else {
            ControlSeen::Unknown
        }
    }

    /// Read the next bytes of the control stream (its type first).
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.frame {
                Some((ty, left)) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    if ty == ORIGIN_H3 {
                        self.payload.extend_from_slice(&data[..n]);
                    }
                    data = &data[n..];
                    let left = left - n as u64;
                    self.frame = Some((ty, left));
                    if left == 0 {
                        self.end_frame(ty);
                    }
                }
                None => {
                    self.head.push(data[0]);
                    data = &data[1..];
                    self.header();
                }
            }
        }
    }

    /// A frame header (or the stream type) complete in `head`: take it.
    fn header(&mut self) {
        if !self.typed {
            if varint(&self.head).is_some() {
                self.typed = true;
                self.head.clear();
            }
            return;
        }
        let Some((ty, n)) = varint(&self.head) else {
            return;
        };
        let Some((len, _)) = varint(&self.head[n..]) else {
            return;
        };
        self.head.clear();
        self.settings = true;
        let set = (ty == ORIGIN_H3).then(|| self.origin.get_or_insert_with(OriginSet::default));
        if let Some(set) = set {
            set.frames = set.frames.saturating_add(1);
            if len > MAX_ORIGIN_PAYLOAD || set.frames > MAX_ORIGIN_FRAMES {
                // Not read (skipped as a frame of no interest): what it listed is unknown, so
                // the set is cut short.
                set.dropped = set.dropped.saturating_add(1);
                self.frame = Some((SKIPPED, len));
                if len == 0 {
                    self.frame = None;
                }
                return;
            }
        }
        self.payload.clear();
        self.frame = Some((ty, len));
        if len == 0 {
            self.end_frame(ty);
        }
    }

    fn end_frame(&mut self, ty: u64) {
        self.frame = None;
        if ty != ORIGIN_H3 {
            return;
        }
        let set = self.origin.get_or_insert_with(OriginSet::default);
        if add_origin_entries(set, &self.payload) {
            // A malformed frame: the entries before the fault are kept, the rest unknown.
            set.dropped = set.dropped.saturating_add(1);
        }
        self.payload.clear();
    }
}

/// A QUIC variable-length integer at the start of `b` (RFC 9000 §16): (value, its length);
/// None while incomplete.
pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = 1usize << (first >> 6);
    let mut v = u64::from(first & 0x3f);
    for k in 1..n {
        v = (v << 8) | u64::from(*b.get(k)?);
    }
    Some((v, n))
}

/// The QUIC connection h3 runs on, with the server's control stream copied to `reader`.
pub struct Tap {
    inner: h3_quinn::Connection,
    reader: Arc<Mutex<ControlReader>>,
}

impl Tap {
    pub fn new(inner: h3_quinn::Connection) -> (Tap, Arc<Mutex<ControlReader>>) {
        let reader = Arc::new(Mutex::new(ControlReader::default()));
        (
            Tap {
                inner,
                reader: reader.clone(),
            },
            reader,
        )
    }
}

impl<B: Buf> quic::OpenStreams<B> for Tap {
    type BidiStream = h3_quinn::BidiStream<B>;
    type SendStream = h3_quinn::SendStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        <h3_quinn::Connection as quic::OpenStreams<B>>::poll_open_bidi(&mut self.inner, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        <h3_quinn::Connection as quic::OpenStreams<B>>::poll_open_send(&mut self.inner, cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        <h3_quinn::Connection as quic::OpenStreams<B>>::close(&mut self.inner, code, reason);
    }
}

impl<B: Buf> quic::Connection<B> for Tap {
    type RecvStream = TapRecv;
    type OpenStreams = h3_quinn::OpenStreams;

    fn poll_accept_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<TapRecv, ConnectionErrorIncoming>> {
        <h3_quinn::Connection as quic::Connection<B>>::poll_accept_recv(&mut self.inner, cx).map_ok(|inner| {
            TapRecv {
                inner,
                reader: self.reader.clone(),
                kind: Kind::Unknown(Vec::new()),
            }
        })
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        <h3_quinn::Connection as quic::Connection<B>>::poll_accept_bidi(&mut self.inner, cx)
    }

    fn opener(&self) -> Self::OpenStreams {
        <h3_quinn::Connection as quic::Connection<B>>::opener(&self.inner)
    }
}

/// What an incoming unidirectional stream is, as far as its first bytes tell.
enum Kind {
    /// Its type is not complete yet (the bytes so far).
    Unknown(Vec<u8>),
    Control,
    Other,
}

/// An incoming unidirectional stream, passed to h3 unchanged; the control stream's bytes
/// also go to the reader.
pub struct TapRecv {
    inner: h3_quinn::RecvStream,
    reader: Arc<Mutex<ControlReader>>,
    kind: Kind,
}

impl TapRecv {
    fn observe(&mut self, chunk: &[u8]) {
        if let Kind::Unknown(seen) = &mut self.kind {
            seen.extend_from_slice(chunk);
            let Some((ty, _)) = varint(seen) else { return };
            let seen = std::mem::take(seen);
            let first = ty == CONTROL && self.claim();
            self.kind = if first { Kind::Control } else { Kind::Other };
            if first {
                self.feed(&seen);
            }
            return;
        }
        if matches!(self.kind, Kind::Control) {
            self.feed(chunk);
        }
    }

    /// Whether this is the first control stream (then the reader is its own).
    fn claim(&self) -> bool {
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !std::mem::replace(&mut reader.claimed, true)
    }

    fn feed(&self, bytes: &[u8]) {
        // A panic elsewhere while the lock was held left the reader whole enough to go on.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .feed(bytes);
    }
}

impl quic::RecvStream for TapRecv {
    type Buf = Bytes;

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        let polled = self.inner.poll_data(cx);
        if let Poll::Ready(Ok(Some(chunk))) = &polled {
            self.observe(chunk);
        }
        polled
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.inner.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.inner.recv_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ORIGIN frame payload listing `origins`.
    fn origin_payload(origins: &[&str]) -> Vec<u8> {
        let mut p = Vec::new();
        for o in origins {
            p.extend_from_slice(&(o.len() as u16).to_be_bytes());
            p.extend_from_slice(o.as_bytes());
        }
        p
    }

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![ty];
        // Two-byte varint length.
        let len = payload.len() as u16;
        f.extend_from_slice(&(0x4000 | len).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// The control stream: type, SETTINGS, an unknown frame, ORIGIN, fed in every split.
    #[test]
    fn origin_frames_are_read_however_the_bytes_arrive() {
        let mut stream = vec![0x00];
        stream.extend(frame(0x04, &[0x06, 0x44, 0x00]));
        stream.extend(frame(0x21, b"grease"));
        let before_origin = stream.len();
        stream.extend(frame(
            0x0c,
            &origin_payload(&["https://api.example", "HTTPS://B.example:8443"]),
        ));
        for split in 1..stream.len() {
            let mut r = ControlReader::default();
            for piece in stream.chunks(split) {
                r.feed(piece);
            }
            assert!(matches!(r.seen(), ControlSeen::Read(Some(_))), "split {split}");
            let set = r.origin().expect("an ORIGIN frame");
            assert_eq!(
                set.origins,
                ["https://api.example", "https://b.example:8443"],
                "split {split}"
            );
            assert_eq!((set.frames, set.dropped), (1, 0));
        }
        // No ORIGIN frame: no set; nothing known before the SETTINGS header.
        let mut r = ControlReader::default();
        r.feed(&stream[..1]);
        assert_eq!(r.seen(), ControlSeen::Unknown);
        r.feed(&stream[1..2]);
        assert_eq!(r.seen(), ControlSeen::Unknown, "a frame type without its length");
        r.feed(&stream[2..before_origin]);
        assert_eq!(r.seen(), ControlSeen::Read(None));
    }

    /// A malformed entry, an oversized frame and a flood leave the set marked cut short.
    #[test]
    fn odd_origin_frames_leave_the_set_cut_short() {
        let mut r = ControlReader::default();
        let mut bad = origin_payload(&["https://a.example"]);
        bad.extend_from_slice(&[0x00, 0x40, b'x']);
        r.feed(&[0x00]);
        r.feed(&frame(0x0c, &bad));
        let set = r.origin().unwrap();
        assert_eq!((set.origins.len(), set.dropped), (1, 1));
        let mut r = ControlReader::default();
        r.feed(&[0x00, 0x0c, 0x80, 0x02, 0x00, 0x00]);
        r.feed(&vec![0u8; 0x20000]);
        r.feed(&frame(0x0c, &origin_payload(&["https://c.example"])));
        let set = r.origin().unwrap();
        assert_eq!((set.frames, set.dropped), (2, 1));
        assert_eq!(set.origins, ["https://c.example"]);
    }
}

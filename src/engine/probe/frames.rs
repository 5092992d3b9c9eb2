//! A pass-through reader under hyper's HTTP/2 client that reads what the `h2` crate drops:
//! ORIGIN frames (RFC 8336) and ALTSVC frames (RFC 7838 §4). Every byte the server sends
//! reaches hyper unchanged; on the way the frame headers are followed (9 bytes: 24-bit
//! length, type, flags, 31-bit stream id) and only the payloads of those two frame types are
//! copied, each up to `CAPTURE_CAP`.
//!
//! `FrameScanner` is the pure core (fed byte slices, no I/O, fuzzed on its own); `FrameReader`
//! wraps the TLS stream and feeds it whatever each read brought. Memory is fixed whatever the
//! server sends: one capture buffer, at most `MAX_ORIGINS` origins, `MAX_ALT_SVC`
//! alternatives, `MAX_ANOMALIES` anomalies, and after `MAX_CAPTURED_FRAMES` frames of a type
//! the rest pass through unread.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::engine::probe::altsvc::parse_alt_svc;
use crate::engine::probe::signals::{
    origin_of, AltService, AltSvcSource, FrameAnomaly, OriginSet, ServerSignals, MAX_ALT_SVC, MAX_ORIGINS,
};

/// HTTP/2 frame types read here.
pub const ALTSVC: u8 = 0x0a;
pub const ORIGIN: u8 = super::signals::ORIGIN_FRAME_TYPE;
/// The 9-byte frame header (RFC 9113 §4.1).
pub const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE the client advertises (`h2::handshake` sets it; it is also h2's
/// default): a longer frame is a FRAME_SIZE_ERROR, which hyper answers by closing.
pub const MAX_FRAME_SIZE: u32 = 16_384;
/// Payload bytes of one ORIGIN or ALTSVC frame that are copied (the rest are skipped and the
/// frame is an `Oversized` anomaly).
pub const CAPTURE_CAP: usize = 16 * 1024;
/// ORIGIN (and, separately, ALTSVC) frames read per connection; the rest pass through unread
/// (a `Flood` anomaly). Real servers send one ORIGIN frame.
pub const MAX_CAPTURED_FRAMES: u32 = 64;
/// Longest ORIGIN entry read as an origin ("https://" + a 253-character name + ":65535").
const MAX_ORIGIN_LEN: usize = 8 + 255 + 6;

/// What the reader has captured, shared with the connection (`Arc<Mutex<_>>`, held briefly).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Captured {
    /// ORIGIN frames, ALTSVC frames for the connection's own origin (on stream 0), and the
    /// anomalies.
    pub signals: ServerSignals,
    /// Alternatives of ALTSVC frames on stream 1, which apply to the origin of the
    /// connection's first request (the connection decides whether that was its own origin:
    /// the reader cannot see `:authority`, which HPACK compresses). Frames on other streams
    /// are ignored: the prober asks its own origin first, so stream 1 is the one that counts.
    pub first_stream_alt_svc: Vec<AltService>,
}

/// The shared capture of one connection.
pub type SharedCapture = Arc<Mutex<Captured>>;

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header (`head_len` bytes of it so far).
    Header,
    /// Inside a payload that is copied into `buf`.
    Capture { frame_type: u8, stream: u32 },
    /// Inside a payload that is only counted.
    Skip,
}

/// The pure, incremental HTTP/2 frame follower (server → client bytes). Feed it every byte
/// the server sends, in any chunks; it keeps a fixed amount of memory.
#[derive(Debug)]
pub struct FrameScanner {
    /// `https://host[:port]` of the connection (SNI name and port), to which ALTSVC frames on
    /// stream 0 must be addressed to count.
    own_origin: String,
    max_frame_size: u32,
    state: State,
    head: [u8; FRAME_HEADER_LEN],
    head_len: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u32,
    /// The payload being captured (reused: capacity at most `CAPTURE_CAP`).
    buf: Vec<u8>,
    origin_frames: u32,
    altsvc_frames: u32,
    /// Frames and bytes seen (all types).
    frames: u64,
    bytes: u64,
    captured: Captured,
    /// `captured` changed since `take_changed` was last called.
    changed: bool,
}

impl FrameScanner {
    /// A scanner for a connection to `host:port` (the SNI name), whose client advertises
    /// `MAX_FRAME_SIZE`.
    pub fn new(host: &str, port: u16) -> FrameScanner {
        FrameScanner::with_max_frame_size(host, port, MAX_FRAME_SIZE)
    }

    pub fn with_max_frame_size(host: &str, port: u16, max_frame_size: u32) -> FrameScanner {
        FrameScanner {
            own_origin: origin_of(host.strip_suffix('.').unwrap_or(host), port),
            max_frame_size,
            state: State::Header,
            head: [0; FRAME_HEADER_LEN],
            head_len: 0,
            remaining: 0,
            buf: Vec::new(),
            origin_frames: 0,
            altsvc_frames: 0,
            frames: 0,
            bytes: 0,
            captured: Captured::default(),
            changed: false,
        }
    }

    /// Follow `bytes`, the next bytes from the server. Copies only the payloads of ORIGIN and
    /// ALTSVC frames (up to `CAPTURE_CAP`); no allocation for other frames.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        self.bytes = self.bytes.saturating_add(bytes.len() as u64);
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Header => self.feed_header(bytes),
                State::Skip => {
                    let take = (self.remaining as usize).min(bytes.len());
                    self.advance_payload(take);
                    &bytes[take..]
                }
                State::Capture { .. } => {
                    let take = (self.remaining as usize).min(bytes.len());
                    self.buf.extend_from_slice(&bytes[..take]);
                    self.advance_payload(take);
                    &bytes[take..]
                }
            };
        }
    }

    /// What has been captured so far.
    pub fn captured(&self) -> &Captured {
        &self.captured
    }

    /// True once after each change of `captured()` (so a reader publishes only changes).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Frames whose header was read, and bytes fed.
    pub fn frames_seen(&self) -> u64 {
        self.frames
    }

    pub fn bytes_seen(&self) -> u64 {
        self.bytes
    }

    /// Capacity of the capture buffer (at most `CAPTURE_CAP`, whatever was fed).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn feed_header<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let take = (FRAME_HEADER_LEN - self.head_len).min(bytes.len());
        self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
        self.head_len += take;
        if self.head_len == FRAME_HEADER_LEN {
            self.head_len = 0;
            self.start_frame();
        }
        &bytes[take..]
    }

    /// A whole header was read: decide what to do with the payload.
    fn start_frame(&mut self) {
        let h = self.head;
        let length = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let frame_type = h[3];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.frames = self.frames.saturating_add(1);
        self.remaining = length;
        self.state = match self.wanted(frame_type, stream, length) {
            true => {
                self.buf.clear();
                State::Capture { frame_type, stream }
            }
            false => State::Skip,
        };
        if length == 0 {
            self.end_payload();
        }
    }

    /// Whether the payload of this frame is to be copied; notes what is odd about it.
    fn wanted(&mut self, frame_type: u8, stream: u32, length: u32) -> bool {
        let count = match frame_type {
            ORIGIN if stream != 0 => {
                self.anomaly(FrameAnomaly::OriginOnStream(stream));
                return false;
            }
            ORIGIN => &mut self.origin_frames,
            ALTSVC => &mut self.altsvc_frames,
            _ => {
                if length > self.max_frame_size {
                    self.anomaly(FrameAnomaly::Oversized { frame_type, length });
                }
                return false;
            }
        };
        *count = count.saturating_add(1);
        let over = *count > MAX_CAPTURED_FRAMES;
        if frame_type == ORIGIN {
            let set = self
                .captured
                .signals
                .origin
                .get_or_insert_with(OriginSet::default);
            set.frames = set.frames.saturating_add(1);
            // During a flood the count is published at powers of two only, so that a server
            // cannot make every read copy the whole capture.
            self.changed |= !over || set.frames.is_power_of_two();
        }
        if length > self.max_frame_size || length as usize > CAPTURE_CAP {
            self.anomaly(FrameAnomaly::Oversized { frame_type, length });
            return false;
        }
        if over {
            self.anomaly(FrameAnomaly::Flood { frame_type });
            return false;
        }
        true
    }

    fn advance_payload(&mut self, n: usize) {
        // n <= remaining, which is a u32.
        self.remaining -= n as u32;
        if self.remaining == 0 {
            self.end_payload();
        }
    }

    fn end_payload(&mut self) {
        if let State::Capture { frame_type, stream } = self.state {
            let payload = std::mem::take(&mut self.buf);
            match frame_type {
                ORIGIN => self.read_origin(&payload),
                _ => self.read_altsvc(&payload, stream),
            }
            // The buffer is kept (cleared) for the next capture: no allocation per frame.
            self.buf = payload;
            self.buf.clear();
        }
        self.state = State::Header;
    }

    /// ORIGIN payload: a sequence of (Origin-Len u16, ASCII-Origin) (RFC 8336 §2).
    fn read_origin(&mut self, payload: &[u8]) {
        self.changed = true;
        let set = self
            .captured
            .signals
            .origin
            .get_or_insert_with(OriginSet::default);
        if add_origin_entries(set, payload) {
            self.anomaly(FrameAnomaly::Malformed { frame_type: ORIGIN });
        }
    }

    /// ALTSVC payload: Origin-Len u16, Origin, Alt-Svc-Field-Value (RFC 7838 §4).
    fn read_altsvc(&mut self, payload: &[u8], stream: u32) {
        let Some((origin, value)) = length_prefixed(payload) else {
            self.anomaly(FrameAnomaly::Malformed { frame_type: ALTSVC });
            return;
        };
        // §4: on stream 0 the origin names whom it is for (an empty one: ignored); on a
        // stream the origin must be empty (else ignored) and it is the stream's.
        let ours = match stream {
            0 => normalise_origin(origin).is_some_and(|o| o == self.own_origin),
            1 => origin.is_empty(),
            _ => false,
        };
        if !ours {
            return;
        }
        let parsed = parse_alt_svc(value, AltSvcSource::Frame);
        self.changed = true;
        if stream == 0 {
            let signals = &mut self.captured.signals;
            signals.alt_svc_clear |= parsed.clear;
            for alt in parsed.services {
                signals.add_alt_svc(alt);
            }
        } else {
            let first = &mut self.captured.first_stream_alt_svc;
            for alt in parsed.services {
                if !first.contains(&alt) && first.len() < MAX_ALT_SVC {
                    first.push(alt);
                }
            }
        }
    }

    fn anomaly(&mut self, anomaly: FrameAnomaly) {
        let signals = &mut self.captured.signals;
        let before = (signals.anomalies.len(), signals.anomalies_dropped);
        signals.add_anomaly(anomaly);
        self.changed |= before != (signals.anomalies.len(), signals.anomalies_dropped);
    }
}

/// Add the entries of an ORIGIN frame's payload to `set`: a sequence of (Origin-Len u16,
/// ASCII-Origin), over HTTP/2 (RFC 8336 §2) and HTTP/3 (RFC 9412 §2) alike. True when the
/// payload is malformed (an entry runs past its end; the entries before it are added).
pub fn add_origin_entries(set: &mut OriginSet, mut payload: &[u8]) -> bool {
    while !payload.is_empty() {
        let Some((entry, rest)) = length_prefixed(payload) else {
            return true;
        };
        payload = rest;
        // Once the set is full the rest is counted, not compared (a flood of entries must
        // not cost a comparison with every kept one each).
        if set.origins.len() >= MAX_ORIGINS {
            set.dropped = set.dropped.saturating_add(1);
            continue;
        }
        match normalise_origin(entry) {
            None => set.invalid = set.invalid.saturating_add(1),
            Some(origin) if set.origins.contains(&origin) => {}
            Some(origin) => set.origins.push(origin),
        }
    }
    false
}

/// A u16-length-prefixed field and what follows it; None when the length runs past the end.
fn length_prefixed(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
    let rest = &payload[2..];
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// An ASCII serialised origin `https://host[:port]`, lower-cased and without the default
/// port, as `signals::origin_of` writes it; None for anything else (another scheme, a path,
/// userinfo, non-ASCII, an empty host, a bad port).
pub fn normalise_origin(entry: &[u8]) -> Option<String> {
    if entry.len() > MAX_ORIGIN_LEN || !entry.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let text = std::str::from_utf8(entry).ok()?.to_ascii_lowercase();
    let authority = text.strip_prefix("https://")?;
    if authority.contains(['/', '?', '#', '@', '\\', '%']) {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        // A colon inside brackets belongs to an IPv6 literal.
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let port = match port {
        None => 443,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|&p| p != 0)?
        }
        Some(_) => return None,
    };
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let valid_host = bracketed
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*')));
    valid_host.then(|| origin_of(host, port))
}

/// The client's TLS stream with a `FrameScanner` on its read side: every byte read passes
/// to the caller unchanged (the scanner only looks at the filled part of the caller's
/// buffer); writes, flushes and shutdown are forwarded untouched.
pub struct FrameReader<S> {
    inner: S,
    scanner: FrameScanner,
    shared: SharedCapture,
}

impl<S> FrameReader<S> {
    /// Wrap `inner`, a stream to `host:port` (SNI name); the capture is published to the
    /// returned handle as it changes.
    pub fn new(inner: S, host: &str, port: u16) -> (FrameReader<S>, SharedCapture) {
        let shared = SharedCapture::default();
        let reader = FrameReader {
            inner,
            scanner: FrameScanner::new(host, port),
            shared: shared.clone(),
        };
        (reader, shared)
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameReader<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.scanner.feed(&buf.filled()[before..]);
            if this.scanner.take_changed() {
                // A poisoned lock only means a reader of it panicked: the data is whole.
                let mut shared = this.shared.lock().unwrap_or_else(|e| e.into_inner());
                shared.clone_from(this.scanner.captured());
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameReader<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

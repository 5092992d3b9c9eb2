use super::*;
use crate::engine::probe::signals::MAX_ANOMALIES;
use crate::lab::frames::{altsvc_frame, origin_frame, raw_frame};
use proptest::prelude::*;
use tokio::io::AsyncReadExt;

const SETTINGS: u8 = 0x4;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;

/// A server's byte stream: SETTINGS, ORIGIN (two frames), ALTSVC on stream 0 (ours and
/// another origin's), HEADERS + DATA on stream 1, ALTSVC on stream 1 and 3.
fn typical() -> Vec<u8> {
    let mut bytes = Vec::new();
    for f in [
        raw_frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0]),
        origin_frame(&["https://B.test", "https://c.test:443", "https://d.test:8443"]),
        origin_frame(&[
            "https://b.test",
            "http://e.test",
            "https://f.test/path",
            "https://g.test",
        ]),
        altsvc_frame("https://a.test", "h3=\":443\"; ma=86400", 0),
        altsvc_frame("https://other.test", "h3=\":9443\"", 0),
        raw_frame(SETTINGS, 1, 0, &[]),
        raw_frame(HEADERS, 4, 1, &[0x88]),
        raw_frame(DATA, 0, 1, &[b'x'; 16_384]),
        altsvc_frame("", "h2=\"alt.test:8443\"", 1),
        altsvc_frame("", "h3=\":1\"", 3),
        raw_frame(DATA, 1, 1, b"end"),
    ] {
        bytes.extend_from_slice(&f);
    }
    bytes
}

fn scan(chunks: impl IntoIterator<Item = Vec<u8>>) -> FrameScanner {
    let mut s = FrameScanner::new("a.test", 443);
    for c in chunks {
        s.feed(&c);
    }
    s
}

fn h3(port: u16, max_age: Option<u32>) -> AltService {
    AltService {
        protocol: "h3".into(),
        host: None,
        port,
        max_age,
        source: AltSvcSource::Frame,
    }
}

#[test]
fn origin_entries_across_two_frames_and_altsvc_on_stream_0_and_1() {
    let s = scan([typical()]);
    let c = s.captured();
    let set = c.signals.origin.as_ref().expect("an origin set");
    assert_eq!(
        set.origins,
        [
            "https://b.test",
            "https://c.test",
            "https://d.test:8443",
            "https://g.test"
        ]
    );
    assert_eq!(set.frames, 2);
    assert_eq!(set.invalid, 2, "http:// and a path");
    assert_eq!(set.dropped, 0);
    assert!(set.lists("c.test", 443));
    assert_eq!(
        c.signals.alt_svc,
        [h3(443, Some(86400))],
        "only the one for https://a.test"
    );
    assert_eq!(c.first_stream_alt_svc.len(), 1);
    assert_eq!(c.first_stream_alt_svc[0].host.as_deref(), Some("alt.test"));
    assert!(c.signals.anomalies.is_empty());
    assert_eq!(s.frames_seen(), 11);
    assert_eq!(s.bytes_seen(), typical().len() as u64);
}

#[test]
fn no_origin_frame_no_origin_set() {
    let mut bytes = raw_frame(SETTINGS, 0, 0, &[]).to_vec();
    bytes.extend_from_slice(&raw_frame(DATA, 1, 1, b"hello"));
    let s = scan([bytes]);
    assert_eq!(s.captured(), &Captured::default());
}

#[test]
fn every_split_gives_the_same_capture() {
    let bytes = typical();
    let whole = scan([bytes.clone()]).captured().clone();
    // One byte at a time, and every two-piece split.
    let ones = scan(bytes.iter().map(|&b| vec![b]));
    assert_eq!(ones.captured(), &whole);
    for cut in 0..=bytes.len() {
        let s = scan([bytes[..cut].to_vec(), bytes[cut..].to_vec()]);
        assert_eq!(s.captured(), &whole, "cut at {cut}");
    }
}

#[test]
fn invalid_entries_are_counted_not_kept() {
    let cases: &[&str] = &[
        "http://a.test",
        "https://",
        "https://a.test/",
        "https://a.test:0",
        "https://a.test:65536",
        "https://a.test:",
        "https://a.test:44x",
        "https://user@a.test",
        "https://a test",
        "https://a.test?x",
        "https://é.test",
        "https://a.test\u{1b}[2J",
        "",
        "https://[]",
    ];
    let s = scan([origin_frame(cases).to_vec()]);
    let set = s.captured().signals.origin.clone().expect("set");
    assert_eq!(set.origins, Vec::<String>::new());
    assert_eq!(set.invalid, cases.len());
    let long = format!("https://{}.test", "a".repeat(400));
    let s = scan([origin_frame(&[&long, "https://[::1]:8443", "https://A.Test.:443"]).to_vec()]);
    let set = s.captured().signals.origin.clone().expect("set");
    assert_eq!(set.origins, ["https://[::1]:8443", "https://a.test."]);
    assert_eq!(set.invalid, 1);
}

#[test]
fn binary_garbage_in_origins() {
    let mut payload = Vec::new();
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..i).map(|j| j.wrapping_mul(37).wrapping_add(i)).collect();
        payload.extend_from_slice(&(junk.len() as u16).to_be_bytes());
        payload.extend_from_slice(&junk);
    }
    let s = scan([raw_frame(ORIGIN, 0, 0, &payload).to_vec()]);
    let set = s.captured().signals.origin.clone().expect("set");
    assert!(set.origins.is_empty());
    assert_eq!(set.invalid, 50);
}

#[test]
fn origin_on_a_stream_is_ignored_and_noted() {
    let s = scan([origin_frame(&["https://b.test"]).to_vec(), {
        let mut f = raw_frame(ORIGIN, 0, 3, &[0, 14]).to_vec();
        f.extend_from_slice(b"https://c.test");
        f[2] = 16;
        f
    }]);
    let c = s.captured();
    assert_eq!(
        c.signals.origin.as_ref().map(|o| o.origins.clone()),
        Some(vec!["https://b.test".to_string()])
    );
    assert_eq!(c.signals.anomalies, [FrameAnomaly::OriginOnStream(3)]);
    // Only on a stream: no origin set at all.
    let s = scan([raw_frame(ORIGIN, 0, 5, &[0, 0]).to_vec()]);
    assert_eq!(s.captured().signals.origin, None);
}

#[test]
fn oversized_frames_are_skipped_in_step() {
    // An ORIGIN frame longer than the client's SETTINGS_MAX_FRAME_SIZE, then a good one: the
    // scanner stays aligned (hyper would close the connection; that is hyper's business).
    let mut big = Vec::new();
    while big.len() <= MAX_FRAME_SIZE as usize {
        big.extend_from_slice(&[0, 14]);
        big.extend_from_slice(b"https://x.test");
    }
    let mut bytes = raw_frame(ORIGIN, 0, 0, &big).to_vec();
    bytes.extend_from_slice(&raw_frame(DATA, 0, 1, &vec![0u8; 20_000]));
    bytes.extend_from_slice(&origin_frame(&["https://b.test"]));
    let s = scan(bytes.chunks(1000).map(<[u8]>::to_vec));
    let c = s.captured();
    let set = c.signals.origin.as_ref().expect("set");
    assert_eq!(set.origins, ["https://b.test"]);
    assert_eq!(set.frames, 2);
    assert_eq!(
        c.signals.anomalies,
        [
            FrameAnomaly::Oversized {
                frame_type: ORIGIN,
                length: big.len() as u32
            },
            FrameAnomaly::Oversized {
                frame_type: DATA,
                length: 20_000
            },
        ]
    );
    assert!(s.buffer_capacity() <= CAPTURE_CAP);
}

#[test]
fn malformed_payloads() {
    // An entry whose length runs past the end: the entries before it count.
    let mut payload = vec![0, 14];
    payload.extend_from_slice(b"https://b.test");
    payload.extend_from_slice(&[0xff, 0xff, b'h']);
    let mut bytes = raw_frame(ORIGIN, 0, 0, &payload).to_vec();
    // One lone byte of length; ALTSVC with an origin length past the end; ALTSVC of 1 byte.
    bytes.extend_from_slice(&raw_frame(ORIGIN, 0, 0, &[7]));
    bytes.extend_from_slice(&raw_frame(ALTSVC, 0, 0, &[0, 200, b'x']));
    bytes.extend_from_slice(&raw_frame(ALTSVC, 0, 0, &[0]));
    // An empty ALTSVC origin on stream 0, and a non-empty one on stream 1: ignored.
    bytes.extend_from_slice(&altsvc_frame("", "h3=\":443\"", 0));
    bytes.extend_from_slice(&altsvc_frame("https://a.test", "h3=\":443\"", 1));
    let s = scan([bytes]);
    let c = s.captured();
    assert_eq!(c.signals.origin.as_ref().map(|o| o.origins.len()), Some(1));
    assert_eq!(
        c.signals.anomalies,
        [
            FrameAnomaly::Malformed { frame_type: ORIGIN },
            FrameAnomaly::Malformed { frame_type: ALTSVC }
        ]
    );
    assert!(c.signals.alt_svc.is_empty() && c.first_stream_alt_svc.is_empty());
}

#[test]
fn a_flood_of_origin_frames_stays_bounded() {
    let mut s = FrameScanner::new("a.test", 443);
    s.feed(&raw_frame(SETTINGS, 0, 0, &[]));
    let mut published = 0;
    for i in 0..10_000u32 {
        let names: Vec<String> = (0..8).map(|j| format!("https://n{}.test", i * 8 + j)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        s.feed(&origin_frame(&names));
        published += usize::from(s.take_changed());
    }
    let set = s.captured().signals.origin.clone().expect("set");
    assert_eq!(set.frames, 10_000);
    assert_eq!(set.origins.len(), MAX_ORIGINS);
    assert_eq!(set.dropped, MAX_CAPTURED_FRAMES as usize * 8 - MAX_ORIGINS);
    assert_eq!(
        s.captured().signals.anomalies,
        [FrameAnomaly::Flood { frame_type: ORIGIN }]
    );
    assert!(s.buffer_capacity() <= CAPTURE_CAP);
    // Each frame up to the flood bound, then the counts at powers of two.
    assert!(published <= MAX_CAPTURED_FRAMES as usize + 16, "{published}");
}

#[test]
fn anomalies_are_bounded() {
    let mut s = FrameScanner::new("a.test", 443);
    for stream in 1..1000 {
        s.feed(&raw_frame(ORIGIN, 0, stream, &[]));
    }
    let signals = &s.captured().signals;
    assert_eq!(signals.anomalies.len(), MAX_ANOMALIES);
    assert_eq!(signals.anomalies_dropped, 999 - MAX_ANOMALIES);
}

#[test]
fn altsvc_for_a_port_and_clear() {
    let mut bytes = altsvc_frame("https://a.test:8443", "h3=\":8443\"", 0).to_vec();
    bytes.extend_from_slice(&altsvc_frame("https://a.test", "h3=\":443\"", 0));
    bytes.extend_from_slice(&altsvc_frame("HTTPS://A.TEST:8443", "clear", 0));
    let mut s = FrameScanner::new("A.test.", 8443);
    s.feed(&bytes);
    assert_eq!(s.captured().signals.alt_svc, [h3(8443, None)]);
    assert!(s.captured().signals.alt_svc_clear);
}

/// Reads `bytes` from a stream that returns them in the given read sizes.
async fn through_reader(bytes: &[u8], sizes: &[usize]) -> (Vec<u8>, Captured) {
    let mut builder = tokio_test_reader(bytes, sizes);
    let (mut reader, shared) = FrameReader::new(&mut builder, "a.test", 443);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.expect("read");
    let captured = shared.lock().expect("lock").clone();
    (out, captured)
}

/// A reader handing out `bytes` in reads of `sizes` (cycled).
fn tokio_test_reader(bytes: &[u8], sizes: &[usize]) -> ChunkedReader {
    ChunkedReader {
        bytes: bytes.to_vec(),
        at: 0,
        sizes: sizes.iter().map(|&s| s.max(1)).collect(),
        turn: 0,
    }
}

struct ChunkedReader {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let end = (self.at + size)
            .min(self.bytes.len())
            .min(self.at + buf.remaining());
        let at = self.at;
        buf.put_slice(&self.bytes[at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn the_reader_passes_every_byte_and_publishes_the_capture() {
    let bytes = typical();
    let whole = scan([bytes.clone()]).captured().clone();
    for sizes in [vec![1], vec![9], vec![7, 1, 4096, 3], vec![100_000]] {
        let (out, captured) = through_reader(&bytes, &sizes).await;
        assert!(out == bytes, "bytes changed with reads of {sizes:?}");
        assert_eq!(captured, whole, "reads of {sizes:?}");
    }
}

/// A byte stream made of a random mix of frames the scanner reads and frames it skips.
fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        proptest::collection::vec("[a-z]{1,6}", 0..4).prop_map(|names| {
            let origins: Vec<String> = names.iter().map(|n| format!("https://{n}.test")).collect();
            let refs: Vec<&str> = origins.iter().map(String::as_str).collect();
            origin_frame(&refs).to_vec()
        }),
        (0u16..2000, 0u32..4).prop_map(|(port, stream)| {
            let origin = if stream == 0 { "https://a.test" } else { "" };
            altsvc_frame(origin, &format!("h3=\":{port}\"; ma={port}"), stream).to_vec()
        }),
        (0usize..3000, 0u32..5)
            .prop_map(|(len, stream)| raw_frame(DATA, 0, stream, &vec![b'd'; len]).to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|p| raw_frame(ORIGIN, 0, 0, &p).to_vec()),
    ];
    proptest::collection::vec(frame, 0..24).prop_map(|frames| frames.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any split of a frame stream into reads: every byte comes out unchanged and the capture
    /// is the one of the whole stream.
    #[test]
    fn any_reads_same_bytes_same_capture(
        bytes in stream_strategy(),
        sizes in proptest::collection::vec(1usize..200, 1..16),
    ) {
        let whole = scan([bytes.clone()]).captured().clone();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (out, captured) = runtime.block_on(through_reader(&bytes, &sizes));
        prop_assert!(out == bytes);
        prop_assert_eq!(captured, whole);
    }

    /// The fuzz target's body (fuzz/fuzz_targets/h2_frames.rs): arbitrary bytes in arbitrary
    /// chunks, and the bounds hold.
    #[test]
    fn arbitrary_bytes_stay_bounded(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(any::<u16>(), 0..8),
    ) {
        let s = fuzz_body(&bytes, &cuts);
        prop_assert!(s.buffer_capacity() <= CAPTURE_CAP);
    }
}

/// What the fuzz target does, kept here so that `cargo test` compiles and runs the same checks.
fn fuzz_body(bytes: &[u8], cuts: &[u16]) -> FrameScanner {
    let mut s = FrameScanner::new("a.test", 443);
    let mut rest = bytes;
    for &cut in cuts {
        let (head, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        s.feed(head);
        rest = tail;
    }
    s.feed(rest);
    let c = s.captured();
    assert!(s.buffer_capacity() <= CAPTURE_CAP);
    assert!(c.signals.alt_svc.len() <= MAX_ALT_SVC && c.first_stream_alt_svc.len() <= MAX_ALT_SVC);
    assert!(c.signals.anomalies.len() <= MAX_ANOMALIES);
    if let Some(set) = &c.signals.origin {
        assert!(set.origins.len() <= MAX_ORIGINS);
        assert!(set
            .origins
            .iter()
            .all(|o| o.starts_with("https://") && o.len() <= MAX_ORIGIN_LEN));
    }
    assert_eq!(s.bytes_seen(), bytes.len() as u64);
    s
}

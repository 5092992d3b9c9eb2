//! Arbitrary server bytes cut into arbitrary reads: the HTTP/2 frame scanner never panics,
//! reads every byte, and stays within its bounds (one capture buffer of at most
//! CAPTURE_CAP, at most MAX_ORIGINS origins, MAX_ALT_SVC alternatives, MAX_ANOMALIES
//! anomalies). `cargo test --lib frames` runs the same body as a proptest.
#![no_main]

use coalscope::engine::probe::frames::{FrameScanner, CAPTURE_CAP};
use coalscope::engine::probe::signals::{MAX_ALT_SVC, MAX_ANOMALIES, MAX_ORIGINS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u16>, &[u8])| {
    let (cuts, bytes) = input;
    let mut scanner = FrameScanner::new("a.test", 443);
    let mut rest = bytes;
    for cut in cuts {
        let (head, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        scanner.feed(head);
        rest = tail;
    }
    scanner.feed(rest);
    assert!(scanner.buffer_capacity() <= CAPTURE_CAP);
    assert_eq!(scanner.bytes_seen(), bytes.len() as u64);
    let captured = scanner.captured();
    assert!(captured.signals.alt_svc.len() <= MAX_ALT_SVC);
    assert!(captured.first_stream_alt_svc.len() <= MAX_ALT_SVC);
    assert!(captured.signals.anomalies.len() <= MAX_ANOMALIES);
    if let Some(set) = &captured.signals.origin {
        assert!(set.origins.len() <= MAX_ORIGINS);
        assert!(set.origins.iter().all(|o| o.starts_with("https://") && o.is_ascii()));
    }
});

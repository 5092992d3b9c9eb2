//! The cost of the HTTP/2 frame reader (`probe::frames`): `FrameScanner::feed` over the
//! server side of a connection, next to a plain copy of the same bytes measured in the same
//! run (the copy hyper's read buffer makes anyway, so the scanner's share of a read is its
//! time over the copy's).
//!
//! Two streams, fed in 16 KiB reads (a TLS record's plaintext):
//! - "data": SETTINGS, an ORIGIN frame, then answers of HEADERS + 64 KiB of DATA in 16 KiB
//!   frames: the probe's usual traffic (bodies read up to 64 KiB);
//! - "small frames": 17-byte frames (PING-sized): the most headers per byte a server can
//!   send, the scanner's worst case.
//!
//! `CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench frames`
//! (prints numbers; asserts nothing about time). `FRAMES_MB` sets the volume per measurement
//! (default 2048).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use coalscope::engine::probe::frames::FrameScanner;
use coalscope::lab::frames::{origin_frame, raw_frame};

const READ: usize = 16 * 1024;

fn data_stream() -> Vec<u8> {
    let mut bytes = raw_frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]).to_vec();
    bytes.extend_from_slice(&origin_frame(&["https://b.example", "https://c.example"]));
    let body = vec![b'x'; 16 * 1024];
    let mut stream = 1;
    while bytes.len() < 4 * 1024 * 1024 {
        bytes.extend_from_slice(&raw_frame(0x1, 0x4, stream, &[0x88; 40]));
        for i in 0..4 {
            let flags = if i == 3 { 1 } else { 0 };
            bytes.extend_from_slice(&raw_frame(0x0, flags, stream, &body));
        }
        stream += 2;
    }
    bytes
}

fn small_frames() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 * 1024 * 1024);
    let mut i = 0u64;
    while bytes.len() < 4 * 1024 * 1024 {
        bytes.extend_from_slice(&raw_frame(0x6, 0, 0, &i.to_be_bytes()));
        i += 1;
    }
    bytes
}

/// MB/s of `f` over `stream` in READ-sized pieces, repeated until `volume` bytes.
fn rate(stream: &[u8], volume: usize, mut f: impl FnMut(&[u8])) -> f64 {
    let started = Instant::now();
    let mut done = 0;
    while done < volume {
        for piece in stream.chunks(READ) {
            f(piece);
        }
        done += stream.len();
    }
    done as f64 / 1e6 / started.elapsed().max(Duration::from_nanos(1)).as_secs_f64()
}

fn main() {
    let mb: usize = std::env::var("FRAMES_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let volume = mb * 1024 * 1024;
    for (name, stream) in [("data", data_stream()), ("small frames", small_frames())] {
        let mut buf = vec![0u8; READ];
        let copy = rate(&stream, volume, |piece| {
            buf[..piece.len()].copy_from_slice(black_box(piece));
            black_box(&buf);
        });
        let mut scanner = FrameScanner::new("a.example", 443);
        let scan = rate(&stream, volume, |piece| scanner.feed(black_box(piece)));
        assert_eq!(scanner.captured().signals.origin.is_some(), name == "data");
        let per_read = |mb_s: f64| READ as f64 / mb_s * 1e-6 * 1e9;
        println!(
            "{name:>12}: scanner {scan:>9.0} MB/s ({:>7.1} ns per 16 KiB read), copy {copy:>7.0} MB/s \
             ({:>6.1} ns): the scanner costs {:.1}% of a copy; {} frames",
            per_read(scan),
            per_read(copy),
            100.0 * copy / scan,
            scanner.frames_seen(),
        );
    }
}

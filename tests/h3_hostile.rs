//! Hostile QUIC for the HTTP/3 prober (issue 17): a silent UDP port, a port answering garbage
//! datagrams and a QUIC server that offers no h3 each end within the timeout with an error
//! naming what happened, and no socket is left behind. Alone in its test binary, so that the
//! descriptor count before and after is this test's own (cargo runs test binaries one at a
//! time; tests within one run in parallel).

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coalscope::engine::probe::error::{Phase, ProbeError};
use coalscope::engine::probe::h3;
use coalscope::testing::h3::{h3_server_with_alpn, H3Reply, H3Rule};
use coalscope::testing::net::{no_hang, Pki, Validity};

/// The probes' timeout here.
const T: Duration = Duration::from_secs(1);
/// Slack for a loaded 2-core machine on top of a bound (a hang detector, not a speed target).
const SLACK: Duration = Duration::from_secs(5);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn loopback(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 17, last], 0))
}

fn any_ok() -> H3Rule {
    Arc::new(|_, _| H3Reply::Answer(200, String::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_garbage_and_no_h3_end_within_the_timeout_and_leave_no_socket() {
    let pki = Pki::new("h3 probe");
    let settings = pki.settings(T);
    let before = open_fds();

    // A UDP port that reads nothing and answers nothing.
    let silent = tokio::net::UdpSocket::bind(loopback(4)).await.unwrap();
    let started = Instant::now();
    let result = no_hang(
        "silent port",
        h3::open(&settings, silent.local_addr().unwrap(), "www.h3.test"),
    )
    .await;
    assert_eq!(
        result.err(),
        Some(ProbeError::Timeout {
            phase: Phase::Tls,
            after: T
        })
    );
    assert!(started.elapsed() < T + SLACK);

    // A UDP port that answers every datagram with garbage.
    let garbage = Arc::new(tokio::net::UdpSocket::bind(loopback(5)).await.unwrap());
    let garbage_addr = garbage.local_addr().unwrap();
    let echo = {
        let garbage = garbage.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = garbage.recv_from(&mut buf).await {
                let noise: Vec<u8> = (0..n.max(64)).map(|i| (i * 7 + 3) as u8).collect();
                let _ = garbage.send_to(&noise, from).await;
            }
        })
    };
    let started = Instant::now();
    let result = no_hang("garbage", h3::open(&settings, garbage_addr, "www.h3.test")).await;
    echo.abort();
    assert!(
        matches!(result, Err(ProbeError::Timeout { .. } | ProbeError::Tls(_))),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < T + SLACK);

    // A QUIC server that offers no h3: the handshake is refused with the TLS alert named.
    let (chain, key) = pki.leaf(&["www.h3.test"], Validity::Current);
    let no_h3 = h3_server_with_alpn(loopback(6), chain, key, any_ok(), &[b"hq-interop"]).await;
    let result = no_hang("no h3", h3::open(&settings, no_h3.addr, "www.h3.test")).await;
    assert_eq!(
        result.err().map(|e| e.to_string()),
        Some("tls: quic: alert received: no_application_protocol".to_string())
    );
    drop(no_h3);
    drop(silent);
    drop(garbage);

    // Every endpoint's socket is closed once its connection is gone (quinn closes an endpoint's
    // socket when its driver ends, after the connection's drain).
    let deadline = Instant::now() + SLACK;
    while open_fds() > before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open_fds() <= before,
        "{} descriptors before, {} after",
        before,
        open_fds()
    );
}

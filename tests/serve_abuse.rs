//! `coalscope serve` under abuse of its port, end to end against the embedded lab: 10,000 idle
//! connections from 320 loopback addresses (under the per-address cap, over the global one)
//! leave its descriptors and memory bounded while a scraper from another address is served and
//! the engine keeps probing; a slowloris head (a byte a second) is cut by the header timeout.

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]
// setrlimit has no std API.
#![allow(unsafe_code)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use coalscope::lab::{Lab, LabOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Idle connections the flood holds.
const FLOOD: usize = 10_000;
/// Source addresses they come from (127.77.x.y): at most 32 each, the per-address cap.
const SOURCES: usize = 320;
/// The exporter's global cap in the test (the default).
const CAP: usize = 256;
/// Descriptors the exporter holds beyond its connections: the engine's probe connections,
/// the listener, its runtime, logs and watch-file watcher.
const FD_MARGIN: usize = 160;
/// Descriptors this test needs: the flood, the lab, the rest.
const FDS_NEEDED: u64 = FLOOD as u64 + 1_000;

/// Raise this process's open-file limit to `need` (children inherit it). False when the hard
/// limit is lower and cannot be raised.
fn raise_nofile(need: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we hand it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    if lim.rlim_cur >= need {
        return true;
    }
    let want = libc::rlimit {
        rlim_cur: need,
        rlim_max: lim.rlim_max.max(need),
    };
    // SAFETY: setrlimit reads the struct we hand it.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The i-th flood source: 127.77.0.1, 127.77.0.2, … (never the lab's 127.0.0.x).
fn source(i: usize) -> IpAddr {
    let n = i % SOURCES;
    IpAddr::V4(Ipv4Addr::new(127, 77, (n / 200) as u8, (n % 200 + 1) as u8))
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    match tokio::time::timeout(Duration::from_secs(20), socket.connect(to)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting from {from} to {to}"),
        )),
    }
}

/// GET `path` (HTTP/1.0, bounded) from `from`: status code and body.
async fn get_from(from: IpAddr, to: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = connect_from(from, to)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {to}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of head")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer in 30 s"))?
}

async fn cycles(addr: SocketAddr) -> u64 {
    let (status, body) = get_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), addr, "/api/status")
        .await
        .expect("/api/status");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    v["cycles"].as_u64().expect("cycles")
}

async fn start_serve(lab: &Lab, env: &[(&str, &str)]) -> common::serve::ServeProcess {
    let mut args = common::lab_args("serve", lab, &lab.watchfile);
    args.remove(0);
    args.extend(
        [
            "--interval",
            "1s",
            "--timeout",
            "1s",
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            &CAP.to_string(),
        ]
        .map(String::from),
    );
    common::serve::spawn_with_env(&args, env).await
}

/// 10,000 idle connections from 320 addresses: each address stays under the per-address cap,
/// so only the global cap holds them; the exporter's descriptors stay within the cap (plus
/// its own), its memory is printed, a scraper from another address gets `/metrics` while they
/// are held, and the engine goes on with its cycles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_leave_the_exporter_bounded_and_serving() {
    if !raise_nofile(FDS_NEEDED) {
        eprintln!(
            "SKIPPED: this test holds {FLOOD} connections and needs RLIMIT_NOFILE ≥ {FDS_NEEDED}, which cannot be raised here (ulimit -Hn)"
        );
        return;
    }
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    // serve's log says which connections it closed to make room.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("serve.log");
    let log_env = log.display().to_string();
    let env = [
        ("COALSCOPE_LOG", "coalscope::serve::http=debug"),
        ("COALSCOPE_LOG_FILE", log_env.as_str()),
    ];
    let serve = start_serve(&lab, &env).await;
    let pid = serve.child.id().expect("serve pid");
    let addr = serve.addr;
    let idle_fds = open_fds(pid);
    let cycles_before = cycles(addr).await;

    let mut held = Vec::with_capacity(FLOOD);
    let mut most_fds = 0;
    let mut most_rss = 0;
    for batch in 0..FLOOD / 500 {
        // 500 at a time, concurrently: the accept queue fills and drains as in a real flood.
        let mut connects = tokio::task::JoinSet::new();
        for i in batch * 500..(batch + 1) * 500 {
            connects.spawn(connect_from(source(i), addr));
        }
        while let Some(r) = connects.join_next().await {
            held.push(r.expect("connect task").expect("a flood connection"));
        }
        most_fds = most_fds.max(open_fds(pid));
        most_rss = most_rss.max(rss_kib(pid));
    }
    println!(
        "{} idle connections held from {SOURCES} addresses; serve (cap {CAP}): {idle_fds} fds before, at most {most_fds} during the flood; RSS at most {most_rss} KiB",
        held.len()
    );
    assert_eq!(held.len(), FLOOD);
    assert!(
        most_fds <= CAP + FD_MARGIN,
        "serve held {most_fds} descriptors under the flood, above its cap {CAP} + {FD_MARGIN}"
    );

    // A scraper from another address is answered while the flood is held.
    let (status, body) = get_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr, "/metrics")
        .await
        .expect("a scrape during the flood");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("coalscope_requests_total"), "{body}");
    let fds_now = open_fds(pid);
    println!(
        "scrape during the flood: {} bytes; serve now {fds_now} fds, RSS {} KiB",
        body.len(),
        rss_kib(pid)
    );
    assert!(fds_now <= CAP + FD_MARGIN, "{fds_now} descriptors");
    // Room was made by closing the idlest connections (not by waiting for the header
    // timeout to end idle ones, which would keep a scraper waiting behind the flood).
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let evicted = logged
        .matches("the idlest when the connection cap was full")
        .count();
    println!("serve closed {evicted} idle connections to make room");
    assert!(
        evicted >= FLOOD / 4,
        "serve closed only {evicted} idle connections for room; its log:\n{}",
        logged.lines().take(20).collect::<Vec<_>>().join("\n")
    );

    // And its metrics count them (the exposition is made again with the next view: bounded
    // wait for one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let counted = loop {
        let (_, body) = get_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr, "/metrics")
            .await
            .expect("a scrape");
        let counted = body
            .lines()
            .find_map(|l| l.strip_prefix("coalscope_serve_connections_closed_for_room_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if counted >= (FLOOD / 4) as f64 || tokio::time::Instant::now() > deadline {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("coalscope_serve_connections_closed_for_room_total {counted}");
    assert!(counted >= (FLOOD / 4) as f64, "{counted} in the metrics");

    // The engine keeps probing: its cycles go on (bounded wait).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = cycles(addr).await;
        if now > cycles_before {
            println!("engine cycles: {cycles_before} before the flood, {now} during it");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no engine cycle for 30 s under the flood ({now})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(held);
    drop(serve);
    lab.shutdown().await;
}

/// A slowloris: a request head that never ends, a byte a second. The exporter's header timeout
/// (10 s) closes the connection although bytes keep coming, with no answer but possibly a 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_cut_by_the_header_timeout() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let serve = start_serve(&lab, &[]).await;
    let addr = serve.addr;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("the first part of the head");
    // Up to 40 s of a byte a second (four times the timeout): the exporter must end it.
    let mut closed = None;
    for sent in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Err(e) = s.write_all(b"a").await {
            closed = Some(format!("write refused after {sent} bytes: {e}"));
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(10), s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(
                    n == 0 || answer.starts_with("HTTP/1.1 408"),
                    "a slowloris head got an answer: {answer:?}"
                );
                closed = Some(format!("closed after {sent} bytes: {answer:?}"));
                break;
            }
            Ok(Err(e)) => {
                closed = Some(format!("reset after {sent} bytes: {e}"));
                break;
            }
        }
    }
    let closed = closed.expect("the slowloris connection was still open after 40 s");
    println!("slowloris: {closed}");
    // The exporter still serves.
    let (status, _) = get_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr, "/healthz")
        .await
        .expect("healthz after the slowloris");
    assert_eq!(status, 200);
    drop(serve);
    lab.shutdown().await;
}

//! The cost of an HTTP/3 probe beside an HTTP/2 one (issue 17): the same job, a fresh
//! connection opened for `www` that carries a request for `www` and one for `api`, by
//! coalscope's own probers (`probe::h2`: TCP, rustls and hyper; `probe::h3`: UDP, quinn and
//! h3) against loopback servers of the test support (hyper's HTTP/2 server; an h3 server on
//! quinn), with the same certificate chain (leaf and CA) and small answers.
//!
//! Both servers run in this process, so the CPU figures are client + server together, for
//! both protocols alike; wall times are per probe, one probe at a time. The protocols take
//! turns in rounds (h2, h3, h2, h3, ...) so that a noisy neighbour hits both.
//!
//! `CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench h3_cost`
//! (`H3_COST_PROBES` per round, default 200; `H3_COST_ROUNDS`, default 4). Prints numbers;
//! asserts only that every probe got its two answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/serve_child.rs"]
#[allow(dead_code)]
mod serve_child;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coalscope::engine::probe::{h2, h3};
use coalscope::testing::h3::{h3_server, H3Reply, H3Rule};
use coalscope::testing::net::{simple_server, Pki, Validity};
use serve_child::{cpu_ticks, env_u64, procfs};

const TIMEOUT: Duration = Duration::from_secs(5);
const WWW: &str = "www.cost.test";
const API: &str = "api.cost.test";

/// utime + stime of this process so far (from /proc, as the soak benches read a child's).
fn cpu() -> Duration {
    let ticks = cpu_ticks(std::process::id()).expect("/proc/self/stat");
    Duration::from_secs_f64(ticks as f64 / procfs::clock_ticks())
}

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    H2,
    H3,
}

/// One probe: open for www, request www then api; both statuses.
async fn probe(
    protocol: Protocol,
    settings: &coalscope::engine::probe::tls::TlsSettings,
    at: SocketAddr,
) -> (u16, u16) {
    let port = at.port();
    match protocol {
        Protocol::H2 => {
            let opened = h2::open(settings, at, WWW).await.expect("h2 open");
            let conn = opened.conn.expect("h2 negotiated");
            let a = conn.request(WWW, port, "/", TIMEOUT).await.expect("h2 www");
            let b = conn.request(API, port, "/", TIMEOUT).await.expect("h2 api");
            (a.status, b.status)
        }
        Protocol::H3 => {
            let opened = h3::open(settings, at, WWW).await.expect("h3 open");
            let a = opened
                .conn
                .request(WWW, port, "/", TIMEOUT)
                .await
                .expect("h3 www");
            let b = opened
                .conn
                .request(API, port, "/", TIMEOUT)
                .await
                .expect("h3 api");
            (a.status, b.status)
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("h3_cost: run with `cargo bench --bench h3_cost`");
        return;
    }
    let probes = env_u64("H3_COST_PROBES", 200).max(1) as usize;
    let rounds = env_u64("H3_COST_ROUNDS", 4).max(1) as usize;
    let pki = Pki::new("h3 cost");
    let settings = pki.settings(TIMEOUT);
    let h2_server = simple_server(&pki, &[WWW, API], Validity::Current).await;
    let (chain, key) = pki.leaf(&[WWW, API], Validity::Current);
    let body = format!("site={WWW} sni={WWW} path=/");
    let rule: H3Rule = Arc::new(move |_, _| H3Reply::Answer(200, body.clone()));
    let h3_server = h3_server(SocketAddr::from(([127, 0, 18, 1], 0)), chain, key, rule).await;

    let mut wall: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut cpu_spent = [Duration::ZERO; 2];
    let mut elapsed = [Duration::ZERO; 2];
    // One probe of each first, out of the figures (first use of each code path).
    probe(Protocol::H2, &settings, h2_server.addr).await;
    probe(Protocol::H3, &settings, h3_server.addr).await;
    for _ in 0..rounds {
        for (i, (protocol, at)) in [(Protocol::H2, h2_server.addr), (Protocol::H3, h3_server.addr)]
            .into_iter()
            .enumerate()
        {
            let (cpu_before, started) = (cpu(), Instant::now());
            for _ in 0..probes {
                let one = Instant::now();
                let statuses = probe(protocol, &settings, at).await;
                wall[i].push(one.elapsed());
                assert_eq!(statuses, (200, 200));
            }
            cpu_spent[i] += cpu() - cpu_before;
            elapsed[i] += started.elapsed();
        }
    }
    println!(
        "h3_cost: {rounds} rounds of {probes} probes per protocol (open for {WWW}, GET {WWW}, GET {API}); \
         client and server in this process\n"
    );
    println!("| protocol | probes | wall p50 | wall p90 | wall p99 | CPU per probe (client + server) | probes per CPU-second |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, name) in ["HTTP/2 (TCP + TLS 1.3)", "HTTP/3 (QUIC)"].iter().enumerate() {
        let mut sorted = wall[i].clone();
        sorted.sort();
        let n = sorted.len() as f64;
        let per = cpu_spent[i].as_secs_f64() / n;
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.3} ms | {:.0} |",
            sorted.len(),
            percentile(&sorted, 0.5).as_secs_f64() * 1e3,
            percentile(&sorted, 0.9).as_secs_f64() * 1e3,
            percentile(&sorted, 0.99).as_secs_f64() * 1e3,
            per * 1e3,
            1.0 / per
        );
    }
    let ratio = cpu_spent[1].as_secs_f64() / cpu_spent[0].as_secs_f64().max(1e-9);
    println!(
        "\nCPU of an HTTP/3 probe / an HTTP/2 probe: {ratio:.2}; wall of all probes: h2 {:.1} s, h3 {:.1} s",
        elapsed[0].as_secs_f64(),
        elapsed[1].as_secs_f64()
    );
}

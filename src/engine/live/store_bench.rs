//! A synthetic, deterministic workload for the store's publish path: the scale lab's shape
//! (names in groups behind one wildcard certificate per group, a group per address, every
//! tenth name refusing coalesced requests with 421), fed as job results. Used by the
//! equivalence tests and by the publish benchmark (`cargo test --release --lib
//! publish_bench -- --ignored --nocapture`), which prints timings instead of asserting them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::Outcome;
use crate::engine::record::{HostRecord, JobResult};
use crate::engine::testsupport::{Pki, Validity};
use crate::watchlist::Entry;

use super::Store;

pub(crate) struct Synth {
    pub names: usize,
    pub group: usize,
    tls: Vec<TlsInfo>,
}

pub(crate) fn answer(status: u16, body: &str) -> Outcome {
    Ok(HttpAnswer {
        status,
        version: "HTTP/2".into(),
        content_type: Some("text/html".into()),
        body_digest: body.into(),
        body_len: body.len(),
        server: Some("nginx".into()),
        elapsed: Duration::from_millis(1),
    })
}

impl Synth {
    pub fn new(names: usize, group: usize) -> Synth {
        let pki = Pki::new("synthetic scale CA");
        let groups = names.div_ceil(group);
        let tls = (0..groups)
            .map(|g| {
                let san = format!("*.g{g:03}.scale.test");
                let (chain, _) = pki.leaf(&[&san], Validity::Current);
                TlsInfo {
                    alpn: Some("h2".into()),
                    version: "TLSv1.3".into(),
                    chain,
                    chain_error: None,
                    connect_time: Duration::from_micros(300),
                    handshake_time: Duration::from_micros(900),
                }
            })
            .collect();
        Synth { names, group, tls }
    }

    pub fn entries(&self) -> Vec<Entry> {
        (0..self.names)
            .map(|i| Entry {
                host: format!("t{i:05}.g{:03}.scale.test", i / self.group),
                port: 443,
                path: None,
                line: i + 1,
            })
            .collect()
    }

    pub fn addr(&self, i: usize) -> IpAddr {
        let j = (i / self.group) % 1016;
        IpAddr::V4(Ipv4Addr::new(127, 0, 4 + (j / 254) as u8, 1 + (j % 254) as u8))
    }

    pub fn dns(&self, i: usize) -> DnsAnswer {
        DnsAnswer {
            addresses: vec![self.addr(i)],
            ttl_s: Some(300),
            ..Default::default()
        }
    }

    /// A fresh store with every name resolved.
    pub fn store(&self, window: Duration) -> Store {
        let mut store = Store::new(window, "/".into());
        store.set_entries(&self.entries());
        for (i, e) in self.entries().iter().enumerate() {
            store.set_dns(&e.key(), self.dns(i));
        }
        store
    }

    /// The origin probe of host `i` carrying every other member of its group (`round`
    /// varies the answers a little so that some verdicts move).
    pub fn origin(&self, i: usize, round: u64) -> JobResult {
        let g = i / self.group;
        let members = (g * self.group)..((g + 1) * self.group).min(self.names);
        let coalesced = members
            .filter(|&t| t != i)
            .map(|t| {
                let refused = t % 10 == 0 || (t % 7 == 0 && round % 3 == 1);
                (
                    t,
                    if refused {
                        answer(421, "")
                    } else {
                        answer(200, &format!("t{t}"))
                    },
                )
            })
            .collect();
        JobResult::Origin {
            host: i,
            addr: self.addr(i),
            handshake: Ok(self.tls[g].clone()),
            own: Some(answer(200, &format!("t{i}"))),
            coalesced,
            requests: self.group as u64,
        }
    }

    pub fn direct(&self, i: usize) -> JobResult {
        JobResult::Direct {
            host: i,
            addr: self.addr(i),
            protocol: DirectProtocol::Negotiate,
            outcome: answer(200, &format!("t{i}")),
        }
    }

    /// One full round: every name's origin and direct probe, at `at`.
    pub fn round(&self, store: &mut Store, hosts: &[HostRecord], round: u64, at: Instant) {
        for i in 0..self.names {
            store.apply(hosts, self.origin(i, round), at);
            store.apply(hosts, self.direct(i), at);
        }
    }
}

/// VmRSS and VmHWM of this process (Linux), for the benchmark's output.
fn rss_text() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times `publish` after a small batch of new results, at 1,000 and 10,000 names (set
/// COALSCOPE_BENCH_NAMES to choose). Prints numbers; asserts nothing about time.
#[test]
#[ignore]
fn publish_bench() {
    use crate::engine::snapshot::EngineStatus;
    let sizes: Vec<usize> = std::env::var("COALSCOPE_BENCH_NAMES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    for names in sizes {
        let synth = Synth::new(names, 20);
        let window = Duration::from_secs(300);
        let mut store = synth.store(window);
        let hosts = store.hosts_for_jobs();
        let t0 = Instant::now();
        for r in 0..3 {
            synth.round(&mut store, &hosts, r, t0 + Duration::from_secs(30 * r));
        }
        let status = EngineStatus {
            cycles: 3,
            ..Default::default()
        };
        let mut now = t0 + Duration::from_secs(61);
        let started = Instant::now();
        let first = store.publish(now, status.clone(), true);
        let full = started.elapsed();
        let mut times = Vec::new();
        let mut views = vec![std::sync::Arc::new(first)];
        let steps: u64 = std::env::var("COALSCOPE_BENCH_STEPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        for step in 0..steps {
            // ~50 new results per publish: 25 origin probes, 25 direct ones.
            for j in 0..25 {
                let i = ((step as usize * 25 + j) * 37) % names;
                store.apply(&hosts, synth.origin(i, 3 + step), now);
                store.apply(&hosts, synth.direct(i), now);
            }
            now += Duration::from_millis(250);
            let started = Instant::now();
            let view = store.publish(now, status.clone(), true);
            // The old view is dropped as the engine's watch channel drops it.
            views.push(std::sync::Arc::new(view));
            if views.len() > 2 {
                views.remove(0);
            }
            times.push(started.elapsed());
        }
        // Publishing with nothing new: what every publish costs whatever changed.
        let mut idle = Vec::new();
        for _ in 0..10 {
            now += Duration::from_millis(250);
            let started = Instant::now();
            views.push(std::sync::Arc::new(store.publish(now, status.clone(), true)));
            views.remove(0);
            idle.push(started.elapsed());
        }
        times.sort();
        idle.sort();
        let pairs = views.last().map(|v| v.report.pairs.len()).unwrap_or(0);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "publish_bench names={names}: RSS of the test process with the store and two views alive: {} (PairReport {} B, History {} B inline)",
            rss_text(),
            std::mem::size_of::<crate::engine::snapshot::PairReport>(),
            std::mem::size_of::<crate::engine::snapshot::History>(),
        );
        println!(
            "publish_bench names={names} pairs={pairs}: first publish {:.2} ms; after ~50 results: median {:.3} ms, max {:.3} ms; nothing new: median {:.3} ms",
            ms(full),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            ms(idle[idle.len() / 2]),
        );
    }
}

//! A synthetic, deterministic workload for the live store: the scale lab's shape (names in
//! groups behind one wildcard certificate per group, a group per address, every tenth name
//! refusing coalesced requests with 421), fed as job results. Used by the store's equivalence
//! tests and by the publish benchmark (`cargo test --release --lib publish_bench -- --ignored
//! --nocapture`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::engine::live::store::Store;
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::probe::tls::TlsInfo;
use crate::engine::record::Outcome;
use crate::engine::record::{Coalesced, HostRecord, JobResult};
use crate::testing::net::{Pki, Validity};
use crate::watchlist::Entry;

pub struct Synth {
    pub names: usize,
    pub group: usize,
    tls: Vec<TlsInfo>,
}

pub fn answer(status: u16, body: &str) -> Outcome {
    Ok(HttpAnswer {
        status,
        version: "HTTP/2".into(),
        content_type: Some("text/html".into()),
        body_digest: body.into(),
        body_len: body.len(),
        body_unbounded: false,
        page: (200..300)
            .contains(&status)
            .then(|| std::sync::Arc::new(crate::engine::probe::page::PageSketch::of(body.as_bytes()))),
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
                    cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
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
                let outcome = if refused {
                    answer(421, "")
                } else {
                    answer(200, &format!("t{t}"))
                };
                (t, Coalesced::new(outcome, None))
            })
            .collect();
        JobResult::Origin {
            host: i,
            addr: self.addr(i),
            handshake: Ok(self.tls[g].clone()),
            own: Some(Box::new(Coalesced::new(answer(200, &format!("t{i}")), None))),
            coalesced,
            uncovered: vec![],
            requests: self.group as u64,
            signals: None,
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

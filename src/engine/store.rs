//! The live engine's memory, and its only writer: timestamped samples per host, address and
//! pair, pruned to the `--window` and capped in count, so a monitor that runs for weeks stays
//! the same size. Publishing turns the samples in the window into a `LiveView` through the
//! same analysis as `check`, plus the sparklines and the verdict-change events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::engine::analysis;
use crate::engine::cert::{self, CertSummary};
use crate::engine::check::{EndpointRecord, HostRecord, JobResult, Records};
use crate::engine::direct::DirectProtocol;
use crate::engine::dns::DnsAnswer;
use crate::engine::snapshot::{EngineStatus, LiveView, VerdictEvent};
use crate::engine::tls::TlsInfo;
use crate::engine::verdict::Outcome;
use crate::watchlist::Entry;

/// Samples kept per list at most, whatever the window.
pub const MAX_SAMPLES: usize = 512;
/// Verdict-change events kept.
pub const MAX_EVENTS: usize = 500;
/// Points of a sparkline over the window.
pub const HISTORY_BUCKETS: usize = 30;

type Timed<T> = VecDeque<(Instant, T)>;

fn push<T>(q: &mut Timed<T>, at: Instant, item: T) {
    if q.len() >= MAX_SAMPLES {
        q.pop_front();
    }
    q.push_back((at, item));
}

fn prune<T>(q: &mut Timed<T>, cutoff: Instant) {
    while q.front().is_some_and(|(t, _)| *t < cutoff) {
        q.pop_front();
    }
}

fn recent<T: Clone>(q: &Timed<T>) -> Vec<T> {
    q.iter().map(|(_, x)| x.clone()).collect()
}

#[derive(Debug, Default)]
struct LiveEndpoint {
    /// The latest successful handshake (certificates get renewed: the latest is the truth).
    tls: Option<TlsInfo>,
    cert: Option<Result<CertSummary, String>>,
    handshakes: Timed<Result<(Duration, Duration), String>>,
    own: Timed<Outcome>,
    direct: Timed<Outcome>,
    direct_http1: Timed<Outcome>,
}

#[derive(Debug)]
struct LiveHost {
    entry: Entry,
    path: String,
    dns: DnsAnswer,
    /// When `dns` was received (None: never resolved).
    dns_at: Option<Instant>,
    endpoints: BTreeMap<IpAddr, LiveEndpoint>,
}

pub struct Store {
    window: Duration,
    default_path: String,
    hosts: Vec<LiveHost>,
    /// "host:port" → index in `hosts` (lookups per job result must not scan the list).
    index: HashMap<String, usize>,
    /// (origin key, target key, origin address) → coalesced requests.
    coalesced: HashMap<(String, String, IpAddr), Timed<Outcome>>,
    events: VecDeque<VerdictEvent>,
    last_verdicts: HashMap<(String, String), String>,
    connections: u64,
    requests: u64,
    started: Instant,
}

impl Store {
    pub fn new(window: Duration, default_path: String) -> Store {
        Store {
            window,
            default_path,
            hosts: Vec::new(),
            index: HashMap::new(),
            coalesced: HashMap::new(),
            events: VecDeque::new(),
            last_verdicts: HashMap::new(),
            connections: 0,
            requests: 0,
            started: Instant::now(),
        }
    }

    /// Replace the watched list: unchanged names keep their history, removed names vanish,
    /// new names start empty. Returns the keys of the new names.
    pub fn set_entries(&mut self, entries: &[Entry]) -> Vec<String> {
        let mut old: HashMap<String, LiveHost> = self.hosts.drain(..).map(|h| (h.entry.key(), h)).collect();
        let mut added = Vec::new();
        for e in entries {
            let path = e.path.clone().unwrap_or_else(|| self.default_path.clone());
            match old.remove(&e.key()) {
                Some(mut h) => {
                    h.entry = e.clone();
                    h.path = path;
                    self.hosts.push(h);
                }
                None => {
                    added.push(e.key());
                    self.hosts.push(LiveHost {
                        entry: e.clone(),
                        path,
                        dns: DnsAnswer::default(),
                        dns_at: None,
                        endpoints: BTreeMap::new(),
                    });
                }
            }
        }
        self.index = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.entry.key(), i))
            .collect();
        let keys = &self.index;
        self.coalesced
            .retain(|(o, t, _), _| keys.contains_key(o) && keys.contains_key(t));
        self.last_verdicts
            .retain(|(o, t), _| keys.contains_key(o) && keys.contains_key(t));
        added
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.hosts.iter().map(|h| h.entry.clone()).collect()
    }

    /// A new DNS answer for a host: addresses it no longer has are forgotten.
    pub fn set_dns(&mut self, key: &str, answer: DnsAnswer) {
        let Some(h) = self.index.get(key).and_then(|&i| self.hosts.get_mut(i)) else {
            return;
        };
        h.endpoints.retain(|a, _| answer.addresses.contains(a));
        for a in &answer.addresses {
            h.endpoints.entry(*a).or_default();
        }
        h.dns = answer;
        h.dns_at = Some(Instant::now());
    }

    /// Is the DNS answer of `key` still good at `now`? Answers are reused within their TTL
    /// (overrides and IP literals forever); failures are retried every time.
    pub fn dns_fresh(&self, key: &str, now: Instant) -> bool {
        let Some(h) = self.index.get(key).and_then(|&i| self.hosts.get(i)) else {
            return false;
        };
        match (h.dns_at, &h.dns.error) {
            (Some(at), None) => match h.dns.ttl_s {
                Some(ttl) => now.saturating_duration_since(at) < Duration::from_secs(u64::from(ttl)),
                None => h.dns.overridden,
            },
            _ => false,
        }
    }

    /// The hosts as the scheduler needs them (entry, path, DNS), indexed for jobs.
    pub fn hosts_for_jobs(&self) -> Vec<HostRecord> {
        self.hosts
            .iter()
            .map(|h| HostRecord {
                entry: h.entry.clone(),
                path: h.path.clone(),
                dns: h.dns.clone(),
                endpoints: BTreeMap::new(),
            })
            .collect()
    }

    /// Fold a job result in; `hosts` is the list the job's indices refer to.
    pub fn apply(&mut self, hosts: &[HostRecord], result: JobResult, at: Instant) {
        self.connections += 1;
        let key_of = |i: usize| hosts.get(i).map(|h| h.entry.key());
        match result {
            JobResult::Origin {
                host,
                addr,
                handshake,
                own,
                coalesced,
                requests,
            } => {
                self.requests += requests;
                let Some(origin) = key_of(host) else { return };
                for (t, outcome) in coalesced {
                    if let Some(target) = key_of(t) {
                        push(
                            self.coalesced.entry((origin.clone(), target, addr)).or_default(),
                            at,
                            outcome,
                        );
                    }
                }
                let Some(ep) = self.endpoint(&origin, addr) else {
                    return;
                };
                match handshake {
                    Ok(tls) => {
                        push(&mut ep.handshakes, at, Ok((tls.connect_time, tls.handshake_time)));
                        ep.cert = tls
                            .chain
                            .first()
                            .map(|der| cert::parse_leaf(der).map_err(|e| e.to_string()));
                        ep.tls = Some(tls);
                    }
                    Err(e) => push(&mut ep.handshakes, at, Err(e)),
                }
                if let Some(o) = own {
                    push(&mut ep.own, at, o);
                }
            }
            JobResult::Direct {
                host,
                addr,
                protocol,
                outcome,
            } => {
                self.requests += 1;
                let Some(key) = key_of(host) else { return };
                let Some(ep) = self.endpoint(&key, addr) else {
                    return;
                };
                match protocol {
                    DirectProtocol::Negotiate => push(&mut ep.direct, at, outcome),
                    DirectProtocol::Http1Only => push(&mut ep.direct_http1, at, outcome),
                }
            }
        }
    }

    fn endpoint(&mut self, key: &str, addr: IpAddr) -> Option<&mut LiveEndpoint> {
        let i = *self.index.get(key)?;
        self.hosts.get_mut(i)?.endpoints.get_mut(&addr)
    }

    /// Drop every sample older than the window.
    pub fn prune(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.window) else {
            return;
        };
        for h in &mut self.hosts {
            for ep in h.endpoints.values_mut() {
                prune(&mut ep.handshakes, cutoff);
                prune(&mut ep.own, cutoff);
                prune(&mut ep.direct, cutoff);
                prune(&mut ep.direct_http1, cutoff);
            }
        }
        self.coalesced.retain(|_, q| {
            prune(q, cutoff);
            !q.is_empty()
        });
    }

    /// The samples in the window, shaped as a `check` run's records.
    pub fn records(&self, cycles: u64) -> Records {
        let hosts: Vec<HostRecord> = self
            .hosts
            .iter()
            .map(|h| HostRecord {
                entry: h.entry.clone(),
                path: h.path.clone(),
                dns: h.dns.clone(),
                endpoints: h
                    .endpoints
                    .iter()
                    .map(|(a, ep)| {
                        let ok: Vec<(Duration, Duration)> = ep
                            .handshakes
                            .iter()
                            .filter_map(|(_, r)| r.as_ref().ok().copied())
                            .collect();
                        let record = EndpointRecord {
                            tls: ep.tls.clone(),
                            cert: ep.cert.clone(),
                            handshakes: ep.handshakes.len() as u32,
                            handshake_errors: ep
                                .handshakes
                                .iter()
                                .filter_map(|(_, r)| r.as_ref().err().cloned())
                                .collect(),
                            connect_times: ok.iter().map(|x| x.0).collect(),
                            tls_times: ok.iter().map(|x| x.1).collect(),
                            own: recent(&ep.own),
                            direct: recent(&ep.direct),
                            direct_http1: recent(&ep.direct_http1),
                        };
                        (*a, record)
                    })
                    .collect(),
            })
            .collect();
        let index: HashMap<String, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.entry.key(), i))
            .collect();
        let mut coalesced = HashMap::new();
        for ((o, t, a), q) in &self.coalesced {
            if let (Some(&oi), Some(&ti)) = (index.get(o), index.get(t)) {
                coalesced.insert((oi, ti, *a), recent(q));
            }
        }
        Records {
            hosts,
            coalesced,
            connections: self.connections,
            requests: self.requests,
            rounds: cycles.min(u32::MAX as u64) as u32,
        }
    }

    /// Analyse the window and publish: the view, with sparklines and new events.
    pub fn publish(&mut self, now: Instant, status: EngineStatus, record_events: bool) -> LiveView {
        self.prune(now);
        let records = self.records(status.cycles);
        let report = analysis::analyse(&records, false, now.duration_since(self.started));
        let bucket = (self.window / HISTORY_BUCKETS as u32).max(Duration::from_millis(1));
        let mut histories = Vec::with_capacity(report.pairs.len());
        // The samples of each pair, over all its addresses (one pass, not one per pair).
        let mut by_pair: HashMap<(&str, &str), Vec<&Timed<Outcome>>> = HashMap::new();
        for ((o, t, _), q) in &self.coalesced {
            by_pair.entry((o.as_str(), t.as_str())).or_default().push(q);
        }
        for p in &report.pairs {
            let mut answered = [0u32; HISTORY_BUCKETS];
            let mut refused = [0u32; HISTORY_BUCKETS];
            let queues = by_pair
                .get(&(p.origin.as_str(), p.target.as_str()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for q in queues {
                for (at, outcome) in q.iter() {
                    let Ok(answer) = outcome else { continue };
                    let age = now.saturating_duration_since(*at);
                    let from_end = (age.as_nanos() / bucket.as_nanos()) as usize;
                    if from_end >= HISTORY_BUCKETS {
                        continue;
                    }
                    let i = HISTORY_BUCKETS - 1 - from_end;
                    answered[i] += 1;
                    refused[i] += u32::from(answer.status == 421);
                }
            }
            histories.push(
                (0..HISTORY_BUCKETS)
                    .map(|i| (answered[i] > 0).then(|| refused[i] as f32 / answered[i] as f32))
                    .collect(),
            );
            let key = (p.origin.clone(), p.target.clone());
            let previous = self.last_verdicts.get(&key).cloned();
            if record_events && previous.as_deref() != Some(p.verdict.as_str()) {
                let worth_telling = previous.is_some() || analysis::verdict_of(&p.verdict).is_problem();
                if worth_telling {
                    if self.events.len() >= MAX_EVENTS {
                        self.events.pop_front();
                    }
                    self.events.push_back(VerdictEvent {
                        at: report.generated_at.clone(),
                        origin: p.origin.clone(),
                        target: p.target.clone(),
                        from: previous,
                        to: p.verdict.clone(),
                        message: p.explanation.clone(),
                    });
                }
                self.last_verdicts.insert(key, p.verdict.clone());
            }
        }
        LiveView {
            report,
            histories,
            events: self.events.iter().cloned().collect(),
            status,
        }
    }
}

#[cfg(test)]
#[path = "store_bench.rs"]
mod bench;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::h2::HttpAnswer;

    fn entry(host: &str, line: usize) -> Entry {
        Entry {
            host: host.into(),
            port: 443,
            path: None,
            line,
        }
    }

    fn answer(status: u16) -> Outcome {
        Ok(HttpAnswer {
            status,
            version: "HTTP/2".into(),
            content_type: Some("text/html".into()),
            body_digest: "d".into(),
            body_len: 1,
            server: None,
            elapsed: Duration::from_millis(1),
        })
    }

    fn dns(addr: &str) -> DnsAnswer {
        DnsAnswer {
            addresses: vec![addr.parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn reload_keeps_unchanged_history_and_drops_removed_names() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        assert_eq!(
            store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]),
            vec!["a.test:443", "b.test:443"]
        );
        store.set_dns("a.test:443", dns("127.0.0.1"));
        store.set_dns("b.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let now = Instant::now();
        store.apply(
            &hosts,
            JobResult::Origin {
                host: 0,
                addr: "127.0.0.1".parse().unwrap(),
                handshake: Err("tls: boom".into()),
                own: None,
                coalesced: vec![(1, answer(421))],
                requests: 1,
            },
            now,
        );
        store.apply(
            &hosts,
            JobResult::Direct {
                host: 1,
                addr: "127.0.0.1".parse().unwrap(),
                protocol: DirectProtocol::Negotiate,
                outcome: answer(200),
            },
            now,
        );
        // c is new, a and b stay: their samples survive the reload.
        let added = store.set_entries(&[entry("b.test", 1), entry("a.test", 2), entry("c.test", 3)]);
        assert_eq!(added, vec!["c.test:443"]);
        let r = store.records(1);
        assert_eq!(r.hosts[0].entry.host, "b.test");
        assert_eq!(r.hosts[0].endpoints.values().next().unwrap().direct.len(), 1);
        assert_eq!(
            r.coalesced
                .get(&(1, 0, "127.0.0.1".parse().unwrap()))
                .map(|v| v.len()),
            Some(1)
        );
        // b removed: the pair's samples go with it.
        store.set_entries(&[entry("a.test", 1)]);
        assert!(store.records(1).coalesced.is_empty());
    }

    #[test]
    fn samples_are_bounded_and_pruned_to_the_window() {
        let mut store = Store::new(Duration::from_secs(10), "/".into());
        store.set_entries(&[entry("a.test", 1)]);
        store.set_dns("a.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let start = Instant::now();
        for i in 0..(MAX_SAMPLES as u64 + 100) {
            store.apply(
                &hosts,
                JobResult::Direct {
                    host: 0,
                    addr: "127.0.0.1".parse().unwrap(),
                    protocol: DirectProtocol::Negotiate,
                    outcome: answer(200),
                },
                start + Duration::from_millis(i),
            );
        }
        assert_eq!(
            store.records(1).hosts[0]
                .endpoints
                .values()
                .next()
                .unwrap()
                .direct
                .len(),
            MAX_SAMPLES
        );
        store.prune(start + Duration::from_secs(3600));
        assert!(store.records(1).hosts[0]
            .endpoints
            .values()
            .next()
            .unwrap()
            .direct
            .is_empty());
    }

    #[test]
    fn dns_answers_are_reused_within_their_ttl() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.test", 1), entry("b.test", 2), entry("c.test", 3)]);
        let now = Instant::now();
        assert!(!store.dns_fresh("a.test:443", now), "never resolved");
        store.set_dns(
            "a.test:443",
            DnsAnswer {
                ttl_s: Some(30),
                ..dns("127.0.0.1")
            },
        );
        assert!(store.dns_fresh("a.test:443", Instant::now()));
        assert!(!store.dns_fresh("a.test:443", Instant::now() + Duration::from_secs(31)));
        store.set_dns(
            "b.test:443",
            DnsAnswer {
                error: Some("SERVFAIL".into()),
                ..Default::default()
            },
        );
        assert!(
            !store.dns_fresh("b.test:443", Instant::now()),
            "failures are retried"
        );
        store.set_dns(
            "c.test:443",
            DnsAnswer {
                overridden: true,
                ..dns("127.0.0.1")
            },
        );
        assert!(store.dns_fresh("c.test:443", Instant::now() + Duration::from_secs(86_400)));
    }

    #[test]
    fn verdict_changes_become_events() {
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.test", 1), entry("b.test", 2)]);
        store.set_dns("a.test:443", dns("127.0.0.1"));
        store.set_dns("b.test:443", dns("127.0.0.1"));
        let view = store.publish(Instant::now(), EngineStatus::default(), true);
        // Without a handshake the pair is an error, which is not worth an event on its own.
        assert_eq!(view.report.pairs.len(), 2);
        assert!(view.events.is_empty(), "{:?}", view.events);
        assert_eq!(view.histories.len(), 2);
        assert!(view.histories[0].iter().all(|x| x.is_none()));
    }

    /// Coverage in the live view is the share of coalescable pairs probed within the window:
    /// pairs probed in earlier cycles still count while their samples are in the window, and
    /// stop counting once they fall out of it.
    #[test]
    fn coverage_is_computed_over_the_window() {
        use crate::engine::testsupport::{Pki, Validity};
        let pki = Pki::new("coverage test CA");
        let (chain, _) = pki.leaf(&["*.w.test"], Validity::Current);
        let tls = TlsInfo {
            alpn: Some("h2".into()),
            version: "TLSv1.3".into(),
            chain,
            chain_error: None,
            connect_time: Duration::from_millis(1),
            handshake_time: Duration::from_millis(1),
        };
        let mut store = Store::new(Duration::from_secs(60), "/".into());
        store.set_entries(&[entry("a.w.test", 1), entry("b.w.test", 2)]);
        store.set_dns("a.w.test:443", dns("127.0.0.1"));
        store.set_dns("b.w.test:443", dns("127.0.0.1"));
        let hosts = store.hosts_for_jobs();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let origin = |host: usize, target: usize| JobResult::Origin {
            host,
            addr,
            handshake: Ok(tls.clone()),
            own: Some(answer(200)),
            coalesced: vec![(target, answer(200))],
            requests: 2,
        };
        // Cycle 1 probes a → b only; both handshakes are known.
        store.apply(&hosts, origin(0, 1), t0);
        store.apply(
            &hosts,
            JobResult::Origin {
                host: 1,
                addr,
                handshake: Ok(tls.clone()),
                own: Some(answer(200)),
                coalesced: vec![],
                requests: 1,
            },
            t0,
        );
        let v = store.publish(t0 + Duration::from_secs(1), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 0.5, "{:?}", v.report.summary);
        // Cycle 2, 30 s later, probes b → a only: a → b from cycle 1 is still in the window.
        store.apply(&hosts, origin(1, 0), t0 + Duration::from_secs(30));
        let v = store.publish(t0 + Duration::from_secs(31), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 1.0, "{:?}", v.report.summary);
        // 70 s: a → b (t0) fell out of the 60 s window, b → a (t0 + 30 s) did not.
        let v = store.publish(t0 + Duration::from_secs(70), EngineStatus::default(), false);
        assert_eq!(v.report.summary.coverage, 0.5, "{:?}", v.report.summary);
    }
}

//! One `check` run: resolve every name, then probe a fixed number of rounds. Each round opens
//! fresh connections, in a new random order: per (origin A, address X) one HTTP/2 connection
//! with SNI = A that requests A, then every target B that A's certificate could carry; per
//! (host B, address X) one direct request (its own connection). Results flow back to
//! this task, the only writer of the records; `analysis` turns them into a `Snapshot`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;
use tokio::sync::Semaphore;

use crate::engine::analysis;
use crate::engine::cert::{self, CertSummary};
use crate::engine::direct::{self, DirectProtocol};
use crate::engine::dns::{Dns, DnsAnswer};
use crate::engine::error::ProbeError;
use crate::engine::h2::{self, Opened};
use crate::engine::planner::{self, Plan};
use crate::engine::rate::RateLimiter;
use crate::engine::snapshot::Snapshot;
use crate::engine::tls::{TlsInfo, TlsSettings};
use crate::engine::verdict::{is_healthy_status, Outcome};
use crate::watchlist::Entry;

/// Most samples kept per list in the records (a `check` with many rounds stays bounded).
const MAX_SAMPLES: usize = 1024;

/// Fresh connections an origin probe may open when the server closes the one it had.
const MAX_REOPEN: u32 = 2;

/// Requests in flight at once on one origin connection (well under any server's
/// SETTINGS_MAX_CONCURRENT_STREAMS; hyper waits for the server's limit anyway).
const STREAMS_PER_CONNECTION: usize = 8;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Path requested when the watch-file gives none.
    pub default_path: String,
    pub rounds: u32,
    pub timeout: Duration,
    /// Connections in flight at once, across all hosts.
    pub concurrency: usize,
    /// Requests per second at most, across all hosts.
    pub max_rps: u32,
    /// Connections in flight at once to one address: the monitor must not overload what it
    /// watches.
    pub per_address: usize,
    /// List the pairs linked only by the certificate too.
    pub all_pairs: bool,
    /// Targets per origin connection at most (None: every covered target, every round).
    pub max_targets: Option<usize>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            default_path: "/".into(),
            rounds: 3,
            timeout: Duration::from_secs(5),
            concurrency: 32,
            max_rps: 50,
            per_address: 8,
            all_pairs: false,
            max_targets: None,
        }
    }
}

/// A watched host with what resolving it gave.
#[derive(Debug, Clone)]
pub struct HostRecord {
    pub entry: Entry,
    /// `entry.key()` ("host:port"), made once and shared by the reports that name the host.
    pub key: Arc<str>,
    pub path: String,
    pub dns: DnsAnswer,
    pub endpoints: BTreeMap<IpAddr, Box<EndpointRecord>>,
}

/// Everything seen for one host at one of its addresses.
#[derive(Debug, Clone, Default)]
pub struct EndpointRecord {
    /// The first successful handshake with SNI = host.
    pub tls: Option<TlsInfo>,
    pub cert: Option<Result<CertSummary, String>>,
    pub handshakes: u32,
    pub handshake_errors: Vec<String>,
    pub connect_times: Vec<Duration>,
    pub tls_times: Vec<Duration>,
    /// The host requested on its own HTTP/2 connection (the first request of each origin probe).
    pub own: Vec<Outcome>,
    /// Direct requests (fresh connection, ALPN h2 + http/1.1).
    pub direct: Vec<Outcome>,
    /// HTTP/1.1 requests made when the direct answers failed.
    pub direct_http1: Vec<Outcome>,
}

/// All raw results of a run.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub hosts: Vec<HostRecord>,
    /// (origin index, target index, origin address) → requests for the target on connections
    /// opened for the origin at that address.
    pub coalesced: HashMap<(usize, usize, IpAddr), Vec<Outcome>>,
    pub connections: u64,
    pub requests: u64,
    pub rounds: u32,
}

/// For every origin, its candidate targets: other hosts on the same port whose DNS answers
/// overlap (Firefox's condition, a superset of Chromium's).
pub fn candidates(hosts: &[HostRecord]) -> Vec<Vec<usize>> {
    let mut by_addr: HashMap<(IpAddr, u16), Vec<usize>> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        for a in &h.dns.addresses {
            by_addr.entry((*a, h.entry.port)).or_default().push(i);
        }
    }
    (0..hosts.len())
        .map(|a| {
            let mut v: Vec<usize> = hosts[a]
                .dns
                .addresses
                .iter()
                .flat_map(|x| {
                    by_addr
                        .get(&(*x, hosts[a].entry.port))
                        .into_iter()
                        .flatten()
                        .copied()
                })
                .filter(|&b| b != a)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

fn push_bounded<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= MAX_SAMPLES {
        v.remove(0);
    }
    v.push(item);
}

/// One unit of probing: one fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A fresh HTTP/2 connection for host `0` at the address.
    Origin(usize, IpAddr),
    /// A direct request for host `0` at the address.
    Direct(usize, IpAddr, DirectProtocol),
}

/// What a job brought back.
pub enum JobResult {
    Origin {
        host: usize,
        addr: IpAddr,
        handshake: Result<TlsInfo, String>,
        own: Option<Outcome>,
        coalesced: Vec<(usize, Outcome)>,
        requests: u64,
    },
    Direct {
        host: usize,
        addr: IpAddr,
        protocol: DirectProtocol,
        outcome: Outcome,
    },
}

/// The probe engine for one run: shared settings, limits and counters.
pub struct Prober {
    pub dns: Arc<Dns>,
    pub tls: TlsSettings,
    pub options: CheckOptions,
    rate: RateLimiter,
    per_address: std::sync::Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    connections: AtomicU64,
}

impl Prober {
    pub fn new(dns: Dns, tls: TlsSettings, options: CheckOptions) -> Prober {
        Prober {
            dns: Arc::new(dns),
            tls,
            rate: RateLimiter::new(options.max_rps),
            options,
            per_address: Default::default(),
            connections: AtomicU64::new(0),
        }
    }

    /// Resolve every entry, run the rounds, analyse, and return the snapshot.
    pub async fn check(&self, entries: &[Entry]) -> Snapshot {
        let started = Instant::now();
        let records = self.probe(entries).await;
        analysis::analyse(&records, self.options.all_pairs, started.elapsed())
    }

    /// Resolve and probe; the raw records.
    pub async fn probe(&self, entries: &[Entry]) -> Records {
        let mut records = Records {
            hosts: self.resolve_all(entries).await,
            ..Default::default()
        };
        let plan = Plan {
            candidates: candidates(&records.hosts),
            limit: self.options.max_targets,
            ..Plan::default()
        };
        for _ in 0..self.options.rounds {
            let mut jobs = Vec::new();
            for (i, h) in records.hosts.iter().enumerate() {
                for &addr in &h.dns.addresses {
                    jobs.push(Job::Origin(i, addr));
                    jobs.push(Job::Direct(i, addr, DirectProtocol::Negotiate));
                }
            }
            // A new random order every round: behind a balancer that alternates backends per
            // connection, a fixed order would land the probe on the same backend every time.
            jobs.shuffle(&mut rand::rng());
            self.run_jobs(jobs, &mut records, &plan).await;
            records.rounds += 1;
        }
        // When the direct answers of a host fail, ask once over HTTP/1.1: it tells whether
        // only HTTP/2 is affected.
        let mut fallback = Vec::new();
        for (i, h) in records.hosts.iter().enumerate() {
            for (&addr, ep) in &h.endpoints {
                let failed = ep.direct.iter().any(|o| match o {
                    Ok(a) => !is_healthy_status(a.status) && a.version == "HTTP/2",
                    Err(_) => true,
                });
                if failed {
                    fallback.push(Job::Direct(i, addr, DirectProtocol::Http1Only));
                }
            }
        }
        self.run_jobs(fallback, &mut records, &plan).await;
        records.connections = self.connections.load(Ordering::Relaxed);
        records
    }

    pub async fn resolve_all(&self, entries: &[Entry]) -> Vec<HostRecord> {
        let dns = &self.dns;
        let default_path = &self.options.default_path;
        stream::iter(entries.iter().cloned())
            .map(|entry| async move {
                let answer = dns.resolve(&entry.host, entry.port).await;
                let endpoints = answer.addresses.iter().map(|a| (*a, Box::default())).collect();
                let path = entry.path.clone().unwrap_or_else(|| default_path.clone());
                HostRecord {
                    key: entry.key().into(),
                    entry,
                    path,
                    dns: answer,
                    endpoints,
                }
            })
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await
    }

    async fn run_jobs(&self, jobs: Vec<Job>, records: &mut Records, plan: &Plan) {
        let hosts = &records.hosts;
        let results: Vec<JobResult> = stream::iter(jobs)
            .map(|job| self.run_job(job, hosts, plan))
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        for r in results {
            records.apply(r);
        }
    }

    fn address_permit(&self, addr: IpAddr) -> Arc<Semaphore> {
        let mut map = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(addr)
            .or_insert_with(|| Arc::new(Semaphore::new(self.options.per_address.max(1))))
            .clone()
    }

    /// Forget the semaphore of `addr` when no job holds or waits for it any more, so that the
    /// map only ever holds the addresses with jobs in flight (a monitor running for weeks
    /// against names whose addresses change would otherwise grow it without end).
    fn release_address(&self, addr: IpAddr, semaphore: Arc<Semaphore>) {
        let mut map = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and `semaphore`. Clones are only made under this lock,
        // so nobody can pick it up between the check and the removal.
        if map
            .get(&addr)
            .is_some_and(|s| Arc::ptr_eq(s, &semaphore) && Arc::strong_count(s) == 2)
        {
            map.remove(&addr);
        }
    }

    /// Addresses with a per-address semaphore right now (jobs in flight or waiting).
    pub fn tracked_addresses(&self) -> usize {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub async fn run_job(&self, job: Job, hosts: &[HostRecord], plan: &Plan) -> JobResult {
        let addr = match job {
            Job::Origin(_, a) | Job::Direct(_, a, _) => a,
        };
        let semaphore = self.address_permit(addr);
        /// Gives the semaphore back to the map's pruning even when the job is cancelled.
        struct Release<'a>(&'a Prober, IpAddr, Option<Arc<Semaphore>>);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if let Some(s) = self.2.take() {
                    self.0.release_address(self.1, s);
                }
            }
        }
        let release = Release(self, addr, Some(semaphore.clone()));
        let permit = semaphore.acquire_owned().await;
        let result = self.run_job_inner(job, hosts, plan).await;
        drop(permit);
        drop(release);
        result
    }

    async fn run_job_inner(&self, job: Job, hosts: &[HostRecord], plan: &Plan) -> JobResult {
        self.connections.fetch_add(1, Ordering::Relaxed);
        match job {
            Job::Origin(host, addr) => self.origin_probe(host, addr, hosts, plan).await,
            Job::Direct(host, addr, protocol) => {
                let h = &hosts[host];
                self.rate.acquire().await;
                let outcome =
                    direct::request(&self.tls, &h.entry.host, h.entry.port, &h.path, addr, protocol)
                        .await
                        .map_err(|e| e.to_string());
                JobResult::Direct {
                    host,
                    addr,
                    protocol,
                    outcome,
                }
            }
        }
    }

    /// One fresh connection for `hosts[a]` at `addr`: request the origin itself, then every
    /// candidate target that the certificate just received covers (and is trusted, over h2),
    /// in random order.
    async fn origin_probe(&self, a: usize, addr: IpAddr, hosts: &[HostRecord], plan: &Plan) -> JobResult {
        let origin = &hosts[a];
        let sock = SocketAddr::new(addr, origin.entry.port);
        let timeout = self.options.timeout;
        let failed = |e: ProbeError| JobResult::Origin {
            host: a,
            addr,
            handshake: Err(e.to_string()),
            own: None,
            coalesced: Vec::new(),
            requests: 0,
        };
        let opened = match h2::open(&self.tls, sock, &origin.entry.host).await {
            Ok(o) => o,
            Err(e) => return failed(e),
        };
        let handshake = Ok(opened.tls.clone());
        let Some(mut conn) = opened.conn else {
            return JobResult::Origin {
                host: a,
                addr,
                handshake,
                own: None,
                coalesced: Vec::new(),
                requests: 0,
            };
        };
        // Only targets this certificate covers, and only when it is valid: a browser would
        // not coalesce anything else, so there is nothing to prove.
        let trusted = opened.tls.chain_error.is_none();
        let leaf = opened
            .tls
            .chain
            .first()
            .and_then(|der| cert::parse_leaf(der).ok());
        let covered: Vec<usize> = match (&leaf, trusted) {
            (Some(leaf), true) => plan
                .candidates
                .get(a)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&b| cert::covering_san(leaf, &hosts[b].entry.host).is_some())
                .collect(),
            _ => Vec::new(),
        };
        let targets = planner::select(
            a,
            &covered,
            plan.limit_for(a, addr),
            &plan.state,
            &mut rand::rng(),
        );
        self.rate.acquire().await;
        let mut requests = 1;
        let own = Some(
            conn.request(&origin.entry.host, origin.entry.port, &origin.path, timeout)
                .await
                .map_err(|e| e.to_string()),
        );
        let mut coalesced = Vec::with_capacity(targets.len());
        let mut reopened = 0;
        // Several targets at once on the one connection (HTTP/2 streams), a few at a time.
        for chunk in targets.chunks(STREAMS_PER_CONNECTION) {
            // A server that closes the connection after refusing one name (GOAWAY after a
            // 421, say) must not turn the remaining targets into errors: like a browser, go
            // on over a fresh connection opened for the same origin, a bounded number of times.
            if conn.is_closed() && reopened < MAX_REOPEN {
                reopened += 1;
                self.connections.fetch_add(1, Ordering::Relaxed);
                if let Ok(Opened { conn: Some(c), .. }) = h2::open(&self.tls, sock, &origin.entry.host).await
                {
                    conn = c;
                }
            }
            let conn = &conn;
            let answers = futures::future::join_all(chunk.iter().map(|&b| async move {
                let target = &hosts[b];
                self.rate.acquire().await;
                let outcome = conn
                    .request(&target.entry.host, target.entry.port, &target.path, timeout)
                    .await
                    .map_err(|e| e.to_string());
                (b, outcome)
            }))
            .await;
            requests += answers.len() as u64;
            coalesced.extend(answers);
        }
        JobResult::Origin {
            host: a,
            addr,
            handshake,
            own,
            coalesced,
            requests,
        }
    }
}

impl Records {
    /// Fold one job's result into the records (the single writer).
    pub fn apply(&mut self, result: JobResult) {
        let records = self;
        match result {
            JobResult::Origin {
                host,
                addr,
                handshake,
                own,
                coalesced,
                requests,
            } => {
                records.requests += requests;
                let Some(ep) = records.hosts[host].endpoints.get_mut(&addr) else {
                    return;
                };
                ep.handshakes += 1;
                match handshake {
                    Ok(tls) => {
                        push_bounded(&mut ep.connect_times, tls.connect_time);
                        push_bounded(&mut ep.tls_times, tls.handshake_time);
                        if ep.tls.is_none() {
                            ep.cert = tls
                                .chain
                                .first()
                                .map(|der| cert::parse_leaf(der).map_err(|e| e.to_string()));
                            ep.tls = Some(tls);
                        }
                    }
                    Err(e) => push_bounded(&mut ep.handshake_errors, e),
                }
                if let Some(o) = own {
                    push_bounded(&mut ep.own, o);
                }
                for (target, outcome) in coalesced {
                    push_bounded(
                        records.coalesced.entry((host, target, addr)).or_default(),
                        outcome,
                    );
                }
            }
            JobResult::Direct {
                host,
                addr,
                protocol,
                outcome,
            } => {
                records.requests += 1;
                let Some(ep) = records.hosts[host].endpoints.get_mut(&addr) else {
                    return;
                };
                match protocol {
                    DirectProtocol::Negotiate => push_bounded(&mut ep.direct, outcome),
                    DirectProtocol::Http1Only => push_bounded(&mut ep.direct_http1, outcome),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dns::{DnsConfig, ResolveOverride};
    use crate::engine::testsupport::{simple_server, Pki, Validity};

    #[tokio::test]
    async fn the_per_address_map_only_holds_addresses_in_flight() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test", "b.test"], Validity::Current).await;
        let port = server.addr.port();
        // b.test also resolves to addresses where nothing listens (refused at once).
        let overrides = vec![
            ResolveOverride {
                host: "a.test".into(),
                port: None,
                addrs: vec![server.addr.ip()],
            },
            ResolveOverride {
                host: "b.test".into(),
                port: None,
                addrs: vec![
                    server.addr.ip(),
                    "127.0.3.250".parse().unwrap(),
                    "127.0.3.251".parse().unwrap(),
                ],
            },
        ];
        let dns = Dns::new(DnsConfig {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            overrides,
            timeout: Duration::from_secs(2),
        })
        .expect("dns");
        let prober = Prober::new(
            dns,
            pki.settings(Duration::from_secs(2)),
            CheckOptions {
                rounds: 2,
                timeout: Duration::from_secs(2),
                ..CheckOptions::default()
            },
        );
        let entries: Vec<Entry> = ["a.test", "b.test"]
            .iter()
            .enumerate()
            .map(|(i, h)| Entry {
                host: h.to_string(),
                port,
                path: None,
                line: i + 1,
            })
            .collect();
        let records = prober.probe(&entries).await;
        assert!(records.connections >= 2 * 4);
        assert_eq!(prober.tracked_addresses(), 0, "every semaphore was released");
    }
}

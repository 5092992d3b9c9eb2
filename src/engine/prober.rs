//! The one type that runs a probe job: a fresh connection for one host at one address, within
//! the request budget and the per-address cap. An origin job opens HTTP/2 with SNI = origin,
//! requests the origin, then the targets its certificate covers (which ones, the planner's
//! `TargetPlan` chooses); a direct job requests one host on its own connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::engine::probe::cert;
use crate::engine::probe::direct;
use crate::engine::probe::dns::Dns;
use crate::engine::probe::error::{H3Code, ProbeError};
use crate::engine::probe::h2::{self, H2Connection, Opened};
use crate::engine::probe::h3;
use crate::engine::probe::h3_control::ControlSeen;
use crate::engine::probe::rate::RateLimiter;
use crate::engine::probe::signals::{OriginSet, ServerSignals};
use crate::engine::probe::tls::{TlsInfo, TlsSettings};
use crate::engine::record::{Coalesced, ConnId, ConnTraits, H3Result, HostRecord, Job, JobResult, Outcome};

/// Fresh connections an origin probe may open when the server closes the one it had.
const MAX_REOPEN: u32 = 2;
/// How long an HTTP/3 probe waits, after its first answer, for the server's control stream
/// (SETTINGS, then an ORIGIN frame) to be read, at most: the stream is sent with the first
/// answer's flight, so this covers its processing, not a round trip.
const CONTROL_WAIT: Duration = Duration::from_millis(200);

/// Requests in flight at once on one origin connection (well under any server's
/// SETTINGS_MAX_CONCURRENT_STREAMS; hyper waits for the server's limit anyway).
pub const STREAMS_PER_CONNECTION: usize = 8;

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Path requested when the watch-file gives none.
    pub default_path: String,
    pub timeout: Duration,
    /// Connections in flight at once, across all hosts.
    pub concurrency: usize,
    /// Requests per second at most, across all hosts.
    pub max_rps: u32,
    /// Connections in flight at once to one address: the monitor must not overload what it
    /// watches.
    pub per_address: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            default_path: "/".into(),
            timeout: Duration::from_secs(5),
            concurrency: 32,
            max_rps: 50,
            per_address: 8,
        }
    }
}

/// Which targets an origin connection carries: the planner's answer to the prober, asked
/// after the handshake shows which hosts the certificate covers.
pub trait TargetPlan: Send + Sync {
    /// The hosts that may ride on a connection for `origin`: those sharing an address with it
    /// (host indices of the job's list).
    fn peers(&self, origin: usize) -> &[usize];
    /// Which of `covered` (the peers the certificate covers) the connection for `origin`
    /// at `addr` carries, in the order to request them.
    fn choose(&self, origin: usize, addr: IpAddr, covered: &[usize]) -> Vec<usize>;
    /// `choose` for the HTTP/3 connection of `origin` at `addr` (the live planner may give it
    /// fewer targets than the HTTP/2 one, to fit its share of the budget).
    fn choose_h3(&self, origin: usize, addr: IpAddr, covered: &[usize]) -> Vec<usize> {
        self.choose(origin, addr, covered)
    }
    /// The hosts (indices of the job's list) that the ORIGIN frame `set` received on a
    /// connection for `origin` lists, other than the origin: Firefox pools them whatever DNS
    /// says, so they are targets too. Sorted.
    fn listed(&self, origin: usize, set: &OriginSet) -> Vec<usize> {
        let _ = (origin, set);
        Vec::new()
    }
}

/// The probe engine for one run: shared settings, limits and counters.
pub struct Prober {
    pub dns: Arc<Dns>,
    pub tls: TlsSettings,
    pub options: ProbeOptions,
    rate: RateLimiter,
    per_address: std::sync::Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    connections: AtomicU64,
    /// The last `ConnId` given out.
    conn_ids: AtomicU64,
}

impl Prober {
    pub fn new(dns: Dns, tls: TlsSettings, options: ProbeOptions) -> Prober {
        Prober {
            dns: Arc::new(dns),
            tls,
            rate: RateLimiter::new(options.max_rps),
            options,
            per_address: Default::default(),
            connections: AtomicU64::new(0),
            conn_ids: AtomicU64::new(0),
        }
    }

    /// A new connection's id (never 0).
    fn next_conn_id(&self) -> ConnId {
        ConnId(self.conn_ids.fetch_add(1, Ordering::Relaxed) + 1)
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

    /// Connections opened so far (origin reopenings included).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Addresses with a per-address semaphore right now (jobs in flight or waiting).
    #[cfg(test)]
    pub fn tracked_addresses(&self) -> usize {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub async fn run_job(&self, job: Job, hosts: &[HostRecord], plan: &dyn TargetPlan) -> JobResult {
        let addr = job.addr();
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

    async fn run_job_inner(&self, job: Job, hosts: &[HostRecord], plan: &dyn TargetPlan) -> JobResult {
        self.connections.fetch_add(1, Ordering::Relaxed);
        match job {
            Job::Origin(host, addr) => self.origin_probe(host, addr, hosts, plan).await,
            Job::OriginH3(host, addr, port) => self.origin_probe_h3(host, addr, port, hosts, plan).await,
            Job::Direct(host, addr, protocol) => {
                let h = &hosts[host];
                self.rate.acquire().await;
                let outcome =
                    direct::request(&self.tls, &h.entry.host, h.entry.port, &h.path, addr, protocol).await;
                JobResult::Direct {
                    host,
                    addr,
                    protocol,
                    outcome,
                }
            }
        }
    }

    /// One fresh connection for `hosts[a]` at `addr`: request the origin itself, then the
    /// candidate targets that the certificate just received covers (and is trusted, over h2)
    /// which the plan chooses, in its order.
    async fn origin_probe(
        &self,
        a: usize,
        addr: IpAddr,
        hosts: &[HostRecord],
        plan: &dyn TargetPlan,
    ) -> JobResult {
        let origin = &hosts[a];
        let sock = SocketAddr::new(addr, origin.entry.port);
        let result = |handshake, own, coalesced, uncovered, requests, signals| JobResult::Origin {
            host: a,
            addr,
            handshake,
            own,
            coalesced,
            uncovered,
            requests,
            signals,
        };
        let opened = match h2::open(&self.tls, sock, &origin.entry.host).await {
            Ok(o) => o,
            Err(e) => return result(Err(e), None, Vec::new(), plan.peers(a).to_vec(), 0, None),
        };
        let handshake = Ok(opened.tls.clone());
        let covered = covered_peers(&opened.tls, a, hosts, plan);
        let uncovered: Vec<usize> = plan
            .peers(a)
            .iter()
            .copied()
            // Both in the order of `peers` (sorted).
            .filter(|b| covered.binary_search(b).is_err())
            .collect();
        let Some(conn) = opened.conn else {
            return result(handshake, None, Vec::new(), uncovered, 0, None);
        };
        self.rate.acquire().await;
        let own = conn
            .request(
                &origin.entry.host,
                origin.entry.port,
                &origin.path,
                self.options.timeout,
            )
            .await;
        // An ORIGIN frame arrives right after SETTINGS, so it is in once the first answer is:
        // the names it lists ride on the connection too (Firefox pools them whatever DNS
        // says), when the certificate covers them.
        let mut covered = covered;
        if let Some(set) = conn.signals().origin {
            // Same port only: pairs across ports are never judged.
            let listed: Vec<usize> = plan
                .listed(a, &set)
                .into_iter()
                .filter(|&b| hosts[b].entry.port == origin.entry.port)
                .filter(|b| covered.binary_search(b).is_err())
                .collect();
            covered.extend(covering(&opened.tls, hosts, &listed));
            covered.sort_unstable();
        }
        let targets = plan.choose(a, addr, &covered);
        let first = Arc::new(ConnTraits::of(&opened.tls, server_of(&own)));
        let via = self.next_conn_id();
        let (coalesced, requests, signals) = self
            .request_targets((conn, first.clone(), via), sock, origin, &targets, hosts)
            .await;
        let own = Coalesced::on(own, Some(first), via);
        let signals = Some(Box::new(signals));
        result(
            handshake,
            Some(Box::new(own)),
            coalesced,
            uncovered,
            1 + requests,
            signals,
        )
    }

    /// `origin_probe` over HTTP/3: a fresh QUIC connection for `hosts[a]` at `addr`, UDP
    /// `port`, SNI = the origin; the origin requested first, then the targets the plan chooses
    /// among the peers the certificate covers, a few streams at a time, on fresh connections
    /// when the server closes or goes away (`request_targets`, as over HTTP/2).
    async fn origin_probe_h3(
        &self,
        a: usize,
        addr: IpAddr,
        port: u16,
        hosts: &[HostRecord],
        plan: &dyn TargetPlan,
    ) -> JobResult {
        let opened = match h3::open(&self.tls, SocketAddr::new(addr, port), &hosts[a].entry.host).await {
            Ok(o) => o,
            Err(e) => return JobResult::OriginH3(Box::new(H3Result::failed(a, addr, port, e))),
        };
        let mut covered = covered_peers(&opened.tls, a, hosts, plan);
        let conn = &opened.conn;
        let (_, own) = self.request_on(conn, a, hosts).await;
        // The ORIGIN frame comes right after SETTINGS on the control stream, a stream of its
        // own that may be read after the answer: waited for briefly. As over HTTP/2, the names
        // it lists ride on the connection too when the certificate covers them (Chromium
        // pools them over HTTP/3 whatever DNS says).
        let settled = conn.settled(self.options.timeout.min(CONTROL_WAIT)).await;
        if let ControlSeen::Read(Some(set)) = &settled {
            let port = hosts[a].entry.port;
            let listed: Vec<usize> = plan
                .listed(a, set)
                .into_iter()
                .filter(|&b| hosts[b].entry.port == port)
                .filter(|b| covered.binary_search(b).is_err())
                .collect();
            covered.extend(covering(&opened.tls, hosts, &listed));
            covered.sort_unstable();
        }
        let targets = plan.choose_h3(a, addr, &covered);
        let traits = Arc::new(ConnTraits::of(&opened.tls, server_of(&own)));
        let via = self.next_conn_id();
        let sock = SocketAddr::new(addr, port);
        let (coalesced, requests, control) = self
            .request_targets(
                (opened.conn, traits.clone(), via),
                sock,
                &hosts[a],
                &targets,
                hosts,
            )
            .await;
        JobResult::OriginH3(Box::new(H3Result {
            host: a,
            addr,
            port,
            handshake: Ok(opened.tls),
            own: Some(Box::new(Coalesced::on(own, Some(traits), via))),
            requests: 1 + requests,
            coalesced,
            // Read again once the requests are done: the frame may have come since.
            control,
        }))
    }

    /// Request `hosts[b]` on `conn`, within the rate limit and the probe's timeout.
    async fn request_on(&self, conn: &impl Carries, b: usize, hosts: &[HostRecord]) -> (usize, Outcome) {
        let target = &hosts[b];
        self.rate.acquire().await;
        let outcome = conn
            .request(
                &target.entry.host,
                target.entry.port,
                &target.path,
                self.options.timeout,
            )
            .await;
        (b, outcome)
    }

    /// Request `targets` on the origin's connection, a few streams in flight at a time. A server that
    /// closes the connection after refusing one name (GOAWAY after a 421, say) must not turn
    /// the remaining targets into errors: like a browser, go on over a fresh connection opened
    /// for the same origin, a bounded number of times. Returns the answers and the requests
    /// made, each with the traits of the connection it went on, and what the server signalled
    /// on the first connection (taken once its requests ended: ORIGIN frames come right after
    /// SETTINGS, so they are in by then). A reopened connection asks for the origin first
    /// too, so that its traits are taken the way the first one's were (the `Server` header of
    /// the origin's answer). The same over HTTP/2 and HTTP/3 (`sock`: TCP or UDP).
    async fn request_targets<C: Reopens>(
        &self,
        (mut conn, mut traits, mut via): (C, Arc<ConnTraits>, ConnId),
        sock: SocketAddr,
        origin: &HostRecord,
        targets: &[usize],
        hosts: &[HostRecord],
    ) -> (Vec<(usize, Coalesced)>, u64, C::Signals) {
        let timeout = self.options.timeout;
        let mut coalesced = Vec::with_capacity(targets.len());
        let mut requests = 0;
        let mut reopened = 0;
        // Targets still to request, and those left unprocessed by a GOAWAY once already.
        let mut queue: std::collections::VecDeque<usize> = targets.iter().copied().collect();
        let mut retried: Vec<usize> = Vec::new();
        // The server sent GOAWAY: this connection takes no new streams, whether or not its
        // task has noticed the close yet.
        let mut going_away = false;
        let mut first_signals = None;
        while !queue.is_empty() {
            if (conn.closed() || going_away) && reopened < MAX_REOPEN {
                first_signals.get_or_insert_with(|| conn.signals());
                going_away = false;
                reopened += 1;
                self.connections.fetch_add(1, Ordering::Relaxed);
                if let Some((c, tls)) = C::reopen(&self.tls, sock, &origin.entry.host).await {
                    conn = c;
                    self.rate.acquire().await;
                    let own = conn
                        .request(&origin.entry.host, origin.entry.port, &origin.path, timeout)
                        .await;
                    requests += 1;
                    traits = Arc::new(ConnTraits::of(&tls, server_of(&own)));
                    via = self.next_conn_id();
                }
            }
            // Up to STREAMS_PER_CONNECTION requests in flight, a new one as each ends (as
            // h2load -m does), until the queue is empty or the server goes away (then the
            // ones in flight end, and the loop above reopens).
            let conn = &conn;
            let request = |b: usize| self.request_on(conn, b, hosts);
            let mut in_flight = futures::stream::FuturesUnordered::new();
            loop {
                while in_flight.len() < STREAMS_PER_CONNECTION && !(going_away && reopened < MAX_REOPEN) {
                    let Some(b) = queue.pop_front() else { break };
                    in_flight.push(request(b));
                }
                let Some((b, outcome)) = in_flight.next().await else {
                    break;
                };
                requests += 1;
                // A GOAWAY left this request unprocessed: the server closed the connection,
                // maybe over another target in flight (a 421 for it, then GOAWAY). A browser
                // retries such a request on a new connection; so does the probe, once, while
                // it may reopen, and only a request unprocessed again is a refusal of this
                // target.
                let unprocessed = C::unprocessed(&outcome);
                going_away |= unprocessed;
                if unprocessed && reopened < MAX_REOPEN && !retried.contains(&b) {
                    retried.push(b);
                    queue.push_front(b);
                    continue;
                }
                coalesced.push((b, Coalesced::on(outcome, Some(traits.clone()), via)));
            }
        }
        let signals = first_signals.unwrap_or_else(|| conn.signals());
        (coalesced, requests, signals)
    }
}

/// A connection an origin probe replaces with a fresh one for the same origin when the server
/// closes it or goes away: HTTP/2 or HTTP/3.
trait Reopens: Carries + Sized + Send {
    /// What the server signalled on the connection.
    type Signals;
    /// A fresh connection to `sock` with SNI = `sni`, and its handshake (None: it could not
    /// be opened, or did not negotiate the protocol).
    fn reopen(
        tls: &TlsSettings,
        sock: SocketAddr,
        sni: &str,
    ) -> impl std::future::Future<Output = Option<(Self, TlsInfo)>> + Send;
    /// True when the connection can no longer carry requests.
    fn closed(&self) -> bool;
    fn signals(&self) -> Self::Signals;
    /// The server left this request unprocessed because it is going away: a fresh connection
    /// may carry it.
    fn unprocessed(outcome: &Outcome) -> bool;
}

impl Reopens for H2Connection {
    type Signals = ServerSignals;

    async fn reopen(tls: &TlsSettings, sock: SocketAddr, sni: &str) -> Option<(Self, TlsInfo)> {
        match h2::open(tls, sock, sni).await {
            Ok(Opened { conn: Some(c), tls }) => Some((c, tls)),
            _ => None,
        }
    }

    fn closed(&self) -> bool {
        self.is_closed()
    }

    fn signals(&self) -> ServerSignals {
        H2Connection::signals(self)
    }

    /// The h2 crate gives a request the server's GOAWAY only when its stream was above the
    /// frame's last stream id (see `Refusal::GoAway`).
    fn unprocessed(outcome: &Outcome) -> bool {
        matches!(outcome, Err(ProbeError::GoAway { by_client: false, .. }))
    }
}

impl Reopens for h3::H3Connection {
    type Signals = ControlSeen;

    async fn reopen(tls: &TlsSettings, sock: SocketAddr, sni: &str) -> Option<(Self, TlsInfo)> {
        h3::open(tls, sock, sni).await.ok().map(|o| (o.conn, o.tls))
    }

    fn closed(&self) -> bool {
        self.is_closed()
    }

    fn signals(&self) -> ControlSeen {
        self.control_seen()
    }

    /// Not sent because the server's GOAWAY had come (RFC 9114 §5.2), or still waiting when
    /// the server closed the connection without an error (it does so once the requests it
    /// took are answered). `H3_REQUEST_REJECTED` is a refusal of its own, not retried (as
    /// HTTP/2's `REFUSED_STREAM` is not).
    fn unprocessed(outcome: &Outcome) -> bool {
        matches!(
            outcome,
            Err(ProbeError::H3GoAway
                | ProbeError::H3Closed {
                    code: H3Code::NO_ERROR,
                    by_client: false,
                })
        )
    }
}

/// A connection that carries requests for any authority: HTTP/2 or HTTP/3.
trait Carries: Sync {
    fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Outcome> + Send;
}

impl Carries for H2Connection {
    fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Outcome> + Send {
        H2Connection::request(self, host, port, path, timeout)
    }
}

impl Carries for h3::H3Connection {
    fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Outcome> + Send {
        h3::H3Connection::request(self, host, port, path, timeout)
    }
}

/// The `Server` header of the origin's answer on a connection: part of the connection's
/// traits (the same way on every connection, so one backend is one set of traits).
fn server_of(own: &Outcome) -> Option<&str> {
    own.as_ref().ok().and_then(|a| a.server.as_deref())
}

/// The peers of origin `a` (hosts sharing an address with it) that the certificate of its handshake covers. None when the
/// chain is not trusted: a browser would not coalesce anything onto it, so there is nothing
/// to prove.
fn covered_peers(tls: &TlsInfo, a: usize, hosts: &[HostRecord], plan: &dyn TargetPlan) -> Vec<usize> {
    covering(tls, hosts, plan.peers(a))
}

/// The hosts of `candidates` that the certificate of the handshake `tls` covers, in their
/// order; none when the chain is not trusted.
fn covering(tls: &TlsInfo, hosts: &[HostRecord], candidates: &[usize]) -> Vec<usize> {
    if tls.chain_error.is_some() || candidates.is_empty() {
        return Vec::new();
    }
    let Some(leaf) = tls.chain.first().and_then(|der| cert::parse_leaf(der).ok()) else {
        return Vec::new();
    };
    candidates
        .iter()
        .copied()
        .filter(|&b| cert::covering_san(&leaf, &hosts[b].entry.host).is_some())
        .collect()
}

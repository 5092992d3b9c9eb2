//! What the probes produce: one job is one fresh connection, its result is what came back,
//! and the records are those results gathered per host, address and pair. `check` keeps them
//! for one run (`Records`); the live store keeps them timestamped over the window and shapes
//! them as `Records` again for the judgement. Plain data: nothing here touches the network.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::probe::cert::{self, CertError, CertSummary};
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::probe::dns::DnsAnswer;
use crate::engine::probe::error::ProbeError;
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::probe::h3_control::ControlSeen;
use crate::engine::probe::page::PageSketch;
use crate::engine::probe::signals::{OriginSet, ServerSignals};
use crate::engine::probe::tls::TlsInfo;
use crate::watchlist::Entry;

/// What one request produced: an answer, or why there was none.
pub type Outcome = Result<HttpAnswer, ProbeError>;

/// What tells the backend behind one connection apart from another behind the same address.
/// One per connection, shared (`Arc`) by every request made on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnTraits {
    /// SHA-256 of the leaf certificate the connection was served (zero without one).
    pub cert_sha256: [u8; 32],
    /// The `Server` header of the first answer on the connection (untrusted text).
    pub server: Option<String>,
    pub tls_version: String,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
}

impl ConnTraits {
    /// The traits of a connection with handshake `tls`, whose first answer said `server`.
    pub fn of(tls: &TlsInfo, server: Option<&str>) -> ConnTraits {
        use sha2::{Digest, Sha256};
        let cert_sha256 = tls
            .chain
            .first()
            .map(|der| Sha256::digest(der.as_ref()).into())
            .unwrap_or([0; 32]);
        ConnTraits {
            cert_sha256,
            server: server.map(str::to_string),
            tls_version: tls.version.clone(),
            cipher: tls.cipher.clone(),
            alpn: tls.alpn.clone(),
        }
    }
}

/// Which connection a request went on: unique per connection opened by one prober (from 1;
/// 0 = unknown, e.g. in synthetic records, and never equal to another).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    /// Known to be the same connection as `other`.
    pub fn same_as(self, other: ConnId) -> bool {
        self.0 != 0 && self.0 == other.0
    }
}

/// A request on a connection opened for an origin (for a target, or for the origin itself):
/// what came back, and the connection it went on (None / `ConnId(0)` where that is unknown,
/// e.g. in synthetic records).
#[derive(Debug, Clone)]
pub struct Coalesced {
    pub outcome: Outcome,
    pub conn: Option<Arc<ConnTraits>>,
    pub via: ConnId,
}

impl Coalesced {
    pub fn new(outcome: Outcome, conn: Option<Arc<ConnTraits>>) -> Coalesced {
        Coalesced {
            outcome,
            conn,
            via: ConnId::default(),
        }
    }

    /// The same, on connection `via`.
    pub fn on(outcome: Outcome, conn: Option<Arc<ConnTraits>>, via: ConnId) -> Coalesced {
        Coalesced { outcome, conn, via }
    }
}

/// One unit of probing: one fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A fresh HTTP/2 connection for host `0` at the address.
    Origin(usize, IpAddr),
    /// A direct request for host `0` at the address.
    Direct(usize, IpAddr, DirectProtocol),
    /// A fresh HTTP/3 connection (QUIC) for host `0` at the address, on the UDP port its
    /// advertisement names (`h3_advert`).
    OriginH3(usize, IpAddr, u16),
}

impl Job {
    /// The address the job connects to.
    pub fn addr(&self) -> IpAddr {
        match *self {
            Job::Origin(_, a) | Job::Direct(_, a, _) | Job::OriginH3(_, a, _) => a,
        }
    }
}

/// What a job brought back.
pub enum JobResult {
    Origin {
        host: usize,
        addr: IpAddr,
        handshake: Result<TlsInfo, ProbeError>,
        /// The origin requested on its connection (the first request): its direct answer.
        own: Option<Box<Coalesced>>,
        coalesced: Vec<(usize, Coalesced)>,
        /// The origin's peers (`TargetPlan::peers`) its certificate did not cover (all of
        /// them when the handshake failed or the chain is not trusted): none can ride on its
        /// connections, which the live planner remembers.
        uncovered: Vec<usize>,
        requests: u64,
        /// What the server sent on the (first) connection besides answers: ORIGIN and ALTSVC
        /// frames, Alt-Svc headers. None when no HTTP/2 connection was made.
        signals: Option<Box<ServerSignals>>,
    },
    Direct {
        host: usize,
        addr: IpAddr,
        protocol: DirectProtocol,
        outcome: Outcome,
    },
    OriginH3(Box<H3Result>),
}

/// What an HTTP/3 origin job brought back: as `JobResult::Origin`, over QUIC; of the server's
/// signals, the ORIGIN frame of its control stream (RFC 9412).
pub struct H3Result {
    pub host: usize,
    pub addr: IpAddr,
    /// The UDP port probed.
    pub port: u16,
    pub handshake: Result<TlsInfo, ProbeError>,
    pub own: Option<Box<Coalesced>>,
    pub coalesced: Vec<(usize, Coalesced)>,
    pub requests: u64,
    /// What the server's control stream said of ORIGIN (`Unknown`: its SETTINGS were not
    /// read, or no connection).
    pub control: ControlSeen,
}

impl H3Result {
    /// A job whose QUIC connection could not be opened.
    pub fn failed(host: usize, addr: IpAddr, port: u16, error: ProbeError) -> H3Result {
        H3Result {
            host,
            addr,
            port,
            handshake: Err(error),
            own: None,
            coalesced: Vec::new(),
            requests: 0,
            control: ControlSeen::Unknown,
        }
    }
}

/// Most samples kept per list in the records (a `check` with many rounds stays bounded).
const MAX_SAMPLES: usize = 1024;

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

impl HostRecord {
    /// The host's reference answers for a coalesced request at `addr`: its answers there when
    /// it resolves to `addr`, else at all its addresses (`EndpointRecord::references`).
    pub fn references_at(&self, addr: &IpAddr) -> Vec<&Outcome> {
        match self.endpoints.get(addr) {
            Some(ep) => ep.references().collect(),
            None => self.endpoints.values().flat_map(|ep| ep.references()).collect(),
        }
    }
}

/// Everything seen for one host at one of its addresses.
#[derive(Debug, Clone, Default)]
pub struct EndpointRecord {
    /// The first successful handshake with SNI = host.
    pub tls: Option<TlsInfo>,
    /// The leaf of `tls`, parsed (None: the server sent no certificate).
    pub cert: Option<Result<CertSummary, CertError>>,
    pub handshakes: u32,
    pub handshake_errors: Vec<ProbeError>,
    /// The live engine's latest handshake here failed: the address is down now. The samples
    /// judged at it are from before, so a pair coalescing here is judged `error` with this
    /// error until a handshake succeeds again (its samples stay as history). None while the
    /// address is up, and in `check` runs (judged on their rounds as a whole).
    pub down: Option<ProbeError>,
    pub connect_times: Vec<Duration>,
    pub tls_times: Vec<Duration>,
    /// The host requested on its own HTTP/2 connection (the first request of each origin
    /// probe): its direct answers, each with the connection it went on (the coalesced requests
    /// of that connection share it, which matters when this host's page is compared with
    /// them).
    pub own: Vec<Coalesced>,
    /// Direct requests on connections of their own (fresh connection, ALPN h2 + http/1.1): made
    /// only when the origin probes brought no answer for the host, or when a page comparison
    /// needs one from another connection.
    pub direct: Vec<Outcome>,
    /// HTTP/1.1 requests made when the direct answers failed.
    pub direct_http1: Vec<Outcome>,
    /// What the server sent besides answers on the latest HTTP/2 connection for this host
    /// here (ORIGIN set, Alt-Svc). None before the first one.
    pub signals: Option<Box<ServerSignals>>,
    /// What HTTP/3 connections for this host here brought; None when none was opened (not
    /// advertised, or HTTP/3 turned off).
    pub h3: Option<Box<H3Record>>,
}

/// The HTTP/3 side of an endpoint: the UDP port probed, its handshakes and the host's own
/// answers over it. The coalesced ones are in `Records::coalesced_h3`.
#[derive(Debug, Clone, Default)]
pub struct H3Record {
    pub port: u16,
    pub handshakes: u32,
    pub handshake_errors: Vec<ProbeError>,
    pub own: Vec<Coalesced>,
    /// The ORIGIN frames (RFC 9412) of the latest HTTP/3 connection whose control stream was
    /// read: Chromium pools the names they list over HTTP/3 whatever DNS says.
    pub origin: Option<OriginSet>,
}

/// Where a host says it serves HTTP/3 at one of its addresses: an Alt-Svc alternative for the
/// same host (header or ALTSVC frame, on its latest HTTP/2 connection there), else an HTTPS
/// record of the name itself whose `alpn` lists h3. The UDP port to probe, or None.
pub fn h3_advert(host: &HostRecord, ep: &EndpointRecord) -> Option<u16> {
    let same_host = |h: &Option<String>| {
        h.as_deref()
            .is_none_or(|h| h.is_empty() || h.eq_ignore_ascii_case(&host.entry.host))
    };
    let alt = ep.signals.as_ref().filter(|s| !s.alt_svc_clear).and_then(|s| {
        s.alt_svc
            .iter()
            .find(|a| a.protocol == "h3" && same_host(&a.host))
            .map(|a| a.port)
    });
    alt.or_else(|| {
        host.dns
            .https
            .iter()
            .filter(|r| {
                r.is_service() && (r.target.is_empty() || r.target.eq_ignore_ascii_case(&host.entry.host))
            })
            .find(|r| r.alpn.iter().any(|p| p == "h3"))
            .map(|r| r.port.unwrap_or(host.entry.port))
    })
}

impl EndpointRecord {
    /// The certificate of the first successful handshake, when it could be parsed.
    pub fn leaf(&self) -> Option<&CertSummary> {
        self.cert.as_ref().and_then(|c| c.as_ref().ok())
    }

    /// The host's answers on connections opened for it: its own-connection answers, then its
    /// direct ones. The reference every coalesced answer for it is compared with.
    pub fn references(&self) -> impl Iterator<Item = &Outcome> + Clone {
        self.own.iter().map(|c| &c.outcome).chain(&self.direct)
    }
}

/// All raw results of a run.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub hosts: Vec<HostRecord>,
    /// (origin index, target index, origin address) → requests for the target on connections
    /// opened for the origin at that address.
    pub coalesced: HashMap<(usize, usize, IpAddr), Vec<Coalesced>>,
    /// The same over HTTP/3 (connections opened for the origin over QUIC).
    pub coalesced_h3: HashMap<(usize, usize, IpAddr), Vec<Coalesced>>,
    pub connections: u64,
    pub requests: u64,
    pub rounds: u32,
    /// One page sketch per distinct body, shared by the answers that carry it.
    pub pages: PageCache,
}

/// Most distinct pages whose sketch is shared (beyond, answers keep their own).
const MAX_PAGES: usize = 1 << 16;

/// Equal bodies have equal sketches: a run sees the same pages again and again (every request
/// for a target, on every origin's connection), so answers share one copy, found by the body's
/// digest. Bounded by `MAX_PAGES`.
#[derive(Debug, Clone, Default)]
pub struct PageCache(HashMap<u64, Arc<PageSketch>>);

impl PageCache {
    /// Point the outcome's sketch at the shared copy of an equal one (or make it the shared
    /// copy).
    pub fn share(&mut self, outcome: &mut Outcome) {
        let Ok(answer) = outcome else { return };
        let Some(page) = &answer.page else { return };
        let Some(key) = answer
            .body_digest
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            return;
        };
        match self.0.get(&key) {
            // Compared, not assumed: two bodies whose digests share 64 bits keep their own.
            Some(shared) if **shared == **page => answer.page = Some(shared.clone()),
            Some(_) => {}
            None if self.0.len() < MAX_PAGES => {
                self.0.insert(key, page.clone());
            }
            None => {}
        }
    }
}

fn push_bounded<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= MAX_SAMPLES {
        v.remove(0);
    }
    v.push(item);
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
                signals,
                ..
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
                            ep.cert = tls.chain.first().map(|der| cert::parse_leaf(der));
                            ep.tls = Some(tls);
                        }
                    }
                    Err(e) => push_bounded(&mut ep.handshake_errors, e),
                }
                if signals.is_some() {
                    ep.signals = signals;
                }
                if let Some(mut o) = own {
                    records.pages.share(&mut o.outcome);
                    push_bounded(&mut ep.own, *o);
                }
                for (target, mut sample) in coalesced {
                    records.pages.share(&mut sample.outcome);
                    push_bounded(records.coalesced.entry((host, target, addr)).or_default(), sample);
                }
            }
            JobResult::Direct {
                host,
                addr,
                protocol,
                mut outcome,
            } => {
                records.requests += 1;
                records.pages.share(&mut outcome);
                let Some(ep) = records.hosts[host].endpoints.get_mut(&addr) else {
                    return;
                };
                match protocol {
                    DirectProtocol::Negotiate => push_bounded(&mut ep.direct, outcome),
                    DirectProtocol::Http1Only => push_bounded(&mut ep.direct_http1, outcome),
                }
            }
            JobResult::OriginH3(h3) => records.apply_h3(*h3),
        }
    }

    /// `apply` for an HTTP/3 origin job.
    fn apply_h3(&mut self, r: H3Result) {
        self.requests += r.requests;
        let Some(ep) = self.hosts[r.host].endpoints.get_mut(&r.addr) else {
            return;
        };
        let h3 = ep.h3.get_or_insert_with(Box::default);
        h3.port = r.port;
        h3.handshakes += 1;
        if let ControlSeen::Read(origin) = r.control {
            h3.origin = origin;
        }
        if let Err(e) = r.handshake {
            push_bounded(&mut h3.handshake_errors, e);
        }
        if let Some(mut o) = r.own {
            self.pages.share(&mut o.outcome);
            push_bounded(&mut h3.own, *o);
        }
        for (target, mut sample) in r.coalesced {
            self.pages.share(&mut sample.outcome);
            let samples = self.coalesced_h3.entry((r.host, target, r.addr)).or_default();
            push_bounded(samples, sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::synth::answer;

    /// An answer with `body` whose digest is `digest` (hex, as the probes write it).
    fn page_answer(body: &str, digest: &str) -> Outcome {
        let mut o = answer(200, body);
        if let Ok(a) = &mut o {
            a.body_digest = digest.repeat(4);
        }
        o
    }

    fn host(
        name: &str,
        alt_svc: &[(&str, Option<&str>, u16)],
        https_alpn: &[&str],
    ) -> (HostRecord, EndpointRecord) {
        use crate::engine::probe::dns::HttpsRecord;
        use crate::engine::probe::signals::{AltService, AltSvcSource};
        let entry = Entry {
            host: name.into(),
            port: 8443,
            path: None,
            line: 1,
        };
        let mut dns = DnsAnswer::default();
        if !https_alpn.is_empty() {
            dns.https.push(HttpsRecord {
                priority: 1,
                target: String::new(),
                alpn: https_alpn.iter().map(|s| s.to_string()).collect(),
                no_default_alpn: false,
                port: None,
                ipv4hint: vec![],
                ipv6hint: vec![],
                ech: false,
                ttl_s: 60,
            });
        }
        let mut signals = ServerSignals::default();
        for (protocol, host, port) in alt_svc {
            signals.add_alt_svc(AltService {
                protocol: protocol.to_string(),
                host: host.map(str::to_string),
                port: *port,
                max_age: None,
                source: AltSvcSource::Header,
            });
        }
        let ep = EndpointRecord {
            signals: Some(Box::new(signals)),
            ..EndpointRecord::default()
        };
        let h = HostRecord {
            key: entry.key().into(),
            path: "/".into(),
            entry,
            dns,
            endpoints: BTreeMap::new(),
        };
        (h, ep)
    }

    #[test]
    fn http3_is_probed_where_the_host_itself_advertises_it() {
        let at = |alt: &[(&str, Option<&str>, u16)], https: &[&str]| {
            let (h, ep) = host("www.test", alt, https);
            h3_advert(&h, &ep)
        };
        // Alt-Svc for the same host (no host, or its own name): that UDP port.
        assert_eq!(at(&[("h3", None, 443)], &[]), Some(443));
        assert_eq!(
            at(&[("h2", None, 8443), ("h3", Some("WWW.test"), 9443)], &[]),
            Some(9443)
        );
        // Another host, a draft version, nothing: not probed (over Alt-Svc).
        assert_eq!(at(&[("h3", Some("cdn.test"), 443)], &[]), None);
        assert_eq!(at(&[("h3-29", None, 443)], &[]), None);
        assert_eq!(at(&[], &[]), None);
        // An HTTPS record of the name offering h3: its port, else the host's.
        assert_eq!(at(&[], &["h2", "h3"]), Some(8443));
        assert_eq!(at(&[], &["h2"]), None);
    }

    #[test]
    fn equal_pages_share_one_sketch_and_different_ones_do_not() {
        let mut pages = PageCache::default();
        let mut a = page_answer("page a", "0123456789abcdef");
        let mut b = page_answer("page a", "0123456789abcdef");
        let mut c = page_answer("page c", "fedcba9876543210");
        // The same 64 digest bits but another page: keeps its own sketch.
        let mut d = page_answer("page d", "0123456789abcdef");
        for o in [&mut a, &mut b, &mut c, &mut d] {
            pages.share(o);
        }
        let page = |o: &Outcome| o.as_ref().unwrap().page.clone().unwrap();
        assert!(Arc::ptr_eq(&page(&a), &page(&b)));
        assert!(!Arc::ptr_eq(&page(&a), &page(&c)));
        assert!(!Arc::ptr_eq(&page(&a), &page(&d)));
        assert_eq!(pages.0.len(), 2);
    }
}

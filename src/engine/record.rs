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
use crate::engine::probe::tls::TlsInfo;
use crate::watchlist::Entry;

/// What one request produced: an answer, or why there was none.
pub type Outcome = Result<HttpAnswer, ProbeError>;

/// One unit of probing: one fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// A fresh HTTP/2 connection for host `0` at the address.
    Origin(usize, IpAddr),
    /// A direct request for host `0` at the address.
    Direct(usize, IpAddr, DirectProtocol),
}

impl Job {
    /// The address the job connects to.
    pub fn addr(&self) -> IpAddr {
        match *self {
            Job::Origin(_, a) | Job::Direct(_, a, _) => a,
        }
    }
}

/// What a job brought back.
pub enum JobResult {
    Origin {
        host: usize,
        addr: IpAddr,
        handshake: Result<TlsInfo, ProbeError>,
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

/// Everything seen for one host at one of its addresses.
#[derive(Debug, Clone, Default)]
pub struct EndpointRecord {
    /// The first successful handshake with SNI = host.
    pub tls: Option<TlsInfo>,
    /// The leaf of `tls`, parsed (None: the server sent no certificate).
    pub cert: Option<Result<CertSummary, CertError>>,
    pub handshakes: u32,
    pub handshake_errors: Vec<ProbeError>,
    pub connect_times: Vec<Duration>,
    pub tls_times: Vec<Duration>,
    /// The host requested on its own HTTP/2 connection (the first request of each origin probe).
    pub own: Vec<Outcome>,
    /// Direct requests (fresh connection, ALPN h2 + http/1.1).
    pub direct: Vec<Outcome>,
    /// HTTP/1.1 requests made when the direct answers failed.
    pub direct_http1: Vec<Outcome>,
}

impl EndpointRecord {
    /// The certificate of the first successful handshake, when it could be parsed.
    pub fn leaf(&self) -> Option<&CertSummary> {
        self.cert.as_ref().and_then(|c| c.as_ref().ok())
    }
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

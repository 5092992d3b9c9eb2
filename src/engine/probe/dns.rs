//! Name resolution with hickory-resolver: A and AAAA, the CNAME chain, TTLs, and the HTTPS
//! records (RFC 9460) asked at the same time; custom nameservers (UDP with TCP fallback on
//! truncation) and `--resolve` overrides. AliasMode HTTPS records are kept, not followed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::svcb::{SvcParamValue, SVCB};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;

/// A fixed answer for a name, like curl's `--resolve HOST[:PORT]:ADDR[,ADDR…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOverride {
    /// Normalised host (lower-case A-labels, no trailing dot).
    pub host: String,
    /// None: applies to every port.
    pub port: Option<u16>,
    pub addrs: Vec<IpAddr>,
}

/// The watch-file's normalisation (IDN → A-labels, lower case, no trailing dot), so that an
/// override matches the entry it is meant for; a name it refuses is kept lower-cased, and
/// then simply never matches.
fn normalize_host(host: &str) -> String {
    crate::watchlist::normalize_host(host.trim()).unwrap_or_else(|_| host.trim().to_ascii_lowercase())
}

fn parse_addr_list(list: &str) -> Result<Vec<IpAddr>, String> {
    if list.trim().is_empty() {
        return Err("missing address list after the host".to_string());
    }
    list.split(',')
        .map(|part| {
            let part = part.trim();
            let bare = part
                .strip_prefix('[')
                .and_then(|p| p.strip_suffix(']'))
                .unwrap_or(part);
            bare.parse::<IpAddr>()
                .map_err(|_| format!("invalid address {part:?}"))
        })
        .collect()
}

impl std::str::FromStr for ResolveOverride {
    type Err = String;
    /// Parses `HOST[:PORT]:ADDR[,ADDR…]`; IPv6 addresses may be bracketed (`[::1]`).
    ///
    /// Unbracketed IPv6 addresses are accepted where the split is unambiguous; when both
    /// `HOST:PORT:ADDRS` and `HOST:ADDRS` would parse (`h:2001:db8::1`), it is an error
    /// asking for brackets.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected HOST[:PORT]:ADDR[,ADDR...]"))?;
        if host.trim().is_empty() {
            return Err(format!("{s:?}: empty host"));
        }
        let host =
            crate::watchlist::normalize_host(host.trim()).map_err(|e| format!("{s:?}: invalid host: {e}"))?;
        if host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '[' | ']' | ',' | '@'))
        {
            return Err(format!("{s:?}: invalid host {host:?}"));
        }
        // "443:ADDRS" (port reading) or "ADDRS" (whole reading): with unbracketed IPv6
        // addresses both may parse ("2001:db8::1" is also port 2001 + "db8::1").
        if let Some((first, after)) = rest.split_once(':') {
            if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
                let port = first
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{s:?}: invalid port {first:?}"));
                let with_port = port.and_then(|port| {
                    parse_addr_list(after)
                        .map(|addrs| (port, addrs))
                        .map_err(|e| format!("{s:?}: {e}"))
                });
                return match (with_port, parse_addr_list(rest)) {
                    (Ok(_), Ok(_)) => Err(format!(
                        "{s:?}: ambiguous, write IPv6 addresses in brackets \
                         (HOST:PORT:[ADDR] or HOST:[ADDR])"
                    )),
                    (Ok((port, addrs)), Err(_)) => Ok(ResolveOverride {
                        host,
                        port: Some(port),
                        addrs,
                    }),
                    (Err(_), Ok(addrs)) => Ok(ResolveOverride {
                        host,
                        port: None,
                        addrs,
                    }),
                    (Err(e), Err(_)) => Err(e),
                };
            }
        }
        let addrs = parse_addr_list(rest).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(ResolveOverride {
            host,
            port: None,
            addrs,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Nameservers to ask instead of the system's resolv.conf; empty = system config.
    pub nameservers: Vec<SocketAddr>,
    pub overrides: Vec<ResolveOverride>,
    /// Bound on each query.
    pub timeout: Duration,
}

/// What resolving one name gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsAnswer {
    /// Sorted (IPv4 first, then IPv6) and without duplicates.
    pub addresses: Vec<IpAddr>,
    /// The CNAME chain followed from the name, in order (names without trailing dot).
    pub cnames: Vec<String>,
    /// Smallest TTL seen in the answer, None for overrides and IP literals.
    pub ttl_s: Option<u32>,
    /// "NXDOMAIN", "SERVFAIL", "timed out after 5s", "no A/AAAA records", ...; None on success.
    pub error: Option<String>,
    /// What kind of failure `error` says (None on success).
    pub failure: Option<DnsFailure>,
    /// The lookups of this name fail for now and this is the last good answer, still used
    /// until its TTL plus the grace (the live engine's store sets it; never a resolver).
    pub stale: Option<StaleDns>,
    /// The answer came from a `--resolve` override (or the host is an IP literal).
    pub overridden: bool,
    /// Time the lookup took.
    pub elapsed: Duration,
    /// Addresses left out because the answer had more than `MAX_ADDRESSES` (0 normally).
    pub dropped: usize,
    /// The name's HTTPS records (RFC 9460, type 65), in priority order, at most
    /// `MAX_HTTPS_RECORDS`. Empty when there are none, for overrides and IP literals.
    pub https: Vec<HttpsRecord>,
    /// Why the HTTPS query failed (a timeout, SERVFAIL); None when it answered, with records
    /// or without. Never makes the name fail: browsers go on with A/AAAA.
    pub https_error: Option<String>,
}

/// Why a lookup gave no address, as far as a cached answer is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFailure {
    /// The name does not exist: an authoritative answer, so a cached answer (whose TTL has
    /// run out when the engine asks again) is not kept beyond it.
    NxDomain,
    /// NOERROR without an A/AAAA record.
    NoData,
    ServFail,
    /// Another response code (REFUSED, …).
    Refused,
    Timeout,
    /// No nameserver reachable, an I/O error.
    Network,
    /// A CNAME loop or an invalid name: wrong by construction.
    Invalid,
}

impl DnsFailure {
    /// Does a browser go on using its last good answer (until TTL + grace) after this? Yes
    /// for the failures an outage gives (no answer, SERVFAIL, REFUSED, timeouts, network);
    /// no for a definitive NXDOMAIN or a broken name.
    pub fn keeps_last_answer(self) -> bool {
        !matches!(self, DnsFailure::NxDomain | DnsFailure::Invalid)
    }

    /// The most telling first, when A and AAAA fail differently.
    fn rank(self) -> u8 {
        match self {
            DnsFailure::NxDomain | DnsFailure::Invalid => 0,
            DnsFailure::ServFail => 1,
            DnsFailure::Refused => 2,
            DnsFailure::Timeout => 3,
            DnsFailure::Network => 4,
            DnsFailure::NoData => 5,
        }
    }
}

/// A last good answer kept while the lookups fail (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleDns {
    /// The first failed lookup.
    pub since: i64,
    /// TTL + grace after the good answer: then the failure counts (`dns-error`).
    pub until: i64,
    /// The latest lookup's error.
    pub error: String,
}

/// Most HTTPS records kept per name.
pub const MAX_HTTPS_RECORDS: usize = 16;

/// One HTTPS record (RFC 9460): where and how a client may reach the name's service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpsRecord {
    /// SvcPriority: 0 = AliasMode, else ServiceMode (lower first).
    pub priority: u16,
    /// TargetName without the trailing dot; "." (the owner name itself) is written as "".
    pub target: String,
    /// `alpn` SvcParam ids, as listed ("h3", "h2").
    pub alpn: Vec<String>,
    /// `no-default-alpn`: the implicit "http/1.1" does not apply.
    pub no_default_alpn: bool,
    pub port: Option<u16>,
    pub ipv4hint: Vec<std::net::Ipv4Addr>,
    pub ipv6hint: Vec<std::net::Ipv6Addr>,
    /// An `ech` SvcParam is present (its config is not kept).
    pub ech: bool,
    pub ttl_s: u32,
}

impl HttpsRecord {
    /// A ServiceMode record (priority > 0).
    pub fn is_service(&self) -> bool {
        self.priority > 0
    }

    /// The record's alpn set offers HTTP/2.
    pub fn offers_h2(&self) -> bool {
        self.alpn.iter().any(|p| p == "h2")
    }

    /// The record's alpn set offers HTTP/3 (`h3` or a draft `h3-NN`).
    pub fn offers_h3(&self) -> bool {
        self.alpn.iter().any(|p| p == "h3" || p.starts_with("h3-"))
    }
}

/// Most addresses probed per name: a name with hundreds of A records would otherwise cost
/// hundreds of connections per round. The first ones in `addresses` order are kept (IPv4
/// first, numeric order), so the selection is stable while a server rotates its answers.
pub const MAX_ADDRESSES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot read the system resolver configuration: {0}")]
    System(String),
}

pub struct Dns {
    resolver: TokioResolver,
    overrides: Vec<ResolveOverride>,
    timeout: Duration,
}

const RESOLV_CONF: &str = "/etc/resolv.conf";

/// `nameserver` lines of a resolv.conf (port 53). hickory's parser needs its
/// `system-config` feature, which this crate leaves off.
fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            // fe80::1%eth0: the zone cannot be expressed in an IpAddr; drop it.
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

impl Dns {
    pub fn new(config: DnsConfig) -> Result<Self, DnsSetupError> {
        let system = config.nameservers.is_empty();
        let nameservers = if system {
            let text = std::fs::read_to_string(RESOLV_CONF)
                .map_err(|e| DnsSetupError::System(format!("{RESOLV_CONF}: {e}")))?;
            let servers = parse_resolv_conf(&text);
            if servers.is_empty() {
                // What the C library does without a nameserver line.
                vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)]
            } else {
                servers
            }
        } else {
            config.nameservers.clone()
        };

        let name_servers = nameservers
            .iter()
            .map(|server| {
                // UDP first; a truncated answer is asked again over TCP.
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = 1;
        // hickory already retransmits over UDP and falls back to TCP within one attempt; a
        // silent server costs about 2 × timeout.
        // Every probe round wants a fresh answer (servers rotate multi-address answers).
        opts.cache_size = 0;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.preserve_intermediates = true;
        opts.ndots = 0;
        // /etc/hosts counts when the system's resolver is stood in for, as for a browser.
        opts.use_hosts_file = if system {
            ResolveHosts::Auto
        } else {
            ResolveHosts::Never
        };
        let resolver = builder
            .build()
            .map_err(|e| DnsSetupError::System(e.to_string()))?;
        Ok(Dns {
            resolver,
            overrides: config.overrides,
            timeout: config.timeout,
        })
    }

    /// Resolve `host` for `port`: an override when one matches (port-specific first), the
    /// address itself for an IP literal, else A, AAAA and HTTPS queries at once. Never fails:
    /// problems are in `DnsAnswer::error` (and `https_error`, which never fails the name).
    ///
    /// Overrides and IP literals send no query at all, the HTTPS one included: their
    /// `https` stays empty (a `--resolve` run without a DNS server must not reach one).
    pub async fn resolve(&self, host: &str, port: u16) -> DnsAnswer {
        let mut answer = self.resolve_all(host, port).await;
        if answer.addresses.len() > MAX_ADDRESSES {
            answer.dropped = answer.addresses.len() - MAX_ADDRESSES;
            answer.addresses.truncate(MAX_ADDRESSES);
        }
        answer
    }

    /// `resolve` without the `MAX_ADDRESSES` cap.
    async fn resolve_all(&self, host: &str, port: u16) -> DnsAnswer {
        let started = Instant::now();
        let host = normalize_host(host);
        let fixed = self
            .overrides
            .iter()
            .find(|o| o.host == host && o.port == Some(port))
            .or_else(|| self.overrides.iter().find(|o| o.host == host && o.port.is_none()));
        if let Some(fixed) = fixed {
            return DnsAnswer {
                addresses: sorted(fixed.addrs.clone()),
                overridden: true,
                elapsed: started.elapsed(),
                ..DnsAnswer::default()
            };
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return DnsAnswer {
                addresses: vec![ip],
                overridden: true,
                elapsed: started.elapsed(),
                ..DnsAnswer::default()
            };
        }

        let mut answer = match Name::from_ascii(format!("{host}.")) {
            Ok(name) => {
                // hickory bounds every query; this bounds the whole (retries, TCP fallback).
                let safety = self.timeout * 2 + Duration::from_secs(1);
                match tokio::time::timeout(safety, self.query(name)).await {
                    Ok(answer) => answer,
                    Err(_) => DnsAnswer {
                        error: Some(self.timeout_text()),
                        failure: Some(DnsFailure::Timeout),
                        ..DnsAnswer::default()
                    },
                }
            }
            Err(e) => DnsAnswer {
                error: Some(format!("invalid name: {e}")),
                failure: Some(DnsFailure::Invalid),
                ..DnsAnswer::default()
            },
        };
        answer.elapsed = started.elapsed();
        answer
    }

    fn timeout_text(&self) -> String {
        format!("timed out after {}", humantime::format_duration(self.timeout))
    }

    async fn query(&self, name: Name) -> DnsAnswer {
        // The HTTPS query runs beside A and AAAA, so it costs no round trip of its own.
        let (v4, v6, https) = tokio::join!(
            self.resolver.lookup(name.clone(), RecordType::A),
            self.resolver.lookup(name.clone(), RecordType::AAAA),
            self.lookup_https(&name),
        );
        let mut addresses = Vec::new();
        let mut cname_targets: HashMap<Name, Name> = HashMap::new();
        let mut ttl: Option<u32> = None;
        let mut failures = Vec::new();
        for result in [v4, v6] {
            match result {
                Ok(lookup) => {
                    for record in lookup.answers() {
                        match &record.data {
                            RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                            RData::AAAA(aaaa) => addresses.push(IpAddr::V6(aaaa.0)),
                            RData::CNAME(target) => {
                                cname_targets.insert(lower(&record.name), lower(&target.0));
                            }
                            _ => continue,
                        }
                        ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        let no_data = addresses.is_empty()
            && cname_targets.is_empty()
            && !failures.is_empty()
            && failures
                .iter()
                .all(|e| self.error_text(e).0 == DnsFailure::NoData);
        if no_data {
            // The resolver drops the CNAMEs of a chain that leads nowhere (a loop, a dangling
            // target): follow them one query at a time to say which.
            self.follow_cnames(&name, &mut cname_targets).await;
        }
        let (cnames, looped) = cname_chain(&lower(&name), &cname_targets);
        let addresses = sorted(addresses);
        let (failure, error) = if !addresses.is_empty() {
            // One family failing while the other answers is not an error.
            (None, None)
        } else if looped {
            let start = lower(&name).to_ascii();
            let text = format!(
                "CNAME loop: {} → {}",
                start.strip_suffix('.').unwrap_or(&start),
                cnames.join(" → ")
            );
            (Some(DnsFailure::Invalid), Some(text))
        } else {
            let (kind, text) = failures
                .iter()
                .map(|e| self.error_text(e))
                .min_by_key(|(kind, _)| kind.rank())
                .unwrap_or_else(|| (DnsFailure::NoData, "no A/AAAA records".to_string()));
            (Some(kind), Some(text))
        };
        let (https, https_error) = self.https_outcome(&name, https, &cname_targets);
        DnsAnswer {
            ttl_s: if addresses.is_empty() { None } else { ttl },
            addresses,
            cnames,
            error,
            failure,
            stale: None,
            overridden: false,
            elapsed: Duration::ZERO,
            dropped: 0,
            https,
            https_error,
        }
    }

    /// The HTTPS query, bounded by one `timeout` from the start: hickory alone gives a
    /// server that drops type 65 queries about 2 × timeout (retransmissions; measured: 1 s
    /// for 500 ms), which would delay every name's addresses by that much. So the addresses
    /// wait at most one timeout for it, and never past the bound of A and AAAA themselves.
    async fn lookup_https(&self, name: &Name) -> Result<Lookup, NetError> {
        let lookup = self.resolver.lookup(name.clone(), RecordType::HTTPS);
        match tokio::time::timeout(self.timeout, lookup).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout),
        }
    }

    /// The HTTPS records of a finished HTTPS query, or why it failed.
    fn https_outcome(
        &self,
        name: &Name,
        result: Result<Lookup, NetError>,
        address_cnames: &HashMap<Name, Name>,
    ) -> (Vec<HttpsRecord>, Option<String>) {
        match result {
            Ok(lookup) => (https_records(name, lookup.answers(), address_cnames), None),
            // NXDOMAIN or NOERROR without data: the name has no HTTPS record, which is normal.
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => (Vec::new(), None),
            Err(e) => (Vec::new(), Some(self.error_text(&e).1)),
        }
    }

    /// Query the CNAME of each name of the chain from `name`, at most 16 hops.
    async fn follow_cnames(&self, name: &Name, targets: &mut HashMap<Name, Name>) {
        let mut current = lower(name);
        for _ in 0..16 {
            let Ok(lookup) = self.resolver.lookup(current.clone(), RecordType::CNAME).await else {
                return;
            };
            let next = lookup.answers().iter().find_map(|r| match &r.data {
                RData::CNAME(target) if lower(&r.name) == current => Some(lower(&target.0)),
                _ => None,
            });
            let Some(next) = next else { return };
            let seen = targets.contains_key(&next) || next == lower(name);
            targets.insert(current, next.clone());
            if seen {
                return;
            }
            current = next;
        }
    }

    /// A failed query: its kind and a short text.
    fn error_text(&self, e: &NetError) -> (DnsFailure, String) {
        match e {
            NetError::Dns(DnsError::NoRecordsFound(no)) if no.response_code == ResponseCode::NXDomain => {
                (DnsFailure::NxDomain, "NXDOMAIN".to_string())
            }
            NetError::Dns(DnsError::NoRecordsFound(_)) => {
                (DnsFailure::NoData, "no A/AAAA records".to_string())
            }
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
                (DnsFailure::ServFail, "SERVFAIL".to_string())
            }
            NetError::Dns(DnsError::ResponseCode(code)) => {
                (DnsFailure::Refused, format!("{code:?}").to_ascii_uppercase())
            }
            NetError::Timeout => (DnsFailure::Timeout, self.timeout_text()),
            NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                (DnsFailure::Timeout, self.timeout_text())
            }
            NetError::Io(io) => (DnsFailure::Network, crate::engine::probe::tls::io_message(io)),
            NetError::NoConnections => (DnsFailure::Network, "no nameserver reachable".to_string()),
            other => (DnsFailure::Network, other.to_string()),
        }
    }
}

/// Most values kept per list parameter of one HTTPS record (alpn ids, each hint list): a
/// record may carry hundreds in its 64 KiB; no real one has more than a few.
pub const MAX_HTTPS_VALUES: usize = 16;

/// The HTTPS records of `answers` that belong to `name`: owned by the name itself or by the
/// end of its CNAME chain (followed through the CNAMEs of this answer and those the address
/// queries saw), in priority order, at most `MAX_HTTPS_RECORDS`. AliasMode records are kept
/// as they are; their target is not followed (a browser would query it in turn).
fn https_records(name: &Name, answers: &[Record], address_cnames: &HashMap<Name, Name>) -> Vec<HttpsRecord> {
    let mut targets = address_cnames.clone();
    for record in answers {
        if let RData::CNAME(target) = &record.data {
            targets.insert(lower(&record.name), lower(&target.0));
        }
    }
    let start = lower(name);
    let mut end = &start;
    let mut hops = 0;
    while let Some(next) = targets.get(end) {
        // A loop ends somewhere on itself: 16 hops, as `cname_chain`.
        if hops >= 16 {
            break;
        }
        end = next;
        hops += 1;
    }
    let mut records: Vec<HttpsRecord> = answers
        .iter()
        .filter(|r| {
            let owner = lower(&r.name);
            owner == start || owner == *end
        })
        .filter_map(|r| match &r.data {
            RData::HTTPS(https) => Some(https_record(&https.0, r.ttl)),
            _ => None,
        })
        .collect();
    // Stable: records of one priority keep the server's order.
    records.sort_by_key(|r| r.priority);
    records.truncate(MAX_HTTPS_RECORDS);
    records
}

/// One record's fields; unknown and `mandatory` parameters are not kept.
fn https_record(svcb: &SVCB, ttl: u32) -> HttpsRecord {
    let target = svcb.target_name.to_ascii();
    let target = target.strip_suffix('.').unwrap_or(&target).to_string();
    let mut record = HttpsRecord {
        priority: svcb.svc_priority,
        target,
        ttl_s: ttl,
        ..HttpsRecord::default()
    };
    for (_, value) in &svcb.svc_params {
        match value {
            SvcParamValue::Alpn(alpn) => {
                record.alpn = alpn.0.iter().take(MAX_HTTPS_VALUES).cloned().collect();
            }
            SvcParamValue::NoDefaultAlpn => record.no_default_alpn = true,
            SvcParamValue::Port(port) => record.port = Some(*port),
            SvcParamValue::Ipv4Hint(hint) => {
                record.ipv4hint = hint.0.iter().take(MAX_HTTPS_VALUES).map(|a| a.0).collect();
            }
            SvcParamValue::Ipv6Hint(hint) => {
                record.ipv6hint = hint.0.iter().take(MAX_HTTPS_VALUES).map(|a| a.0).collect();
            }
            SvcParamValue::EchConfigList(_) => record.ech = true,
            SvcParamValue::Mandatory(_) | SvcParamValue::Unknown(_) => {}
        }
    }
    record
}

fn lower(name: &Name) -> Name {
    name.to_lowercase()
}

/// Follows `targets` from `start`, at most 16 hops; true when the chain comes back to a name
/// it already passed (a loop, which ends the chain there).
fn cname_chain(start: &Name, targets: &HashMap<Name, Name>) -> (Vec<String>, bool) {
    let mut chain = Vec::new();
    let mut seen = vec![start];
    let mut current = start;
    while let Some(next) = targets.get(current) {
        if chain.len() >= 16 {
            break;
        }
        let text = next.to_ascii();
        chain.push(text.strip_suffix('.').unwrap_or(&text).to_string());
        if seen.contains(&next) {
            return (chain, true);
        }
        seen.push(next);
        current = next;
    }
    (chain, false)
}

/// IPv4 first, then IPv6, each in numeric order, without duplicates.
fn sorted(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.sort_by_key(|a| (a.is_ipv6(), *a));
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::HttpsSpec;
    use crate::testing::net::{a_record, cname_record, dns_server, dns_server_with, https_record, TestDns};
    use std::net::Ipv6Addr;
    use std::sync::atomic::Ordering;

    const T: Duration = Duration::from_millis(500);

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn dns_for(server: &TestDns, overrides: Vec<ResolveOverride>) -> Dns {
        Dns::new(DnsConfig {
            nameservers: vec![server.addr],
            overrides,
            timeout: T,
        })
        .expect("dns")
    }

    #[test]
    fn override_parsing() {
        let ok = |s: &str, host: &str, port: Option<u16>, addrs: &[&str]| {
            let parsed: ResolveOverride = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.host, host, "{s}");
            assert_eq!(parsed.port, port, "{s}");
            let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
            assert_eq!(parsed.addrs, addrs, "{s}");
        };
        ok("a.test:127.0.0.1", "a.test", None, &["127.0.0.1"]);
        ok(
            "A.Test.:443:127.0.0.1,127.0.0.2",
            "a.test",
            Some(443),
            &["127.0.0.1", "127.0.0.2"],
        );
        ok(
            "a.test:8443:[::1],127.0.0.1",
            "a.test",
            Some(8443),
            &["::1", "127.0.0.1"],
        );
        ok("a.test:[::1]", "a.test", None, &["::1"]);
        ok("a.test:::1", "a.test", None, &["::1"]);
        ok("a.test:fe80::1", "a.test", None, &["fe80::1"]);
        ok("a.test:2001:db8:0:0:0:0:0:1", "a.test", None, &["2001:db8::1"]);
        ok("a.test:443:::1", "a.test", Some(443), &["::1"]);
        ok(
            "a.test:443:[2001:db8::1],[::2]",
            "a.test",
            Some(443),
            &["2001:db8::1", "::2"],
        );

        let bad = |s: &str, needle: &str| {
            let err = s.parse::<ResolveOverride>().expect_err(s);
            assert!(err.contains(needle), "{s}: {err}");
        };
        bad("a.test", "expected HOST");
        bad(":127.0.0.1", "empty host");
        bad("a.test:", "missing address");
        bad("a.test:443:", "missing address");
        bad("a.test:443:nope", "\"nope\"");
        bad("a.test:99999:127.0.0.1", "invalid port \"99999\"");
        bad("a.test:0:127.0.0.1", "invalid port \"0\"");
        bad("a.test:127.0.0.1,x", "\"x\"");
        bad("a b:127.0.0.1", "invalid host");
        // Port 2001 + db8::1, or the address 2001:db8::1?
        bad("a.test:2001:db8::1", "ambiguous");
        bad("a.test:443:fe80::1", "ambiguous");
    }

    #[test]
    fn resolv_conf_lines() {
        let text = "# comment\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions timeout:1\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                SocketAddr::new(ip("192.0.2.53"), 53),
                SocketAddr::new(ip("fe80::1"), 53)
            ]
        );
    }

    #[tokio::test]
    async fn a_and_aaaa_with_ttl() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("a.test", 443).await;
        assert_eq!(answer.error, None);
        assert_eq!(answer.addresses, vec![ip("127.0.0.1"), ip("::1")]);
        assert_eq!(answer.ttl_s, Some(60));
        assert!(answer.cnames.is_empty());
        assert!(!answer.overridden);
        // Case and trailing dot do not matter.
        let again = dns.resolve("A.TEST.", 443).await;
        assert_eq!(again.addresses, answer.addresses);
    }

    #[tokio::test]
    async fn cname_chain_in_order_and_smallest_ttl() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("alias.test", 443).await;
        assert_eq!(answer.error, None);
        assert_eq!(answer.cnames, vec!["mid.test".to_string(), "a.test".to_string()]);
        assert_eq!(answer.addresses, vec![ip("127.0.0.1"), ip("::1")]);
        assert_eq!(answer.ttl_s, Some(30));
    }

    #[tokio::test]
    async fn partial_answers_and_sorting() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let v4 = dns.resolve("v4only.test", 443).await;
        assert_eq!((v4.error, v4.addresses), (None, vec![ip("127.0.0.2")]));
        let half = dns.resolve("half.test", 443).await;
        assert_eq!((half.error, half.addresses), (None, vec![ip("127.0.0.3")]));
        let rr = dns.resolve("rr.test", 443).await;
        assert_eq!(rr.addresses, vec![ip("127.0.0.2"), ip("127.0.0.4")]);
    }

    #[tokio::test]
    async fn negative_answers() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let nx = dns.resolve("nx.test", 443).await;
        assert_eq!(nx.error.as_deref(), Some("NXDOMAIN"));
        assert_eq!(nx.failure, Some(DnsFailure::NxDomain));
        assert!(!DnsFailure::NxDomain.keeps_last_answer());
        assert!(nx.addresses.is_empty());
        assert_eq!(nx.ttl_s, None);
        let fail = dns.resolve("fail.test", 443).await;
        assert_eq!(fail.error.as_deref(), Some("SERVFAIL"));
        assert_eq!(fail.failure, Some(DnsFailure::ServFail));
        assert!(DnsFailure::ServFail.keeps_last_answer());
        let dangling = dns.resolve("cnameonly.test", 443).await;
        assert!(dangling.error.is_some(), "{dangling:?}");
        assert!(dangling.addresses.is_empty());
    }

    /// On tokio's paused clock: the server never answers, so only the resolver's timers move
    /// time, and the lookup must end by the engine's own bound (2 × timeout + 1 s) exactly as
    /// computed, however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn silence_times_out() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let started = tokio::time::Instant::now();
        let real = Instant::now();
        let answer = dns.resolve("silent.test", 443).await;
        assert_eq!(answer.error.as_deref(), Some("timed out after 500ms"));
        let took = started.elapsed();
        assert!(took >= T && took <= T * 2 + Duration::from_secs(1), "{took:?}");
        assert!(answer.elapsed <= real.elapsed());
    }

    #[tokio::test]
    async fn truncated_udp_falls_back_to_tcp() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("many.test", 443).await;
        assert_eq!(answer.error, None);
        // All 500 arrived over TCP; the first MAX_ADDRESSES (numeric order) are kept.
        assert_eq!(answer.addresses.len(), MAX_ADDRESSES);
        assert_eq!(answer.dropped, 500 - MAX_ADDRESSES);
        assert_eq!(answer.addresses[0], ip("10.0.0.0"));
        assert_eq!(answer.addresses[MAX_ADDRESSES - 1], ip("10.0.0.63"));
        assert!(server.tcp_queries.load(Ordering::SeqCst) >= 1);
        assert!(server.udp_queries.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn overrides_and_literals_skip_dns() {
        let server = dns_server().await;
        let overrides = vec![
            "a.test:127.0.0.9,127.0.0.8".parse().expect("override"),
            "a.test:8443:[::2]".parse().expect("override"),
        ];
        let dns = dns_for(&server, overrides);
        let any = dns.resolve("A.test", 443).await;
        assert!(any.overridden);
        assert_eq!(any.addresses, vec![ip("127.0.0.8"), ip("127.0.0.9")]);
        assert_eq!(any.ttl_s, None);
        let specific = dns.resolve("a.test", 8443).await;
        assert_eq!(specific.addresses, vec![ip("::2")]);
        let literal = dns.resolve("[::1]", 443).await;
        assert_eq!((literal.overridden, literal.addresses), (true, vec![ip("::1")]));
        let literal = dns.resolve("192.0.2.1", 443).await;
        assert_eq!(literal.addresses, vec![ip("192.0.2.1")]);
        for answer in [any, specific, literal] {
            assert!(
                answer.https.is_empty() && answer.https_error.is_none(),
                "{answer:?}"
            );
        }
        // Not even the HTTPS query reached the server.
        assert_eq!(server.udp_queries.load(Ordering::SeqCst), 0);
        assert_eq!(server.tcp_queries.load(Ordering::SeqCst), 0);
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().expect("ipv4")
    }

    #[tokio::test]
    async fn https_records_beside_the_addresses() {
        let mut full = HttpsSpec::service("a.test", 1, &["h3", "h2"], Some(8443), &[v4("127.0.0.1")]);
        full.ipv6hint = vec![Ipv6Addr::LOCALHOST];
        full.ech = Some(vec![0, 4, 0xfe, 0x0d, 0, 0]);
        let mut second = HttpsSpec::service("a.test", 2, &["h2"], None, &[]);
        second.target = "alt.test".to_string();
        second.no_default_alpn = true;
        // The server lists the worse record first: the answer is in priority order.
        let server = dns_server_with(vec![https_record(&second), https_record(&full)]).await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("a.test", 443).await;
        assert_eq!(
            (answer.error.as_deref(), answer.https_error.as_deref()),
            (None, None)
        );
        assert_eq!(answer.addresses, vec![ip("127.0.0.1"), ip("::1")]);
        let expected = vec![
            HttpsRecord {
                priority: 1,
                target: String::new(),
                alpn: vec!["h3".to_string(), "h2".to_string()],
                no_default_alpn: false,
                port: Some(8443),
                ipv4hint: vec![v4("127.0.0.1")],
                ipv6hint: vec![Ipv6Addr::LOCALHOST],
                ech: true,
                ttl_s: 60,
            },
            HttpsRecord {
                priority: 2,
                target: "alt.test".to_string(),
                alpn: vec!["h2".to_string()],
                no_default_alpn: true,
                ttl_s: 60,
                ..HttpsRecord::default()
            },
        ];
        assert_eq!(answer.https, expected);
        assert!(answer.https[0].is_service() && answer.https[0].offers_h2() && answer.https[0].offers_h3());
    }

    #[tokio::test]
    async fn https_record_without_h2() {
        let h3 = HttpsSpec::service("v4only.test", 1, &["h3"], None, &[]);
        let server = dns_server_with(vec![https_record(&h3)]).await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("v4only.test", 443).await;
        assert_eq!(answer.addresses, vec![ip("127.0.0.2")]);
        assert_eq!(answer.https.len(), 1, "{answer:?}");
        assert!(answer.https[0].offers_h3() && !answer.https[0].offers_h2());
        assert_eq!(answer.https_error, None);
    }

    /// NOERROR without data, NXDOMAIN: no HTTPS record, and nothing failed.
    #[tokio::test]
    async fn no_https_records_is_no_error() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        for host in ["a.test", "rr.test", "nx.test"] {
            let answer = dns.resolve(host, 443).await;
            assert!(answer.https.is_empty(), "{host}: {answer:?}");
            assert_eq!(answer.https_error, None, "{host}");
        }
        // A failing HTTPS query is said, and the name keeps its addresses.
        let fail = dns_server_with(vec![]).await;
        let dns = dns_for(&fail, vec![]);
        let half = dns.resolve("half.test", 443).await;
        assert_eq!((half.error, half.addresses), (None, vec![ip("127.0.0.3")]));
        assert_eq!(half.https_error.as_deref(), Some("SERVFAIL"));
    }

    /// On tokio's paused clock (see `silence_times_out`): the server answers A and AAAA at
    /// once and drops the HTTPS query, which is given up after one timeout, not the two and
    /// more a silent name costs.
    #[tokio::test(start_paused = true)]
    async fn dropped_https_query_costs_one_timeout() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        let started = tokio::time::Instant::now();
        let answer = dns.resolve("drop65.test", 443).await;
        let took = started.elapsed();
        assert_eq!(answer.error, None);
        assert_eq!(answer.addresses, vec![ip("127.0.0.5")]);
        assert!(answer.https.is_empty());
        assert_eq!(answer.https_error.as_deref(), Some("timed out after 500ms"));
        assert!(took >= T && took < T + T / 2, "{took:?}");
    }

    #[tokio::test]
    async fn alias_mode_is_kept_not_followed() {
        let alias = HttpsSpec::alias("apex.test", "cdn.a.test");
        let server = dns_server_with(vec![a_record("apex.test.", "127.0.0.7"), https_record(&alias)]).await;
        let dns = dns_for(&server, vec![]);
        let before = server.udp_queries.load(Ordering::SeqCst);
        let answer = dns.resolve("apex.test", 443).await;
        assert_eq!(answer.addresses, vec![ip("127.0.0.7")]);
        assert_eq!(answer.https.len(), 1, "{answer:?}");
        let record = &answer.https[0];
        assert_eq!((record.priority, record.target.as_str()), (0, "cdn.a.test"));
        assert!(!record.is_service());
        // A, AAAA, HTTPS: no query for the alias target.
        assert_eq!(server.udp_queries.load(Ordering::SeqCst) - before, 3);
    }

    #[tokio::test]
    async fn https_record_through_a_cname() {
        let svc = HttpsSpec::service("a.test", 1, &["h2"], None, &[]);
        let server = dns_server_with(vec![cname_record("www.test.", "a.test."), https_record(&svc)]).await;
        let dns = dns_for(&server, vec![]);
        let answer = dns.resolve("www.test", 443).await;
        assert_eq!(answer.cnames, vec!["a.test".to_string()]);
        assert_eq!(answer.addresses, vec![ip("127.0.0.1"), ip("::1")]);
        assert_eq!(answer.https.len(), 1, "{answer:?}");
        assert!(answer.https[0].offers_h2());
    }

    /// Records of names neither the queried one nor the end of its chain are left out; the
    /// count is bounded.
    #[test]
    fn https_records_are_the_names_and_bounded() {
        let name = Name::from_ascii("www.test.").expect("name");
        let mut answers = vec![cname_record("www.test.", "a.test.")];
        for priority in (1..=20u16).rev() {
            let spec = HttpsSpec::service("a.test", priority, &["h2"], None, &[]);
            answers.push(spec.record(60).expect("record"));
        }
        let stray = HttpsSpec::service("other.test", 1, &["h3"], None, &[]);
        answers.push(stray.record(60).expect("record"));
        let records = https_records(&name, &answers, &HashMap::new());
        let priorities: Vec<u16> = records.iter().map(|r| r.priority).collect();
        assert_eq!(priorities, (1..=MAX_HTTPS_RECORDS as u16).collect::<Vec<_>>());
        assert!(records.iter().all(|r| r.offers_h2()));
        // The chain may also come from the address queries only.
        let direct = vec![HttpsSpec::service("a.test", 1, &["h3"], None, &[])
            .record(60)
            .expect("record")];
        let chain = HashMap::from([(name.clone(), Name::from_ascii("a.test.").expect("name"))]);
        assert_eq!(https_records(&name, &direct, &chain).len(), 1);
        assert!(https_records(&name, &direct, &HashMap::new()).is_empty());
    }

    #[tokio::test]
    async fn answers_are_fresh() {
        let server = dns_server().await;
        let dns = dns_for(&server, vec![]);
        dns.resolve("a.test", 443).await;
        let after_first = server.udp_queries.load(Ordering::SeqCst);
        dns.resolve("a.test", 443).await;
        assert!(
            server.udp_queries.load(Ordering::SeqCst) > after_first,
            "not cached"
        );
    }
}

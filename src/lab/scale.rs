//! The scale lab (`coalscope lab --scale N`): N synthetic names for benchmarks, in groups of K
//! behind one wildcard certificate per group, one loopback listener per address serving many
//! SNI names, and a known share of misconfigured names.
//!
//! Layout: name `i` is `tNNNNN.gGGG.scale.coalscope.test` with group `g = i / K`; group `g` is
//! served at `127.0.(4 + j / 254).(1 + j % 254)` with `j = g % 1016` (127.0.4.1–127.0.7.254, so
//! more than 1,016 groups share addresses); its certificate is `*.gGGG.scale.coalscope.test`.
//! A name whose index is a multiple of 10 is misconfigured: a request for it on a connection
//! whose SNI is another name gets an empty 421 (a strict server), so every pair `X → t` towards
//! it is `misdirected`. Everything else answers 200 with a small page of its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::ca::{Ca, Validity};
use super::idle::IdleTimeout;
use super::respond::request_host;
use super::Bound;

/// The DNS zone of the scale lab.
pub const SCALE_ZONE: &str = "scale.coalscope.test";
/// Addresses the scale lab uses: 127.0.4.1 – 127.0.7.254.
pub const SCALE_ADDRESSES: usize = 4 * 254;
/// Every this many names, one is misconfigured (index % MISCONFIGURED_EVERY == 0).
pub const MISCONFIGURED_EVERY: usize = 10;
/// Default names per wildcard group.
pub const DEFAULT_GROUP_SIZE: usize = 20;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once per address; more are closed at once.
const MAX_CONNECTIONS: usize = 1024;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleOptions {
    /// Number of names.
    pub names: usize,
    /// Names per wildcard certificate (and per group).
    pub group_size: usize,
    /// Serve HTTP/3 too (UDP, same addresses and port), advertised by an HTTPS record per
    /// name (`alpn` h2, h3), answering as over HTTP/2 (the misconfigured names' 421s too).
    pub h3: bool,
}

impl ScaleOptions {
    pub fn new(names: usize, group_size: usize) -> ScaleOptions {
        ScaleOptions {
            names: names.max(1),
            group_size: group_size.max(1),
            h3: false,
        }
    }

    pub fn groups(&self) -> usize {
        self.names.div_ceil(self.group_size)
    }

    pub fn group_of(&self, i: usize) -> usize {
        i / self.group_size
    }

    /// The name with index `i`.
    pub fn name(&self, i: usize) -> String {
        format!("t{i:05}.g{:03}.{SCALE_ZONE}", self.group_of(i))
    }

    /// The address group `g` is served at.
    pub fn address(&self, g: usize) -> Ipv4Addr {
        let j = g % SCALE_ADDRESSES;
        Ipv4Addr::new(127, 0, 4 + (j / 254) as u8, 1 + (j % 254) as u8)
    }

    /// Distinct addresses in use.
    pub fn addresses(&self) -> usize {
        self.groups().min(SCALE_ADDRESSES)
    }

    pub fn misconfigured(i: usize) -> bool {
        i % MISCONFIGURED_EVERY == 0
    }

    /// Members of group `g` (name indices).
    pub fn members(&self, g: usize) -> std::ops::Range<usize> {
        let start = g * self.group_size;
        start..(start + self.group_size).min(self.names)
    }

    /// Ordered pairs whose names share a certificate and an address (the coalescable pairs),
    /// and how many of them are misdirected (towards a misconfigured name). Only exact when no
    /// two groups share an address (groups ≤ SCALE_ADDRESSES).
    pub fn expected_pairs(&self) -> (usize, usize) {
        let mut pairs = 0;
        let mut bad = 0;
        for g in 0..self.groups() {
            let m = self.members(g);
            let k = m.len();
            pairs += k * k.saturating_sub(1);
            bad += m.filter(|&i| Self::misconfigured(i)).count() * k.saturating_sub(1);
        }
        (pairs, bad)
    }

    /// Parse a scale name back into its index, if it is one of this lab's names.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let name = name.trim_end_matches('.');
        let (first, rest) = name.split_once('.')?;
        let (group, zone) = rest.split_once('.')?;
        if !zone.eq_ignore_ascii_case(SCALE_ZONE) {
            return None;
        }
        let i: usize = first.strip_prefix(['t', 'T'])?.parse().ok()?;
        let g: usize = group.strip_prefix(['g', 'G'])?.parse().ok()?;
        (i < self.names && self.group_of(i) == g).then_some(i)
    }

    /// The watch-file: every name at `port`.
    pub fn watchfile(&self, port: u16) -> String {
        let mut out = format!(
            "# coalscope scale lab: {} names in groups of {} behind wildcard certificates;\n\
             # every {}th name answers 421 on a connection for another name.\n",
            self.names, self.group_size, MISCONFIGURED_EVERY
        );
        out.reserve(self.names * 48);
        for i in 0..self.names {
            out.push_str(&self.name(i));
            out.push(':');
            out.push_str(&port.to_string());
            out.push('\n');
        }
        out
    }

    /// DNS records: every name → its group's address.
    pub fn records(&self) -> Vec<(String, Vec<Ipv4Addr>)> {
        (0..self.names)
            .map(|i| (self.name(i), vec![self.address(self.group_of(i))]))
            .collect()
    }
}

/// Certificates by group: the SNI `tNNNNN.gGGG.zone` picks the wildcard `*.gGGG.zone`. A
/// group's certificate can be replaced while serving (`faults::Faults::rotate_group`).
#[derive(Debug)]
pub(crate) struct GroupResolver {
    by_group: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    default: Arc<CertifiedKey>,
}

impl GroupResolver {
    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        // A panic while the lock was held left the map whole (entries are replaced whole).
        let by_group = self
            .by_group
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sni.and_then(|name| name.split_once('.'))
            .and_then(|(_, parent)| by_group.get(parent.trim_end_matches('.').to_ascii_lowercase().as_str()))
            .unwrap_or(&self.default)
            .clone()
    }

    /// Serve `cert` for the group whose parent name is `parent` from the next handshake on.
    pub(crate) fn replace(&self, parent: &str, cert: Arc<CertifiedKey>) {
        self.by_group
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(parent.to_ascii_lowercase(), cert);
    }
}

impl ResolvesServerCert for GroupResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()))
    }
}

/// Issue one wildcard certificate per group and build the server configuration (and the
/// resolver in it, for rotations).
pub(crate) fn server_config(
    options: &ScaleOptions,
    ca: &Ca,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<(Arc<ServerConfig>, Arc<GroupResolver>)> {
    let mut by_group = HashMap::with_capacity(options.groups());
    let mut default = None;
    for g in 0..options.groups() {
        let parent = format!("g{g:03}.{SCALE_ZONE}");
        let wildcard = format!("*.{parent}");
        let cert = ca
            .server_key(&[wildcard.as_str()], Validity::Current, &provider)
            .with_context(|| format!("issuing {wildcard}"))?;
        default.get_or_insert_with(|| cert.clone());
        by_group.insert(parent, cert);
    }
    let resolver = Arc::new(GroupResolver {
        by_group: RwLock::new(by_group),
        default: default.context("no group")?,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), resolver))
}

/// Bind a listener on every address in use, all on one port (`port`, or a random free one),
/// and the UDP side on the same port when the lab serves HTTP/3.
pub(crate) async fn bind_all(options: &ScaleOptions, port: Option<u16>) -> anyhow::Result<(u16, Vec<Bound>)> {
    let addrs: Vec<Ipv4Addr> = (0..options.addresses()).map(|g| options.address(g)).collect();
    if let Some(port) = port {
        return Ok((port, bind_on(&addrs, port, options.h3).await?));
    }
    let mut last_error = None;
    for _ in 0..64 {
        let candidate: u16 = rand::random_range(20000..60000);
        match bind_on(&addrs, candidate, options.h3).await {
            Ok(listeners) => return Ok((candidate, listeners)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
        .context("no port free on every scale lab address"))
}

async fn bind_on(addrs: &[Ipv4Addr], port: u16, h3: bool) -> anyhow::Result<Vec<Bound>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for a in addrs {
        let addr = SocketAddr::from((*a, port));
        let failed = |e, what| super::bind_error("scale lab server", addr, what, e);
        let listener = listen_on(addr).map_err(|e| failed(e, ""))?;
        let udp = match h3 {
            true => Some(std::net::UdpSocket::bind(addr).map_err(|e| failed(e, " (UDP)"))?),
            false => None,
        };
        listeners.push((addr, listener, udp));
    }
    Ok(listeners)
}

/// A listener on `addr` whose accept queue holds `MAX_CONNECTIONS` (`TcpListener::bind` gives
/// 128: a client opening hundreds of connections at once to one address overflowed it, and
/// each dropped handshake waited out a one-second retransmission). SO_REUSEADDR: a restarted
/// server (`faults`) binds the port its closed connections still hold in TIME_WAIT.
pub(crate) fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(MAX_CONNECTIONS as u32)
}

/// Serve one address until the task is aborted.
pub(crate) async fn run(listener: TcpListener, config: Arc<ServerConfig>, options: ScaleOptions) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((tcp, _peer)) => {
                    if conns.len() >= MAX_CONNECTIONS {
                        continue;
                    }
                    conns.spawn(connection(tcp, acceptor.clone(), options));
                }
                Err(error) => {
                    tracing::warn!(%error, "scale lab: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn connection(tcp: TcpStream, acceptor: tokio_rustls::TlsAcceptor, options: ScaleOptions) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    let (_, session) = tls.get_ref();
    let sni = session.server_name().and_then(|n| options.index_of(n));
    let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let host = request_host(&req).and_then(|h| options.index_of(&h));
        let resp = answer(sni, host, &options);
        async move { Ok::<_, Infallible>(resp) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let io = TokioIo::new(IdleTimeout::new(tls, IDLE_TIMEOUT));
    let _ = builder.serve_connection(io, service).await;
}

/// Serve HTTP/3 on UDP `addr` with the group certificates of `config`, answering as over
/// HTTP/2 (`answer`).
pub(crate) fn listen_h3(
    socket: std::net::UdpSocket,
    config: &ServerConfig,
    options: ScaleOptions,
) -> anyhow::Result<super::quic::QuicListener> {
    super::quic::listen_with(socket, config.clone(), move |incoming, _| {
        super::quic::serve_requests(incoming, move |sni, request, mut stream| async move {
            let sni = sni.as_deref().and_then(|n| options.index_of(n));
            let host = request.uri().authority().and_then(|a| options.index_of(a.host()));
            let (head, body) = answer(sni, host, &options).into_parts();
            let body = http_body_util::BodyExt::collect(body)
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            super::quic::respond(&mut stream, Response::from_parts(head, body)).await;
        })
    })
}

/// The answer for a request naming `host` on a connection for `sni` (indices of scale names).
fn answer(sni: Option<usize>, host: Option<usize>, options: &ScaleOptions) -> Response<Full<Bytes>> {
    let (status, body) = match host {
        Some(h) if ScaleOptions::misconfigured(h) && sni != Some(h) => {
            (StatusCode::MISDIRECTED_REQUEST, Bytes::new())
        }
        Some(h) => (
            StatusCode::OK,
            Bytes::from(format!(
                "<!doctype html><title>{0}</title><h1>site {0}</h1>\n",
                options.name(h)
            )),
        ),
        None => (
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"no site for this Host\n"),
        ),
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("coalscope-lab (scale)"));
    if status != StatusCode::MISDIRECTED_REQUEST {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    resp
}

/// What `coalscope lab --scale` prints.
pub(crate) fn describe(
    options: &ScaleOptions,
    watchfile: &std::path::Path,
    ca_file: &std::path::Path,
    dns: SocketAddr,
    port: u16,
) -> String {
    let (pairs, bad) = options.expected_pairs();
    let last = options.address(options.addresses().saturating_sub(1));
    format!(
        "coalscope scale lab: {names} names in {groups} groups of {k} (one wildcard certificate \
         per group), on {addrs} addresses 127.0.4.1–{last} port {port}\n\
         DNS:        {dns}\n\
         CA:         {ca}\n\
         watch-file: {wf}\n\
         expected:   {pairs} coalescable ordered pairs, {bad} misdirected (every name with an \
         index divisible by {every} answers 421 on another name's connection){shared}\n\
         try:        coalscope check --dns {dns} --ca-file {ca} --rounds 1 --max-rps 0 {wf}\n",
        names = options.names,
        groups = options.groups(),
        k = options.group_size,
        addrs = options.addresses(),
        ca = ca_file.display(),
        wf = watchfile.display(),
        every = MISCONFIGURED_EVERY,
        shared = if options.groups() > SCALE_ADDRESSES {
            " (more groups than addresses: some groups share an address, adding not-coalescable pairs)"
        } else {
            ""
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_addresses_and_expected_pairs() {
        let o = ScaleOptions::new(45, 20);
        assert_eq!(o.groups(), 3);
        assert_eq!(o.name(0), "t00000.g000.scale.coalscope.test");
        assert_eq!(o.name(44), "t00044.g002.scale.coalscope.test");
        assert_eq!(o.address(0), Ipv4Addr::new(127, 0, 4, 1));
        assert_eq!(o.address(254), Ipv4Addr::new(127, 0, 5, 1));
        assert_eq!(o.address(1015), Ipv4Addr::new(127, 0, 7, 254));
        assert_eq!(o.address(1016), Ipv4Addr::new(127, 0, 4, 1));
        assert_eq!(o.index_of("T00044.G002.Scale.coalscope.test."), Some(44));
        assert_eq!(
            o.index_of("t00044.g001.scale.coalscope.test"),
            None,
            "wrong group"
        );
        assert_eq!(o.index_of("t00045.g002.scale.coalscope.test"), None, "beyond N");
        assert_eq!(o.index_of("a.coalscope.test"), None);
        // Groups of 20, 20, 5: 380 + 380 + 20 pairs; misconfigured 0, 10 | 20, 30 | 40.
        assert_eq!(o.expected_pairs(), (780, 2 * 19 + 2 * 19 + 4));
        assert_eq!(
            o.watchfile(443).lines().filter(|l| !l.starts_with('#')).count(),
            45
        );
    }

    #[test]
    fn answers_421_only_for_misconfigured_names_on_another_names_connection() {
        let o = ScaleOptions::new(100, 20);
        assert_eq!(answer(Some(1), Some(10), &o).status(), 421);
        assert_eq!(answer(Some(10), Some(10), &o).status(), 200);
        assert_eq!(answer(Some(1), Some(11), &o).status(), 200);
        assert_eq!(answer(Some(1), None, &o).status(), 404);
    }

    /// The whole scale lab under `check`: every coalescable pair found and judged as the
    /// layout says, the misconfigured share misdirected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn check_finds_the_expected_pairs_and_misdirected_share() {
        use crate::engine::oneshot::{self, CheckOptions};
        use crate::engine::prober::ProbeOptions;
        use crate::engine::snapshot::Verdict;
        let layout = ScaleOptions::new(45, 20);
        let lab = crate::lab::Lab::start(crate::lab::LabOptions {
            scale: Some(layout),
            ..Default::default()
        })
        .await
        .unwrap();
        let text = std::fs::read_to_string(&lab.watchfile).unwrap();
        let list = crate::watchlist::parse("scale.watch", text.as_bytes()).unwrap();
        assert_eq!(list.entries.len(), 45);
        let prober = crate::testing::lab::prober(
            &lab,
            Duration::from_secs(2),
            ProbeOptions {
                max_rps: 0,
                ..ProbeOptions::default()
            },
        );
        let options = CheckOptions {
            rounds: 1,
            ..CheckOptions::default()
        };
        let snapshot = oneshot::check(&prober, &list.entries, &options).await;
        lab.shutdown().await;
        let (pairs, bad) = layout.expected_pairs();
        let s = &snapshot.summary;
        assert_eq!(s.hosts, 45);
        assert_eq!(s.pairs as usize, pairs, "{s:?}");
        assert_eq!(
            s.verdicts.get(&Verdict::Misdirected).copied().unwrap_or(0) as usize,
            bad,
            "{s:?}"
        );
        assert_eq!(
            s.verdicts.get(&Verdict::Ok).copied().unwrap_or(0) as usize,
            pairs - bad,
            "{s:?}"
        );
        assert_eq!(s.host_errors, 0, "{s:?}");
        assert_eq!(s.coverage, 1.0);
    }
}

//! Loopback fixtures for the network tests: a test PKI (the lab's CA builder), TLS servers
//! that answer by `:authority`/Host and record the SNI, misbehaving listeners, and a small DNS
//! server.
//! Every server runs in tasks owned by a guard that aborts them on drop.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::engine::probe::tls::TlsSettings;
use crate::lab::ca::{Ca, Leaf};

/// What only a hang exceeds: a bound for an operation whose own timeouts are a few seconds at
/// most, on a loaded 2-core machine. A hang detector, not a performance assertion.
pub const HANG: Duration = Duration::from_secs(60);

/// `operation`, or a panic naming `what` when it has not finished within [`HANG`] (real time),
/// so that a timeout that never fires fails the test instead of stalling it.
pub async fn no_hang<F: std::future::Future>(what: &str, operation: F) -> F::Output {
    tokio::time::timeout(HANG, operation)
        .await
        .unwrap_or_else(|_| panic!("{what}: not finished within {HANG:?}, a hang"))
}

/// Aborts its tasks when dropped, so that a failing test does not leak servers.
#[derive(Default)]
pub struct TaskGuard(Vec<JoinHandle<()>>);

impl TaskGuard {
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Validity period of a test leaf certificate (the lab's).
pub use crate::lab::ca::Validity;

/// A test certificate authority: the lab's CA builder (`lab::ca`), with the shapes these
/// fixtures want (chains that end with the CA, TLS settings that trust it).
pub struct Pki {
    ca: Ca,
}

pub type Chain = Vec<CertificateDer<'static>>;

impl Pki {
    pub fn new(name: &str) -> Pki {
        Pki {
            ca: Ca::new(name).expect("test CA"),
        }
    }

    /// The CA itself, to issue certificates of other shapes.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der.clone()
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem.clone()
    }

    /// TLS settings that trust this CA (plus the web roots).
    pub fn settings(&self, timeout: Duration) -> TlsSettings {
        let mut settings = TlsSettings::new(None, timeout).expect("settings");
        let mut roots = (*settings.roots).clone();
        roots.add(self.ca_der()).expect("add CA");
        settings.roots = Arc::new(roots);
        settings
    }

    /// A leaf for `names` (leaf first, then the CA) and its key.
    pub fn leaf(&self, names: &[&str], validity: Validity) -> (Chain, PrivateKeyDer<'static>) {
        let leaf = Leaf::for_names(names).expect("leaf names").valid(validity);
        let issued = self.ca.issue(&leaf).expect("leaf cert");
        let mut chain = issued.chain.clone();
        chain.push(self.ca_der());
        (chain, issued.key_der())
    }
}

/// What a test server saw for one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub sni: Option<String>,
    pub authority: String,
    pub path: String,
    pub version: http::Version,
    /// Which connection (in accept order, from 1) carried it.
    pub connection: usize,
}

/// A TLS + HTTP (h1 and h2) server on loopback.
pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub accepted: Arc<AtomicUsize>,
    pub closed: Arc<AtomicUsize>,
    /// The certificate it serves, swappable while it runs (`CertSwitch::set`): the next
    /// handshake gets the new one.
    pub cert: Arc<CertSwitch>,
    _guard: TaskGuard,
}

/// The certificate a test server serves, which a test may swap while the server runs.
#[derive(Debug)]
pub struct CertSwitch(Mutex<Arc<rustls::sign::CertifiedKey>>);

fn certified(chain: Chain, key: PrivateKeyDer<'static>) -> rustls::sign::CertifiedKey {
    let provider = crate::engine::probe::tls::provider();
    let signing = provider.key_provider.load_private_key(key).expect("test key");
    rustls::sign::CertifiedKey::new(chain, signing)
}

impl CertSwitch {
    fn new(chain: Chain, key: PrivateKeyDer<'static>) -> CertSwitch {
        CertSwitch(Mutex::new(Arc::new(certified(chain, key))))
    }

    /// Serve `chain` (leaf first) with `key` from the next handshake on.
    pub fn set(&self, chain: Chain, key: PrivateKeyDer<'static>) {
        let new = Arc::new(certified(chain, key));
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = new;
    }
}

/// The server's resolver: the test's switch, shared.
#[derive(Debug)]
struct CertSwitchRef(Arc<CertSwitch>);

impl rustls::server::ResolvesServerCert for CertSwitchRef {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0 .0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl TestServer {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }

    /// Waits until `n` connections have ended (false after `within`).
    pub async fn wait_closed(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.closed.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

pub struct ServerOptions {
    pub alpn: Vec<Vec<u8>>,
    pub tls12_only: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            tls12_only: false,
        }
    }
}

type ResponseBody = BoxBody<Bytes, Infallible>;
type HandlerError = Box<dyn std::error::Error + Send + Sync>;

static CHUNK: [u8; 16 * 1024] = [b'x'; 16 * 1024];

/// Answers by authority and path:
/// - `/endless`: a body that never ends; `/redirect`: 302 to `/`; `/fail`: service error;
///   `/goaway`: answers, then shuts the connection down gracefully;
///   `/hugeheaders`: a 100 kB header; `/big`: 100,000 bytes; `/hang`: never answers;
/// - a host starting with `misdirected.` answers 421 unless it is also the SNI;
/// - otherwise 200 with the body `site=<authority host> sni=<sni> path=<path>`.
async fn handle(
    request: hyper::Request<Incoming>,
    (sni, connection, alt_svc): (Option<String>, usize, Option<&'static str>),
    seen: Arc<Mutex<Vec<Seen>>>,
    goaway: Arc<tokio::sync::Notify>,
) -> Result<hyper::Response<ResponseBody>, HandlerError> {
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let path = request.uri().path().to_string();
    if let Ok(mut seen) = seen.lock() {
        seen.push(Seen {
            sni: sni.clone(),
            authority: authority.clone(),
            path: path.clone(),
            version: request.version(),
            connection,
        });
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority.as_str(), |(h, _)| h)
        .to_string();
    let builder = response_head(alt_svc);
    let response = match path.as_str() {
        "/endless" => {
            let stream =
                futures::stream::repeat_with(|| Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK))));
            builder.status(200).body(StreamBody::new(stream).boxed())
        }
        // The service fails: hyper resets the HTTP/2 stream (closes an HTTP/1.1 connection).
        "/fail" => return Err("handler failed".into()),
        // Answer, and shut the connection down gracefully (HTTP/2 GOAWAY).
        "/goaway" => {
            goaway.notify_one();
            builder
                .status(200)
                .body(Full::new(Bytes::from_static(b"bye")).boxed())
        }
        "/hugeheaders" => builder
            .status(200)
            .header("x-huge", "h".repeat(100_000))
            .body(Full::new(Bytes::new()).boxed()),
        "/redirect" => builder
            .status(302)
            .header(http::header::LOCATION, "/")
            .body(Full::new(Bytes::from_static(b"moved")).boxed()),
        "/big" => builder
            .status(200)
            .body(Full::new(Bytes::from(vec![b'b'; 100_000])).boxed()),
        "/hang" => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        _ => {
            let status = if host.starts_with("misdirected.") && sni.as_deref() != Some(&host) {
                421
            } else {
                200
            };
            let body = format!("site={host} sni={} path={path}", sni.as_deref().unwrap_or("-"));
            builder.status(status).body(Full::new(Bytes::from(body)).boxed())
        }
    };
    Ok(response.expect("test response"))
}

/// The headers every answer of `handle` carries.
fn response_head(alt_svc: Option<&'static str>) -> http::response::Builder {
    let builder = hyper::Response::builder()
        .header(http::header::SERVER, "testsrv/1")
        .header(http::header::CONTENT_TYPE, "Text/Plain; Charset=UTF-8");
    match alt_svc {
        Some(value) => builder.header(http::header::ALT_SVC, value),
        None => builder,
    }
}

/// A TLS server on `bind` (port 0: chosen by the system) with `chain`/`key`.
pub async fn tls_server(
    bind: SocketAddr,
    chain: Chain,
    key: PrivateKeyDer<'static>,
    options: ServerOptions,
) -> TestServer {
    signalling_server(bind, chain, key, options, Signals::default()).await
}

/// What a `signalling_server` says besides its answers.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Raw HTTP/2 frames sent right after the server's SETTINGS (`lab::frames`).
    pub frames: Vec<Bytes>,
    /// An `Alt-Svc` header on every answer.
    pub alt_svc: Option<&'static str>,
}

/// `tls_server`, whose HTTP/2 connections also carry `signals`.
pub async fn signalling_server(
    bind: SocketAddr,
    chain: Chain,
    key: PrivateKeyDer<'static>,
    options: ServerOptions,
    signals: Signals,
) -> TestServer {
    let provider = crate::engine::probe::tls::provider();
    let cert = Arc::new(CertSwitch::new(chain, key));
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(CertSwitchRef(cert.clone())));
    config.alpn_protocols = options.alpn;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(bind).await.expect("bind test server");
    let addr = listener.local_addr().expect("local addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (seen2, accepted2, closed2) = (seen.clone(), accepted.clone(), closed.clone());
    let task = tokio::spawn(async move {
        // Connections live in this JoinSet: aborting the accept task aborts them all.
        let mut connections = JoinSet::new();
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
                Some(_) = connections.join_next() => continue,
            };
            let _ = tcp.set_nodelay(true); // as nginx and Caddy: no wait for delayed ACKs
            let number = accepted2.fetch_add(1, Ordering::SeqCst) + 1;
            let (acceptor, seen, closed) = (acceptor.clone(), seen2.clone(), closed2.clone());
            let signals = signals.clone();
            connections.spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let sni = tls.get_ref().1.server_name().map(str::to_string);
                    let goaway = Arc::new(tokio::sync::Notify::new());
                    let goaway2 = goaway.clone();
                    let alt_svc = signals.alt_svc;
                    let service = hyper::service::service_fn(move |request| {
                        let conn = (sni.clone(), number, alt_svc);
                        handle(request, conn, seen.clone(), goaway2.clone())
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let tls = crate::lab::frames::with_frames_after_settings(tls, signals.frames);
                    let connection = builder.serve_connection(TokioIo::new(tls), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = goaway.notified() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let mut guard = TaskGuard::default();
    guard.push(task);
    TestServer {
        addr,
        seen,
        accepted,
        closed,
        cert,
        _guard: guard,
    }
}

/// A plain TCP listener that runs `behaviour` on every accepted socket.
pub struct RawServer {
    pub addr: SocketAddr,
    _guard: TaskGuard,
}

#[derive(Debug, Clone, Copy)]
pub enum RawBehaviour {
    /// Accept and never send anything.
    Silent,
    /// Answer the ClientHello with an HTTP/1.1 error.
    Garbage,
    /// Read the ClientHello, then close.
    Close,
}

pub async fn raw_server(behaviour: RawBehaviour) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind raw");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            match behaviour {
                RawBehaviour::Silent => held.push(tcp),
                RawBehaviour::Garbage => {
                    let mut buf = [0u8; 1024];
                    let _ = tcp.read(&mut buf).await;
                    let _ = tcp
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    held.push(tcp);
                }
                RawBehaviour::Close => {
                    // Read the ClientHello first: closing with unread data would be a reset.
                    let mut buf = [0u8; 1024];
                    let _ = tcp.read(&mut buf).await;
                    drop(tcp);
                }
            }
        }
    });
    let mut guard = TaskGuard::default();
    guard.push(task);
    RawServer { addr, _guard: guard }
}

/// A loopback server for `names` signed by `pki`, on 127.0.0.1 with default options.
pub async fn simple_server(pki: &Pki, names: &[&str], validity: Validity) -> TestServer {
    let (chain, key) = pki.leaf(names, validity);
    tls_server(local(1, 0), chain, key, ServerOptions::default()).await
}

/// 127.0.0.`last`:`port`.
pub fn local(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port)
}

/// Hex SHA-256, as in `HttpAnswer::body_digest`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A loopback address on which nothing listens.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

// ---------------------------------------------------------------- DNS

/// An HTTPS record to serve from [`dns_server_with`] (TTL 60).
pub fn https_record(spec: &crate::lab::HttpsSpec) -> Record {
    spec.record(60).expect("test HTTPS record")
}

/// An A record to serve from [`dns_server_with`] (TTL 60; names with the trailing dot).
pub fn a_record(owner: &str, addr: &str) -> Record {
    record(owner, 60, RData::A(A(addr.parse().expect("an IPv4 address"))))
}

/// A CNAME to serve from [`dns_server_with`] (TTL 60; names with the trailing dot).
pub fn cname_record(owner: &str, target: &str) -> Record {
    record(owner, 60, RData::CNAME(CNAME(name(target))))
}

/// A loopback DNS server (UDP and TCP on the same port) with a fixed zone under `.test`:
/// - `a.test`: A 127.0.0.1 (TTL 300), AAAA ::1 (TTL 60)
/// - `v4only.test`: A 127.0.0.2 only (AAAA: NOERROR, no data)
/// - `half.test`: A 127.0.0.3, AAAA answers SERVFAIL
/// - `alias.test` → CNAME `mid.test` (TTL 120) → CNAME `a.test` (TTL 30) → A/AAAA of a.test
/// - `cnameonly.test` → CNAME `nx.test` (which does not exist)
/// - `rr.test`: A 127.0.0.4 and 127.0.0.2 (in that order)
/// - `nx.test`: NXDOMAIN; `fail.test`: SERVFAIL; `silent.test`: never answered
/// - `many.test`: 500 A records 10.0.x.y (too large for UDP: truncated, then TCP)
/// - `drop65.test`: A 127.0.0.5; HTTPS (type 65) queries are never answered, like a server
///   or middlebox that drops the types it does not know
///
/// [`dns_server_with`] serves more records (HTTPS records, CNAMEs) beside this zone; a
/// test may replace them (`set_records`) and make the server go silent or answer SERVFAIL to
/// everything (`set_mode`) while it runs.
pub struct TestDns {
    pub addr: SocketAddr,
    pub udp_queries: Arc<AtomicUsize>,
    pub tcp_queries: Arc<AtomicUsize>,
    live: Arc<Mutex<LiveZone>>,
    _guard: TaskGuard,
}

/// How a [`TestDns`] answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DnsMode {
    /// From its zone (the default).
    #[default]
    Answer,
    /// Never: every query times out.
    Silent,
    /// SERVFAIL to every query.
    ServFail,
}

/// What a running [`TestDns`] answers from (changed by the test).
#[derive(Debug, Default)]
struct LiveZone {
    mode: DnsMode,
    extra: Vec<Record>,
}

impl TestDns {
    pub fn set_mode(&self, mode: DnsMode) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).mode = mode;
    }

    /// Serve `records` instead of the ones given at the start (beside the fixed zone).
    pub fn set_records(&self, records: Vec<Record>) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).extra = records;
    }
}

/// The answer to `query` as the zone stands now.
fn live_answer(live: &Mutex<LiveZone>, query: &[u8], limit: usize) -> Option<Vec<u8>> {
    let zone = live.lock().unwrap_or_else(|e| e.into_inner());
    match zone.mode {
        DnsMode::Answer => answer(query, limit, &zone.extra),
        DnsMode::Silent => None,
        DnsMode::ServFail => {
            let request = Message::from_vec(query).ok()?;
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.message_type = MessageType::Response;
            response.metadata.response_code = ResponseCode::ServFail;
            if let Some(q) = request.queries.first() {
                response.add_query(q.clone());
            }
            response.to_vec().ok()
        }
    }
}

/// An A record with its TTL (names with the trailing dot).
pub fn a_record_ttl(owner: &str, addr: &str, ttl: u32) -> Record {
    record(owner, ttl, RData::A(A(addr.parse().expect("an IPv4 address"))))
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

fn record(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

enum ZoneAnswer {
    Records(Vec<Record>),
    Code(ResponseCode),
    Silence,
}

fn zone(qname: &str, qtype: RecordType) -> ZoneAnswer {
    use RecordType as T;
    let a = |owner: &str, ttl, ip: [u8; 4]| record(owner, ttl, RData::A(A(Ipv4Addr::from(ip))));
    let a_test = |qtype: T| match qtype {
        T::A => vec![a("a.test.", 300, [127, 0, 0, 1])],
        T::AAAA => vec![record("a.test.", 60, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)))],
        _ => vec![],
    };
    match qname {
        "a.test." => ZoneAnswer::Records(a_test(qtype)),
        "v4only.test." => ZoneAnswer::Records(match qtype {
            T::A => vec![a("v4only.test.", 100, [127, 0, 0, 2])],
            _ => vec![],
        }),
        "half.test." => match qtype {
            T::A => ZoneAnswer::Records(vec![a("half.test.", 100, [127, 0, 0, 3])]),
            _ => ZoneAnswer::Code(ResponseCode::ServFail),
        },
        "rr.test." => ZoneAnswer::Records(match qtype {
            T::A => vec![
                a("rr.test.", 100, [127, 0, 0, 4]),
                a("rr.test.", 100, [127, 0, 0, 2]),
            ],
            _ => vec![],
        }),
        "alias.test." => {
            let mut records = vec![
                record("alias.test.", 120, RData::CNAME(CNAME(name("mid.test.")))),
                record("mid.test.", 30, RData::CNAME(CNAME(name("a.test.")))),
            ];
            records.extend(a_test(qtype));
            ZoneAnswer::Records(records)
        }
        "cnameonly.test." => ZoneAnswer::Records(vec![record(
            "cnameonly.test.",
            120,
            RData::CNAME(CNAME(name("nx.test."))),
        )]),
        "many.test." => ZoneAnswer::Records(match qtype {
            T::A => (0..500u32)
                .map(|i| a("many.test.", 100, [10, 0, (i / 256) as u8, (i % 256) as u8]))
                .collect(),
            _ => vec![],
        }),
        "fail.test." => ZoneAnswer::Code(ResponseCode::ServFail),
        "silent.test." => ZoneAnswer::Silence,
        "drop65.test." => match qtype {
            T::A => ZoneAnswer::Records(vec![a("drop65.test.", 100, [127, 0, 0, 5])]),
            T::HTTPS => ZoneAnswer::Silence,
            _ => ZoneAnswer::Records(vec![]),
        },
        _ => ZoneAnswer::Code(ResponseCode::NXDomain),
    }
}

/// The answer for `qname` when `extra` has records owned by it: its CNAME chain in `extra`
/// (at most 8 hops), then the records of `qtype` at the chain's end, from `extra` and from the
/// fixed zone. None: `extra` has nothing for the name, the fixed zone answers alone.
fn extra_answer(extra: &[Record], qname: &Name, qtype: RecordType) -> Option<ZoneAnswer> {
    let owned_by = |r: &Record, n: &Name| r.name.to_lowercase() == *n;
    let mut current = qname.to_lowercase();
    if !extra.iter().any(|r| owned_by(r, &current)) {
        return None;
    }
    let mut records = Vec::new();
    for _ in 0..8 {
        if qtype == RecordType::CNAME {
            break;
        }
        let Some(cname) = extra
            .iter()
            .find(|r| owned_by(r, &current) && r.record_type() == RecordType::CNAME)
        else {
            break;
        };
        records.push(cname.clone());
        let RData::CNAME(target) = &cname.data else {
            break;
        };
        current = target.0.to_lowercase();
    }
    records.extend(
        extra
            .iter()
            .filter(|r| owned_by(r, &current) && r.record_type() == qtype)
            .cloned(),
    );
    if let ZoneAnswer::Records(fixed) = zone(&current.to_ascii(), qtype) {
        records.extend(fixed);
    }
    Some(ZoneAnswer::Records(records))
}

/// The encoded answer to `query`, at most `limit` bytes (else truncated); None = no answer.
fn answer(query: &[u8], limit: usize, extra: &[Record]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let qname = question.name().to_lowercase().to_ascii();
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.message_type = MessageType::Response;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = true;
    response.add_query(question.clone());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        response.set_edns(edns);
    }
    let found = extra_answer(extra, question.name(), question.query_type())
        .unwrap_or_else(|| zone(&qname, question.query_type()));
    match found {
        ZoneAnswer::Silence => return None,
        ZoneAnswer::Code(code) => response.metadata.response_code = code,
        ZoneAnswer::Records(records) => {
            response.add_answers(records);
        }
    }
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

pub async fn dns_server() -> TestDns {
    dns_server_with(Vec::new()).await
}

/// [`dns_server`] that also serves `extra` (e.g. [`https_record`]s, CNAMEs): a name that owns
/// records in `extra` is answered from them (and from the fixed zone at the end of its
/// CNAME chain) instead of by the fixed zone alone.
pub async fn dns_server_with(extra: Vec<Record>) -> TestDns {
    let extra = Arc::new(Mutex::new(LiveZone {
        mode: DnsMode::Answer,
        extra,
    }));
    let live = extra.clone();
    // UDP and TCP on the same port: try a few ports until both binds succeed.
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().expect("udp addr");
    let udp_queries = Arc::new(AtomicUsize::new(0));
    let tcp_queries = Arc::new(AtomicUsize::new(0));
    let mut guard = TaskGuard::default();

    let counter = udp_queries.clone();
    let udp_extra = extra.clone();
    guard.push(tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            let limit = Message::from_vec(&buf[..n])
                .ok()
                .and_then(|m| m.edns.map(|e| e.max_payload() as usize))
                .unwrap_or(512)
                .clamp(512, 1232);
            if let Some(reply) = live_answer(&udp_extra, &buf[..n], limit) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    }));

    let counter = tcp_queries.clone();
    guard.push(tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let (mut stream, _) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue,
                },
                Some(_) = connections.join_next() => continue,
            };
            let counter = counter.clone();
            let extra = extra.clone();
            connections.spawn(async move {
                loop {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut query = vec![0u8; len as usize];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Some(reply) = live_answer(&extra, &query, u16::MAX as usize) else {
                        continue;
                    };
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if stream.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    }));

    TestDns {
        addr,
        udp_queries,
        tcp_queries,
        live,
        _guard: guard,
    }
}

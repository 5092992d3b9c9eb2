//! The HTTP side of `serve`: a small hyper 1 server (HTTP/1.1) with five read-only routes.
//!
//! - `GET /metrics`: Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when `Accept` prefers
//!   `application/openmetrics-text` (as Prometheus itself asks).
//! - `GET /api/snapshot`: the contract JSON (`coalscope/1`) of the latest view.
//! - `GET /api/status`: the engine status (plus the exporter's own facts) as JSON.
//! - `GET /api/events`: the engine's event log (verdict changes, certificate and address
//!   changes, DNS trouble), oldest first, at most the last 1,000.
//! - `GET /healthz`: 200 while the engine runs.
//!
//! Anything else is 404 (405 for another method on a known path). Shutdown stops accepting,
//! lets open connections finish their current request, and gives up after a short grace.
//!
//! Bounds against abuse of the port: `--max-connections` at once (256; when full, the connection
//! idle longest is closed to admit a new one, see `conns`), 32 from one address (an IPv6 /64
//! counts as one; more are closed when accepted), 10 s to send a request head (idle and
//! slowloris connections are closed; so are idle keep-alive ones), 64 KiB of head (431).
//!
//! With `--web-config`, each connection takes the web config current when it arrives: TLS (plain
//! HTTP to the TLS port is answered 400), allowed client-certificate SANs, then per request the
//! rate limit (429), basic auth (401) and the configured response headers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::snapshot::EngineStatus;
use crate::serve::conns::{Admitted, BusyHandle, Connections, Tracked};
use crate::serve::encoded::{Coding, Encoded};
use crate::serve::metrics::{Exporter, Format};
use crate::serve::webconfig::{TlsServer, WebConfig, WebConfigSource};

/// Connections from one address at once; more are closed when accepted, so that one client
/// holding idle or slow connections cannot take every slot from the scrapers.
const MAX_PER_PEER: usize = 32;
/// Bytes of request head buffered per connection (a larger head is answered 431).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Time a client gets to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The first byte of a TLS ClientHello (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The answer to plain HTTP on a TLS port.
const PLAIN_TO_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// What the routes read.
pub struct App {
    pub exporter: Exporter,
    /// False once the engine task has ended.
    pub engine_alive: Arc<AtomicBool>,
    /// `--web-config`: TLS, basic auth, headers, rate limit (None: plain HTTP, open).
    pub web: Option<Arc<WebConfigSource>>,
    /// `--max-connections`: connections open at once (the idlest makes room for a new one).
    pub max_connections: usize,
    /// `/metrics` and `/api/snapshot` encoded once per view, shared by the scrapers.
    pub encoded: Encoded,
}

impl App {
    /// The routes' state; no answer encoded yet.
    pub fn new(
        exporter: Exporter,
        engine_alive: Arc<AtomicBool>,
        web: Option<Arc<WebConfigSource>>,
        max_connections: usize,
    ) -> App {
        App {
            exporter,
            engine_alive,
            web,
            max_connections,
            encoded: Encoded::default(),
        }
    }
}

/// `/api/status`: the engine status, flattened, plus the exporter's facts.
#[derive(Serialize)]
struct Status<'a> {
    #[serde(flatten)]
    engine: &'a EngineStatus,
    vantage: Option<&'a str>,
    pairs_exported: usize,
    pairs_dropped: usize,
    engine_running: bool,
    version: &'static str,
}

/// Serve on `listener` until `shutdown` turns true.
pub async fn run(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let open = Connections::new(app.max_connections, app.exporter.conn_stats());
    let peers: Peers = Arc::default();
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let Some(slot) = PeerSlot::take(&peers, peer_key(peer.ip())) else {
            tracing::info!(%peer, "connection closed: {MAX_PER_PEER} already open from this address");
            drop(stream);
            continue;
        };
        // Room under the global cap: the idlest connection closes, or (all busy) we wait.
        let admitted = tokio::select! {
            a = open.admit() => a,
            _ = stopped(&mut shutdown) => break,
        };
        tracing::debug!(%peer, "connection");
        let app = app.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = admitted.evicted() => {
                    tracing::debug!(%peer, "connection closed: the idlest when the connection cap was full");
                }
                _ = connection(stream, &admitted, app, stop) => {}
            }
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.shutdown().await;
    }
}

/// Open connections per client address.
type Peers = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// The address a connection counts against: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its
/// /64, the block one host or customer usually holds.
fn peer_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V4(v4) => v4.into(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                std::net::Ipv6Addr::from(s).into()
            }
        },
    }
}

/// One open connection counted against its address; given back on drop.
struct PeerSlot {
    peers: Peers,
    ip: std::net::IpAddr,
}

impl PeerSlot {
    /// A slot for `ip`, or None when `MAX_PER_PEER` are open from it.
    fn take(peers: &Peers, ip: std::net::IpAddr) -> Option<PeerSlot> {
        let mut map = peers.lock().ok()?;
        let n = map.entry(ip).or_default();
        if *n >= MAX_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.peers.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// One accepted connection: its TLS handshake if the web config asks for one, then HTTP/1.1.
async fn connection(stream: TcpStream, admitted: &Admitted, app: Arc<App>, stop: watch::Receiver<bool>) {
    let config = app.web.as_ref().map(|w| w.current()).unwrap_or_default();
    let stream = admitted.track(stream);
    let busy = admitted.handle();
    match config.tls.clone() {
        None => serve_connection(stream, app, config, busy, stop).await,
        Some(tls) => {
            if let Some(stream) = tls_handshake(stream, &tls).await {
                serve_connection(stream, app, config, busy, stop).await;
            }
        }
    }
}

/// HTTP/1.1 on one connection (plain or TLS) until it ends or shutdown starts; each request
/// marks the connection busy (not to be closed for room) until it is answered.
async fn serve_connection<S>(
    stream: S,
    app: Arc<App>,
    config: Arc<WebConfig>,
    busy: BusyHandle,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        let config = config.clone();
        let busy = busy.busy();
        async move {
            let response = respond(&app, &config, req).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The TLS handshake of a connection to a TLS port, bounded by the header timeout. Plain HTTP
/// sent to it gets a 400 that says so (as Go's servers, and so the exporters, answer) instead of
/// a silent close; a client certificate outside `allowed_sans` ends the connection.
async fn tls_handshake(
    stream: Tracked<TcpStream>,
    tls: &TlsServer,
) -> Option<tokio_rustls::server::TlsStream<Tracked<TcpStream>>> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.get_ref().peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        let mut stream = stream;
        let _ = tokio::time::timeout(HEADER_TIMEOUT, stream.write_all(PLAIN_TO_TLS)).await;
        let _ = stream.shutdown().await;
        return None;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let stream = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!("TLS handshake refused: {e}");
            return None;
        }
        Err(_) => return None,
    };
    if !tls.allowed_sans.is_empty() {
        let leaf = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
        let names = leaf.map(|c| client_sans(c)).unwrap_or_default();
        if !names.iter().any(|n| tls.allowed_sans.contains(n)) {
            tracing::info!(
                ?names,
                "client certificate refused: no SAN in client_allowed_sans"
            );
            return None;
        }
    }
    Some(stream)
}

/// The DNS, IP, e-mail and URI names of a client certificate, as the toolkit compares them.
fn client_sans(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(s.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The web config's gates (rate limit, basic auth), then the route, then its headers.
async fn respond<B>(app: &App, config: &WebConfig, req: Request<B>) -> Response<Full<Bytes>> {
    if let Some(limit) = &config.rate_limit {
        if !limit.allow(std::time::Instant::now()) {
            return text(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
        }
    }
    let mut response = match &config.auth {
        Some(auth) => {
            let header = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
            match auth.check(header).await {
                Ok(()) => route(app, &req).await,
                Err(denied) => {
                    tracing::debug!(?denied, "basic auth");
                    let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"coalscope\", charset=\"UTF-8\""),
                    );
                    r
                }
            }
        }
        None => route(app, &req).await,
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Resolves once `rx` says true (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn route<B>(app: &App, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/metrics" | "/api/snapshot" | "/api/status" | "/api/events" | "/healthz" | "/"
    );
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /api/snapshot, /api/status, /api/events or /healthz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut response = match path {
        "/metrics" => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let format = negotiate(accept);
            let coding = coding_of(req);
            let body = app.encoded.metrics(&app.exporter, format, coding).await;
            encoded(with_type(StatusCode::OK, format.content_type(), body), coding)
        }
        "/api/snapshot" => match app.exporter.view() {
            Some(view) => {
                let coding = coding_of(req);
                let body = app.encoded.snapshot(&app.exporter, view, coding).await;
                encoded(with_type(StatusCode::OK, "application/json", body), coding)
            }
            None => {
                let mut r = with_type(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    Bytes::from_static(b"{\"error\": \"no snapshot yet: the engine is starting\"}"),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        },
        "/api/events" => {
            let view = app.exporter.view().unwrap_or_default();
            with_type(StatusCode::OK, "application/json", app.encoded.events(view).await)
        }
        "/api/status" => {
            let view = app.exporter.view();
            let default = EngineStatus::default();
            let (exported, dropped) = app.exporter.pair_counts();
            let status = Status {
                engine: view.as_ref().map(|v| &v.status).unwrap_or(&default),
                vantage: app.exporter.vantage(),
                pairs_exported: exported,
                pairs_dropped: dropped,
                engine_running: app.engine_alive.load(Ordering::Relaxed),
                version: env!("CARGO_PKG_VERSION"),
            };
            let body =
                serde_json::to_string_pretty(&status).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
            with_type(StatusCode::OK, "application/json", Bytes::from(body))
        }
        "/healthz" => {
            if app.engine_alive.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ok\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "engine stopped\n")
            }
        }
        _ => text(
            StatusCode::OK,
            "coalscope serve: /metrics, /api/snapshot, /api/status, /api/events, /healthz\n",
        ),
    };
    if req.method() == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The coding of a large answer: gzip when the request's `Accept-Encoding` takes it (RFC 9110
/// §12.5.3: `gzip`, `x-gzip` or `*`, with a q-value above 0), identity otherwise.
fn coding_of<B>(req: &Request<B>) -> Coding {
    let accept = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let mut q_gzip: Option<f32> = None;
    let mut q_any: Option<f32> = None;
    for item in accept.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        match coding.as_str() {
            "gzip" | "x-gzip" => q_gzip = Some(q_gzip.unwrap_or(0.0).max(q)),
            "*" => q_any = Some(q_any.unwrap_or(0.0).max(q)),
            _ => {}
        }
    }
    // A named coding's q-value counts before the wildcard's.
    if q_gzip.or(q_any).is_some_and(|q| q > 0.0) {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// `r` with the headers of its coding: the answer varies with `Accept-Encoding`.
fn encoded(mut r: Response<Full<Bytes>>, coding: Coding) -> Response<Full<Bytes>> {
    let headers = r.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if coding == Coding::Gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

/// OpenMetrics when the `Accept` header prefers `application/openmetrics-text` (by q-value,
/// at least as much as the Prometheus text format); the Prometheus text format otherwise.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let mut openmetrics: f32 = 0.0;
    let mut plain: f32 = 0.0;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q: f32 = 1.0;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= plain {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_negotiation() {
        let coding = |values: &[&str]| {
            let mut req = Request::builder().uri("/metrics");
            for v in values {
                req = req.header(header::ACCEPT_ENCODING, *v);
            }
            coding_of(&req.body(()).unwrap())
        };
        assert_eq!(coding(&[]), Coding::Identity);
        // What Prometheus sends.
        assert_eq!(coding(&["gzip"]), Coding::Gzip);
        assert_eq!(coding(&["gzip, deflate, br"]), Coding::Gzip);
        assert_eq!(coding(&["br;q=1.0, GZIP;q=0.5"]), Coding::Gzip);
        assert_eq!(coding(&["identity"]), Coding::Identity);
        assert_eq!(coding(&["deflate", "x-gzip"]), Coding::Gzip);
        assert_eq!(coding(&["*"]), Coding::Gzip);
        assert_eq!(coding(&["gzip;q=0"]), Coding::Identity);
        assert_eq!(
            coding(&["gzip;q=0, *"]),
            Coding::Identity,
            "the named coding counts first"
        );
        assert_eq!(coding(&["gzip;q=zero"]), Coding::Identity);
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None), Format::Prometheus);
        assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        // What Prometheus 2.x sends.
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0.2, text/plain;q=0.9")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Prometheus
        );
    }

    fn app() -> App {
        App {
            exporter: Exporter::new(crate::serve::metrics::ExporterOptions {
                vantage: None,
                max_pairs: 10,
                window: Duration::from_secs(60),
            }),
            engine_alive: Arc::new(AtomicBool::new(true)),
            web: None,
            max_connections: 4,
            encoded: Encoded::default(),
        }
    }

    async fn get(app: &App, path: &str) -> Response<Full<Bytes>> {
        route(app, &Request::get(path).body(()).unwrap()).await
    }

    #[test]
    fn peers_count_by_ipv4_address_and_ipv6_slash_64() {
        let key = |s: &str| peer_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:1:2:3"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[tokio::test]
    async fn routes() {
        let app = app();
        assert_eq!(get(&app, "/nope").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&app, "/metrics").await.status(), StatusCode::OK);
        assert_eq!(get(&app, "/metrics?x=1").await.status(), StatusCode::OK);
        assert_eq!(get(&app, "/healthz").await.status(), StatusCode::OK);
        assert_eq!(get(&app, "/api/status").await.status(), StatusCode::OK);
        // No view yet: no events either.
        let events = get(&app, "/api/events").await;
        assert_eq!(events.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(events.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json, serde_json::json!({"schema": "coalscope/1", "events": []}));
        assert_eq!(
            get(&app, "/api/snapshot").await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let post = route(&app, &Request::post("/metrics").body(()).unwrap()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        app.engine_alive.store(false, Ordering::Relaxed);
        assert_eq!(
            get(&app, "/healthz").await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}

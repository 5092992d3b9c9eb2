//! The lab's TLS HTTP servers: one accept loop per 127.0.0.x address; every connection is a
//! task with a handshake timeout and an idle timeout, owned by its listener's task, so that
//! aborting the listener closes everything it accepted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::engine::probe::signals::origin_of;

use super::frames;
use super::idle::IdleTimeout;
use super::phase::Clock;
use super::respond::{decide, render, request_host, server_label, LiveCounter, Outcome};
use super::scenarios::{Alpn, Endpoint, Scenario, Site, Style};
use super::tls::EndpointTls;

/// Bound on the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no byte in either direction for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once per address; more are closed at once.
const MAX_CONNECTIONS: usize = 512;
/// Sockets a blackhole holds open at once (the oldest is dropped).
const MAX_BLACKHOLE: usize = 256;

/// Everything a listener needs to answer.
pub(crate) struct EndpointRuntime {
    pub scenario: &'static Scenario,
    pub endpoint: &'static Endpoint,
    /// None for a blackhole.
    pub tls: Option<EndpointTls>,
    pub clock: Clock,
    pub live: Arc<LiveCounter>,
}

impl EndpointRuntime {
    /// The address's default site (for an absent or unknown SNI).
    pub(super) fn default_site(&self) -> Option<&'static Site> {
        self.scenario.sites_at(self.endpoint.octet).next()
    }

    /// The site served here under `name`.
    pub(super) fn site(&self, name: &str) -> Option<&'static Site> {
        self.scenario
            .sites_at(self.endpoint.octet)
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}

/// Serve one listener until the task is aborted.
pub(crate) async fn run(listener: TcpListener, rt: Arc<EndpointRuntime>) {
    if rt.endpoint.style == Style::Blackhole || rt.tls.is_none() {
        blackhole(listener).await;
        return;
    }
    let mut conns = JoinSet::new();
    let mut accepted: u64 = 0;
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((tcp, _peer)) => {
                    let conn = accepted;
                    accepted += 1;
                    if conns.len() >= MAX_CONNECTIONS {
                        tracing::debug!(octet = rt.endpoint.octet, "lab: too many connections");
                        continue;
                    }
                    conns.spawn(connection(tcp, conn, rt.clone()));
                }
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "lab: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Accept and hold connections without ever sending a byte.
async fn blackhole(listener: TcpListener) {
    let mut held: VecDeque<TcpStream> = VecDeque::new();
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                if held.len() >= MAX_BLACKHOLE {
                    held.pop_front();
                }
                held.push_back(tcp);
            }
            Err(error) => {
                tracing::warn!(%error, "lab: blackhole accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Per-connection facts the responses depend on.
struct ConnInfo {
    sni_site: &'static Site,
    conn: u64,
}

/// One accepted connection: the TLS handshake, the site its SNI selects, then HTTP until the
/// client leaves or the connection idles out.
async fn connection(tcp: TcpStream, conn: u64, rt: Arc<EndpointRuntime>) {
    let Some(tls) = handshake(tcp, &rt).await else {
        return;
    };
    let (_, session) = tls.get_ref();
    let sni_site = session
        .server_name()
        .and_then(|name| rt.site(name))
        .or_else(|| rt.default_site());
    let Some(sni_site) = sni_site else {
        return;
    };
    let builder = http_server(rt.endpoint.alpn, session.alpn_protocol());

    let info = Arc::new(ConnInfo { sni_site, conn });
    let port = tls.get_ref().0.local_addr().map_or(0, |a| a.port());
    // An endpoint that serves HTTP/3 says so on every answer, as Caddy does.
    let alt_svc = rt
        .endpoint
        .h3
        .and_then(|_| http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=3600")).ok());
    let service = {
        let rt = rt.clone();
        service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let rt = rt.clone();
            let info = info.clone();
            let alt_svc = alt_svc.clone();
            async move {
                let style = rt.clock.style_of(rt.endpoint);
                let host = request_host(&req).and_then(|h| rt.site(&h));
                let is_h2 = req.version() == http::Version::HTTP_2;
                let outcome = decide(style, info.sni_site, host, info.conn);
                if outcome == Outcome::ResetHttp11Required && is_h2 {
                    // hyper resets the stream with the code of the h2 error a service fails with.
                    return Err(h2::Error::from(h2::Reason::HTTP_1_1_REQUIRED));
                }
                let label = server_label(style, info.conn);
                let mut response = render(outcome, &label, info.sni_site.name, &rt.live);
                if let Some(v) = alt_svc {
                    response.headers_mut().insert(http::header::ALT_SVC, v);
                }
                Ok(response)
            }
        })
    };
    // An ORIGIN frame after the server's SETTINGS, on HTTP/2 connections of an endpoint that
    // sends one (hyper cannot: the writer puts it on the wire).
    let origin_frame = match session_is_h2(&tls) {
        true if !rt.endpoint.origin_frame.is_empty() => {
            let origins: Vec<String> = rt
                .endpoint
                .origin_frame
                .iter()
                .map(|name| origin_of(name, port))
                .collect();
            let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
            vec![frames::origin_frame(&origins)]
        }
        _ => Vec::new(),
    };
    let tls = frames::with_frames_after_settings(tls, origin_frame);
    let io = TokioIo::new(IdleTimeout::new(tls, IDLE_TIMEOUT));
    if let Err(error) = builder.serve_connection(io, service).await {
        tracing::debug!(%error, "lab: connection ended with an error");
    }
}

/// ALPN chose h2 on this connection.
fn session_is_h2(tls: &TlsStream<TcpStream>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice())
}

/// The TLS handshake, within one HANDSHAKE_TIMEOUT for all of it; None when it fails, times
/// out, or the endpoint has no TLS.
async fn handshake(tcp: TcpStream, rt: &EndpointRuntime) -> Option<TlsStream<TcpStream>> {
    let configs = rt.tls.clone()?;
    let _ = tcp.set_nodelay(true);
    // One budget for the whole handshake: ClientHello, then the rest.
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = match tokio::time::timeout_at(deadline, lazy).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            tracing::debug!(%error, "lab: bad ClientHello");
            return None;
        }
        Err(_) => return None,
    };
    // Like nginx: the server block the SNI selects decides whether a client certificate is
    // requested (`ssl_verify_client optional`).
    let style = rt.clock.style_of(rt.endpoint);
    let config = match (style, start.client_hello().server_name()) {
        (Style::NginxClientAuth { protected }, Some(sni)) if sni.eq_ignore_ascii_case(protected) => {
            configs.client_auth
        }
        _ => configs.plain,
    };
    match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%error, "lab: TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// The HTTP server for a connection: HTTP/1.1 only when the endpoint allows only that or
/// ALPN chose it, HTTP/2 only when ALPN chose h2, else whichever the client's first bytes
/// speak.
fn http_server(endpoint_alpn: Alpn, negotiated: Option<&[u8]>) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024);
    if endpoint_alpn == Alpn::H1Only || negotiated == Some(b"http/1.1".as_slice()) {
        builder.http1_only()
    } else if negotiated == Some(b"h2".as_slice()) {
        builder.http2_only()
    } else {
        builder
    }
}

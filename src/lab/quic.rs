//! The lab's HTTP/3 listeners: for an endpoint with `h3` set, quinn + h3 on the same address
//! and port over UDP, with the endpoint's certificates (chosen by SNI, as over TCP) and the
//! answers `respond::decide` gives for the HTTP/3 style — which may differ from the TCP one, as
//! a Caddy whose HTTP/3 listener is stricter than its HTTP/2 one.
//!
//! Bounded as the TCP side: connections at once per address, a handshake and idle timeout
//! (QUIC's), requests per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::task::{JoinHandle, JoinSet};

use super::respond::{decide, render, server_label, Outcome};
use super::scenarios::Style;
use super::server::EndpointRuntime;

/// QUIC connections served at once per address; more are refused.
const MAX_CONNECTIONS: u32 = 512;
/// A connection silent for this long is closed (QUIC's idle timeout; it bounds the
/// handshake too).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests a client may have open at once on one connection.
const MAX_STREAMS: u32 = 100;

/// One HTTP/3 listener. Dropping it closes the socket and every connection.
pub(crate) struct QuicListener {
    endpoint: quinn::Endpoint,
    task: JoinHandle<()>,
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.task.abort();
        self.endpoint.close(quinn::VarInt::from_u32(0x100), b"");
    }
}

/// Serve HTTP/3 with `style` on UDP `addr` for the endpoint of `rt` (whose TLS settings give
/// the certificates).
pub(crate) fn listen(
    addr: SocketAddr,
    rt: Arc<EndpointRuntime>,
    style: Style,
) -> anyhow::Result<QuicListener> {
    let tls = rt
        .tls
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("HTTP/3 at {addr}: the endpoint has no certificates"))?;
    let config = (*tls.plain).clone();
    listen_with(addr, config, move |incoming, conn| {
        connection(incoming, conn, rt.clone(), style)
    })
}

/// Serve HTTP/3 on UDP `addr` with the certificates of `config` (its ALPN becomes h3): each
/// accepted connection (numbered from 1) handed to `serve`, at most `MAX_CONNECTIONS` at once.
pub(crate) fn listen_with<F, Fut>(
    addr: SocketAddr,
    mut config: rustls::ServerConfig,
    serve: F,
) -> anyhow::Result<QuicListener>
where
    F: Fn(quinn::Incoming, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    config.alpn_protocols = vec![b"h3".to_vec()];
    config.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|e| anyhow::anyhow!("HTTP/3 at {addr}: {e}"))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::try_from(IDLE_TIMEOUT)?))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_STREAMS));
    server.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(server, addr)
        .map_err(|e| anyhow::anyhow!("binding the lab's HTTP/3 server {addr} (UDP): {e}"))?;
    let accepting = endpoint.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let mut accepted: u64 = 0;
        loop {
            tokio::select! {
                incoming = accepting.accept() => {
                    let Some(incoming) = incoming else { break };
                    if connections.len() >= MAX_CONNECTIONS as usize {
                        incoming.refuse();
                        continue;
                    }
                    accepted += 1;
                    connections.spawn(serve(incoming, accepted));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(QuicListener { endpoint, task })
}

/// Send `response` (head and body) on `stream` and finish it.
pub(crate) async fn respond(stream: &mut H3Stream, response: http::Response<Bytes>) {
    let (head, body) = response.into_parts();
    let head = http::Response::from_parts(head, ());
    if stream.send_response(head).await.is_ok() && stream.send_data(body).await.is_ok() {
        let _ = stream.finish().await;
    }
}

/// A request stream of the HTTP/3 server side.
pub(crate) type H3Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Serve the HTTP/3 requests of an accepted QUIC connection until the client leaves: each
/// one in a task of its own, handed with the connection's SNI to `handle` (the lab's
/// listeners and the test server `testing::h3` both answer this way).
pub(crate) async fn serve_requests<F, Fut>(incoming: quinn::Incoming, handle: F)
where
    F: Fn(Option<Arc<str>>, http::Request<()>, H3Stream) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Ok(connection) = incoming.await else {
        return;
    };
    let sni: Option<Arc<str>> = connection
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name)
        .map(Arc::from);
    let Ok(mut h3) = h3::server::builder()
        .build::<_, Bytes>(h3_quinn::Connection::new(connection))
        .await
    else {
        return;
    };
    let mut requests = JoinSet::new();
    while let Ok(Some(resolver)) = h3.accept().await {
        let (handle, sni) = (handle.clone(), sni.clone());
        requests.spawn(async move {
            if let Ok((request, stream)) = resolver.resolve_request().await {
                handle(sni, request, stream).await;
            }
        });
        // Finished request tasks are reaped as the next ones come.
        while requests.try_join_next().is_some() {}
    }
    requests.shutdown().await;
}

/// One QUIC connection: each request answered as `style` decides for the site its SNI
/// selects and the one its `:authority` names.
async fn connection(incoming: quinn::Incoming, conn: u64, rt: Arc<EndpointRuntime>, style: Style) {
    serve_requests(incoming, move |sni, request, stream| {
        answer(rt.clone(), style, conn, sni, request, stream)
    })
    .await;
}

async fn answer(
    rt: Arc<EndpointRuntime>,
    style: Style,
    conn: u64,
    sni: Option<Arc<str>>,
    request: http::Request<()>,
    mut stream: H3Stream,
) {
    let Some(sni_site) = sni
        .as_deref()
        .and_then(|n| rt.site(n))
        .or_else(|| rt.default_site())
    else {
        return;
    };
    let host = request
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .and_then(|h| rt.site(&h));
    let outcome = decide(style, sni_site, host, conn);
    if outcome == Outcome::ResetHttp11Required {
        // HTTP/3's "retry over HTTP/1.1" (RFC 9114 §8.1).
        stream.stop_stream(h3::error::Code::H3_VERSION_FALLBACK);
        return;
    }
    let (head, body) = render(outcome, &server_label(style, conn), sni_site.name, &rt.live).into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    respond(&mut stream, http::Response::from_parts(head, body)).await;
}

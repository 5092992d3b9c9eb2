//! The lab's HTTP/3 listeners: for an endpoint with `h3` set, quinn + h3 on the same address
//! and port over UDP, with the endpoint's certificates (chosen by SNI, as over TCP) and the
//! answers `respond::decide` gives for the HTTP/3 style — which may differ from the TCP one, as
//! a Caddy whose HTTP/3 listener is stricter than its HTTP/2 one.
//!
//! Bounded as the TCP side: connections at once per address, a handshake and idle timeout
//! (QUIC's), requests per connection.

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
    socket: std::net::UdpSocket,
    rt: Arc<EndpointRuntime>,
    style: Style,
) -> anyhow::Result<QuicListener> {
    let addr = socket.local_addr()?;
    let tls = rt
        .tls
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("HTTP/3 at {addr}: the endpoint has no certificates"))?;
    let config = (*tls.plain).clone();
    listen_with(socket, config, move |incoming, conn| {
        connection(incoming, conn, rt.clone(), style)
    })
}

/// Serve HTTP/3 on `socket` (bound when the lab chose its port, so that no other socket takes
/// the UDP side meanwhile) with the certificates of `config` (its ALPN becomes h3): each
/// accepted connection (numbered from 1) handed to `serve`, at most `MAX_CONNECTIONS` at once.
pub(crate) fn listen_with<F, Fut>(
    socket: std::net::UdpSocket,
    mut config: rustls::ServerConfig,
    serve: F,
) -> anyhow::Result<QuicListener>
where
    F: Fn(quinn::Incoming, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let addr = socket.local_addr()?;
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
    let runtime = Arc::new(quinn::TokioRuntime);
    let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket, runtime)
        .map_err(|e| anyhow::anyhow!("the lab's HTTP/3 server {addr} (UDP): {e}"))?;
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
    serve_requests_announcing(incoming, None, None, handle).await;
}

/// Requests a server that sends GOAWAY still takes beyond the last one it accepted (those
/// the client sent before the frame reached it).
const GOAWAY_GRACE: usize = 16;
/// How long a server that sent GOAWAY waits for the requests it took to be answered before it
/// closes the connection.
const GOAWAY_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// `serve_requests`, sending `origin` (an HTTP/3 ORIGIN frame, RFC 9412) on the control
/// stream right after SETTINGS; when `goaway` is notified, shutting the connection down
/// gracefully (GOAWAY, RFC 9114 §5.2): the requests it took are answered, then it closes.
pub(crate) async fn serve_requests_announcing<F, Fut>(
    incoming: quinn::Incoming,
    origin: Option<Bytes>,
    goaway: Option<Arc<tokio::sync::Notify>>,
    handle: F,
) where
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
    let announcing = Announcing::new(h3_quinn::Connection::new(connection), origin);
    let Ok(mut h3) = h3::server::builder().build::<_, Bytes>(announcing).await else {
        return;
    };
    let mut requests = JoinSet::new();
    let mut closing = false;
    loop {
        let accepted = match &goaway {
            Some(goaway) if !closing => tokio::select! {
                biased;
                () = goaway.notified() => {
                    closing = true;
                    if h3.shutdown(GOAWAY_GRACE).await.is_err() {
                        break;
                    }
                    continue;
                }
                accepted = h3.accept() => accepted,
            },
            _ => h3.accept().await,
        };
        let Ok(Some(resolver)) = accepted else { break };
        let (handle, sni) = (handle.clone(), sni.clone());
        requests.spawn(async move {
            if let Ok((request, stream)) = resolver.resolve_request().await {
                handle(sni, request, stream).await;
            }
        });
        // Finished request tasks are reaped as the next ones come.
        while requests.try_join_next().is_some() {}
    }
    if closing {
        let drained = async { while requests.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(GOAWAY_DRAIN, drained).await;
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

/// The server's QUIC connection as h3 sees it, with `origin`'s bytes written on the first
/// unidirectional stream h3 opens (its control stream) once h3's own first write (the stream
/// type and SETTINGS) is out: h3 sends no frame it does not know. Streams are opened through
/// `sends`, which adds the bytes to the first only.
struct Announcing {
    inner: h3_quinn::Connection,
    sends: AnnouncingOpener,
}

impl Announcing {
    fn new(inner: h3_quinn::Connection, origin: Option<Bytes>) -> Announcing {
        let opener = <h3_quinn::Connection as h3::quic::Connection<Bytes>>::opener(&inner);
        Announcing {
            inner,
            sends: AnnouncingOpener {
                inner: opener,
                extra: origin,
            },
        }
    }
}

impl<B: bytes::Buf> h3::quic::OpenStreams<B> for Announcing {
    type BidiStream = h3_quinn::BidiStream<B>;
    type SendStream = AnnouncingSend<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::BidiStream, h3::quic::StreamErrorIncoming>> {
        self.sends.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::SendStream, h3::quic::StreamErrorIncoming>> {
        self.sends.poll_open_send(cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        <AnnouncingOpener as h3::quic::OpenStreams<B>>::close(&mut self.sends, code, reason);
    }
}

impl<B: bytes::Buf> h3::quic::Connection<B> for Announcing {
    type RecvStream = h3_quinn::RecvStream;
    type OpenStreams = AnnouncingOpener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::RecvStream, h3::quic::ConnectionErrorIncoming>> {
        <h3_quinn::Connection as h3::quic::Connection<B>>::poll_accept_recv(&mut self.inner, cx)
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::BidiStream, h3::quic::ConnectionErrorIncoming>> {
        <h3_quinn::Connection as h3::quic::Connection<B>>::poll_accept_bidi(&mut self.inner, cx)
    }

    fn opener(&self) -> Self::OpenStreams {
        AnnouncingOpener {
            inner: <h3_quinn::Connection as h3::quic::Connection<B>>::opener(&self.inner),
            extra: None,
        }
    }
}

/// Opens the streams: the first unidirectional one gets `extra` (then None).
struct AnnouncingOpener {
    inner: h3_quinn::OpenStreams,
    extra: Option<Bytes>,
}

impl<B: bytes::Buf> h3::quic::OpenStreams<B> for AnnouncingOpener {
    type BidiStream = h3_quinn::BidiStream<B>;
    type SendStream = AnnouncingSend<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::BidiStream, h3::quic::StreamErrorIncoming>> {
        self.inner.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Self::SendStream, h3::quic::StreamErrorIncoming>> {
        self.inner.poll_open_send(cx).map_ok(|inner| AnnouncingSend {
            inner,
            extra: self.extra.take(),
            written: false,
        })
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        <h3_quinn::OpenStreams as h3::quic::OpenStreams<B>>::close(&mut self.inner, code, reason);
    }
}

/// A unidirectional stream that writes `extra` raw after h3's first write.
struct AnnouncingSend<B: bytes::Buf> {
    inner: h3_quinn::SendStream<B>,
    extra: Option<Bytes>,
    written: bool,
}

impl<B: bytes::Buf> AnnouncingSend<B> {
    /// Write what is left of `extra` once h3's first write is out.
    fn poll_extra(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), h3::quic::StreamErrorIncoming>> {
        use h3::quic::SendStreamUnframed;
        if !self.written {
            return std::task::Poll::Ready(Ok(()));
        }
        while let Some(extra) = self.extra.as_mut().filter(|e| !e.is_empty()) {
            std::task::ready!(self.inner.poll_send(cx, extra))?;
        }
        self.extra = None;
        std::task::Poll::Ready(Ok(()))
    }
}

impl<B: bytes::Buf> h3::quic::SendStream<B> for AnnouncingSend<B> {
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), h3::quic::StreamErrorIncoming>> {
        std::task::ready!(self.inner.poll_ready(cx))?;
        self.poll_extra(cx)
    }

    fn send_data<T: Into<h3::quic::WriteBuf<B>>>(
        &mut self,
        data: T,
    ) -> Result<(), h3::quic::StreamErrorIncoming> {
        self.written = true;
        self.inner.send_data(data)
    }

    fn poll_finish(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), h3::quic::StreamErrorIncoming>> {
        std::task::ready!(self.poll_extra(cx))?;
        self.inner.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.inner.reset(reset_code);
    }

    fn send_id(&self) -> h3::quic::StreamId {
        self.inner.send_id()
    }
}

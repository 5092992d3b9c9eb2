//! An HTTP/3 server on loopback for the tests: quinn and h3 with a certificate of the test PKI.
//! Each request is answered by a rule from (SNI, `:authority`), and what it saw is recorded.
//! Its tasks are owned by a guard that aborts them on drop; dropping it closes the endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustls_pki_types::PrivateKeyDer;

use crate::lab::quic::H3Stream;
use crate::testing::net::{Chain, TaskGuard};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum H3Reply {
    /// This status and body (text/plain).
    Answer(u16, String),
    /// Reset the request stream with this HTTP/3 code, no answer.
    Reset(u64),
    /// 200, then a body that never ends.
    Endless,
    /// This status and body after this long.
    AnswerAfter(u16, String, std::time::Duration),
    /// This status and body, then GOAWAY on the connection (a graceful shutdown: the
    /// requests already taken are answered, later ones are not sent).
    AnswerThenGoAway(u16, String),
}

/// The rule: (SNI, `:authority`) → the reply.
pub type H3Rule = Arc<dyn Fn(Option<&str>, &str) -> H3Reply + Send + Sync>;

/// What the server saw for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H3Seen {
    pub sni: Option<String>,
    pub authority: String,
    /// Which QUIC connection (in accept order, from 1) carried it.
    pub connection: usize,
}

/// An HTTP/3 server on a loopback UDP port.
pub struct H3Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<H3Seen>>>,
    endpoint: quinn::Endpoint,
    _guard: TaskGuard,
}

impl H3Server {
    pub fn seen(&self) -> Vec<H3Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for H3Server {
    fn drop(&mut self) {
        self.endpoint.close(quinn::VarInt::from_u32(0x100), b"");
    }
}

/// The rustls config of a QUIC server: TLS 1.3, `chain` and `key`, ALPN `alpn`.
fn quic_server_config(chain: Chain, key: PrivateKeyDer<'static>, alpn: &[&[u8]]) -> quinn::ServerConfig {
    let mut tls = rustls::ServerConfig::builder_with_provider(crate::engine::probe::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    quinn::ServerConfig::with_crypto(Arc::new(crypto))
}

/// An HTTP/3 server on `bind` (a loopback address, port 0 for any) serving `chain`, answering
/// by `rule`.
pub async fn h3_server(
    bind: SocketAddr,
    chain: Chain,
    key: PrivateKeyDer<'static>,
    rule: H3Rule,
) -> H3Server {
    h3_server_with_alpn(bind, chain, key, rule, &[b"h3"]).await
}

/// As `h3_server`, offering `alpn` (a server that offers no h3 refuses the handshake).
pub async fn h3_server_with_alpn(
    bind: SocketAddr,
    chain: Chain,
    key: PrivateKeyDer<'static>,
    rule: H3Rule,
    alpn: &[&[u8]],
) -> H3Server {
    start(bind, (chain, key), rule, alpn, None).await
}

/// As `h3_server`, sending an ORIGIN frame (RFC 9412) listing `origins` on its control stream
/// right after SETTINGS, on every connection.
pub async fn h3_server_with_origin(
    bind: SocketAddr,
    chain: Chain,
    key: PrivateKeyDer<'static>,
    rule: H3Rule,
    origins: &[&str],
) -> H3Server {
    let frame = origin_frame_h3(origins);
    start(bind, (chain, key), rule, &[b"h3"], Some(frame)).await
}

async fn start(
    bind: SocketAddr,
    (chain, key): (Chain, PrivateKeyDer<'static>),
    rule: H3Rule,
    alpn: &[&[u8]],
    origin: Option<Bytes>,
) -> H3Server {
    let endpoint = quinn::Endpoint::server(quic_server_config(chain, key, alpn), bind).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<H3Seen>>> = Arc::default();
    let mut guard = TaskGuard::default();
    let accepting = endpoint.clone();
    let log = seen.clone();
    guard.push(tokio::spawn(async move {
        let mut number = 0;
        let mut connections = tokio::task::JoinSet::new();
        while let Some(incoming) = accepting.accept().await {
            number += 1;
            connections.spawn(serve_connection(
                incoming,
                number,
                (rule.clone(), origin.clone()),
                log.clone(),
            ));
        }
    }));
    H3Server {
        addr,
        seen,
        endpoint,
        _guard: guard,
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    number: usize,
    (rule, origin): (H3Rule, Option<Bytes>),
    seen: Arc<Mutex<Vec<H3Seen>>>,
) {
    let goaway = Arc::new(tokio::sync::Notify::new());
    let closer = goaway.clone();
    crate::lab::quic::serve_requests_announcing(
        incoming,
        origin,
        Some(goaway),
        move |sni, request, stream| {
            answer(
                number,
                (rule.clone(), seen.clone(), closer.clone()),
                sni,
                request,
                stream,
            )
        },
    )
    .await;
}

/// One request: recorded, then answered as `rule` says.
async fn answer(
    number: usize,
    (rule, seen, goaway): (H3Rule, Arc<Mutex<Vec<H3Seen>>>, Arc<tokio::sync::Notify>),
    sni: Option<Arc<str>>,
    request: http::Request<()>,
    mut stream: H3Stream,
) {
    let sni = sni.map(|s| s.to_string());
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    seen.lock().unwrap().push(H3Seen {
        sni: sni.clone(),
        authority: authority.clone(),
        connection: number,
    });
    match rule(sni.as_deref(), &authority) {
        H3Reply::Answer(status, body) => send_text(&mut stream, status, body).await,
        H3Reply::AnswerAfter(status, body, after) => {
            tokio::time::sleep(after).await;
            send_text(&mut stream, status, body).await;
        }
        H3Reply::AnswerThenGoAway(status, body) => {
            send_text(&mut stream, status, body).await;
            goaway.notify_one();
        }
        H3Reply::Reset(code) => stream.stop_stream(h3::error::Code::from(code)),
        H3Reply::Endless => {
            let response = http::Response::builder().status(200).body(()).unwrap();
            if stream.send_response(response).await.is_ok() {
                let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
                while stream.send_data(chunk.clone()).await.is_ok() {}
            }
        }
    }
}

/// Answer `status` with `body` (text/plain).
async fn send_text(stream: &mut H3Stream, status: u16, body: String) {
    let response = http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("content-length", body.len())
        .body(())
        .unwrap();
    if stream.send_response(response).await.is_ok() && stream.send_data(Bytes::from(body)).await.is_ok() {
        let _ = stream.finish().await;
    }
}

/// An HTTP/3 ORIGIN frame (type 0x0c) listing `origins` (RFC 9412 §2).
pub fn origin_frame_h3(origins: &[&str]) -> Bytes {
    let mut payload = Vec::new();
    for o in origins {
        let len = u16::try_from(o.len()).unwrap_or(u16::MAX);
        payload.extend_from_slice(&len.to_be_bytes());
        payload.extend_from_slice(&o.as_bytes()[..usize::from(len)]);
    }
    let mut frame = vec![0x0c];
    put_varint(&mut frame, payload.len() as u64);
    frame.extend_from_slice(&payload);
    Bytes::from(frame)
}

/// A QUIC variable-length integer (RFC 9000 §16), up to 2^30 - 1.
fn put_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16_383 => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        _ => out.extend_from_slice(&(0x8000_0000 | (v as u32 & 0x3fff_ffff)).to_be_bytes()),
    }
}

//! The hostile servers: misbehaving TCP listeners, TLS servers that stall or trickle the
//! handshake, HTTP/2 servers written frame by frame (GOAWAY at once, every stream reset, zero
//! concurrent streams, no response headers, a megabyte of headers, endless 1xx, a PING
//! flood), and hyper servers with endless or huge bodies. Each runs in tasks aborted when its
//! `Server` is dropped, and counts what it saw.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use coalscope::engine::probe::frames::{ALTSVC, ORIGIN};
use coalscope::lab::frames::{origin_frame, raw_frame, with_frames_after_settings};

use super::quic::Quic;

/// What a server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Accept TCP and never send a byte.
    Silent,
    /// Answer the ClientHello with bytes that are not TLS.
    Garbage,
    /// Send the first 60 bytes of a real handshake, then nothing.
    Stall,
    /// Send a real handshake one byte per second.
    Trickle,
    /// Complete the TLS handshake (ALPN h2), then close.
    CloseAfterHandshake,
    /// Negotiate h2, then answer in HTTP/1.1.
    Http1OverH2,
    /// HTTP/2: GOAWAY right after the preface.
    GoAway,
    /// HTTP/2: RST_STREAM(REFUSED_STREAM) for every stream.
    ResetAll,
    /// HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS = 0.
    ZeroStreams,
    /// HTTP/2 (and HTTP/1.1): read requests, never send response headers.
    NoHeaders,
    /// A megabyte of response headers.
    MegabyteHeaders,
    /// 1xx responses, forever.
    Endless1xx,
    /// HTTP/2: PING frames as fast as the socket takes them; never an answer.
    PingFlood,
    /// 200 with a body that never ends (hyper, flow control respected).
    EndlessBody,
    /// 200 when `:authority` is the SNI name; 421 with a 10 MB body for any other.
    Misdirected421,
    /// A well-behaved server (for the certificate cases): 200 "ok".
    Plain,
    /// hyper HTTP/2 with an ORIGIN frame longer than the client's SETTINGS_MAX_FRAME_SIZE
    /// after its SETTINGS.
    OriginOversized,
    /// hyper HTTP/2 with ORIGIN and ALTSVC frames whose inner lengths run past their end.
    OriginMalformed,
    /// hyper HTTP/2 with an ORIGIN frame on stream 3 (RFC 8336: only stream 0 counts).
    OriginOnStream,
    /// hyper HTTP/2 with ORIGIN entries of binary garbage and terminal escapes.
    OriginGarbage,
    /// HTTP/2 frame by frame: ORIGIN frames as fast as the socket takes them, for as long as
    /// the client listens (10 s at most); every request answered 200 "ok".
    OriginFlood,
    /// A well-behaved HTTP/2 server (200 "ok") whose answers advertise HTTP/3 on the UDP port
    /// of its own number, where `Quic` answers.
    AdvertisesH3(Quic),
}

impl Kind {
    fn alpn(self) -> Vec<Vec<u8>> {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    }

    /// The raw frames a hyper HTTP/2 server of this kind sends after its SETTINGS.
    fn extra_frames(self) -> Vec<Bytes> {
        match self {
            Kind::OriginOversized => {
                let entry = b"\x00\x16https://x.hostile.test";
                vec![raw_frame(ORIGIN, 0, 0, &entry.repeat(1000))]
            }
            Kind::OriginMalformed => vec![
                raw_frame(ORIGIN, 0, 0, b"\x00\x0ehttps://b.test\xff\xffhttps://"),
                raw_frame(ORIGIN, 0, 0, b"\x07"),
                raw_frame(ALTSVC, 0, 0, b"\x01\x00https://"),
            ],
            Kind::OriginOnStream => vec![raw_frame(ORIGIN, 0, 3, b"\x00\x16https://x.hostile.test")],
            Kind::OriginGarbage => {
                let mut payload = Vec::new();
                for junk in [
                    &b"https://\x1b[2J\x1b]0;pwned\x07.test"[..],
                    b"https://\xc2\x9b31m\xe2\x80\xae.test",
                    b"\x00\x01\x02\x03\xff\xfe",
                    &[0u8; 300],
                    b"https://ok.hostile.test",
                ] {
                    payload.extend_from_slice(&(junk.len() as u16).to_be_bytes());
                    payload.extend_from_slice(junk);
                }
                vec![
                    raw_frame(ORIGIN, 0, 0, &payload),
                    origin_frame(&["https://\u{202e}evil.test"]),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// What a server saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicUsize,
    /// Connections that finished (EOF, error or closed by us).
    pub closed: AtomicUsize,
    /// TLS handshakes completed.
    pub handshakes: AtomicUsize,
    /// HTTP/2 HEADERS frames (requests) received, or HTTP/1.1 requests.
    pub requests: AtomicUsize,
    /// Response body bytes handed to the socket (hyper servers), or frame bytes written.
    pub bytes_sent: AtomicU64,
}

pub struct Server {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    /// Bytes the UDP side sent to clients (servers that advertise HTTP/3).
    pub quic_sent: Option<Arc<AtomicU64>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn tls_config(cert: Arc<CertifiedKey>, alpn: Vec<Vec<u8>>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(cert)));
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// Start a server of `kind` on `ip` (a free port), serving `cert` where TLS is spoken;
/// `name` is its own host name (used when the client sends no SNI).
pub async fn start(ip: Ipv4Addr, kind: Kind, cert: Arc<CertifiedKey>, name: &str) -> Server {
    start_on(ip, 0, kind, cert, name).await
}

pub async fn start_on(ip: Ipv4Addr, port: u16, kind: Kind, cert: Arc<CertifiedKey>, name: &str) -> Server {
    let listener = TcpListener::bind((ip, port)).await.expect("bind hostile server");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(Stats::default());
    let config = tls_config(cert, kind.alpn());
    let name = name.to_string();
    let st = stats.clone();
    let mut tasks = Vec::new();
    let mut stats_quic = None;
    if let Kind::AdvertisesH3(quic) = kind {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .expect("bind the UDP side");
        let sent = Arc::new(AtomicU64::new(0));
        stats_quic = Some(sent.clone());
        tasks.push(tokio::spawn(super::quic::serve(quic, socket, name.clone(), sent)));
    }
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let tcp = tokio::select! {
                a = listener.accept() => match a { Ok((tcp, _)) => tcp, Err(_) => continue },
                Some(_) = connections.join_next() => continue,
            };
            let _ = tcp.set_nodelay(true);
            st.accepted.fetch_add(1, Ordering::SeqCst);
            let (st, config, name) = (st.clone(), config.clone(), name.clone());
            connections.spawn(async move {
                serve(tcp, kind, config, &name, st.clone()).await;
                st.closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    tasks.push(task);
    Server {
        addr,
        stats,
        quic_sent: stats_quic,
        tasks,
    }
}

/// Read until EOF or error (keeps a connection open without answering).
async fn drain(mut r: impl AsyncRead + Unpin) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn serve(mut tcp: TcpStream, kind: Kind, config: Arc<ServerConfig>, name: &str, st: Arc<Stats>) {
    match kind {
        Kind::Silent => drain(tcp).await,
        Kind::Garbage => {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"SSH-2.0-OpenSSH_9.9\r\n\x00\xff\xfe garbage \x1b[2J")
                .await;
            drain(tcp).await;
        }
        Kind::Stall | Kind::Trickle => throttled(tcp, kind, config).await,
        _ => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            st.handshakes.fetch_add(1, Ordering::SeqCst);
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            match kind {
                Kind::CloseAfterHandshake => drop(tls),
                Kind::Http1OverH2 => http1_over_h2(tls, &st).await,
                Kind::EndlessBody
                | Kind::Misdirected421
                | Kind::Plain
                | Kind::OriginOversized
                | Kind::OriginMalformed
                | Kind::OriginOnStream
                | Kind::OriginGarbage
                | Kind::AdvertisesH3(_) => {
                    // 421 is for a request whose :authority is not the SNI's name.
                    let sni = tls.get_ref().1.server_name().unwrap_or(name).to_string();
                    let alt_svc = tls
                        .get_ref()
                        .0
                        .local_addr()
                        .map(|a| format!("h3=\":{}\"; ma=60", a.port()));
                    hyper_serve(tls, h2, kind, (&sni, alt_svc.ok()), st).await
                }
                _ if h2 => raw_h2(tls, kind, &st).await,
                _ => raw_h1(tls, kind, &st).await,
            }
        }
    }
}

/// A real TLS server on one end of an in-memory pipe; the client's bytes go to it unchanged,
/// its bytes come back stalled after 60 bytes, or one byte per second.
async fn throttled(tcp: TcpStream, kind: Kind, config: Arc<ServerConfig>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        if let Ok(tls) = acceptor.accept(theirs).await {
            drain(tls).await;
        }
    });
    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    let (mut ours_r, mut ours_w) = tokio::io::split(ours);
    let up = async move {
        let _ = tokio::io::copy(&mut tcp_r, &mut ours_w).await;
    };
    let down = async move {
        let mut sent = 0usize;
        let mut byte = [0u8; 1];
        loop {
            if ours_r.read_exact(&mut byte).await.is_err() {
                break;
            }
            if kind == Kind::Stall && sent >= 60 {
                // Hold the connection: keep the pipe draining so the server does not block.
                continue;
            }
            if tcp_w.write_all(&byte).await.is_err() {
                break;
            }
            sent += 1;
            if kind == Kind::Trickle {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // The client closing its side ends the relay (a stalled server side never would).
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
    server.abort();
}

async fn http1_over_h2<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S, st: &Stats) {
    let mut buf = vec![0u8; 16 * 1024];
    // Whatever the client sends (the HTTP/2 preface), answer in HTTP/1.1.
    while let Ok(n) = tls.read(&mut buf).await {
        if n == 0 {
            break;
        }
        st.requests.fetch_add(1, Ordering::SeqCst);
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        if tls.write_all(reply).await.is_err() {
            break;
        }
    }
}

// ---- HTTP/2, frame by frame ----

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an `n`-bit prefix, first byte's high bits `high`.
fn hpack_int(out: &mut Vec<u8>, high: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A literal header field without indexing, new name (RFC 7541 §6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// `:status` with a literal value (indexed name 8), e.g. "100".
fn hpack_status(out: &mut Vec<u8>, status: &str) {
    out.push(0x08);
    hpack_int(out, 0, 7, status.len());
    out.extend_from_slice(status.as_bytes());
}

/// A header block split into HEADERS + CONTINUATION frames of at most 16 KiB.
fn header_frames(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut flags = if last { END_HEADERS } else { 0 };
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        if i == 0 && end_stream {
            flags |= END_STREAM;
        }
        out.extend(frame(kind, flags, stream, chunk));
    }
    out
}

/// A megabyte (and a bit) of header fields after `:status: 200`.
fn megabyte_block() -> Vec<u8> {
    let mut block = vec![0x88]; // :status: 200 (static index 8)
    let value = "v".repeat(1000);
    let mut i = 0;
    while block.len() < 1024 * 1024 + 1024 {
        hpack_literal(&mut block, &format!("x-junk-{i}"), &value);
        i += 1;
    }
    block
}

enum Out {
    Bytes(Vec<u8>),
    Endless1xx(u32),
}

async fn write_counted<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], st: &Stats) -> bool {
    if w.write_all(bytes).await.is_err() || w.flush().await.is_err() {
        return false;
    }
    st.bytes_sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
    true
}

async fn raw_h2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(tls: S, kind: Kind, st: &Stats) {
    let (mut r, mut w) = tokio::io::split(tls);
    // The server's preface first, without waiting for the client's (as servers may): the
    // client knows the limits before it sends anything.
    let settings = if kind == Kind::ZeroStreams {
        frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 0])
    } else {
        frame(SETTINGS, 0, 0, &[])
    };
    if !write_counted(&mut w, &settings, st).await {
        return;
    }
    let mut preface = [0u8; 24];
    if r.read_exact(&mut preface).await.is_err() || &preface[..3] != b"PRI" {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    if kind == Kind::GoAway {
        let _ = tx.send(Out::Bytes(frame(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0])));
    }
    let flood = matches!(kind, Kind::PingFlood | Kind::OriginFlood);
    let writer = async move {
        let pings: Vec<u8> = if kind == Kind::OriginFlood {
            (0..100u64)
                .flat_map(|i| {
                    let names = [
                        format!("https://n{i}.flood.test"),
                        format!("https://m{i}.flood.test"),
                    ];
                    origin_frame(&[&names[0], &names[1]]).to_vec()
                })
                .collect()
        } else {
            (0..100u64)
                .flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
                .collect()
        };
        let started = tokio::time::Instant::now();
        loop {
            // A flood stops by itself after 10 s.
            let flood = flood && started.elapsed() < Duration::from_secs(10);
            let next = if flood {
                match rx.try_recv() {
                    Ok(o) => Some(o),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // 100 PINGs per millisecond or so, for as long as the client listens.
                        if !write_counted(&mut w, &pings, st).await {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    Err(_) => None,
                }
            } else {
                rx.recv().await
            };
            match next {
                None => return,
                Some(Out::Bytes(b)) => {
                    if !write_counted(&mut w, &b, st).await {
                        return;
                    }
                }
                Some(Out::Endless1xx(stream)) => {
                    let mut block = Vec::new();
                    hpack_status(&mut block, "100");
                    let one = frame(HEADERS, END_HEADERS, stream, &block);
                    loop {
                        if !write_counted(&mut w, &one, st).await {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
        }
    };
    let reader = async move {
        let mut head = [0u8; 9];
        loop {
            if r.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (ty, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if len > 1 << 20 {
                return;
            }
            let mut payload = vec![0u8; len];
            if r.read_exact(&mut payload).await.is_err() {
                return;
            }
            match ty {
                SETTINGS if flags & ACK == 0 => {
                    let _ = tx.send(Out::Bytes(frame(SETTINGS, ACK, 0, &[])));
                }
                HEADERS => {
                    st.requests.fetch_add(1, Ordering::SeqCst);
                    let reply = match kind {
                        Kind::ResetAll => Some(Out::Bytes(frame(
                            RST_STREAM,
                            0,
                            stream,
                            &REFUSED_STREAM.to_be_bytes(),
                        ))),
                        Kind::MegabyteHeaders => {
                            let mut bytes = header_frames(stream, &megabyte_block(), false);
                            bytes.extend(frame(DATA, END_STREAM, stream, b"ok"));
                            Some(Out::Bytes(bytes))
                        }
                        Kind::Endless1xx => Some(Out::Endless1xx(stream)),
                        Kind::OriginFlood => {
                            // `:status: 200` (static index 8), then "ok".
                            let mut bytes = frame(HEADERS, END_HEADERS, stream, &[0x88]);
                            bytes.extend(frame(DATA, END_STREAM, stream, b"ok"));
                            Some(Out::Bytes(bytes))
                        }
                        // GoAway, ZeroStreams, NoHeaders, PingFlood: no answer.
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        if tx.send(reply).is_err() {
                            return;
                        }
                    }
                }
                GOAWAY => return,
                _ => {}
            }
        }
    };
    // Whichever side ends first ends the connection.
    tokio::select! {
        _ = writer => {},
        _ = reader => {},
    }
}

/// The HTTP/1.1 side of the frame-level servers (a client that negotiated http/1.1).
async fn raw_h1<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S, kind: Kind, st: &Stats) {
    // Read one request head (bounded).
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    st.requests.fetch_add(1, Ordering::SeqCst);
    match kind {
        Kind::GoAway | Kind::ResetAll => {}
        Kind::MegabyteHeaders => {
            let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
            let mut i = 0;
            while reply.len() < 1024 * 1024 {
                reply.extend_from_slice(format!("X-Junk-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
                i += 1;
            }
            reply.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
            let _ = write_counted(&mut tls, &reply, st).await;
            drain(tls).await;
        }
        Kind::Endless1xx => loop {
            if !write_counted(&mut tls, b"HTTP/1.1 100 Continue\r\n\r\n", st).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        },
        _ => drain(tls).await,
    }
}

// ---- hyper servers ----

type Body = BoxBody<Bytes, Infallible>;

fn endless(st: Arc<Stats>, total: Option<usize>) -> Body {
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let chunks = futures::stream::repeat(chunk).map(move |c| {
        st.bytes_sent.fetch_add(c.len() as u64, Ordering::SeqCst);
        Ok::<_, Infallible>(Frame::data(c))
    });
    match total {
        Some(n) => BodyExt::boxed(StreamBody::new(chunks.take(n.div_ceil(16 * 1024)))),
        None => BodyExt::boxed(StreamBody::new(chunks)),
    }
}

/// `name` is the SNI's; `alt_svc` the Alt-Svc header a server advertising HTTP/3 sends.
async fn hyper_serve<S>(tls: S, h2: bool, kind: Kind, (name, alt_svc): (&str, Option<String>), st: Arc<Stats>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = name.to_string();
    let counters = st;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let counters = counters.clone();
        let name = name.clone();
        let alt_svc = alt_svc.clone();
        async move {
            counters.requests.fetch_add(1, Ordering::SeqCst);
            let authority = req
                .uri()
                .host()
                .map(str::to_string)
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(|h| h.split(':').next().unwrap_or("").to_string())
                })
                .unwrap_or_default();
            let response = match kind {
                Kind::EndlessBody => hyper::Response::builder()
                    .status(200)
                    .header("content-type", "application/octet-stream")
                    .body(endless(counters, None)),
                Kind::Misdirected421 if !authority.eq_ignore_ascii_case(&name) => {
                    hyper::Response::builder()
                        .status(421)
                        .header("content-type", "text/html")
                        // obs-text: a C1 CSI and an RTL override, as UTF-8 bytes.
                        .header(
                            "server",
                            http::HeaderValue::from_bytes(b"hostile/1 \xc2\x9b31m\xe2\x80\xae")
                                .expect("obs-text header"),
                        )
                        .body(endless(counters, Some(10 * 1024 * 1024)))
                }
                Kind::AdvertisesH3(_) => hyper::Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .header("alt-svc", alt_svc.unwrap_or_default())
                    .body(Full::new(Bytes::from(format!("ok {authority}"))).boxed()),
                _ => hyper::Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from(format!("ok {authority}"))).boxed()),
            };
            Ok::<_, Infallible>(response.expect("response"))
        }
    });
    if h2 {
        let io = TokioIo::new(with_frames_after_settings(tls, kind.extra_frames()));
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }
}

//! One HTTP/3 connection (QUIC, RFC 9000 and RFC 9114) that carries requests for several
//! authorities: quinn and h3 over the same record-only rustls verification and chain capture
//! as the HTTP/2 path (SNI = the origin, `:authority` = any name the certificate may carry).
//!
//! Each connection has a UDP socket of its own, so it is fresh as a new TCP connection is for
//! HTTP/2. Every step is bounded by the probe's timeout: a silent UDP port, a server that never
//! finishes the handshake, garbage datagrams and version negotiation all end in a `Timeout` or
//! an error naming what happened. QUIC has no separate connect: its handshake is the `tls`
//! phase, and `TlsInfo::connect_time` is zero.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures::FutureExt;
use rustls_pki_types::CertificateDer;
use tokio::task::JoinHandle;

use crate::engine::probe::error::{within, H3Code, Phase, ProbeError};
use crate::engine::probe::h2::{get_request, CappedBody, HttpAnswer};
use crate::engine::probe::h3_control::{ControlReader, ControlSeen, Tap};
use crate::engine::probe::signals::OriginSet;
use crate::engine::probe::tls::{self, TlsInfo, TlsSettings};

/// The ALPN protocol of HTTP/3.
pub const ALPN_H3: &str = "h3";

/// Largest header section accepted from a server (SETTINGS_MAX_FIELD_SECTION_SIZE), as over
/// HTTP/2.
const MAX_FIELD_SECTION_SIZE: u64 = 64 * 1024;
/// Flow-control windows: a capped body fits in one stream window, a few in the connection's.
const STREAM_WINDOW: u32 = 256 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Unidirectional streams the server may open: control, QPACK encoder and decoder, and room
/// for reserved (grease) ones. It may open no bidirectional stream.
const SERVER_UNI_STREAMS: u32 = 8;

/// An open HTTP/3 connection. Dropping it closes the connection and its socket.
pub struct H3Connection {
    sender: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
    /// Drives the HTTP/3 connection (control stream, QPACK). Aborted on drop.
    driver: JoinHandle<()>,
    /// The server's control stream as read beside h3 (its ORIGIN frames).
    control: Arc<Mutex<ControlReader>>,
}

impl Drop for H3Connection {
    fn drop(&mut self) {
        self.driver.abort();
        self.connection.close(quinn::VarInt::from_u32(0x100), b"done");
        self.endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
    }
}

/// The result of opening an HTTP/3 connection for an origin: the handshake's TLS facts and
/// the connection.
pub struct H3Opened {
    pub tls: TlsInfo,
    pub conn: H3Connection,
}

/// Open a fresh QUIC connection to `addr` (a UDP address) with SNI = `sni` and ALPN h3, then
/// the HTTP/3 connection over it; the handshake and the HTTP/3 set-up are each bounded by
/// `settings.timeout`.
pub async fn open(settings: &TlsSettings, addr: SocketAddr, sni: &str) -> Result<H3Opened, ProbeError> {
    let timeout = settings.timeout;
    let name = tls::server_name_text(sni)?;
    let local: SocketAddr = if addr.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(local).map_err(|e| ProbeError::Connect(tls::io_message(&e)))?;
    let started = Instant::now();
    let connecting = endpoint
        .connect_with(client_config(timeout)?, addr, &name)
        .map_err(|e| ProbeError::Connect(connect_error(&e)))?;
    let connection = match within(Phase::Tls, timeout, connecting).await {
        Ok(result) => result.map_err(|e| handshake_error(&e))?,
        Err(elapsed) => {
            endpoint.close(quinn::VarInt::from_u32(0), b"");
            return Err(elapsed);
        }
    };
    let handshake_time = started.elapsed();
    let chain: Vec<CertificateDer<'static>> = connection
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
        .unwrap_or_default();
    let alpn = connection
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    let tls = TlsInfo {
        alpn,
        version: "TLSv1.3".to_string(),
        // quinn does not say which TLS 1.3 suite was negotiated.
        cipher: None,
        chain_error: tls::verify_chain(&settings.roots, &chain),
        chain,
        connect_time: Duration::ZERO,
        handshake_time,
    };
    let mut builder = h3::client::builder();
    builder
        .max_field_section_size(MAX_FIELD_SECTION_SIZE)
        .send_grease(false);
    let (tap, control) = Tap::new(h3_quinn::Connection::new(connection.clone()));
    let setup = builder.build::<_, _, Bytes>(tap);
    let (mut driver, sender) = within(Phase::Request, timeout, setup)
        .await?
        .map_err(|e| connection_error(&e))?;
    let driver = tokio::spawn(async move {
        // Errors surface on the requests; nothing to do with them here.
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(H3Opened {
        tls,
        conn: H3Connection {
            sender,
            connection,
            endpoint,
            driver,
            control,
        },
    })
}

impl H3Connection {
    /// GET `path` with `:authority` = `host` (plus `:port` when port != 443), bounded by
    /// `timeout` for the whole exchange (headers + capped body). Several requests may run at
    /// once on one connection.
    pub async fn request(
        &self,
        host: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<HttpAnswer, ProbeError> {
        let request = get_request(host, port, path, ())?;
        let started = Instant::now();
        let mut sender = self.sender.clone();
        let exchange = async {
            let mut stream = sender.send_request(request).await.map_err(|e| stream_error(&e))?;
            stream.finish().await.map_err(|e| stream_error(&e))?;
            let response = stream.recv_response().await.map_err(|e| stream_error(&e))?;
            let mut capped = CappedBody::default();
            let mut ended = false;
            while !capped.is_full() {
                match stream.recv_data().await.map_err(|e| stream_error(&e))? {
                    Some(mut chunk) => {
                        while chunk.has_remaining() {
                            let n = chunk.chunk().len();
                            capped.feed(chunk.chunk());
                            chunk.advance(n);
                        }
                    }
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            if !ended {
                // At the cap: the body has ended only if its end is already here.
                ended = matches!(stream.recv_data().now_or_never(), Some(Ok(None)));
            }
            if !ended {
                stream.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
            }
            Ok(capped.answer(response.status(), response.headers(), "HTTP/3", !ended, started))
        };
        within(Phase::Request, timeout, exchange).await?
    }

    /// The ORIGIN frames the server sent on its control stream so far (RFC 9412; None: none).
    /// The control stream is a stream of its own: an answer can arrive before it is read
    /// (`control_seen` says whether its SETTINGS were).
    pub fn origin(&self) -> Option<OriginSet> {
        self.control_seen_now().origin()
    }

    /// What the server's control stream said so far: `Unknown` until its SETTINGS are read.
    pub fn control_seen(&self) -> ControlSeen {
        self.control_seen_now().seen()
    }

    /// Wait, at most `bound`, for the server's SETTINGS to be read (the frames it sends right
    /// after them, an ORIGIN frame among them, are then in or close behind); what is known
    /// then.
    pub async fn settled(&self, bound: Duration) -> ControlSeen {
        let deadline = Instant::now() + bound;
        loop {
            let seen = self.control_seen();
            if seen != ControlSeen::Unknown || Instant::now() >= deadline || self.is_closed() {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn control_seen_now(&self) -> std::sync::MutexGuard<'_, ControlReader> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when the connection can no longer carry requests.
    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some() || self.driver.is_finished()
    }
}

/// quinn's client configuration: the QUIC rustls config, windows and stream limits, and an
/// idle timeout longer than the probe's own so that the probe's bound is the one that ends
/// a silent exchange (as a `Timeout` of its phase).
fn client_config(timeout: Duration) -> Result<quinn::ClientConfig, ProbeError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls::quic_client_config())
        .map_err(|e| ProbeError::Tls(format!("quic: {e}")))?;
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(timeout.saturating_mul(2).max(Duration::from_secs(1)))
        .map_err(|e| ProbeError::Tls(format!("quic idle timeout: {e}")))?;
    transport
        .max_idle_timeout(Some(idle))
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW))
        .receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(SERVER_UNI_STREAMS));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Short text for a connection that could not even be started (a bad address, say).
fn connect_error(e: &quinn::ConnectError) -> String {
    match e {
        quinn::ConnectError::InvalidRemoteAddress(a) => format!("invalid remote address {a}"),
        quinn::ConnectError::InvalidServerName(n) => format!("invalid server name {n:?}"),
        quinn::ConnectError::EndpointStopping => "endpoint stopping".into(),
        other => other.to_string(),
    }
}

/// The probe error for a QUIC connection that failed (during the handshake or later).
fn handshake_error(e: &quinn::ConnectionError) -> ProbeError {
    use quinn::ConnectionError as E;
    match e {
        E::VersionMismatch => ProbeError::Tls("quic: no QUIC version in common".into()),
        E::TransportError(t) => {
            ProbeError::Tls(format!("quic (ours): {}", transport_text(t.code, &t.reason)))
        }
        E::ConnectionClosed(close) => ProbeError::Tls(format!(
            "quic: {}",
            transport_text(close.error_code, &String::from_utf8_lossy(&close.reason))
        )),
        E::ApplicationClosed(close) => ProbeError::H3Closed {
            code: H3Code(close.error_code.into_inner()),
            by_client: false,
        },
        E::Reset => ProbeError::Tls("quic: stateless reset".into()),
        E::TimedOut => ProbeError::Tls("quic: idle timeout".into()),
        E::LocallyClosed => ProbeError::Tls("quic: closed by client".into()),
        E::CidsExhausted => ProbeError::Tls("quic: connection ids exhausted".into()),
    }
}

/// "alert received: handshake_failure" for a TLS alert carried in a CRYPTO_ERROR
/// (0x100 + alert, RFC 9001 §4.8), else the transport error's name and reason.
fn transport_text(code: quinn::TransportErrorCode, reason: &str) -> String {
    let value = u64::from(code);
    let reason = crate::sanitize::for_terminal(reason, 120);
    match value {
        0x100..=0x1ff => format!("alert received: {}", tls::alert_name((value - 0x100) as u8)),
        _ if reason.is_empty() => format!("{code}"),
        _ => format!("{code}: {reason}"),
    }
}

/// The probe error for an HTTP/3 connection error.
fn connection_error(e: &h3::error::ConnectionError) -> ProbeError {
    use h3::error::{ConnectionError as C, LocalError as L};
    use h3::quic::ConnectionErrorIncoming as I;
    match e {
        C::Local {
            error: L::Application { code, .. },
            ..
        } => ProbeError::H3Closed {
            code: H3Code(code.value()),
            by_client: true,
        },
        C::Remote {
            0: I::ApplicationClose { error_code },
            ..
        } => ProbeError::H3Closed {
            code: H3Code(*error_code),
            by_client: false,
        },
        C::Remote {
            0: I::Undefined(inner),
            ..
        } => match inner.downcast_ref::<quinn::ConnectionError>() {
            Some(q) => handshake_error(q),
            None => ProbeError::Http(crate::sanitize::for_terminal(&inner.to_string(), 200)),
        },
        C::Remote { 0: I::Timeout, .. } | C::Timeout { .. } => {
            ProbeError::Http("connection timed out (idle)".into())
        }
        other => ProbeError::Http(crate::sanitize::for_terminal(&format!("{other:?}"), 200)),
    }
}

/// The probe error for an HTTP/3 stream error: a reset keeps its code.
fn stream_error(e: &h3::error::StreamError) -> ProbeError {
    use h3::error::StreamError as S;
    match e {
        S::RemoteTerminate { code, .. } => ProbeError::H3Reset {
            code: H3Code(code.value()),
            by_client: false,
        },
        S::StreamError { code, .. } => ProbeError::H3Reset {
            code: H3Code(code.value()),
            by_client: true,
        },
        S::ConnectionError { 0: c, .. } => connection_error(c),
        S::HeaderTooBig { .. } => ProbeError::Http("response headers too large".into()),
        S::RemoteClosing { .. } => ProbeError::H3GoAway,
        other => ProbeError::Http(crate::sanitize::for_terminal(&format!("{other:?}"), 200)),
    }
}

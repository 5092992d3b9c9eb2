//! rustls client connections with SNI + ALPN that capture the whole chain. Verification
//! against web roots + `--ca-file` is computed *separately* and reported, never enforced, so
//! that an expired or untrusted certificate is still inspected. Resumption is disabled: a
//! resumed TLS 1.3 handshake carries no certificate.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::engine::probe::error::{within, Phase, ProbeError};

/// Trust anchors and timeouts shared by every probe. Cheap to clone.
#[derive(Clone)]
pub struct TlsSettings {
    /// Web roots plus the certificates of `--ca-file`.
    pub roots: Arc<rustls::RootCertStore>,
    /// Bound on the TCP connect and, separately, on the TLS handshake.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {message}")]
    CaFile { path: String, message: String },
}

impl TlsSettings {
    /// Web roots (webpki-roots) plus every certificate in the PEM file `ca_file`.
    /// A file that cannot be read or holds no certificate is an error naming the path.
    pub fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, TlsSetupError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            let ca_error = |message: String| TlsSetupError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let mut added = 0usize;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| ca_error(format!("bad PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ca_error(format!("bad certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(ca_error("no certificate found".to_string()));
            }
        }
        Ok(TlsSettings {
            roots: Arc::new(roots),
            timeout,
        })
    }
}

/// What one TLS handshake showed.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// Negotiated ALPN protocol ("h2", "http/1.1"), None when the server chose none.
    pub alpn: Option<String>,
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// The negotiated cipher suite, e.g. "TLS13_AES_128_GCM_SHA256".
    pub cipher: Option<String>,
    /// The chain as the server sent it, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// None when the chain verifies against the roots and is within its validity period,
    /// *ignoring the host name* (name coverage is decided by `engine::probe::cert`). Otherwise a
    /// short reason: "expired", "not yet valid", "unknown issuer", "bad signature", ...
    pub chain_error: Option<String>,
    /// Time to establish TCP.
    pub connect_time: Duration,
    /// Time of the TLS handshake after TCP.
    pub handshake_time: Duration,
}

/// ALPN offers.
pub const ALPN_H2_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The one crypto provider of the crate (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Accepts every certificate: the chain is recorded and verified after the handshake. The
/// handshake signature is still checked, so the peer really holds the leaf's key.
#[derive(Debug)]
struct RecordOnlyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordOnlyVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client config that accepts any certificate (recording happens after the
/// handshake), offers `alpn`, and never resumes sessions.
pub fn client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    type Cache = Mutex<HashMap<Vec<Vec<u8>>, Arc<rustls::ClientConfig>>>;
    static CONFIGS: OnceLock<Cache> = OnceLock::new();
    let key: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
    let cache = CONFIGS.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while inserting: the map is fine.
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key.clone())
        .or_insert_with(|| Arc::new(build_client_config(key)))
        .clone()
}

/// The rustls config of the QUIC handshakes (HTTP/3): TLS 1.3 only (RFC 9001), ALPN h3,
/// the same record-only verification, no resumption and no early data.
pub fn quic_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(build_config(vec![b"h3".to_vec()], &[&rustls::version::TLS13])))
        .clone()
}

fn build_client_config(alpn: Vec<Vec<u8>>) -> rustls::ClientConfig {
    build_config(alpn, &[&rustls::version::TLS13, &rustls::version::TLS12])
}

#[allow(
    clippy::expect_used,
    reason = "the protocol versions asked for are the ring provider's own: a failure is a build error"
)]
fn build_config(
    alpn: Vec<Vec<u8>>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let provider = provider();
    let verifier = Arc::new(RecordOnlyVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    config.resumption = Resumption::disabled();
    config
}

/// TCP connect to `addr` (bounded by `settings.timeout`), then a TLS handshake with
/// SNI = `sni` (bounded by `settings.timeout`) offering `alpn`. Returns the stream and what
/// the handshake showed, including the chain verification result for `sni`'s chain.
/// `sni` may be an IP literal, in which case no SNI is sent.
pub async fn connect(
    settings: &TlsSettings,
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> Result<(TlsStream<TcpStream>, TlsInfo), ProbeError> {
    let server_name = server_name(sni)?;
    let timeout = settings.timeout;

    let started = Instant::now();
    let tcp = within(Phase::Connect, timeout, TcpStream::connect(addr))
        .await?
        .map_err(|e| ProbeError::Connect(io_message(&e)))?;
    let connect_time = started.elapsed();
    // Small requests on a fresh connection: don't let Nagle delay them.
    let _ = tcp.set_nodelay(true);

    let connector = tokio_rustls::TlsConnector::from(client_config(alpn));
    let started = Instant::now();
    let stream = within(Phase::Tls, timeout, connector.connect(server_name, tcp))
        .await?
        .map_err(|e| ProbeError::Tls(tls_io_message(&e)))?;
    let handshake_time = started.elapsed();

    let conn = stream.get_ref().1;
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str().map(str::to_string));
    let chain_error = verify_chain(&settings.roots, &chain);
    Ok((
        stream,
        TlsInfo {
            alpn,
            version,
            cipher,
            chain,
            chain_error,
            connect_time,
            handshake_time,
        },
    ))
}

/// Shuts the socket of a connection down (both directions) when dropped, whoever still holds
/// the stream: a connection task that never gives up (hyper's HTTP/2 connection task can
/// outlive every handle to it while a stream waits for a slot) then reads EOF and ends, and
/// the socket is closed. Holds its own duplicate of the descriptor, so it never touches a
/// descriptor number that was closed and reused meanwhile.
pub struct SocketCloser(Option<std::net::TcpStream>);

impl SocketCloser {
    pub fn new(stream: &TlsStream<TcpStream>) -> SocketCloser {
        use std::os::fd::AsFd;
        let dup = stream
            .get_ref()
            .0
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from);
        SocketCloser(dup)
    }
}

impl Drop for SocketCloser {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The server name to present as text (brackets and a trailing dot removed), checked as
/// `server_name` checks it: for clients that take a `&str` (quinn).
pub(crate) fn server_name_text(sni: &str) -> Result<String, ProbeError> {
    Ok(match server_name(sni)? {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(ip).to_string(),
        other => format!("{other:?}"),
    })
}

/// The name of a TLS alert (RFC 8446 §6), as the handshake's errors say it: "handshake_failure".
pub(crate) fn alert_name(code: u8) -> String {
    snake_case(&format!("{:?}", rustls::AlertDescription::from(code)))
}

/// The server name to present: a DNS name (sent as SNI) or an IP address (no SNI).
fn server_name(sni: &str) -> Result<ServerName<'static>, ProbeError> {
    let bare = sni
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(sni);
    let bare = bare.strip_suffix('.').unwrap_or(bare);
    ServerName::try_from(bare.to_string())
        .map_err(|_| ProbeError::Tls(format!("invalid server name {sni:?}")))
}

/// Verifies `chain` (leaf first) against `roots` at the current time, ignoring the name.
pub(crate) fn verify_chain(roots: &rustls::RootCertStore, chain: &[CertificateDer<'_>]) -> Option<String> {
    let (leaf, intermediates) = match chain.split_first() {
        Some(split) => split,
        None => return Some("no certificate".to_string()),
    };
    let parsed = match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(parsed) => parsed,
        Err(e) => return Some(rustls_message(&e)),
    };
    // verify_server_cert_signed_by_trust_anchor checks the path to a root and the validity
    // periods but not the name: exactly the "chain" part (name coverage is engine::probe::cert's).
    match rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        intermediates,
        UnixTime::now(),
        provider().signature_verification_algorithms.all,
    ) {
        Ok(()) => None,
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => None,
        Err(e) => Some(rustls_message(&e)),
    }
}

/// Short text for a certificate problem.
fn certificate_message(e: &CertificateError) -> String {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not yet valid".into(),
        CertificateError::UnknownIssuer => "unknown issuer".into(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::BadEncoding => "bad encoding".into(),
        CertificateError::Revoked => "revoked".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not valid for server authentication".into()
        }
        CertificateError::UnhandledCriticalExtension => "unhandled critical extension".into(),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "unsupported signature algorithm".into()
        }
        other => short_debug(other),
    }
}

/// Short text for a rustls error, as seen in the handshake or in verification.
fn rustls_message(e: &rustls::Error) -> String {
    use rustls::InvalidMessage as M;
    match e {
        rustls::Error::InvalidCertificate(c) => certificate_message(c),
        rustls::Error::AlertReceived(alert) => {
            format!("alert received: {}", snake_case(&format!("{alert:?}")))
        }
        rustls::Error::InvalidMessage(
            M::InvalidContentType | M::UnknownProtocolVersion | M::MessageTooLarge,
        )
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::PeerSentOversizedRecord => "received garbage (not TLS)".into(),
        rustls::Error::InvalidMessage(m) => format!("invalid message: {}", short_debug(m)),
        rustls::Error::NoCertificatesPresented => "no certificate presented".into(),
        rustls::Error::NoApplicationProtocol => "no application protocol".into(),
        rustls::Error::DecryptError => "decrypt error".into(),
        rustls::Error::PeerIncompatible(p) => {
            format!("peer incompatible: {}", snake_case(&short_debug(p)))
        }
        rustls::Error::PeerMisbehaved(p) => {
            format!("peer misbehaved: {}", snake_case(&short_debug(p)))
        }
        rustls::Error::General(text) => text.clone(),
        other => short_debug(other),
    }
}

/// Short text for an error of the TLS handshake (tokio-rustls reports rustls errors as
/// io errors that carry the rustls error).
pub(crate) fn tls_io_message(e: &io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return rustls_message(inner);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "handshake closed by peer".into(),
        io::ErrorKind::InvalidData => "received garbage (not TLS)".into(),
        _ => io_message(e),
    }
}

/// Short text for a socket error.
pub(crate) fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::UnexpectedEof => "connection closed by peer".into(),
        io::ErrorKind::BrokenPipe => "connection closed by peer (broken pipe)".into(),
        io::ErrorKind::HostUnreachable => "host unreachable".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        io::ErrorKind::AddrNotAvailable => "address not available".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => {
            let text = e.to_string();
            // "Permission denied (os error 13)" → "permission denied"
            let text = match text.find(" (os error") {
                Some(i) => &text[..i],
                None => &text,
            };
            text.to_lowercase()
        }
    }
}

/// Debug text limited to the variant name and a little context.
fn short_debug(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    if text.len() <= 80 {
        return text;
    }
    let cut = text
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= 77)
        .last()
        .unwrap_or(0);
    format!("{}...", &text[..cut])
}

/// "HandshakeFailure" → "handshake_failure" (the RFC 8446 alert names).
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::net::{
        local, no_hang, raw_server, refused_addr, simple_server, tls_server, Pki, RawBehaviour,
        ServerOptions, Validity,
    };

    const T: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn trusted_chain_is_captured_with_alpn_and_version() {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test", "b.test"], Validity::Current).await;
        let (_stream, info) = connect(&pki.settings(T), server.addr, "a.test", ALPN_H2_H1)
            .await
            .expect("connect");
        assert_eq!(info.chain.len(), 2);
        assert_eq!(info.chain[1], pki.ca_der());
        assert_eq!(info.chain_error, None);
        assert_eq!(info.alpn.as_deref(), Some("h2"));
        assert_eq!(info.version, "TLSv1.3");
    }

    #[tokio::test]
    async fn chain_errors_are_reported_not_enforced() {
        let pki = Pki::new("test CA");
        let settings = pki.settings(T);
        for (validity, sni, expected) in [
            (Validity::Expired, "a.test", Some("expired")),
            (Validity::NotYetValid, "a.test", Some("not yet valid")),
            // Name coverage is not the chain's business...
            (Validity::Current, "other.test", None),
            // ...but a mismatching name must not hide another problem.
            (Validity::Expired, "other.test", Some("expired")),
        ] {
            let server = simple_server(&pki, &["a.test"], validity).await;
            let (_s, info) = connect(&settings, server.addr, sni, ALPN_H2_H1)
                .await
                .expect("handshake despite a bad certificate");
            assert_eq!(info.chain_error.as_deref(), expected, "{validity:?} {sni}");
            assert_eq!(info.chain.len(), 2);
        }
    }

    #[tokio::test]
    async fn unknown_issuer() {
        let trusted = Pki::new("trusted CA");
        let stranger = Pki::new("stranger CA");
        let server = simple_server(&stranger, &["a.test"], Validity::Current).await;
        let (_s, info) = connect(&trusted.settings(T), server.addr, "a.test", ALPN_H2_H1)
            .await
            .expect("connect");
        assert_eq!(info.chain_error.as_deref(), Some("unknown issuer"));
        // Not even the web roots know the test CA.
        let plain = TlsSettings::new(None, T).expect("settings");
        let (_s, info) = connect(&plain, server.addr, "a.test", ALPN_H2_H1)
            .await
            .expect("connect");
        assert_eq!(info.chain_error.as_deref(), Some("unknown issuer"));
    }

    #[tokio::test]
    async fn alpn_variants_tls12_and_ip_literal() {
        let pki = Pki::new("test CA");
        let settings = pki.settings(T);
        for (alpn, tls12_only, expected_alpn, expected_version) in [
            (vec![b"http/1.1".to_vec()], false, Some("http/1.1"), "TLSv1.3"),
            (vec![], false, None, "TLSv1.3"),
            (vec![b"h2".to_vec()], true, Some("h2"), "TLSv1.2"),
        ] {
            let (chain, key) = pki.leaf(&["a.test"], Validity::Current);
            let options = ServerOptions { alpn, tls12_only };
            let server = tls_server(local(1, 0), chain, key, options).await;
            let (_s, info) = connect(&settings, server.addr, "a.test", ALPN_H2_H1)
                .await
                .expect("connect");
            assert_eq!(info.alpn.as_deref(), expected_alpn);
            assert_eq!(info.version, expected_version);
            assert_eq!(info.chain_error, None);
        }
        // An IP literal sends no SNI; the chain is still captured.
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let (_s, info) = connect(&settings, server.addr, "127.0.0.1", ALPN_H2_H1)
            .await
            .expect("connect");
        assert_eq!(info.chain.len(), 2);
    }

    #[tokio::test]
    async fn every_connection_shows_the_certificate() {
        // With resumption a second TLS 1.3 handshake would carry no certificate.
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test"], Validity::Current).await;
        let settings = pki.settings(T);
        for _ in 0..3 {
            let (_s, info) = connect(&settings, server.addr, "a.test", ALPN_H2_H1)
                .await
                .expect("connect");
            assert_eq!(info.chain.len(), 2);
        }
        assert!(Arc::ptr_eq(
            &client_config(ALPN_H2_H1),
            &client_config(&[b"h2", b"http/1.1"])
        ));
        assert!(!Arc::ptr_eq(&client_config(ALPN_H2_H1), &client_config(&[b"h2"])));
    }

    #[tokio::test]
    async fn connection_and_handshake_failures() {
        let settings = TlsSettings::new(None, T).expect("settings");
        let refused = refused_addr().await;
        let err = connect(&settings, refused, "a.test", ALPN_H2_H1).await.err();
        assert_eq!(err, Some(ProbeError::Connect("connection refused".into())));

        // The handshake's own timer ends it (the error says which, and after how long); real
        // sockets, so the clock is real: the bound only catches a timer that never fires.
        let silent = raw_server(RawBehaviour::Silent).await;
        let err = no_hang(
            "a handshake with a silent server",
            connect(&settings, silent.addr, "a.test", ALPN_H2_H1),
        )
        .await
        .err();
        assert_eq!(
            err,
            Some(ProbeError::Timeout {
                phase: Phase::Tls,
                after: T
            })
        );

        let garbage = raw_server(RawBehaviour::Garbage).await;
        let err = connect(&settings, garbage.addr, "a.test", ALPN_H2_H1).await.err();
        assert_eq!(err, Some(ProbeError::Tls("received garbage (not TLS)".into())));

        let closer = raw_server(RawBehaviour::Close).await;
        let err = connect(&settings, closer.addr, "a.test", ALPN_H2_H1).await.err();
        assert_eq!(err, Some(ProbeError::Tls("handshake closed by peer".into())));
    }

    #[tokio::test]
    async fn handshake_alert_is_named() {
        // The server only speaks TLS 1.2 with ALPN h2; a client offering only http/1.1 ALPN
        // gets the no_application_protocol alert.
        let pki = Pki::new("test CA");
        let (chain, key) = pki.leaf(&["a.test"], Validity::Current);
        let options = ServerOptions {
            alpn: vec![b"h2".to_vec()],
            tls12_only: false,
        };
        let server = tls_server(local(1, 0), chain, key, options).await;
        let err = connect(&pki.settings(T), server.addr, "a.test", &[b"http/1.1"])
            .await
            .err();
        assert_eq!(
            err,
            Some(ProbeError::Tls("alert received: no_application_protocol".into()))
        );
    }

    #[test]
    fn ca_file_is_read_or_named_in_the_error() {
        let pki = Pki::new("file CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, pki.ca_pem()).expect("write");
        let settings = TlsSettings::new(Some(&good), T).expect("settings");
        assert_eq!(settings.roots.len(), webpki_roots::TLS_SERVER_ROOTS.len() + 1);
        assert_eq!(settings.timeout, T);

        let missing = dir.path().join("missing.pem");
        let err = TlsSettings::new(Some(&missing), T).err().expect("error");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        let err = TlsSettings::new(Some(&empty), T).err().expect("error");
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(err.to_string().contains("no certificate"), "{err}");
    }

    #[test]
    fn short_names() {
        assert_eq!(snake_case("HandshakeFailure"), "handshake_failure");
        assert_eq!(snake_case("NoApplicationProtocol"), "no_application_protocol");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_message(&refused), "connection refused");
    }
}

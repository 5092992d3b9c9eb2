//! A minimal HTTPS client for the lab tests: chosen SNI, chosen Host, chosen ALPN, one
//! request per fresh connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::lab::Lab;

const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer from a lab server.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    pub alpn: Option<Vec<u8>>,
    /// The leaf certificate the server sent, DER.
    pub leaf: Option<Vec<u8>>,
}

impl Reply {
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A TLS client trusting only the lab CA (read from the lab's `ca.pem`).
pub(super) fn connector(lab: &Lab, alpn: &[&[u8]]) -> anyhow::Result<TlsConnector> {
    connector_with(lab, alpn, None)
}

fn connector_with(
    lab: &Lab,
    alpn: &[&[u8]],
    client_certs: Option<Arc<dyn ResolvesClientCert>>,
) -> anyhow::Result<TlsConnector> {
    Ok(TlsConnector::from(Arc::new(client_config(
        lab,
        alpn,
        client_certs,
    )?)))
}

fn client_config(
    lab: &Lab,
    alpn: &[&[u8]],
    client_certs: Option<Arc<dyn ResolvesClientCert>>,
) -> anyhow::Result<ClientConfig> {
    let pem = std::fs::read(&lab.ca_file).context("reading ca.pem")?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.context("parsing ca.pem")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_certs {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// One request for `host` on a fresh connection to 127.0.0.`octet` with SNI `sni`,
/// offering ALPN h2 and http/1.1.
pub(super) async fn fetch(lab: &Lab, octet: u8, sni: &str, host: &str) -> anyhow::Result<Reply> {
    fetch_alpn(lab, octet, sni, host, &[b"h2", b"http/1.1"]).await
}

pub(super) async fn fetch_alpn(
    lab: &Lab,
    octet: u8,
    sni: &str,
    host: &str,
    alpn: &[&[u8]],
) -> anyhow::Result<Reply> {
    let ip = Ipv4Addr::new(127, 0, 0, octet);
    fetch_with(lab, ip, sni, host, connector(lab, alpn)?).await
}

/// One request for `host` on a fresh connection to `ip` (any lab address) with SNI `sni`.
pub(super) async fn fetch_ip(lab: &Lab, ip: Ipv4Addr, sni: &str, host: &str) -> anyhow::Result<Reply> {
    fetch_with(lab, ip, sni, host, connector(lab, &[b"h2", b"http/1.1"])?).await
}

/// One request for `host` on a connection that sends no SNI (the certificate is still
/// verified for `host`).
pub(super) async fn fetch_no_sni(lab: &Lab, octet: u8, host: &str) -> anyhow::Result<Reply> {
    let mut config = client_config(lab, &[b"h2"], None)?;
    config.enable_sni = false;
    let ip = Ipv4Addr::new(127, 0, 0, octet);
    fetch_with(lab, ip, host, host, TlsConnector::from(Arc::new(config))).await
}

async fn fetch_with(
    lab: &Lab,
    ip: Ipv4Addr,
    sni: &str,
    host: &str,
    connector: TlsConnector,
) -> anyhow::Result<Reply> {
    let name = ServerName::try_from(sni.to_string())?;
    let addr = SocketAddr::from((ip, lab.port));
    let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let tls = tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")??;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec());
    let io = TokioIo::new(tls);
    let work = async {
        let response = if negotiated.as_deref() == Some(b"h2".as_slice()) {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            let req =
                http::Request::get(format!("https://{host}:{}/", lab.port)).body(Empty::<Bytes>::new())?;
            sender.send_request(req).await?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            let req = http::Request::get("/")
                .header(http::header::HOST, format!("{host}:{}", lab.port))
                .body(Empty::<Bytes>::new())?;
            sender.send_request(req).await?
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            alpn: negotiated.clone(),
            leaf: leaf.clone(),
        })
    };
    tokio::time::timeout(STEP_TIMEOUT, work)
        .await
        .context("request timed out")?
}

/// Notes whether the server asked for a client certificate (and never sends one).
#[derive(Debug, Default)]
struct CertRequestRecorder(AtomicBool);

impl ResolvesClientCert for CertRequestRecorder {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::SeqCst);
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Whether a TLS handshake with SNI `sni` on 127.0.0.`octet` gets a CertificateRequest.
pub(super) async fn client_cert_requested(lab: &Lab, octet: u8, sni: &str) -> anyhow::Result<bool> {
    let recorder = Arc::new(CertRequestRecorder::default());
    let connector = connector_with(lab, &[b"h2"], Some(recorder.clone()))?;
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), lab.port));
    let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await??;
    let name = ServerName::try_from(sni.to_string())?;
    let _tls = tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, tcp)).await??;
    Ok(recorder.0.load(Ordering::SeqCst))
}

//! TLS for the lab servers: certificate selection by SNI and one `ServerConfig` per address.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;

use super::scenarios::Alpn;

/// Picks the certificate by SNI; an absent or unknown SNI gets the address's default.
#[derive(Debug, Clone)]
pub(crate) struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub(crate) fn new(default: Arc<CertifiedKey>) -> Self {
        SniResolver {
            by_name: HashMap::new(),
            default,
        }
    }

    /// Serve `cert` for SNI `name`.
    pub(crate) fn insert(&mut self, name: &str, cert: Arc<CertifiedKey>) {
        self.by_name.insert(name.to_ascii_lowercase(), cert);
    }

    pub(crate) fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        sni.and_then(|name| {
            self.by_name
                .get(name.trim_end_matches('.').to_ascii_lowercase().as_str())
        })
        .unwrap_or(&self.default)
        .clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()))
    }
}

/// The TLS configurations of one address: the usual one, and one that asks for an optional
/// client certificate (for SNI values whose nginx server block has `ssl_verify_client`).
#[derive(Clone)]
pub(crate) struct EndpointTls {
    pub plain: Arc<ServerConfig>,
    pub client_auth: Arc<ServerConfig>,
}

impl EndpointTls {
    pub(crate) fn new(
        provider: Arc<CryptoProvider>,
        resolver: SniResolver,
        alpn: Alpn,
        client_roots: &CertificateDer<'static>,
    ) -> anyhow::Result<Self> {
        let resolver = Arc::new(resolver);
        let mut roots = RootCertStore::empty();
        roots
            .add(client_roots.clone())
            .context("client-certificate roots")?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("client-certificate verifier")?;
        let plain = server_config(provider.clone(), resolver.clone(), alpn, None)?;
        let client_auth = server_config(provider, resolver, alpn, Some(verifier))?;
        Ok(EndpointTls { plain, client_auth })
    }
}

fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<SniResolver>,
    alpn: Alpn,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = match alpn {
        Alpn::H2AndH1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::H1Only => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

//! TLS for the lab servers: certificate selection by SNI and one `ServerConfig` per address.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

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

/// The server configuration of one address.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: SniResolver,
    alpn: Alpn,
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = match alpn {
        Alpn::H2AndH1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::H1Only => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

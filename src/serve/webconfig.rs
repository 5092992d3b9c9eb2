//! `serve --web-config FILE`: who may read the exporter, in the web-configuration format of the
//! Prometheus exporters (prometheus/exporter-toolkit, `docs/web-configuration.md`): TLS
//! (certificate and key, optional client CA and client-certificate policy, allowed client SANs,
//! versions, TLS 1.2 cipher suites, curves), HTTP response headers, basic-auth users with
//! bcrypt hashes, and a request rate limit. An ops team reuses the file its other exporters read.
//!
//! The file is strict, as the toolkit's is: an unknown key is an error naming it. Relative paths
//! are relative to the file's directory. `WebConfigSource` reads it again when it changes (as
//! the toolkit does on every request), so a renewed certificate is served without a restart;
//! an edit that does not load keeps the last good configuration and is logged.
//!
//! What the toolkit has and coalscope does not: TLS 1.0/1.1 (rustls speaks 1.2 and 1.3: a
//! `min_version` below 1.2 means 1.2), the P-521 curve, the client-certificate policies that
//! accept a certificate without verifying it (`RequestClientCert`, `RequireAnyClientCert`: an
//! error that says so), and HTTP/2 (the exporter speaks HTTP/1.1; `http2` is accepted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::serve::auth::BasicAuth;

/// How often a changed file is looked for, at most.
const RECHECK_EVERY: Duration = Duration::from_secs(1);
/// A web-config file larger than this is not one.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A web-config file that does not load: the file, the field and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}{sep}{message}", sep = if field.is_empty() { "" } else { ": " })]
pub struct WebConfigError {
    pub file: String,
    /// `tls_server_config.cert_file` and the like; empty for the file as a whole.
    pub field: String,
    pub message: String,
}

/// The file as written (exporter-toolkit's keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<ClientAuthType>,
    client_ca_file: Option<String>,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    #[serde(default)]
    cipher_suites: Vec<String>,
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    curve_preferences: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[allow(dead_code)] // accepted for compatibility; the exporter speaks HTTP/1.1
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    interval: String,
    burst: u32,
}

/// Go's `tls.ClientAuthType` names, as the toolkit reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLS10")]
    Tls10,
    #[serde(rename = "TLS11")]
    Tls11,
    #[serde(rename = "TLS12")]
    Tls12,
    #[serde(rename = "TLS13")]
    Tls13,
}

/// TLS for the exporter's port.
#[derive(Clone)]
pub struct TlsServer {
    pub config: Arc<ServerConfig>,
    /// A client certificate must carry one of these (DNS, IP, e-mail or URI SAN), if any.
    pub allowed_sans: Vec<String>,
    /// `RequireAndVerifyClientCert`: no connection without a certificate the client CA signed.
    pub requires_client_certificate: bool,
}

/// A token bucket over all requests: `burst` at once, one more every `interval`.
pub struct RateLimit {
    interval: Duration,
    burst: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(interval: Duration, burst: u32) -> RateLimit {
        RateLimit {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Take a token; false when none is left.
    pub fn allow(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let refill = now.saturating_duration_since(last).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + refill).min(f64::from(self.burst));
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            true
        } else {
            *s = (tokens, now);
            false
        }
    }
}

/// A loaded web configuration.
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<TlsServer>,
    pub auth: Option<Arc<BasicAuth>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub rate_limit: Option<Arc<RateLimit>>,
    /// The files it read besides itself (certificate, key, client CA): a change to any of
    /// them reloads it, so that a renewed certificate is served without a restart.
    pub files: Vec<PathBuf>,
}

impl WebConfig {
    /// What `self` would take away that `old` has (TLS, a required client certificate, basic
    /// auth): a reload may not, since a file caught half-written must not open the port.
    fn drops_from(&self, old: &WebConfig) -> Option<&'static str> {
        let required = |c: &WebConfig| c.tls.as_ref().is_some_and(|t| t.requires_client_certificate);
        if old.tls.is_some() && self.tls.is_none() {
            Some("TLS")
        } else if required(old) && !required(self) {
            Some("required client certificates")
        } else if old.auth.is_some() && self.auth.is_none() {
            Some("basic auth")
        } else {
            None
        }
    }

    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let file = path.display().to_string();
        let err = |field: &str, message: String| WebConfigError {
            file: file.clone(),
            field: field.to_string(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| err("", format!("cannot read: {e}")))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(err("", format!("{size} bytes: not a web-config file")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, base).map_err(|(field, message)| err(&field, message))
    }

    /// Parse the YAML text; relative file names are taken from `base`. Errors: (field, what).
    pub fn parse(text: &str, base: &Path) -> Result<WebConfig, (String, String)> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| (String::new(), e.to_string()))?
        };
        let mut files = Vec::new();
        let tls = match file.tls_server_config {
            Some(t) => tls_server(t, base, &mut files)?,
            None => None,
        };
        let auth = match file.basic_auth_users {
            Some(users) if !users.is_empty() => Some(Arc::new(
                BasicAuth::new(users).map_err(|(user, e)| (format!("basic_auth_users.{user}"), e))?,
            )),
            _ => None,
        };
        let headers = match file.http_server_config {
            Some(h) => response_headers(&h.headers)?,
            None => Vec::new(),
        };
        let rate_limit = match file.rate_limit {
            Some(r) => rate_limit(&r)?,
            None => None,
        };
        Ok(WebConfig {
            tls,
            auth,
            headers,
            rate_limit,
            files,
        })
    }
}

fn field_err(field: &str, message: impl Into<String>) -> (String, String) {
    (field.to_string(), message.into())
}

/// Inline PEM or a file (relative to `base`), for the field pair `inline`/`file_key`.
fn pem_source(
    inline: Option<String>,
    file: Option<String>,
    field: &str,
    base: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Vec<u8>>, (String, String)> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(field_err(
            field,
            format!("give either {field} or {field}_file, not both"),
        )),
        (Some(pem), None) => Ok(Some(pem.into_bytes())),
        (None, Some(name)) => {
            let path: PathBuf = base.join(&name);
            files.push(path.clone());
            std::fs::read(&path).map(Some).map_err(|e| {
                field_err(
                    &format!("tls_server_config.{field}_file"),
                    format!("{}: {e}", path.display()),
                )
            })
        }
        (None, None) => Ok(None),
    }
}

fn certificates(pem: &[u8], field: &str) -> Result<Vec<CertificateDer<'static>>, (String, String)> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| field_err(field, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(field_err(field, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The TLS server configuration; None when neither a certificate nor a key is given (the
/// toolkit then serves plain HTTP too).
fn tls_server(
    t: TlsFile,
    base: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<TlsServer>, (String, String)> {
    let cert = pem_source(t.cert, t.cert_file, "cert", base, files)?;
    let key = pem_source(t.key, t.key_file, "key", base, files)?;
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (None, Some(_)) => {
            return Err(field_err(
                "tls_server_config.cert_file",
                "missing: a key without a certificate",
            ))
        }
        (Some(_), None) => {
            return Err(field_err(
                "tls_server_config.key_file",
                "missing: a certificate without a key",
            ))
        }
    };
    let chain = certificates(&cert, "tls_server_config.cert_file")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|e| field_err("tls_server_config.key_file", format!("not a PEM key: {e}")))?
        .ok_or_else(|| field_err("tls_server_config.key_file", "no PEM private key in it"))?;

    let provider = Arc::new(provider(&t.cipher_suites, &t.curve_preferences)?);
    let versions = versions(t.min_version, t.max_version)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| field_err("tls_server_config", e.to_string()))?;
    let client_ca = pem_source(t.client_ca, t.client_ca_file, "client_ca", base, files)?;
    let policy = t.client_auth_type.unwrap_or(ClientAuthType::NoClientCert);
    let builder = match client_verifier(policy, client_ca, provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    if !t.client_allowed_sans.is_empty() && policy != ClientAuthType::RequireAndVerifyClientCert {
        return Err(field_err(
            "tls_server_config.client_allowed_sans",
            "needs client_auth_type RequireAndVerifyClientCert (without a required certificate there is no SAN to match)",
        ));
    }
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        field_err(
            "tls_server_config.key_file",
            format!("does not match the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    Ok(Some(TlsServer {
        config: Arc::new(config),
        allowed_sans: t.client_allowed_sans,
        requires_client_certificate: policy == ClientAuthType::RequireAndVerifyClientCert,
    }))
}

/// The verifier of client certificates for `policy` (None: none asked for).
fn client_verifier(
    policy: ClientAuthType,
    client_ca: Option<Vec<u8>>,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, (String, String)> {
    match policy {
        ClientAuthType::NoClientCert => match client_ca {
            Some(_) => Err(field_err(
                "tls_server_config.client_ca_file",
                "given, but client_auth_type is NoClientCert: say RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            )),
            None => Ok(None),
        },
        ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => Err(field_err(
            "tls_server_config.client_auth_type",
            format!("{policy:?} accepts a client certificate without verifying it, which coalscope does not do: use RequireAndVerifyClientCert with a client_ca_file"),
        )),
        ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert => {
            let Some(ca) = client_ca else {
                return Err(field_err(
                    "tls_server_config.client_ca_file",
                    format!("missing: client_auth_type {policy:?} needs the CA that signs client certificates"),
                ));
            };
            let mut roots = RootCertStore::empty();
            for c in certificates(&ca, "tls_server_config.client_ca_file")? {
                roots
                    .add(c)
                    .map_err(|e| field_err("tls_server_config.client_ca_file", e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if policy == ClientAuthType::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            verifier
                .build()
                .map(Some)
                .map_err(|e| field_err("tls_server_config.client_ca_file", e.to_string()))
        }
    }
}

/// ring's provider, with the TLS 1.2 suites and the curves the file names (in its order).
fn provider(suites: &[String], curves: &[String]) -> Result<CryptoProvider, (String, String)> {
    let mut p = rustls::crypto::ring::default_provider();
    if !suites.is_empty() {
        let all = p.cipher_suites.clone();
        let mut chosen: Vec<_> = all.iter().filter(|s| s.tls13().is_some()).cloned().collect();
        for name in suites {
            let want = name.trim_end_matches("_SHA256").to_string();
            let found = all.iter().find(|s| {
                s.tls13().is_none() && format!("{:?}", s.suite()).trim_end_matches("_SHA256") == want
            });
            match found {
                Some(s) => chosen.push(*s),
                None => {
                    return Err(field_err(
                        "tls_server_config.cipher_suites",
                        format!("{name}: not a TLS 1.2 suite coalscope offers (ECDHE with AES-GCM or ChaCha20-Poly1305)"),
                    ))
                }
            }
        }
        p.cipher_suites = chosen;
    }
    if !curves.is_empty() {
        let all = p.kx_groups.clone();
        let mut chosen = Vec::new();
        for name in curves {
            let id = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                _ => {
                    return Err(field_err(
                        "tls_server_config.curve_preferences",
                        format!("{name}: not offered (X25519, CurveP256, CurveP384 are)"),
                    ))
                }
            };
            if let Some(g) = all.iter().find(|g| g.name() == id) {
                chosen.push(*g);
            }
        }
        p.kx_groups = chosen;
    }
    Ok(p)
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, (String, String)> {
    let min = min.unwrap_or(TlsVersion::Tls12);
    let max = max.unwrap_or(TlsVersion::Tls13);
    if max < TlsVersion::Tls12 {
        return Err(field_err(
            "tls_server_config.max_version",
            "below TLS12: coalscope speaks TLS 1.2 and 1.3 only",
        ));
    }
    if min > max {
        return Err(field_err("tls_server_config.min_version", "above max_version"));
    }
    let mut v = Vec::new();
    if min <= TlsVersion::Tls12 {
        v.push(&rustls::version::TLS12);
    }
    v.push(&rustls::version::TLS13);
    if max == TlsVersion::Tls12 {
        v.retain(|x| x.version != rustls::ProtocolVersion::TLSv1_3);
    }
    Ok(v)
}

/// The toolkit's five security headers, checked as it checks them.
fn response_headers(
    h: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, (String, String)> {
    let mut out = Vec::new();
    for (name, value) in h {
        let field = format!("http_server_config.headers.{name}");
        let known = [
            "Content-Security-Policy",
            "X-Frame-Options",
            "X-Content-Type-Options",
            "X-XSS-Protection",
            "Strict-Transport-Security",
        ];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(field_err(&field, format!("not one of {}", known.join(", "))));
        }
        if value.is_empty() {
            continue;
        }
        let lower = value.to_ascii_lowercase();
        if name.eq_ignore_ascii_case("X-Frame-Options") && lower != "deny" && lower != "sameorigin" {
            return Err(field_err(&field, "deny or sameorigin"));
        }
        if name.eq_ignore_ascii_case("X-Content-Type-Options") && lower != "nosniff" {
            return Err(field_err(&field, "nosniff"));
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| field_err(&field, e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| field_err(&field, e.to_string()))?;
        out.push((name, value));
    }
    Ok(out)
}

fn rate_limit(r: &RateLimitFile) -> Result<Option<Arc<RateLimit>>, (String, String)> {
    let interval = humantime::parse_duration(&r.interval)
        .map_err(|e| field_err("rate_limit.interval", format!("{:?}: {e}", r.interval)))?;
    if interval.is_zero() {
        return Ok(None);
    }
    if r.burst == 0 {
        return Err(field_err("rate_limit.burst", "0 would refuse every request"));
    }
    Ok(Some(Arc::new(RateLimit::new(interval, r.burst))))
}

/// The web configuration of a running exporter: read again when the file, or a file it names
/// (certificate, key, client CA), changes (looked for at most once a second). The last good
/// configuration stays when the new one does not load, and when it would drop TLS, required
/// client certificates or basic auth (that takes a restart: a file caught half-written by an
/// editor must never open the port).
pub struct WebConfigSource {
    path: PathBuf,
    state: Mutex<SourceState>,
}

struct SourceState {
    config: Arc<WebConfig>,
    stamp: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

/// Modification time and size of the file and of those it names.
fn stamp(path: &Path, files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    std::iter::once(path)
        .chain(files.iter().map(PathBuf::as_path))
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

impl WebConfigSource {
    /// Load `path` once; an error here stops `serve` from starting.
    pub fn open(path: &Path) -> Result<WebConfigSource, WebConfigError> {
        let config = WebConfig::load(path)?;
        Ok(WebConfigSource {
            path: path.to_path_buf(),
            state: Mutex::new(SourceState {
                stamp: stamp(path, &config.files),
                config: Arc::new(config),
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<WebConfig> {
        // A panic elsewhere while the lock was held leaves the state as it was: use it (never
        // fall back to an open default).
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(s.checked) < RECHECK_EVERY {
            return s.config.clone();
        }
        s.checked = now;
        let new_stamp = stamp(&self.path, &s.config.files);
        if new_stamp == s.stamp {
            return s.config.clone();
        }
        s.stamp = new_stamp;
        match WebConfig::load(&self.path) {
            Ok(c) => match c.drops_from(&s.config) {
                Some(what) => tracing::warn!(
                    file = %self.path.display(),
                    "the new web config drops {what}: keeping the last good one (restart serve to drop it)"
                ),
                None => {
                    tracing::info!(file = %self.path.display(), "web config reloaded");
                    s.stamp = stamp(&self.path, &c.files);
                    s.config = Arc::new(c);
                }
            },
            Err(e) => tracing::warn!("{e}; keeping the last good web config"),
        }
        s.config.clone()
    }
}

#[cfg(test)]
mod tests;

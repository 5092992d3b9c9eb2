//! The Certificate Transparency client: an HTTP JSON API in crt.sh's format, asked like
//! crt.sh (`?q=example.com&output=json`, `?q=%.example.com&output=json`, `exclude=expired`),
//! with reqwest over rustls (ring; the web roots plus `--ca-file`).
//!
//! Bounds: every attempt is bounded by the CT timeout (connect, answer and body); the body is
//! read as a stream and given up beyond [`MAX_BODY`]; 5xx, 429, timeouts and connection
//! errors are retried with exponential backoff ([`ATTEMPTS`] attempts at most), so one query
//! takes at most `ATTEMPTS × timeout` plus the backoffs. Errors name the URL and the status.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::engine::probe::tls::provider;

use super::crtsh::NotAnAnswer;

/// crt.sh itself.
pub const DEFAULT_URL: &str = "https://crt.sh/";

/// Largest answer read, in bytes (crt.sh's answer for a big domain is tens of megabytes).
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Attempts per query (the first and its retries).
pub const ATTEMPTS: u32 = 4;

/// The wait before the first retry; doubled for each further one.
pub const BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct CtOptions {
    /// The API's base URL (crt.sh's form: the query goes in its query string).
    pub url: Url,
    /// Bound on each attempt: connect, answer and body.
    pub timeout: Duration,
    pub attempts: u32,
    pub backoff: Duration,
    pub max_body: u64,
    /// Ask for expired certificates too (crt.sh's `exclude=expired` is sent otherwise).
    pub include_expired: bool,
}

impl CtOptions {
    pub fn new(url: Url, timeout: Duration) -> CtOptions {
        CtOptions {
            url,
            timeout,
            attempts: ATTEMPTS,
            backoff: BACKOFF,
            max_body: MAX_BODY,
            include_expired: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtError {
    #[error("Certificate Transparency URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("building the HTTP client for {url}: {detail}")]
    Client { url: String, detail: String },
    #[error("{url}: HTTP status {status} (after {attempts} attempt{})", plural(*.attempts))]
    Status { url: String, status: u16, attempts: u32 },
    #[error("{url}: {detail} (after {attempts} attempt{})", plural(*.attempts))]
    Transport {
        url: String,
        detail: String,
        attempts: u32,
    },
    #[error("{url}: the answer is larger than {limit_mib} MiB; stopped reading it")]
    TooBig { url: String, limit_mib: u64 },
    #[error(transparent)]
    NotAnAnswer(#[from] NotAnAnswer),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl CtError {
    /// Is the API unavailable (server errors, rate limit, timeouts, connection errors, after
    /// the retries), rather than refusing this one query?
    pub fn is_unavailable(&self) -> bool {
        match self {
            CtError::Status { status, .. } => *status >= 500 || *status == 429,
            CtError::Transport { .. } => true,
            _ => false,
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A base URL for `--ct-url`: http or https, with a host.
pub fn parse_url(text: &str) -> Result<Url, CtError> {
    let bad = |reason: &str| CtError::BadUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https (or http)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url)
}

/// What one attempt ended with, before knowing whether it is retried.
enum Failed {
    Status(u16),
    Transport(String),
    /// The server's certificate or the TLS handshake was refused: asking again changes nothing.
    Tls(String),
    TooBig,
}

impl Failed {
    fn retried(&self) -> bool {
        match self {
            Failed::Status(s) => *s >= 500 || *s == 429,
            Failed::Transport(_) => true,
            Failed::Tls(_) | Failed::TooBig => false,
        }
    }
}

pub struct CtClient {
    http: reqwest::Client,
    options: CtOptions,
}

impl CtClient {
    /// A client trusting `roots` (the web roots plus `--ca-file`: the engine's `TlsSettings`).
    pub fn new(options: CtOptions, roots: Arc<rustls::RootCertStore>) -> Result<CtClient, CtError> {
        let client_error = |detail: String| CtError::Client {
            url: options.url.to_string(),
            detail,
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| client_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(options.timeout)
            .timeout(options.timeout)
            .user_agent(concat!("coalscope/", env!("CARGO_PKG_VERSION"), " (discover)"))
            .build()
            .map_err(|e| client_error(error_chain(&e)))?;
        Ok(CtClient { http, options })
    }

    /// The API's base URL.
    pub fn base(&self) -> &Url {
        &self.options.url
    }

    /// The URL asking for the certificates of the identity `q` (crt.sh syntax: `%` is its
    /// wildcard, e.g. `%.example.com`).
    pub fn query_url(&self, q: &str) -> Url {
        let mut url = self.options.url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("q", q).append_pair("output", "json");
            if !self.options.include_expired {
                pairs.append_pair("exclude", "expired");
            }
        }
        url
    }

    /// The body at `url`, retried as the module says.
    pub async fn get(&self, url: &Url) -> Result<Vec<u8>, CtError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failed = match self.attempt(url).await {
                Ok(body) => return Ok(body),
                Err(failed) => failed,
            };
            if !failed.retried() || attempt >= self.options.attempts.max(1) {
                return Err(self.error(url, failed, attempt));
            }
            tracing::debug!(%url, attempt, "CT query failed; retrying");
            tokio::time::sleep(backoff(self.options.backoff, attempt)).await;
        }
    }

    fn error(&self, url: &Url, failed: Failed, attempts: u32) -> CtError {
        let url = url.to_string();
        match failed {
            Failed::Status(status) => CtError::Status {
                url,
                status,
                attempts,
            },
            Failed::Transport(detail) | Failed::Tls(detail) => CtError::Transport {
                url,
                detail,
                attempts,
            },
            Failed::TooBig => CtError::TooBig {
                url,
                limit_mib: self.options.max_body.div_ceil(1024 * 1024),
            },
        }
    }

    async fn attempt(&self, url: &Url) -> Result<Vec<u8>, Failed> {
        let timeout = self.options.timeout;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Failed::Transport(format!(
                    "no complete answer within {}",
                    humantime::format_duration(timeout)
                ))
            } else if is_tls_error(&e) {
                Failed::Tls(error_chain(&e.without_url()))
            } else {
                Failed::Transport(error_chain(&e.without_url()))
            }
        };
        let mut response = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failed::Status(status.as_u16()));
        }
        let max = self.options.max_body;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(Failed::TooBig);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(Failed::TooBig);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The wait before retry number `attempt` (1 for the first retry): `base × 2^(attempt-1)`,
/// ±25 % so that many clients do not retry in step.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(10));
    base.saturating_mul(factor)
        .mul_f64(rand::random_range(0.75..1.25))
}

/// Is a rustls error among the causes? (An I/O error wraps its cause without giving it as its
/// `source`, so those are opened too.)
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    let wrapped = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| is_tls_error(inner));
    wrapped || e.source().is_some_and(is_tls_error)
}

/// An error and its causes, `a: b: c` (hyper's and rustls's reasons are in the causes).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> CtClient {
        let options = CtOptions::new(parse_url(url).unwrap(), Duration::from_secs(1));
        CtClient::new(options, Arc::new(rustls::RootCertStore::empty())).unwrap()
    }

    #[test]
    fn queries_are_written_like_crt_sh() {
        let c = client("https://crt.sh/");
        assert_eq!(
            c.query_url("%.example.com").as_str(),
            "https://crt.sh/?q=%25.example.com&output=json&exclude=expired"
        );
        let c = client("http://127.0.0.1:8080/ct?key=1");
        assert_eq!(
            c.query_url("example.com").as_str(),
            "http://127.0.0.1:8080/ct?key=1&q=example.com&output=json&exclude=expired"
        );
    }

    #[test]
    fn bad_urls_are_refused_by_name() {
        for bad in ["crt.sh", "ftp://crt.sh/", "https://", "file:///etc/passwd"] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn what_is_retried() {
        assert!(Failed::Status(503).retried());
        assert!(Failed::Status(429).retried());
        assert!(!Failed::Status(404).retried());
        assert!(Failed::Transport("reset".into()).retried());
        assert!(!Failed::TooBig.retried());
        let status = |status| CtError::Status {
            url: "u".into(),
            status,
            attempts: 4,
        };
        assert!(status(503).is_unavailable() && status(429).is_unavailable());
        assert!(!status(404).is_unavailable());
        assert!(!CtError::TooBig {
            url: "u".into(),
            limit_mib: 64
        }
        .is_unavailable());
    }

    #[test]
    fn backoff_doubles_within_its_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4u32 {
            let d = backoff(base, attempt);
            let nominal = base * 2u32.pow(attempt - 1);
            assert!(
                d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(base, 1000) <= base * 1024 * 2, "capped");
    }
}

//! A fake Certificate Transparency API in crt.sh's format on loopback (HTTP/1.1 and HTTP/2,
//! plain or TLS): it answers `?q=…&output=json` by the query `q`, with scripted replies
//! (fixtures from `tests/fixtures/ct/`, statuses, slow answers, oversized bodies), and counts
//! the requests per query. A query without a script gets `[]`, as crt.sh answers a name it
//! has never seen.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::net::{Chain, TaskGuard};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with this JSON body.
    Json(Bytes),
    /// This status, with a short HTML body (as crt.sh's error pages).
    Status(u16),
    /// Wait, then answer.
    Slow(Duration, Box<Reply>),
    /// 200 with a body of this many bytes, streamed without a length.
    Big(u64),
}

/// A fixture of `tests/fixtures/ct/`.
pub fn fixture(name: &str) -> Bytes {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ct")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The running fake API; dropping it stops it.
pub struct CtServer {
    pub addr: SocketAddr,
    /// Its base URL (`http://127.0.0.1:PORT/`, or `https://…` with TLS).
    pub url: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    _guard: TaskGuard,
}

impl CtServer {
    /// Requests received for the query `q`.
    pub fn hits(&self, q: &str) -> usize {
        self.hits.lock().unwrap().get(q).copied().unwrap_or(0)
    }

    /// Every query received, sorted.
    pub fn queries(&self) -> Vec<String> {
        let mut qs: Vec<String> = self.hits.lock().unwrap().keys().cloned().collect();
        qs.sort();
        qs
    }
}

type Script = Arc<HashMap<String, Vec<Reply>>>;
type Body = BoxBody<Bytes, Infallible>;

/// Serve `routes` (query → replies: the n-th request gets the n-th reply, the last one from
/// then on) on 127.0.0.1; over TLS with `tls`'s chain and key when given.
pub async fn ct_server(
    routes: Vec<(&str, Vec<Reply>)>,
    tls: Option<(Chain, PrivateKeyDer<'static>)>,
) -> CtServer {
    let script: Script = Arc::new(routes.into_iter().map(|(q, r)| (q.to_string(), r)).collect());
    let acceptor = tls.map(|(chain, key)| {
        let mut config = rustls::ServerConfig::builder_with_provider(crate::engine::probe::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let hits2 = hits.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let (script, hits, acceptor) = (script.clone(), hits2.clone(), acceptor.clone());
            connections.spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| answer(request, script.clone(), hits.clone()));
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    let mut guard = TaskGuard::default();
    guard.push(task);
    CtServer {
        addr,
        url: format!("{scheme}://{addr}/"),
        hits,
        _guard: guard,
    }
}

async fn answer(
    request: hyper::Request<Incoming>,
    script: Script,
    hits: Arc<Mutex<HashMap<String, usize>>>,
) -> Result<hyper::Response<Body>, Infallible> {
    let url = reqwest::Url::parse(&format!("http://ct.test{}", request.uri())).unwrap();
    let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let q = pairs.get("q").cloned().unwrap_or_default();
    let n = {
        let mut hits = hits.lock().unwrap();
        let n = hits.entry(q.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    if pairs.get("output").map(String::as_str) != Some("json") {
        return Ok(status(400));
    }
    let reply = match script.get(&q) {
        Some(replies) => replies[n.min(replies.len() - 1)].clone(),
        None => Reply::Json(Bytes::from_static(b"[]")),
    };
    Ok(reply_with(reply).await)
}

async fn reply_with(mut reply: Reply) -> hyper::Response<Body> {
    while let Reply::Slow(wait, then) = reply {
        tokio::time::sleep(wait).await;
        reply = *then;
    }
    match reply {
        Reply::Json(body) => hyper::Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body).boxed())
            .unwrap(),
        Reply::Status(code) => status(code),
        Reply::Big(len) => {
            const CHUNK: usize = 64 * 1024;
            let chunks = len.div_ceil(CHUNK as u64);
            let stream = futures::stream::iter((0..chunks).map(move |i| {
                let size = (len - i * CHUNK as u64).min(CHUNK as u64) as usize;
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b' '; size])))
            }));
            hyper::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        Reply::Slow(..) => unreachable!("unwrapped above"),
    }
}

fn status(code: u16) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "text/html")
        .body(Full::new(Bytes::from(format!("<html><body>error {code}</body></html>"))).boxed())
        .unwrap()
}

//! One fetcher task per `--from`: asks a `serve` instance for `/api/snapshot` every interval
//! (with the timeout, a bounded body, back-off while it fails), reads the JSON into the
//! contract type `Snapshot`, caps what it accepts, and publishes what it knows on a
//! `tokio::sync::watch`. Never blocks anyone: the merge step reads the latest state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::snapshot::{Snapshot, VantageData, SCHEMA};
use crate::remote::health::{next_delay, Attempts};
use crate::remote::RemoteSource;

/// Largest `/api/snapshot` body read (a 10,000-name report is far below).
pub const MAX_BODY: usize = 64 << 20;
/// Pairs accepted per vantage; the rest are left out, and the header says so.
pub const MAX_PAIRS: usize = 200_000;
/// Hosts accepted per vantage.
pub const MAX_HOSTS: usize = 20_000;
/// Longest error text kept.
const MAX_ERROR: usize = 300;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub interval: Duration,
    pub timeout: Duration,
    pub max_body: usize,
    pub max_pairs: usize,
    pub max_hosts: usize,
}

/// What a fetcher publishes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub attempts: Attempts,
    /// The name the instance gives itself (its snapshot's `vantage`, else its status's).
    pub name: Option<String>,
    /// Its last answer (an empty report until the first).
    pub data: Arc<VantageData>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Request(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("answer over {0} bytes")]
    TooBig(usize),
    #[error("not a coalscope snapshot: {0}")]
    Json(String),
    #[error("schema {0:?}, expected {SCHEMA}")]
    Schema(String),
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest says "error sending request for url (…)"; what happened is its last source
        // ("Connection refused (os error 111)").
        let root = std::iter::successors(std::error::Error::source(&e), |s| s.source()).last();
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else if e.is_body() || e.is_decode() {
            "reading the answer"
        } else {
            "request failed"
        };
        let text = match root {
            Some(root) => format!("{what}: {root}"),
            None => format!("{what}: {e}"),
        };
        FetchError::Request(crate::sanitize::for_terminal(&text, MAX_ERROR))
    }
}

/// `base` + `path` (the base's own path kept, e.g. behind a reverse proxy).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url.set_query(None);
    url
}

/// GET `url`, the body read up to `max` bytes.
async fn get_bounded(
    client: &Client,
    url: Url,
    timeout: Duration,
    max: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client.get(url).timeout(timeout).send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(FetchError::TooBig(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Err(FetchError::TooBig(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Addresses kept per name and per pair (as many as the engine probes per name).
const MAX_ADDRESSES: usize = 64;

/// The snapshot in `body`, capped to `max_pairs` pairs and `max_hosts` hosts (a note says
/// what was left out).
pub fn parse(body: &[u8], max_pairs: usize, max_hosts: usize) -> Result<VantageData, FetchError> {
    let mut snapshot: Snapshot = serde_json::from_slice(body).map_err(|e| FetchError::Json(e.to_string()))?;
    if snapshot.schema != SCHEMA {
        return Err(FetchError::Schema(crate::sanitize::for_terminal(
            &snapshot.schema,
            40,
        )));
    }
    let mut notes = Vec::new();
    if snapshot.pairs.len() > max_pairs {
        notes.push(format!("kept {max_pairs} of {} pairs", snapshot.pairs.len()));
        snapshot.pairs.truncate(max_pairs);
    }
    if snapshot.hosts.len() > max_hosts {
        notes.push(format!("kept {max_hosts} of {} hosts", snapshot.hosts.len()));
        snapshot.hosts.truncate(max_hosts);
    }
    if snapshot.groups.len() > max_hosts {
        notes.push(format!("kept {max_hosts} of {} groups", snapshot.groups.len()));
        snapshot.groups.truncate(max_hosts);
    }
    // The lists inside: no group larger than the hosts kept, no more addresses per name or
    // pair than the engine probes.
    for g in &mut snapshot.groups {
        g.members.truncate(max_hosts);
    }
    for p in &mut snapshot.pairs {
        if p.addresses.len() > MAX_ADDRESSES || p.shared_addresses.len() > MAX_ADDRESSES {
            let p = Arc::make_mut(p);
            p.addresses.truncate(MAX_ADDRESSES);
            p.shared_addresses.truncate(MAX_ADDRESSES);
        }
    }
    for h in &mut snapshot.hosts {
        if h.addresses.len() > MAX_ADDRESSES || h.endpoints.len() > MAX_ADDRESSES {
            let h = Arc::make_mut(h);
            h.addresses.truncate(MAX_ADDRESSES);
            h.endpoints.truncate(MAX_ADDRESSES);
        }
    }
    let note = (!notes.is_empty()).then(|| notes.join(", "));
    Ok(VantageData::new(Arc::new(snapshot), note))
}

/// `/api/status`'s `vantage`, for instances whose snapshot does not name itself: None when
/// the status could not be read, Some(None) when it names no vantage.
async fn status_name(client: &Client, base: &Url, timeout: Duration) -> Option<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Status {
        vantage: Option<String>,
    }
    let body = get_bounded(client, endpoint(base, "/api/status"), timeout, 64 << 10)
        .await
        .ok()?;
    Some(serde_json::from_slice::<Status>(&body).ok()?.vantage)
}

/// One request for the snapshot, read and parsed off the runtime's threads.
async fn fetch_once(
    client: &Client,
    source: &RemoteSource,
    options: &FetchOptions,
) -> Result<VantageData, FetchError> {
    let url = endpoint(&source.url, "/api/snapshot");
    let body = get_bounded(client, url, options.timeout, options.max_body).await?;
    let (max_pairs, max_hosts) = (options.max_pairs, options.max_hosts);
    tokio::task::spawn_blocking(move || parse(&body, max_pairs, max_hosts))
        .await
        .map_err(|e| FetchError::Request(format!("parser stopped: {e}")))?
}

/// Start the fetcher of `source`; it ends when every receiver is gone (or when aborted).
pub fn spawn(
    client: Client,
    source: RemoteSource,
    options: FetchOptions,
) -> (watch::Receiver<Arc<Fetched>>, JoinHandle<()>) {
    let start = Fetched {
        attempts: Attempts::new(Instant::now()),
        name: None,
        data: Arc::default(),
    };
    let (tx, rx) = watch::channel(Arc::new(start.clone()));
    let task = tokio::spawn(async move {
        let mut state = start;
        // What /api/status said of the instance's name (None: not known yet; asked until it
        // answers, then kept), for an instance whose snapshot does not name itself.
        let mut status: Option<Option<String>> = None;
        loop {
            match fetch_once(&client, &source, &options).await {
                Ok(data) => {
                    state.attempts.answered(Instant::now());
                    if data.report.vantage.is_none() && source.name.is_none() && status.is_none() {
                        status = status_name(&client, &source.url, options.timeout).await;
                    }
                    state.name = data.report.vantage.clone().or_else(|| status.clone().flatten());
                    state.data = Arc::new(data);
                }
                Err(e) => {
                    tracing::debug!(url = %source.shown(), "fetch failed: {e}");
                    state
                        .attempts
                        .failed(crate::sanitize::for_terminal(&e.to_string(), MAX_ERROR));
                }
            }
            if tx.send(Arc::new(state.clone())).is_err() {
                break;
            }
            tokio::time::sleep(next_delay(options.interval, state.attempts.failures)).await;
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_path() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            endpoint(&u("http://127.0.0.1:9421"), "/api/snapshot").as_str(),
            "http://127.0.0.1:9421/api/snapshot"
        );
        assert_eq!(
            endpoint(&u("https://h.test/coalscope/?x=1"), "/api/status").as_str(),
            "https://h.test/coalscope/api/status"
        );
    }

    #[test]
    fn bad_bodies_are_named_and_big_ones_capped() {
        assert!(matches!(parse(b"<html>", 10, 10), Err(FetchError::Json(_))));
        let other = br#"{"schema":"other/9","generated_at":"2026-01-01T00:00:00Z","hosts":[],"pairs":[],"groups":[],
            "summary":{"hosts":0,"pairs":0,"problems":0,"cert_only_pairs":0,"connections":0,"requests":0,"rounds":0,
            "duration_s":0,"verdicts":{},"host_errors":0,"coverage":1}}"#;
        let e = parse(other, 10, 10).unwrap_err();
        assert_eq!(e.to_string(), "schema \"other/9\", expected coalscope/1");
        let view = crate::testing::views::lab_view();
        let json = crate::report::json::view_to_json(&view);
        let all = parse(json.as_bytes(), usize::MAX, usize::MAX).unwrap();
        assert_eq!(all.note, None);
        let capped = parse(json.as_bytes(), 2, 3).unwrap();
        assert_eq!(capped.report.pairs.len(), 2);
        assert_eq!(capped.report.hosts.len(), 3);
        assert_eq!(
            capped.note.as_deref(),
            Some(
                format!(
                    "kept 2 of {} pairs, kept 3 of {} hosts, kept 3 of {} groups",
                    all.report.pairs.len(),
                    all.report.hosts.len(),
                    all.report.groups.len()
                )
                .as_str()
            )
        );
        assert_eq!(capped.report.groups.len(), 3);
        // The lists inside are bounded too: a group's members, a pair's addresses.
        let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let many: Vec<serde_json::Value> = (0..1000).map(|i| format!("h{i}.test:443").into()).collect();
        doc["groups"][0]["members"] = many.into();
        let addrs: Vec<serde_json::Value> = (0..1000)
            .map(|i| format!("10.0.{}.{}", i / 250, i % 250).into())
            .collect();
        doc["pairs"][0]["shared_addresses"] = addrs.into();
        let inner = parse(doc.to_string().as_bytes(), usize::MAX, 50).unwrap();
        assert_eq!(inner.report.groups[0].members.len(), 50);
        assert_eq!(inner.report.pairs[0].shared_addresses.len(), MAX_ADDRESSES);
        assert!(capped
            .pair(&capped.report.pairs[1].origin, &capped.report.pairs[1].target)
            .is_some());
    }
}

#[cfg(test)]
mod http_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::testing::net::TaskGuard;

    /// A loopback HTTP/1.1 server answering every request with `response`.
    async fn answering(response: Vec<u8>, guard: &mut TaskGuard) -> Url {
        routing(response.clone(), response, guard).await
    }

    /// A loopback HTTP/1.1 server answering `/api/status` with `status`, the rest with
    /// `response`.
    async fn routing(response: Vec<u8>, status: Vec<u8>, guard: &mut TaskGuard) -> Url {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        guard.push(tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = if asked.starts_with("GET /api/status ") {
                    &status
                } else {
                    &response
                };
                let _ = s.write_all(body).await;
                let _ = s.shutdown().await;
            }
        }));
        Url::parse(&format!("http://{addr}/")).unwrap()
    }

    fn ok_json(json: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            json.len()
        )
        .into_bytes()
    }

    /// A snapshot without `vantage` (an older serve): the name comes from `/api/status`.
    #[tokio::test]
    async fn an_unnamed_snapshot_takes_its_name_from_the_status() {
        let client = crate::remote::client(None, Duration::from_secs(5)).unwrap();
        let mut guard = TaskGuard::default();
        let json = crate::report::json::view_to_json(&crate::testing::views::lab_view());
        let url = routing(
            ok_json(&json),
            ok_json(r#"{"vantage": "ams1", "hosts": 3}"#),
            &mut guard,
        )
        .await;
        let (mut rx, task) = spawn(client, source(url), options(MAX_BODY));
        rx.changed().await.unwrap();
        let state = rx.borrow().clone();
        task.abort();
        assert_eq!(state.name.as_deref(), Some("ams1"));
        assert!(state.attempts.last_ok.is_some() && state.data.report.vantage.is_none());
    }

    fn options(max_body: usize) -> FetchOptions {
        FetchOptions {
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            max_body,
            max_pairs: MAX_PAIRS,
            max_hosts: MAX_HOSTS,
        }
    }

    fn source(url: Url) -> RemoteSource {
        RemoteSource { name: None, url }
    }

    #[tokio::test]
    async fn answers_refusals_and_oversized_bodies_over_real_http() {
        let client = crate::remote::client(None, Duration::from_secs(5)).unwrap();
        let mut guard = TaskGuard::default();
        let json =
            crate::report::json::vantage_view_to_json(&crate::testing::views::lab_view(), Some("fra1"));
        let url = answering(ok_json(&json), &mut guard).await;
        let data = fetch_once(&client, &source(url.clone()), &options(MAX_BODY))
            .await
            .unwrap();
        assert_eq!(data.report.vantage.as_deref(), Some("fra1"));
        let small = fetch_once(&client, &source(url), &options(1000))
            .await
            .unwrap_err();
        assert!(matches!(small, FetchError::TooBig(1000)), "{small}");

        let busy =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec();
        let url = answering(busy, &mut guard).await;
        let e = fetch_once(&client, &source(url), &options(MAX_BODY))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "HTTP status 503");

        // Nobody listening: said plainly, and the fetcher publishes it.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", closed.local_addr().unwrap())).unwrap();
        drop(closed);
        let (mut rx, task) = spawn(client, source(url), options(MAX_BODY));
        rx.changed().await.unwrap();
        let state = rx.borrow().clone();
        task.abort();
        let error = state.attempts.error.clone().unwrap_or_default();
        assert!(error.starts_with("cannot connect: "), "{error}");
        assert_eq!((state.attempts.failures, state.attempts.last_ok), (1, None));
    }
}

//! Remote vantage points (`watch --from URL`): views fetched from other `serve` instances,
//! never a second engine. `fetch` runs one task per instance (its `/api/snapshot` on a
//! watch channel), `health` says which are stale, `merge` makes the one view the dashboard
//! draws of the local engine's view (when there is one) and the remote snapshots; `spawn`
//! runs them and publishes merged views as the engine publishes its own.

pub mod events;
pub mod fetch;
pub mod health;
pub mod merge;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::select_all;
use reqwest::{Client, Url};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::probe::tls::TlsSettings;
use crate::engine::snapshot::{Event, Health, LiveView, Timestamp, Vantage, VantageData};
use fetch::{FetchOptions, Fetched};

/// The name of the local engine among vantages.
pub const LOCAL: &str = "local";

/// A `--from [NAME=]URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// As given (NAME=); else the instance's own name, else its host:port.
    pub name: Option<String>,
    /// The instance's base URL (http or https).
    pub url: Url,
}

impl RemoteSource {
    /// The URL as shown and logged: without a password it may carry (`https://user:pw@…`,
    /// sent as basic auth).
    pub fn shown(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.to_string()
    }

    /// "host:port" of the URL: the name of last resort.
    pub fn host_port(&self) -> String {
        let host = self.url.host_str().unwrap_or("?");
        match self.url.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }
}

/// Parse `[NAME=]URL` (a value of `--from`).
pub fn parse_source(s: &str) -> Result<RemoteSource, String> {
    let s = s.trim();
    let (name, url) = match s.split_once('=') {
        Some((name, url)) if !name.contains("://") && !name.contains('/') => (Some(name.trim()), url.trim()),
        _ => (None, s),
    };
    if let Some(n) = name {
        if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
            return Err(format!(
                "invalid vantage name {n:?} in --from {s:?}: expected a short printable name, e.g. fra1=http://10.0.0.1:9421"
            ));
        }
    }
    let url = Url::parse(url).map_err(|e| {
        format!("invalid --from {s:?}: {e}; expected [NAME=]http://HOST:PORT of a `coalscope serve`")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "invalid --from {s:?}: expected an http:// or https:// URL with a host"
        ));
    }
    Ok(RemoteSource {
        name: name.map(str::to_string),
        url,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("TLS for --from: {0}")]
    Tls(String),
    #[error("HTTP client for --from: {0}")]
    Client(String),
}

/// How remote vantages are asked and merged.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Time between two requests to one instance.
    pub interval: Duration,
    /// Bound on each request (connect included).
    pub timeout: Duration,
    /// A vantage without an answer for this long is stale (it is too as soon as a request
    /// fails).
    pub stale_after: Duration,
    /// How often the merged view is made again without news (the stale ages move on).
    pub tick: Duration,
}

impl RemoteOptions {
    pub fn new(interval: Duration, timeout: Duration) -> RemoteOptions {
        RemoteOptions {
            interval,
            timeout,
            stale_after: (interval * 3).max(interval + timeout),
            tick: Duration::from_secs(1),
        }
    }
}

/// The HTTP client of the fetchers: rustls with the ring provider, the web roots and
/// `--ca-file`; no proxy, no redirects.
pub fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<Client, RemoteError> {
    let settings = TlsSettings::new(ca_file, timeout).map_err(|e| RemoteError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RemoteError::Tls(e.to_string()))?
        .with_root_certificates(settings.roots.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "coalscope/",
            env!("CARGO_PKG_VERSION"),
            " (watch --from)"
        ))
        .build()
        .map_err(|e| RemoteError::Client(e.to_string()))
}

/// The running fetchers and merger; stopped when dropped.
pub struct Remotes {
    /// Merged views, as the engine's `views`.
    pub views: watch::Receiver<Arc<LiveView>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Remotes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A vantage's state as the merge step reads it.
struct Remote {
    source: RemoteSource,
    rx: watch::Receiver<Arc<Fetched>>,
}

/// The vantage of a fetcher's latest state at `now`.
fn remote_vantage(r: &Remote, now: Instant, stale_after: Duration) -> Vantage {
    let f = r.rx.borrow().clone();
    Vantage {
        name: r
            .source
            .name
            .clone()
            .or_else(|| f.name.clone())
            .unwrap_or_else(|| r.source.host_port()),
        source: r.source.shown(),
        local: false,
        health: health::health(&f.attempts, now, stale_after),
        data: f.data.clone(),
    }
}

/// The local engine's vantage: always fresh while it publishes.
fn local_vantage(view: &LiveView) -> Vantage {
    Vantage {
        name: LOCAL.into(),
        source: LOCAL.into(),
        local: true,
        health: Health {
            answered: true,
            ..Health::default()
        },
        data: Arc::new(VantageData::new(Arc::new(view.report.clone()), None)),
    }
}

/// Turns the local view (if any) and the remotes' latest answers into merged views, and logs
/// the verdict changes between two answers of a remote vantage beside the local engine's.
#[derive(Default)]
struct Merger {
    changes: events::Changes,
    /// The merged event log last made, with what it was made from (the local log, and how
    /// many remote events had been logged): made again only when either changed, not on
    /// every view (several a second).
    log: Option<(Option<EventLog>, u64, EventLog)>,
}

type EventLog = Arc<Vec<Event>>;

impl Merger {
    fn make(&mut self, local: Option<&LiveView>, remote: Vec<Vantage>) -> Arc<LiveView> {
        let mut list: Vec<Vantage> = local.map(local_vantage).into_iter().collect();
        for (i, v) in remote.into_iter().enumerate() {
            self.changes.observe(i, &v.name, &v.data);
            list.push(v);
        }
        let mut view = merge::merge(local, list, Timestamp::now());
        if !self.changes.is_empty() {
            view.events = self.log(local);
        }
        Arc::new(view)
    }

    /// The local engine's events and the remote ones, merged.
    fn log(&mut self, local: Option<&LiveView>) -> EventLog {
        let local_log = local.map(|v| v.events.clone());
        let logged = self.changes.logged();
        if let Some((l, n, merged)) = &self.log {
            let same_local = match (l, &local_log) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same_local && *n == logged {
                return merged.clone();
            }
        }
        let merged = Arc::new(merge::events(local, self.changes.events()));
        self.log = Some((local_log, logged, merged.clone()));
        merged
    }
}

/// Start a fetcher per source and the merger over them and `local` (the local engine's
/// views, when it runs too).
pub fn spawn(
    client: Client,
    sources: Vec<RemoteSource>,
    mut local: Option<watch::Receiver<Arc<LiveView>>>,
    options: RemoteOptions,
) -> Remotes {
    let fetch = FetchOptions {
        interval: options.interval,
        timeout: options.timeout,
        max_body: fetch::MAX_BODY,
        max_pairs: fetch::MAX_PAIRS,
        max_hosts: fetch::MAX_HOSTS,
    };
    let mut tasks = Vec::new();
    let mut remotes = Vec::new();
    for source in sources {
        let (rx, task) = fetch::spawn(client.clone(), source.clone(), fetch.clone());
        tasks.push(task);
        remotes.push(Remote { source, rx });
    }
    let mut merger = Merger::default();
    let mut make = move |local: Option<&LiveView>, remotes: &[Remote]| {
        let now = Instant::now();
        let remote = remotes
            .iter()
            .map(|r| remote_vantage(r, now, options.stale_after))
            .collect();
        merger.make(local, remote)
    };
    let first = make(local.as_ref().map(|l| l.borrow().clone()).as_deref(), &remotes);
    let (tx, views) = watch::channel(first);
    let tick = options.tick;
    tasks.push(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                changed = async {
                    match local.as_mut() {
                        Some(l) => l.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if changed.is_err() {
                        // The local engine stopped: go on with the remotes alone.
                        local = None;
                    }
                }
                _ = any_changed(&mut remotes) => {}
                _ = ticker.tick() => {}
            }
            let view = local.as_mut().map(|l| l.borrow_and_update().clone());
            if tx.send(make(view.as_deref(), &remotes)).is_err() {
                break;
            }
        }
    }));
    Remotes { views, tasks }
}

/// Resolves when any running fetcher published (marking it seen); never without one (a
/// fetcher that ended would otherwise resolve at once, forever).
async fn any_changed(remotes: &mut [Remote]) {
    let running: Vec<_> = remotes
        .iter_mut()
        .filter(|r| r.rx.has_changed().is_ok())
        .map(|r| Box::pin(r.rx.changed()))
        .collect();
    if running.is_empty() {
        return std::future::pending().await;
    }
    let _ = select_all(running).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values_name_a_vantage_or_not() {
        let s = parse_source("fra1=http://127.0.0.1:9421").unwrap();
        assert_eq!(s.name.as_deref(), Some("fra1"));
        assert_eq!(s.url.as_str(), "http://127.0.0.1:9421/");
        let s = parse_source("http://127.0.0.1:9421/x?a=b").unwrap();
        assert_eq!(
            (s.name.clone(), s.host_port()),
            (None, "127.0.0.1:9421".to_string())
        );
        assert_eq!(parse_source("https://[::1]").unwrap().host_port(), "[::1]:443");
        let s = parse_source("http://scraper:s3cret@127.0.0.1:9421").unwrap();
        assert_eq!(s.shown(), "http://scraper@127.0.0.1:9421/");
        for bad in ["127.0.0.1:9421", "ftp://h/", "=http://h/", "x=", "http://"] {
            let e = parse_source(bad).unwrap_err();
            assert!(e.contains("--from") || e.contains("vantage name"), "{bad}: {e}");
        }
    }

    #[test]
    fn remote_verdict_changes_reach_the_event_log() {
        use crate::engine::snapshot::{Snapshot, Verdict};
        let report = crate::testing::views::lab_view().report;
        let vantage = |report: Snapshot| Vantage {
            name: "fra1".into(),
            source: "http://fra1.test:9421/".into(),
            local: false,
            health: Health {
                answered: true,
                ..Health::default()
            },
            data: Arc::new(VantageData::new(Arc::new(report), None)),
        };
        let mut merger = Merger::default();
        // The first answer makes no event.
        assert!(merger.make(None, vec![vantage(report.clone())]).events.is_empty());
        let mut changed = report.clone();
        let i = changed
            .pairs
            .iter()
            .position(|p| p.verdict != Verdict::Ok)
            .unwrap();
        Arc::make_mut(&mut changed.pairs[i]).verdict = Verdict::Ok;
        let view = merger.make(None, vec![vantage(changed.clone())]);
        assert_eq!(view.events.len(), 1, "{:?}", view.events);
        let event = view.events[0].as_verdict().unwrap();
        assert_eq!(event.to, Verdict::Ok);
        assert!(event.message.starts_with("fra1: "), "{}", event.message);
        // The same log (the same allocation) while nothing changes; a new change adds to it.
        let same = merger.make(None, vec![vantage(changed)]);
        assert!(Arc::ptr_eq(&same.events, &view.events));
        let again = merger.make(None, vec![vantage(report)]);
        assert_eq!(again.events.len(), 2);
    }
}

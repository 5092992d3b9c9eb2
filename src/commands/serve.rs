//! `coalscope serve WATCHFILE`: the continuous engine of `watch`, headless, with the same hot
//! reload and budgets, exported over HTTP for Prometheus (`/metrics`) and for scripts
//! (`/api/snapshot`, `/api/status`, `/healthz`). Ends cleanly on SIGTERM or Ctrl-C.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::engine::live::{self, store::MAX_SAMPLES};
use crate::serve::http::{self, App};
use crate::serve::metrics::{Exporter, ExporterOptions};
use crate::serve::webconfig::WebConfigSource;
use crate::watchlist::watcher;

use super::{live_options, prober, read_watchlist, UsageError, EXIT_OK};

/// How long the engine may take to stop after the HTTP server did.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Shortest time between two views of the engine under `serve` (the dashboard: 250 ms).
/// Every view folds in every listed pair (the summary, the buckets): at a view a second that was
/// the largest share of `serve`'s own code in a steady-state profile at 1,000 names (issue 15).
const SERVE_PUBLISH_EVERY: Duration = Duration::from_secs(5);

pub async fn serve(args: ServeArgs) -> Result<u8, UsageError> {
    let list = read_watchlist(&args.watchfile)?;
    let prober = Arc::new(prober(&args.common)?);
    let mut options = live_options(&args.common, args.watchfile.display().to_string())?;
    let (web, tls) = web_config(&args)?;
    // Bind before anything starts, so a bad address fails at once.
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr().unwrap_or(args.listen);

    let per_window = args.common.window.as_secs_f64() / args.common.interval.as_secs_f64();
    if per_window > MAX_SAMPLES as f64 {
        eprintln!(
            "warning: --window / --interval = {per_window:.0} probes per pair and window, above the {MAX_SAMPLES} samples the engine keeps: the counters will lag; shorten --window or lengthen --interval"
        );
    }
    // Scrapers poll every 15 s or more, and API readers every few seconds at most: a view
    // every 5 s is fresh enough and costs a twentieth of the dashboard's analysis.
    options.publish_every = SERVE_PUBLISH_EVERY;
    // Its readers (the exporter, /api/snapshot) make the reports of the pairs waiting for
    // their first probe when they read them: at 10,000 names that is a million reports not
    // kept.
    options.pending_by_index = true;
    let exporter = Exporter::new(ExporterOptions {
        vantage: args.vantage.clone(),
        max_pairs: args.max_pairs as usize,
        window: args.common.window,
    });

    let engine = live::spawn(prober, &list, options);
    let file_watch = watcher::spawn(&args.watchfile, engine.commands.clone()).map_err(UsageError)?;
    let mut view_rx = engine.views.clone();
    // Fold every published view into the exporter (the engine is the only writer).
    let feeder = {
        let exporter = exporter.clone();
        tokio::spawn(async move {
            while view_rx.changed().await.is_ok() {
                let view = view_rx.borrow_and_update().clone();
                exporter.update(view, Instant::now());
            }
        })
    };

    // Handlers are installed before the address is announced: a SIGTERM right after start
    // is a clean shutdown too.
    let signals = Signals::install();
    let (stop_tx, stop_rx) = watch::channel(false);
    let max_connections = args.max_connections as usize;
    let app = Arc::new(App::new(exporter, engine.alive(), web, max_connections));
    let server = tokio::spawn(http::run(listener, app, stop_rx));
    let vantage = args
        .vantage
        .as_deref()
        .map(|v| format!(", vantage {v}"))
        .unwrap_or_default();
    eprintln!(
        "coalscope serve: watching {} ({} hosts{vantage}); listening on {scheme}://{local} (/metrics, /api/snapshot, /api/status, /healthz)",
        args.watchfile.display(),
        list.entries.len(),
        scheme = if tls { "https" } else { "http" },
    );

    let signal = signals.wait().await;
    eprintln!("coalscope serve: {signal}, shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    tracing::debug!("http server stopped");
    feeder.abort();
    // Probes still in flight are dropped with the engine.
    let stopped = engine.stop(STOP_GRACE).await;
    tracing::debug!(stopped, "engine stopped");
    drop(file_watch);
    tracing::debug!("watch-file watcher stopped");
    Ok(EXIT_OK)
}

/// The `--web-config` (read once here: a bad file stops `serve` before it starts) and whether it
/// turns TLS on; warns when the listener gives the snapshot away.
fn web_config(args: &ServeArgs) -> Result<(Option<Arc<WebConfigSource>>, bool), UsageError> {
    let web = match &args.web_config {
        Some(path) => Some(Arc::new(WebConfigSource::open(path)?)),
        None => None,
    };
    let first = web.as_ref().map(|w| w.current());
    let tls = first.as_ref().is_some_and(|c| c.tls.is_some());
    let login = first
        .as_ref()
        .is_some_and(|c| c.auth.is_some() || c.tls.as_ref().is_some_and(|t| t.requires_client_certificate));
    if let Some(risk) = exposure_risk(args.listen.ip(), web.is_some(), tls, login) {
        eprintln!("warning: {risk}");
    }
    Ok((web, tls))
}

/// What a listener on `ip` gives away, when it does: every watched name, address and
/// certificate is in `/api/snapshot`. None on loopback, and with TLS and a login (basic-auth
/// users or required client certificates).
fn exposure_risk(ip: IpAddr, web_config: bool, tls: bool, login: bool) -> Option<String> {
    if ip.is_loopback() {
        return None;
    }
    let what = "every watched name, address and certificate (/api/snapshot) and the metrics";
    match (web_config, tls, login) {
        (_, true, true) => None,
        (false, _, _) => Some(format!(
            "listening on {ip} without --web-config: anyone who can reach this port reads {what}; give a --web-config with tls_server_config and basic_auth_users (the Prometheus exporters' format)"
        )),
        (true, false, true) => Some(format!(
            "listening on {ip} with basic auth but without TLS: passwords and {what} cross the network in clear; add tls_server_config to the --web-config"
        )),
        (true, _, false) => Some(format!(
            "listening on {ip} without basic_auth_users or required client certificates in the --web-config: anyone who can reach this port reads {what}"
        )),
    }
}

/// SIGTERM and Ctrl-C (SIGINT), registered when installed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Wait for either; says which.
    #[cfg(unix)]
    async fn wait(mut self) -> &'static str {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => "SIGTERM",
            _ = next(&mut self.int) => "interrupted",
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_said_off_loopback_only() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let v6: IpAddr = "::".parse().unwrap();
        assert_eq!(exposure_risk(lo, false, false, false), None);
        assert_eq!(exposure_risk("::1".parse().unwrap(), false, false, false), None);
        assert!(exposure_risk(any, false, false, false)
            .unwrap()
            .contains("without --web-config"));
        assert!(exposure_risk(v6, false, false, false).is_some());
        assert!(exposure_risk(any, true, false, true)
            .unwrap()
            .contains("in clear"));
        assert!(exposure_risk(any, true, true, false).unwrap().contains("anyone"));
        assert!(exposure_risk(any, true, false, false).unwrap().contains("anyone"));
        assert_eq!(exposure_risk(any, true, true, true), None);
    }
}

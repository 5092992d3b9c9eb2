//! `coalscope serve WATCHFILE`: the continuous engine of `watch`, headless, with the same hot
//! reload and budgets, exported over HTTP for Prometheus (`/metrics`) and for scripts
//! (`/api/snapshot`, `/api/status`, `/healthz`). Ends cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::engine::live::{self, store::MAX_SAMPLES};
use crate::serve::http::{self, App};
use crate::serve::metrics::{Exporter, ExporterOptions};
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
    let mut options = live_options(&args.common, args.watchfile.display().to_string());
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
    let app = Arc::new(App {
        exporter,
        engine_alive: engine.alive(),
    });
    let server = tokio::spawn(http::run(listener, app, stop_rx));
    let vantage = args
        .vantage
        .as_deref()
        .map(|v| format!(", vantage {v}"))
        .unwrap_or_default();
    eprintln!(
        "coalscope serve: watching {} ({} hosts{vantage}); listening on http://{local} (/metrics, /api/snapshot, /api/status, /healthz)",
        args.watchfile.display(),
        list.entries.len(),
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

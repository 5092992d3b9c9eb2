//! The live engine, the watch-file watcher and the dashboard, run together until the user
//! quits (`watch` and `demo`); with `watch --from`, the remote vantages' fetchers and the
//! merge step between the engine (if any) and the dashboard.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cli::{DashboardArgs, Theme};
use crate::engine::live::{self, EngineCommand, EngineHandle, LiveOptions};
use crate::engine::prober::Prober;
use crate::engine::snapshot::LiveView;
use crate::remote::{self, RemoteOptions, RemoteSource};
use crate::tui::{self, Control, TuiOptions};
use crate::watchlist::{watcher, WatchList};

use super::{UsageError, EXIT_OK};

/// How long the engine may take to stop after the dashboard closed.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// What the local engine runs on.
pub(super) struct Local {
    pub prober: Arc<Prober>,
    pub list: WatchList,
    pub options: LiveOptions,
    pub watchfile: PathBuf,
}

/// The remote vantages: the client, the instances, how they are asked.
pub(super) type Remote = (reqwest::Client, Vec<RemoteSource>, RemoteOptions);

pub(super) async fn dashboard(
    local: Option<Local>,
    remote: Option<Remote>,
    ui: &DashboardArgs,
) -> Result<u8, UsageError> {
    let mut engine: Option<EngineHandle> = None;
    let mut _watcher = None;
    if let Some(l) = local {
        let handle = live::spawn(l.prober, &l.list, l.options);
        _watcher = Some(watcher::spawn(&l.watchfile, handle.commands.clone()).map_err(UsageError)?);
        engine = Some(handle);
    }
    let (views, _remotes): (watch::Receiver<Arc<LiveView>>, _) = match (remote, &engine) {
        (Some((client, sources, options)), e) => {
            let remotes = remote::spawn(client, sources, e.as_ref().map(|e| e.views.clone()), options);
            (remotes.views.clone(), Some(remotes))
        }
        (None, Some(e)) => (e.views.clone(), None),
        (None, None) => {
            return Err(UsageError(
                "nothing to show: give a WATCHFILE or --from URL".into(),
            ))
        }
    };
    // The dashboard speaks `Control`; the engine `EngineCommand` (without an engine,
    // controls go nowhere: the dashboard says so).
    let (control, mut control_rx) = mpsc::channel::<Control>(64);
    let commands = engine.as_ref().map(|e| e.commands.clone());
    let forward = tokio::spawn(async move {
        while let Some(c) = control_rx.recv().await {
            let command = match c {
                Control::ProbeNow(key) => EngineCommand::ProbeNow(key),
                Control::SetPaused(p) => EngineCommand::SetPaused(p),
                Control::Quit => EngineCommand::Quit,
            };
            if let Some(commands) = &commands {
                if commands.send(command).await.is_err() {
                    break;
                }
            }
        }
    });
    let options = TuiOptions {
        light: ui.theme == Theme::Light,
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        export_dir: ui.export_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let result = tui::run(views, control, options).await;
    forward.abort();
    if let Some(engine) = engine {
        engine.stop(STOP_GRACE).await;
    }
    result.map_err(|e| UsageError(format!("terminal: {e}")))?;
    Ok(EXIT_OK)
}

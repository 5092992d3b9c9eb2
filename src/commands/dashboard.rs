//! The live engine, the watch-file watcher and the dashboard, run together until the user
//! quits (`watch` and `demo`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cli::{DashboardArgs, Theme};
use crate::engine::live::{self, EngineCommand, LiveOptions};
use crate::engine::prober::Prober;
use crate::tui::{self, Control, TuiOptions};
use crate::watchlist::{watcher, WatchList};

use super::{UsageError, EXIT_OK};

/// How long the engine may take to stop after the dashboard closed.
const STOP_GRACE: Duration = Duration::from_millis(500);

pub(super) async fn dashboard(
    prober: Arc<Prober>,
    list: &WatchList,
    options: LiveOptions,
    watchfile: &Path,
    ui: &DashboardArgs,
) -> Result<u8, UsageError> {
    let engine = live::spawn(prober, list, options);
    let _watcher = watcher::spawn(watchfile, engine.commands.clone()).map_err(UsageError)?;
    // The dashboard speaks `Control`; the engine `EngineCommand`.
    let (control, mut control_rx) = mpsc::channel::<Control>(64);
    let forward = {
        let commands = engine.commands.clone();
        tokio::spawn(async move {
            while let Some(c) = control_rx.recv().await {
                let command = match c {
                    Control::ProbeNow(key) => EngineCommand::ProbeNow(key),
                    Control::SetPaused(p) => EngineCommand::SetPaused(p),
                    Control::Quit => EngineCommand::Quit,
                };
                if commands.send(command).await.is_err() {
                    break;
                }
            }
        })
    };
    let options = TuiOptions {
        light: ui.theme == Theme::Light,
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        export_dir: ui.export_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let result = tui::run(engine.views.clone(), control, options).await;
    forward.abort();
    engine.stop(STOP_GRACE).await;
    result.map_err(|e| UsageError(format!("terminal: {e}")))?;
    Ok(EXIT_OK)
}

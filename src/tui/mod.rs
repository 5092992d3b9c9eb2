//! The live dashboard (ratatui + crossterm). Draws `LiveView`s; sends `Control`s back.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::engine::snapshot::LiveView;

/// What the UI asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Probe this host (its "host:port" key) now, or everything when None.
    ProbeNow(Option<String>),
    /// Pause or resume probing.
    SetPaused(bool),
    /// Leave.
    Quit,
}

/// Dashboard settings.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Light theme instead of dark.
    pub light: bool,
    /// No colour at all (NO_COLOR).
    pub no_color: bool,
    /// Where `e` writes its JSON export.
    pub export_dir: PathBuf,
}

/// Run the dashboard until the user quits. Restores the terminal on quit, error and panic.
pub async fn run(
    views: watch::Receiver<Arc<LiveView>>,
    control: mpsc::Sender<Control>,
    options: TuiOptions,
) -> std::io::Result<()> {
    let _ = (views, control, options);
    todo!()
}

//! The live dashboard (ratatui + crossterm). Draws `LiveView`s; sends `Control`s back.
//!
//! `app` is the state machine (keys → `Action` → state + `Effect`s), `keymap` maps terminal
//! events to actions, `render` and `panes` draw, `theme` holds every colour, `index` caches
//! what is derived from one engine generation, `terminal` owns and restores the terminal.

pub mod app;
pub mod index;
pub mod keymap;
pub mod layout;
pub mod panes;
pub mod render;
pub mod terminal;
pub mod theme;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossterm::event::EventStream;
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};

use crate::engine::snapshot::{LiveView, Snapshot};

pub use app::{Action, App, Control, Effect};
#[cfg(any(test, feature = "test-support"))]
pub use render::render_to_buffer;
pub use theme::Theme;

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
    mut views: watch::Receiver<Arc<LiveView>>,
    control: mpsc::Sender<Control>,
    options: TuiOptions,
) -> io::Result<()> {
    let guard = terminal::TerminalGuard::enter()?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    term.clear()?;
    let mut app = App::new(Theme::new(options.light, options.no_color));
    let size = term.size()?;
    app.apply(Action::Resize(size.width, size.height));
    app.set_view(views.borrow_and_update().clone());
    let mut events = EventStream::new();
    let mut engine_alive = true;
    let mut dirty = true;
    loop {
        if dirty {
            let view = app.view().cloned().unwrap_or_default();
            term.draw(|f| render::draw(&view, &app, f.area(), f.buffer_mut()))?;
            dirty = false;
        }
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let event = event?;
                let Some(action) = keymap::action(&event, app.filter_editing) else { continue };
                if let Action::Resize(..) = action {
                    term.autoresize()?;
                }
                for effect in app.apply(action) {
                    match effect {
                        Effect::Quit => {
                            let _ = control.try_send(Control::Quit);
                            drop(term);
                            drop(guard);
                            return Ok(());
                        }
                        Effect::Control(c) => {
                            if control.try_send(c).is_err() {
                                app.set_message("the engine is busy or gone; try again");
                            }
                        }
                        Effect::Export => {
                            let message = match app.view() {
                                Some(view) => match export(&view.report, &options.export_dir) {
                                    Ok(path) => format!("exported to {}", path.display()),
                                    Err(e) => format!("export failed: {e}"),
                                },
                                None => "nothing to export yet".into(),
                            };
                            app.set_message(message);
                        }
                    }
                }
                dirty = true;
            }
            changed = views.changed(), if engine_alive => {
                if changed.is_err() {
                    engine_alive = false;
                    app.set_message("the engine stopped; q quits");
                } else {
                    release(app.set_view(views.borrow_and_update().clone()));
                }
                dirty = true;
            }
        }
    }
    drop(term);
    drop(guard);
    Ok(())
}

/// Drop a view the dashboard no longer shows on a blocking thread: the engine has moved on,
/// so this is usually the last reference, and freeing a big view takes long enough to delay
/// the next key or frame.
fn release(view: Option<Arc<LiveView>>) {
    if let Some(view) = view {
        tokio::task::spawn_blocking(move || drop(view));
    }
}

/// Write the report as contract JSON to a new file in `dir`; returns its path. The JSON goes
/// to a temporary file first and takes its name only once whole, so a full or failing disk
/// leaves no half-written export (and no temporary file); an error names the directory.
pub fn export(report: &Snapshot, dir: &Path) -> io::Result<PathBuf> {
    let in_dir = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .map_err(io::Error::other)?;
    let mut json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    json.push(b'\n');
    let tmp = dir.join(format!(".coalscope-export-{}-{stamp}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(in_dir(e));
    }
    let named = name_export(&tmp, dir, &stamp);
    let _ = std::fs::remove_file(&tmp);
    named.map_err(in_dir)
}

/// Give the whole temporary file `tmp` the first free export name of `stamp` (a hard link
/// never replaces an existing export).
fn name_export(tmp: &Path, dir: &Path, stamp: &str) -> io::Result<PathBuf> {
    for n in 1..1000 {
        let name = if n == 1 {
            format!("coalscope-{stamp}.json")
        } else {
            format!("coalscope-{stamp}-{n}.json")
        };
        let path = dir.join(name);
        match std::fs::hard_link(tmp, &path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // A filesystem without hard links: rename, where the name is still free.
            Err(_) if !path.exists() => {
                std::fs::rename(tmp, &path)?;
                return Ok(path);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many exports this second",
    ))
}

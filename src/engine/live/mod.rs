//! The continuous engine behind `watch`, `demo` and `serve`: the planner chooses each cycle's
//! jobs within the budget, the scheduler runs them and owns the store, the store (the only
//! writer of engine state) keeps the samples of the window and publishes views.
//!
//! `spawn` is the one way to start it: commands go in on a bounded channel, views come out on
//! a `watch` channel, and the handle stops it.

pub mod planner;
pub mod scheduler;
pub mod store;
mod trim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::prober::Prober;
use crate::engine::snapshot::LiveView;
use crate::watchlist::WatchList;

pub use scheduler::{EngineCommand, LabPhase, LiveOptions, Scheduler, PUBLISH_EVERY};

/// Commands waiting for the engine at most (key presses, reloads).
const COMMAND_QUEUE: usize = 64;

/// A running live engine.
pub struct EngineHandle {
    /// Commands in (probe now, pause, reload, quit). Watch-file watchers send here too.
    pub commands: mpsc::Sender<EngineCommand>,
    /// The latest view out (an empty view until the first publish).
    pub views: watch::Receiver<Arc<LiveView>>,
    alive: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// Start the live engine on `list` in a task of the current runtime.
pub fn spawn(prober: Arc<Prober>, list: &WatchList, options: LiveOptions) -> EngineHandle {
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (view_tx, views) = watch::channel(Arc::new(LiveView::default()));
    let alive = Arc::new(AtomicBool::new(true));
    let scheduler = Scheduler::new(prober, list, options);
    let task = {
        let alive = alive.clone();
        tokio::spawn(async move {
            scheduler.run(command_rx, view_tx).await;
            alive.store(false, Ordering::Relaxed);
        })
    };
    EngineHandle {
        commands,
        views,
        alive,
        task,
    }
}

impl EngineHandle {
    /// Set to false when the engine task has returned (readers that outlive it, such as the
    /// HTTP server's health check, keep a clone).
    pub fn alive(&self) -> Arc<AtomicBool> {
        self.alive.clone()
    }

    /// Ask the engine to quit and wait for it at most `grace`; probes still in flight are
    /// dropped with it. True when it returned within `grace`.
    pub async fn stop(self, grace: Duration) -> bool {
        let mut task = self.task;
        let commands = self.commands;
        let quit = async {
            // Fails at once when the engine is gone already; waits while its queue is full.
            let _ = commands.send(EngineCommand::Quit).await;
            (&mut task).await
        };
        match tokio::time::timeout(grace, quit).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

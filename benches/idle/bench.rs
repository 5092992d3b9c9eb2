//! The bench: its knobs, the binary it measures, its temporary directory, its runtime and the
//! stop signal; starting a lab and the `coalscope` commands pointed at it. The modes add their
//! methods in `modes/`.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use coalscope::lab::scale::ScaleOptions;
use coalscope::lab::{Lab, LabOptions};

use crate::children::clean_env;
use crate::common;
use crate::knobs::Knobs;

/// What `serve` did in its measured period (what the floor replays).
pub(crate) struct ServeLoad {
    pub(crate) connections: u64,
    pub(crate) requests: u64,
    pub(crate) cpu_s: f64,
}

#[derive(Debug)]
pub(crate) struct Interrupted;

impl Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted (SIGINT or SIGTERM)")
    }
}

impl std::error::Error for Interrupted {}

pub(crate) struct Bench {
    pub(crate) knobs: Knobs,
    pub(crate) bin: PathBuf,
    pub(crate) me: PathBuf,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    pub(crate) ticks: f64,
}

impl Bench {
    /// Sleep `d`, or fail with `Interrupted` on SIGINT/SIGTERM.
    pub(crate) fn pause(&self, d: Duration) -> Result<()> {
        let mut stop = self.stop.clone();
        self.rt.block_on(async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => Ok(()),
                r = stop.wait_for(|s| *s) => match r {
                    Ok(_) => Err(anyhow::Error::new(Interrupted)),
                    // No signal handler: never interrupted.
                    Err(_) => {
                        tokio::time::sleep(d).await;
                        Ok(())
                    }
                },
            }
        })
    }

    /// Wait `d`, checking `alive` every second.
    pub(crate) fn hold(&self, d: Duration, alive: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let end = Instant::now() + d;
        loop {
            alive()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            self.pause((end - now).min(Duration::from_secs(1)))?;
        }
    }

    pub(crate) fn start_lab(&self, names: usize) -> Result<(Lab, ScaleOptions)> {
        let layout = ScaleOptions::new(names, self.knobs.group);
        let started = Instant::now();
        let lab = self
            .rt
            .block_on(Lab::start(LabOptions {
                scale: Some(layout),
                ..Default::default()
            }))
            .with_context(|| format!("starting the scale lab of {names} names"))?;
        println!(
            "\nlab: {names} names, {} groups on {} addresses, port {}, DNS {}; started in {:.2} s",
            layout.groups(),
            layout.addresses(),
            lab.port,
            lab.dns,
            started.elapsed().as_secs_f64()
        );
        Ok((lab, layout))
    }

    /// `coalscope SUBCOMMAND WATCHFILE --dns … --ca-file …` (no extra arguments yet).
    pub(crate) fn coalscope(&self, sub: &str, lab: &Lab) -> Command {
        let mut c = Command::new(&self.bin);
        clean_env(&mut c);
        c.args(common::lab_args(sub, lab, &lab.watchfile));
        c
    }

    pub(crate) fn serve_cmd(&self, lab: &Lab, listen: SocketAddr, window: Option<&str>) -> Command {
        let mut c = self.coalscope("serve", lab);
        c.args(["--listen", &listen.to_string()]);
        if let Some(w) = window {
            c.args(["--window", w]);
        }
        c.args(&self.knobs.args);
        c
    }
}

pub(crate) fn lab_names(lab: &Lab) -> usize {
    lab.scale().map(|s| s.names).unwrap_or(0)
}

pub(crate) fn show_cmd(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

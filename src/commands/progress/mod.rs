//! `check`'s progress on stderr: the estimate up front, then a bar (indicatif) when stderr is
//! a terminal, a line per phase when it is not, nothing with `--quiet`. Stdout (the report)
//! is never touched. The engine sends typed `CheckProgress` events; this is their one reader.
//! The bar is redrawn at most `DRAW_HZ` times a second, and cleared when the view is dropped
//! (the run ended, failed or was interrupted).

pub mod estimate;

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::engine::oneshot::{CheckPlan, CheckProgress, Phase, ProgressSink};

use estimate::{Limits, Work};

/// Redraws of the bar per second at most.
const DRAW_HZ: u8 = 8;
/// The bar redraws on its own this often (elapsed time and ETA move while requests wait).
const TICK: Duration = Duration::from_millis(250);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    /// A line per phase (stderr is a file or a pipe).
    Lines,
    /// A bar (stderr is a terminal).
    Bar,
}

impl Mode {
    /// The mode for this process: quiet when asked, a bar when stderr is a terminal (and not
    /// a dumb one), else lines.
    pub fn detect(quiet: bool) -> Mode {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && !dumb {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// What the view knows of the run so far.
#[derive(Debug, Default)]
struct State {
    plan: Option<CheckPlan>,
    phase: Option<Phase>,
    /// Jobs (connections) of the current phase: done, all.
    jobs: (u64, u64),
    /// Requests made so far, in every phase.
    requests: u64,
}

/// Shows one `check` run's progress on stderr.
pub struct ProgressView {
    mode: Mode,
    limits: Limits,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

impl ProgressView {
    pub fn new(mode: Mode, limits: Limits) -> ProgressView {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(DRAW_HZ));
            bar.set_style(spinner_style());
            bar.enable_steady_tick(TICK);
            bar
        });
        ProgressView {
            mode,
            limits,
            bar,
            state: Mutex::new(State::default()),
        }
    }

    /// The run was interrupted (Ctrl-C): clear the bar and say so.
    pub fn interrupted(&self) {
        self.clear();
        if self.mode != Mode::Quiet {
            eprintln!("coalscope: interrupted");
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }

    /// A line for the user: above the bar, or on its own.
    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("coalscope: {line}")),
            None => eprintln!("coalscope: {line}"),
        }
    }

    fn work(&self, state: &State, connections: u64, requests: u64) -> Work {
        Work {
            connections,
            requests,
            addresses: state.plan.map_or(1, |p| p.addresses),
        }
    }

    fn on_event(&self, state: &mut State, event: CheckProgress) {
        match event {
            CheckProgress::Resolving { names } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("resolving {names} names…"));
                } else {
                    self.say(&format!("resolving {names} names…"));
                }
            }
            CheckProgress::Planned(plan) => {
                state.plan = Some(plan);
                let rounds = u64::from(plan.rounds);
                let work = self.work(state, plan.connections as u64 * rounds, plan.requests * rounds);
                self.say(&planned_line(&plan, &estimate::estimate(work, self.limits)));
                if let Some(bar) = &self.bar {
                    bar.set_style(bar_style());
                    bar.set_length(plan.requests * rounds);
                }
            }
            CheckProgress::Phase {
                phase,
                connections,
                requests,
            } => {
                state.phase = Some(phase);
                state.jobs = (0, connections as u64);
                match &self.bar {
                    Some(bar) => {
                        bar.set_prefix(phase_name(phase));
                        bar.set_length(state.requests + remaining(phase, requests));
                        bar.set_message(self.bar_message(state));
                    }
                    None => {
                        let work = self.work(state, connections as u64, requests);
                        let time = estimate::estimate_phase(work, self.limits);
                        self.say(&phase_line(phase, connections, requests, &time));
                    }
                }
            }
            CheckProgress::JobDone { requests } => {
                state.jobs.0 += 1;
                state.requests += requests;
                if let Some(bar) = &self.bar {
                    bar.set_position(state.requests);
                    bar.set_message(self.bar_message(state));
                }
            }
            CheckProgress::Judging => match &self.bar {
                Some(bar) => {
                    bar.set_prefix("judging");
                    bar.set_message(self.bar_message(state));
                }
                None => self.say("judging…"),
            },
            CheckProgress::Done {
                elapsed,
                connections,
                requests,
            } => {
                self.clear();
                self.say(&format!(
                    "done in {}: {connections} connections, {requests} requests",
                    estimate::human(elapsed)
                ));
            }
        }
    }

    fn bar_message(&self, state: &State) -> String {
        format!(
            "{}/{} connections · {} requests",
            state.jobs.0, state.jobs.1, state.requests
        )
    }
}

impl ProgressSink for ProgressView {
    fn event(&self, event: CheckProgress) {
        if self.mode == Mode::Quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.on_event(&mut state, event);
    }
}

impl Drop for ProgressView {
    /// The terminal is left clean whatever ended the run.
    fn drop(&mut self) {
        self.clear();
    }
}

/// The requests still to come from the start of `phase`, which plans `requests`: a round's
/// for it and every later round (they carry about as much), a later phase's own.
fn remaining(phase: Phase, requests: u64) -> u64 {
    match phase {
        Phase::Round { round, rounds } => requests * u64::from(rounds.saturating_sub(round) + 1),
        _ => requests,
    }
}

fn phase_name(phase: Phase) -> String {
    match phase {
        Phase::Round { round, rounds } => format!("round {round}/{rounds}"),
        Phase::Directs => "direct requests".into(),
        Phase::OriginReferences => "origin references".into(),
        Phase::Http1Fallback => "HTTP/1.1 checks".into(),
        Phase::Http3 { round, rounds } => format!("HTTP/3 round {round}/{rounds}"),
    }
}

/// "1000 names at 1900 addresses: 3 rounds of 1900 connections, up to 19000 requests each;
/// ≈ 19 min at --max-rps 50; …".
fn planned_line(plan: &CheckPlan, estimate: &str) -> String {
    let unresolved = match plan.unresolved {
        0 => String::new(),
        n => format!(" ({n} without an address)"),
    };
    let rounds = match plan.rounds {
        1 => "1 round".to_string(),
        n => format!("{n} rounds"),
    };
    format!(
        "{} names at {} addresses{unresolved}: {rounds} of {} connections, up to {} requests each; {estimate}",
        plan.names, plan.addresses, plan.connections, plan.requests
    )
}

/// "round 1/3: 1900 connections, 19000 requests planned (≈ 6 min 20 s at --max-rps 50)".
fn phase_line(phase: Phase, connections: usize, requests: u64, time: &str) -> String {
    format!(
        "{}: {connections} connections, {requests} requests planned ({time})",
        phase_name(phase)
    )
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("coalscope: {spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "coalscope: {prefix} [{bar:30}] {percent:>3}% · {msg} · {elapsed} elapsed, ETA {left}",
    )
    .map(|s| s.progress_chars("=> ").with_key("left", time_left))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The time left as the estimate says it, once a request has ended to measure the rate by.
fn time_left(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = match state.pos() {
        0 => w.write_str("…"),
        _ => write!(w, "≈ {}", estimate::human(state.eta())),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_and_phases_read_as_lines() {
        let plan = CheckPlan {
            names: 1000,
            unresolved: 2,
            addresses: 1900,
            connections: 1900,
            requests: 19000,
            rounds: 3,
        };
        assert_eq!(
            planned_line(&plan, "≈ 19 min at --max-rps 50"),
            "1000 names at 1900 addresses (2 without an address): 3 rounds of 1900 connections, up to 19000 requests each; ≈ 19 min at --max-rps 50"
        );
        assert_eq!(
            phase_line(
                Phase::Round { round: 1, rounds: 3 },
                1900,
                19000,
                "≈ 6 min 20 s at --max-rps 50"
            ),
            "round 1/3: 1900 connections, 19000 requests planned (≈ 6 min 20 s at --max-rps 50)"
        );
        assert_eq!(remaining(Phase::Round { round: 1, rounds: 3 }, 100), 300);
        assert_eq!(remaining(Phase::Round { round: 3, rounds: 3 }, 100), 100);
        assert_eq!(remaining(Phase::Directs, 7), 7);
    }
}

//! Render cost of the dashboard: the time to draw one 120×40 frame of each view with 1,000
//! and 10,000 names (`testing::synth`'s workload in groups of 50 sharing a wildcard, every
//! ordered pair probed twice and published by the live store: some problems, events), next to
//! a baseline frame of an empty view measured in the same run; and the cost of taking a new
//! engine generation (`App::set_view`):
//!
//! - "set_view first": a fresh `App` taking its first view (the dashboard's start, or a view
//!   unrelated to the last one): everything derived from scratch;
//! - "set_view update": what the dashboard does on every publish (every 250 ms): the `App`
//!   holds the last view and takes the next one of the same store. Between two views the
//!   store gets [`UPDATE_ORIGINS`] origin probes (each with its direct probe) from hosts spread
//!   over the list, whose answers vary with the step so that some verdicts change (pairs move
//!   in the report, which is sorted by verdict). The views are published untimed, and only
//!   the `App` keeps the last one, as in the dashboard (the watch channel holds the newest
//!   only); "old view dropped" is the time of dropping the view `set_view` hands back, which
//!   the dashboard does on a blocking thread.
//!
//! `cargo bench --bench render` (prints numbers; asserts nothing about time). The bench
//! profile's LTO takes long on a shared machine:
//! `CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 cargo bench --bench render`.
//! `RENDER_NAMES=10000` measures one size only; `RENDER_UPDATES` sets the number of updates
//! (default 60); `RENDER_UPDATES_ONLY=1` measures "set_view update" only (to profile it).

// A benchmark: a failed expectation ends the run where it happened, and it prints its
// numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coalscope::engine::snapshot::{EngineStatus, LiveView};
use coalscope::testing::synth::Synth;
use coalscope::testing::views;
use coalscope::tui::app::{Action, App};
use coalscope::tui::{render_to_buffer, Theme};

const W: u16 = 120;
const H: u16 = 40;
const FRAMES: usize = 200;
/// Groups of this many names behind one wildcard.
const GROUP: usize = 50;
/// Origin probes folded into the store between two views of "set_view update".
const UPDATE_ORIGINS: usize = 4;

fn stats(samples: Vec<Duration>) -> (f64, f64) {
    let (median, p95, _) = stats3(samples);
    (median, p95)
}

/// Median, p95 and maximum in milliseconds.
fn stats3(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (p(0.5), p(0.95), p(1.0))
}

/// "set_view update" (see the module documentation): the time of each `set_view` of a view
/// following the one the `App` holds, over `updates` publishes of one store, and the time of
/// dropping the view it replaced (the dashboard does that on a blocking thread).
fn updates(names: usize, updates: usize) -> (Vec<Duration>, Vec<Duration>) {
    let synth = Synth::new(names, GROUP);
    let mut store = synth.store(views::WINDOW);
    let hosts = store.hosts_for_jobs();
    let start = Instant::now();
    let status = |cycles| EngineStatus {
        source: "scale.watch".into(),
        hosts: names,
        cycles,
        ..EngineStatus::default()
    };
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(W, H));
    for round in 0..2 {
        let at = start + views::INTERVAL * round as u32;
        synth.round(&mut store, &hosts, round, at);
        app.set_view(Arc::new(store.publish(at, status(round), round > 0)));
    }
    // Somewhere in the list: the selection is kept across views.
    for a in [Action::Down, Action::Down, Action::NextPane, Action::PageDown] {
        app.apply(a);
    }
    let mut now = start + views::INTERVAL * 2;
    (0..updates)
        .map(|step| {
            for k in 0..UPDATE_ORIGINS {
                let i = (step * UPDATE_ORIGINS + k) * 7919 % names;
                store.apply(&hosts, synth.origin(i, 2 + step as u64), now);
                store.apply(&hosts, synth.direct(i), now);
            }
            now += Duration::from_millis(250);
            let view = Arc::new(store.publish(now, status(2), true));
            let t = Instant::now();
            let previous = app.set_view(view);
            let took = t.elapsed();
            black_box(&app);
            let t = Instant::now();
            drop(previous);
            (took, t.elapsed())
        })
        .unzip()
}

fn print_times(names: usize, what: &str, samples: Vec<Duration>, note: &str) {
    let (median, p95, max) = stats3(samples);
    println!(
        "{names:<8} {what:<18} median {median:>7.3} ms   p95 {p95:>7.3} ms   max {max:>7.3} ms   {note}"
    );
}

fn frames(view: &LiveView, app: &App, n: usize) -> (f64, f64) {
    for _ in 0..5 {
        black_box(render_to_buffer(view, app, W, H));
    }
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            black_box(render_to_buffer(view, app, W, H));
            t.elapsed()
        })
        .collect();
    stats(samples)
}

fn app_with(view: &Arc<LiveView>, actions: &[Action]) -> App {
    let mut app = App::new(Theme::dark());
    app.apply(Action::Resize(W, H));
    app.set_view(view.clone());
    for a in actions {
        app.apply(*a);
    }
    app
}

fn main() {
    let views: [(&str, &[Action]); 7] = [
        ("groups", &[]),
        ("members+host", &[Action::Down, Action::Down]),
        (
            "pairs+pair",
            &[Action::NextPane, Action::PageDown, Action::PageDown],
        ),
        (
            "details scrolled",
            &[Action::NextPane, Action::Enter, Action::Down],
        ),
        ("events", &[Action::PrevPane, Action::Down]),
        ("matrix", &[Action::ToggleMatrix, Action::Down, Action::Right]),
        ("help", &[Action::ToggleHelp]),
    ];
    println!("render benchmark: one {W}x{H} frame via render_to_buffer, {FRAMES} frames per view");
    let empty = Arc::new(LiveView::default());
    let app = app_with(&empty, &[]);
    let (median, p95) = frames(&empty, &app, FRAMES);
    println!(
        "{:<8} {:<18} median {median:>7.3} ms   p95 {p95:>7.3} ms",
        "baseline", "empty view"
    );
    let sizes: Vec<usize> = std::env::var("RENDER_NAMES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let n_updates: usize = std::env::var("RENDER_UPDATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    for names in sizes {
        let measure_updates = || {
            let (set, release) = updates(names, n_updates);
            let what = format!("({n_updates} views of one store)");
            print_times(names, "set_view update", set, &what);
            print_times(names, "old view dropped", release, "(off the event loop)");
        };
        if std::env::var_os("RENDER_UPDATES_ONLY").is_some() {
            measure_updates();
            continue;
        }
        let t = Instant::now();
        let view = Arc::new(views::synthetic_view(names, GROUP));
        let built = t.elapsed();
        println!(
            "{names} names, {} groups, {} pairs (view probed and published in {:.0} ms)",
            view.report.groups.len(),
            view.report.pairs.len(),
            built.as_secs_f64() * 1e3
        );
        // The first view of a fresh App (dropped outside the measurement).
        let samples = (0..10)
            .map(|_| {
                let mut app = App::new(Theme::dark());
                app.apply(Action::Resize(W, H));
                let t = Instant::now();
                app.set_view(view.clone());
                let took = t.elapsed();
                black_box(app);
                took
            })
            .collect();
        print_times(names, "set_view first", samples, "(10 fresh Apps)");
        measure_updates();
        for (name, actions) in views {
            let app = app_with(&view, actions);
            let (median, p95) = frames(&view, &app, FRAMES);
            println!("{names:<8} {name:<18} median {median:>7.3} ms   p95 {p95:>7.3} ms");
        }
    }
}

//! Render cost of the dashboard: the time to draw one 120×40 frame of each view with 1,000
//! and 10,000 names (`testing::synth`'s workload in groups of 50 sharing a wildcard, every
//! ordered pair probed twice and published by the live store: some problems, events), next to
//! a baseline frame of an empty view measured in the same run; and the once-per-generation
//! cost of deriving the indexes (`App::set_view`).
//!
//! `cargo bench --bench render` (prints numbers; asserts nothing about time).

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

use coalscope::engine::snapshot::LiveView;
use coalscope::testing::views;
use coalscope::tui::app::{Action, App};
use coalscope::tui::{render_to_buffer, Theme};

const W: u16 = 120;
const H: u16 = 40;
const FRAMES: usize = 200;

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (p(0.5), p(0.95))
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
    for names in [1_000usize, 10_000] {
        let t = Instant::now();
        let view = Arc::new(views::synthetic_view(names, 50));
        let built = t.elapsed();
        println!(
            "{names} names, {} groups, {} pairs (view probed and published in {:.0} ms)",
            view.report.groups.len(),
            view.report.pairs.len(),
            built.as_secs_f64() * 1e3
        );
        let samples = (0..10)
            .map(|_| {
                let t = Instant::now();
                black_box(app_with(&view, &[]));
                t.elapsed()
            })
            .collect();
        let (median, p95) = stats(samples);
        println!(
            "{:<8} {:<18} median {median:>7.3} ms   p95 {p95:>7.3} ms   (once per engine generation)",
            names, "set_view (index)"
        );
        for (name, actions) in views {
            let app = app_with(&view, actions);
            let (median, p95) = frames(&view, &app, FRAMES);
            println!("{names:<8} {name:<18} median {median:>7.3} ms   p95 {p95:>7.3} ms");
        }
    }
}

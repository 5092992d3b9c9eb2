//! The publish benchmark (`cargo test --release --lib publish_bench -- --ignored
//! --nocapture`): prints timings of the store's publish over the synthetic workload
//! (`testing::synth`) instead of asserting them.

// A benchmark prints its numbers.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use crate::testing::synth::Synth;

/// VmRSS and VmHWM of this process (Linux), for the benchmark's output.
fn rss_text() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times `publish` after a small batch of new results, at 1,000 and 10,000 names (set
/// COALSCOPE_BENCH_NAMES to choose). Prints numbers; asserts nothing about time.
#[test]
#[ignore]
fn publish_bench() {
    use crate::engine::snapshot::EngineStatus;
    let sizes: Vec<usize> = std::env::var("COALSCOPE_BENCH_NAMES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    for names in sizes {
        let synth = Synth::new(names, 20);
        let window = Duration::from_secs(300);
        let mut store = synth.store(window);
        let hosts = store.hosts_for_jobs();
        let t0 = Instant::now();
        for r in 0..3 {
            synth.round(&mut store, &hosts, r, t0 + Duration::from_secs(30 * r));
        }
        let status = EngineStatus {
            cycles: 3,
            ..Default::default()
        };
        let mut now = t0 + Duration::from_secs(61);
        let started = Instant::now();
        let first = store.publish(now, status.clone(), true);
        let full = started.elapsed();
        let mut times = Vec::new();
        let mut views = vec![std::sync::Arc::new(first)];
        let steps: u64 = std::env::var("COALSCOPE_BENCH_STEPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        for step in 0..steps {
            // ~50 new results per publish: 25 origin probes, 25 direct ones.
            for j in 0..25 {
                let i = ((step as usize * 25 + j) * 37) % names;
                store.apply(&hosts, synth.origin(i, 3 + step), now);
                store.apply(&hosts, synth.direct(i), now);
            }
            now += Duration::from_millis(250);
            let started = Instant::now();
            let view = store.publish(now, status.clone(), true);
            // The old view is dropped as the engine's watch channel drops it.
            views.push(std::sync::Arc::new(view));
            if views.len() > 2 {
                views.remove(0);
            }
            times.push(started.elapsed());
        }
        // Publishing with nothing new: what every publish costs whatever changed.
        let mut idle = Vec::new();
        for _ in 0..10 {
            now += Duration::from_millis(250);
            let started = Instant::now();
            views.push(std::sync::Arc::new(store.publish(now, status.clone(), true)));
            views.remove(0);
            idle.push(started.elapsed());
        }
        times.sort();
        idle.sort();
        let pairs = views.last().map(|v| v.report.pairs.len()).unwrap_or(0);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "publish_bench names={names}: RSS of the test process with the store and two views alive: {} (PairReport {} B, History {} B inline)",
            rss_text(),
            std::mem::size_of::<crate::engine::snapshot::PairReport>(),
            std::mem::size_of::<crate::engine::snapshot::History>(),
        );
        println!(
            "publish_bench names={names} pairs={pairs}: first publish {:.2} ms; after ~50 results: median {:.3} ms, max {:.3} ms; nothing new: median {:.3} ms",
            ms(full),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            ms(idle[idle.len() / 2]),
        );
    }
}

//! Memory the engine freed, given back to the system. Each published view is built from the
//! whole window and dropped when the next one replaces it: the heap's use swings by tens of
//! megabytes per cycle around a flat floor. glibc's malloc keeps what was freed in its arenas
//! (one per thread that allocated) for reuse, and with those swings spread over the runtime's
//! threads the retained part grew in steps for a long run while the live heap stayed flat
//! (measured with heaptrack: BENCHMARKS.md, "soak_faults"). `malloc_trim` hands the free pages
//! back; the engine calls it after a cycle's view is published, at most every `TRIM_EVERY`, on
//! the blocking pool (it walks the arenas under their locks).

use std::time::{Duration, Instant};

/// Least time between two trims.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// When the last trim was asked for.
#[derive(Debug)]
pub struct Trim {
    last: Option<Instant>,
}

impl Trim {
    pub fn new() -> Trim {
        Trim { last: None }
    }

    /// Ask for a trim on the blocking pool, unless one was asked for within `TRIM_EVERY`.
    /// Returns whether it was asked for.
    pub fn after_publish(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|t| now.duration_since(t) < TRIM_EVERY) {
            return false;
        }
        self.last = Some(now);
        tokio::task::spawn_blocking(release_free_memory);
        true
    }
}

/// Give the free memory of every malloc arena back to the system (glibc on Linux; elsewhere
/// nothing: other allocators return memory their own way).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim takes no pointer and touches only glibc's own arenas, each under its
    // lock; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trims_are_asked_for_at_most_every_thirty_seconds() {
        let mut trim = Trim::new();
        let t0 = Instant::now();
        assert!(trim.after_publish(t0));
        assert!(!trim.after_publish(t0 + Duration::from_secs(10)));
        assert!(!trim.after_publish(t0 + TRIM_EVERY - Duration::from_millis(1)));
        assert!(trim.after_publish(t0 + TRIM_EVERY));
    }

    #[test]
    fn freed_memory_goes_back_to_the_system() {
        // Many small blocks, most freed: without a trim glibc keeps the pages.
        let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 512]).collect();
        let keep: Vec<Vec<u8>> = blocks.iter().step_by(1000).cloned().collect();
        blocks.clear();
        blocks.shrink_to_fit();
        let before = rss_kib();
        release_free_memory();
        let after = rss_kib();
        drop(keep);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                after + 40_000 < before,
                "RSS {before} KiB before the trim, {after} after"
            );
        }
    }

    /// This process's resident memory (KiB), from /proc.
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

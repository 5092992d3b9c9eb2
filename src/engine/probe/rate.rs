//! A request budget shared by every probe task: at most `per_second` requests per second,
//! spaced evenly (no bursts that could trip a server's rate limit).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    spacing: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second` = 0 means unlimited.
    pub fn new(per_second: u32) -> RateLimiter {
        let spacing = if per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / per_second
        };
        RateLimiter {
            spacing,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Wait for the next free slot.
    pub async fn acquire(&self) {
        if self.spacing.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_budget() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..25 {
            limiter.acquire().await;
        }
        // 25 requests at 10/s: the 25th may start at 2.4 s, not before.
        assert!(
            start.elapsed() >= Duration::from_millis(2400),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited() {
        let limiter = RateLimiter::new(0);
        let start = Instant::now();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}

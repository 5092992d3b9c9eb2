//! How sure a verdict is: the refusal rate at an address with its 95% Wilson score interval,
//! and whether the probes so far can tell a flaky backend from a consistent one. Pure
//! functions of counts.

use crate::engine::snapshot::{RateInterval, Verdict};

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The share of backends a flaky pool must be able to hide for a verdict to be called
/// inconclusive: one of two backends refusing.
const ONE_OF_TWO: f64 = 0.5;

/// Most probes the search for a settling count looks at (the bound reaches 0.5 after 4).
const MAX_SETTLE: u32 = 1 << 16;

/// `k` of `n` trials, as a rate with its 95% Wilson score interval (None when `n` is 0).
/// Rounded to 4 decimals, like the report's other rates.
pub fn wilson(k: u32, n: u32) -> Option<RateInterval> {
    if n == 0 {
        return None;
    }
    let k = k.min(n);
    let (low, high) = wilson_bounds(k, n);
    let round = |x: f64| (x.clamp(0.0, 1.0) * 1e4).round() / 1e4;
    Some(RateInterval {
        rate: round(f64::from(k) / f64::from(n)),
        low: round(low),
        high: round(high),
        n,
    })
}

/// The unrounded bounds of the Wilson score interval of `k` in `n` (n > 0).
fn wilson_bounds(k: u32, n: u32) -> (f64, f64) {
    let n = f64::from(n);
    let p = f64::from(k) / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

/// Can `k` refusals of `n` at an address judged `verdict` not yet rule out one of two
/// backends behaving otherwise? An `ok` address whose upper bound reaches one half, or a
/// `misdirected` one whose lower bound does. Other verdicts already say "mixed" or are not
/// about refusals.
pub fn inconclusive(verdict: Verdict, k: u32, n: u32) -> bool {
    if n == 0 {
        return false;
    }
    let (low, high) = wilson_bounds(k.min(n), n);
    match verdict {
        Verdict::Ok => high >= ONE_OF_TWO,
        Verdict::Misdirected => low <= ONE_OF_TWO,
        _ => false,
    }
}

/// How many answers in all an inconclusive address needs to be conclusive, if the new ones go
/// the way the old ones did (none refused for `ok`, all refused for `misdirected`); None when
/// it is not inconclusive.
pub fn probes_to_settle(verdict: Verdict, k: u32, n: u32) -> Option<u32> {
    if !inconclusive(verdict, k, n) {
        return None;
    }
    let extra_refused = u32::from(verdict == Verdict::Misdirected);
    (n + 1..=MAX_SETTLE.max(n + 1)).find(|&m| !inconclusive(verdict, k + extra_refused * (m - n), m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    /// Known values (Wilson 1927; e.g. Newcombe 1998, table I, and R's `prop.test` without
    /// continuity correction).
    #[test]
    fn wilson_matches_known_values() {
        let cases = [
            // (k, n, low, high)
            (0, 3, 0.0, 0.5615),
            (3, 3, 0.4385, 1.0),
            (0, 10, 0.0, 0.2775),
            (1, 10, 0.0179, 0.4042),
            (5, 10, 0.2366, 0.7634),
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ];
        for (k, n, low, high) in cases {
            let r = wilson(k, n).unwrap();
            assert!(
                close(r.low, low) && close(r.high, high),
                "{k}/{n}: {r:?}, want [{low}, {high}]"
            );
            assert!(close(r.rate, f64::from(k) / f64::from(n)));
            assert_eq!(r.n, n);
        }
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn too_few_probes_are_inconclusive() {
        // 0 of 3 refused: one of two backends refusing is still possible (upper 0.56).
        assert!(inconclusive(Verdict::Ok, 0, 3));
        assert!(!inconclusive(Verdict::Ok, 0, 4));
        assert!(inconclusive(Verdict::Misdirected, 3, 3));
        assert!(!inconclusive(Verdict::Misdirected, 4, 4));
        // Mixed answers already say "flaky": intermittent is never inconclusive.
        assert!(!inconclusive(Verdict::Intermittent, 1, 3));
        assert!(!inconclusive(Verdict::Ok, 0, 0));
    }

    #[test]
    fn settling_counts_the_probes_needed() {
        assert_eq!(probes_to_settle(Verdict::Ok, 0, 3), Some(4));
        assert_eq!(probes_to_settle(Verdict::Misdirected, 3, 3), Some(4));
        assert_eq!(probes_to_settle(Verdict::Ok, 0, 1), Some(4));
        assert_eq!(probes_to_settle(Verdict::Misdirected, 2, 2), Some(4));
        assert_eq!(probes_to_settle(Verdict::Ok, 0, 4), None);
        assert_eq!(probes_to_settle(Verdict::Error, 0, 1), None);
    }
}

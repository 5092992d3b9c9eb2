//! How long a `check` will take, said before it starts: from the requests and connections
//! planned after DNS resolution and the limits (`--max-rps`, `--concurrency`, the per-address
//! cap). Two bounds, the longer wins: the rate limit (requests / rate) and the connections
//! (waves of `--concurrency` fresh connections, each a handshake and its requests in batches
//! of the streams a connection keeps in flight, on a nominal path). The rate limit is named
//! with a faster rate only when it is what bounds the run.

use std::time::Duration;

use crate::engine::prober::STREAMS_PER_CONNECTION;

/// A fresh connection's handshake on a nominal path: TCP and TLS 1.3, two 50 ms round trips.
const HANDSHAKE: Duration = Duration::from_millis(100);
/// One batch of requests on a connection: a round trip and the server's time.
const REQUEST_BATCH: Duration = Duration::from_millis(50);
/// The faster rate suggested is this many times `--max-rps`.
const FASTER: u32 = 4;

/// What the limits allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second at most; 0 = unlimited.
    pub max_rps: u32,
    /// Connections in flight at once, across all hosts.
    pub concurrency: usize,
    /// Connections in flight at once to one address.
    pub per_address: usize,
}

/// Work to do: fresh connections, the requests on them, the distinct addresses they go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub connections: u64,
    pub requests: u64,
    pub addresses: usize,
}

/// How long `work` takes at `rps` (0 = unlimited), and whether the rate limit is what bounds
/// it.
fn duration(work: Work, limits: Limits, rps: u32) -> (Duration, bool) {
    let rate = if rps == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(work.requests as f64 / f64::from(rps))
    };
    if work.connections == 0 {
        return (rate, !rate.is_zero());
    }
    let slots = limits
        .concurrency
        .min(limits.per_address.saturating_mul(work.addresses))
        .max(1) as u64;
    let waves = work.connections.div_ceil(slots);
    let per_connection = work.requests.div_ceil(work.connections);
    let batches = per_connection.div_ceil(STREAMS_PER_CONNECTION as u64);
    let connect = (HANDSHAKE + REQUEST_BATCH * batches as u32) * waves as u32;
    if rps != 0 && rate >= connect {
        (rate, true)
    } else {
        (connect, false)
    }
}

/// "≈ 11 min at --max-rps 50; --max-rps 200 would take ≈ 3 min 10 s": the time `work` takes,
/// and a faster rate's when the rate limit is what bounds it (and the faster rate saves a
/// quarter at least).
pub fn estimate(work: Work, limits: Limits) -> String {
    let mut text = estimate_phase(work, limits);
    let (time, rate_bound) = duration(work, limits, limits.max_rps);
    let faster = limits.max_rps.saturating_mul(FASTER);
    if limits.max_rps == 0 || !rate_bound {
        return text;
    }
    let (then, _) = duration(work, limits, faster);
    if then.as_secs_f64() <= time.as_secs_f64() * 0.75 {
        text.push_str(&format!("; --max-rps {faster} would take ≈ {}", human(then)));
    }
    text
}

/// "≈ 6 min 20 s at --max-rps 50", "≈ 12 s (no rate limit)": the time alone.
pub fn estimate_phase(work: Work, limits: Limits) -> String {
    let (time, _) = duration(work, limits, limits.max_rps);
    match limits.max_rps {
        0 => format!("≈ {} (no rate limit)", human(time)),
        rps => format!("≈ {} at --max-rps {rps}", human(time)),
    }
}

/// A duration as people say it: "0.4 s", "12 s", "6 min 20 s", "11 min", "1 h 5 min".
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 9.95 {
        return format!("{secs:.1} s");
    }
    let whole = secs.round() as u64;
    if whole < 60 {
        return format!("{whole} s");
    }
    if whole < 600 {
        // Tens of seconds: an estimate says no more.
        let tens = (whole + 5) / 10 * 10;
        return match (tens / 60, tens % 60) {
            (m, 0) => format!("{m} min"),
            (m, s) => format!("{m} min {s} s"),
        };
    }
    let minutes = (whole + 30) / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Limits = Limits {
        max_rps: 50,
        concurrency: 32,
        per_address: 8,
    };

    /// `names` names, each at its own address with `peers` names sharing it, over `rounds`.
    fn work(names: u64, peers: u64, rounds: u64) -> Work {
        Work {
            connections: names * rounds,
            requests: names * (1 + peers) * rounds,
            addresses: names as usize,
        }
    }

    #[test]
    fn the_estimate_reads_as_the_limits_allow() {
        #[rustfmt::skip]
        let cases = [
            // 1000 names, 10 requests a connection, 3 rounds: 30000 requests at 50/s.
            (work(1000, 9, 3), 50, "≈ 10 min at --max-rps 50; --max-rps 200 would take ≈ 2 min 30 s"),
            (work(1000, 9, 1), 50, "≈ 3 min 20 s at --max-rps 50; --max-rps 200 would take ≈ 50 s"),
            // At 200/s the connections bound it (94 waves of 32).
            (work(1000, 0, 3), 50, "≈ 1 min at --max-rps 50; --max-rps 200 would take ≈ 15 s"),
            (work(100, 1, 3), 200, "≈ 3.0 s at --max-rps 200; --max-rps 800 would take ≈ 1.5 s"),
            // Few requests: the connections bound the run, no faster rate is worth naming.
            (work(64, 0, 1), 1000, "≈ 0.3 s at --max-rps 1000"),
            // 0 means unlimited: only the connections bound it.
            (work(1000, 9, 3), 0, "≈ 19 s (no rate limit)"),
            (work(0, 0, 3), 50, "≈ 0.0 s at --max-rps 50"),
        ];
        for (w, rps, text) in cases {
            let limits = Limits {
                max_rps: rps,
                ..DEFAULTS
            };
            assert_eq!(estimate(w, limits), text, "{w:?} at {rps}");
        }
    }

    #[test]
    fn the_per_address_cap_bounds_the_connections_in_flight() {
        // 64 names on one address: 8 connections at once, not 32.
        let one_address = Work {
            connections: 64,
            requests: 64,
            addresses: 1,
        };
        let spread = Work {
            addresses: 64,
            ..one_address
        };
        let limits = Limits {
            max_rps: 0,
            ..DEFAULTS
        };
        assert_eq!(estimate(one_address, limits), "≈ 1.2 s (no rate limit)");
        assert_eq!(estimate(spread, limits), "≈ 0.3 s (no rate limit)");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        for (secs, text) in [
            (0.4, "0.4 s"),
            (12.4, "12 s"),
            (59.4, "59 s"),
            (380.0, "6 min 20 s"),
            (384.0, "6 min 20 s"),
            (599.0, "10 min"),
            (660.0, "11 min"),
            (3900.0, "1 h 5 min"),
            (7200.0, "2 h"),
        ] {
            assert_eq!(human(Duration::from_secs_f64(secs)), text, "{secs}");
        }
    }
}

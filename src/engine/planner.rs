//! Which targets one origin connection carries in this round. Small groups: every target,
//! every round. Big groups (a wildcard certificate over 1,000 names is a million ordered
//! pairs): at most `limit` targets per connection, chosen so that every pair is covered over a
//! cycle of rounds — never-probed pairs first, then pairs with a problem or a recent change,
//! then the least recently probed — plus a random share, so that no pair is starved by an
//! unlucky ordering and sampling never becomes systematic.

use std::collections::HashMap;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;

/// What the planner remembers of one ordered pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairState {
    /// The last time a request for the target went out on a connection for the origin.
    pub last_probe: Option<Instant>,
    /// The pair has a problem verdict or changed verdict recently: probe it again first.
    pub urgent: bool,
}

/// Pair states by (origin index, target index) of the hosts list a round works on.
pub type PlanState = HashMap<(usize, usize), PairState>;

/// Everything a round's origin probes need to choose their targets.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per origin index: hosts on the same port whose DNS answers overlap its own.
    pub candidates: Vec<Vec<usize>>,
    /// Targets per origin connection at most (None: all).
    pub limit: Option<usize>,
    pub state: PlanState,
}

/// Share of the limit given to random picks (at least one when the limit allows two).
const RANDOM_SHARE: f64 = 0.1;

/// Pick at most `limit` of `covered` (the targets the origin's certificate covers) for a
/// connection of `origin`; None = no limit. The result is in random order.
pub fn select<R: Rng>(
    origin: usize,
    covered: &[usize],
    limit: Option<usize>,
    state: &PlanState,
    rng: &mut R,
) -> Vec<usize> {
    let mut picked: Vec<usize> = match limit {
        Some(limit) if covered.len() > limit => {
            let random = if limit >= 2 {
                ((limit as f64 * RANDOM_SHARE).ceil() as usize).max(1)
            } else {
                0
            };
            let by_priority = limit - random;
            let mut ranked: Vec<usize> = covered.to_vec();
            // Ties (never probed, equally old) are broken at random, not by position.
            ranked.shuffle(rng);
            ranked.sort_by_key(|&t| {
                let s = state.get(&(origin, t)).copied().unwrap_or_default();
                match s.last_probe {
                    None => (0, None),
                    Some(at) if s.urgent => (1, Some(at)),
                    Some(at) => (2, Some(at)),
                }
            });
            let mut rest = ranked.split_off(by_priority);
            rest.shuffle(rng);
            ranked.extend(rest.into_iter().take(random));
            ranked
        }
        _ => covered.to_vec(),
    };
    picked.shuffle(rng);
    picked
}

/// Targets per origin connection so that a cycle of `interval` stays within `max_rps`:
/// the budget left after one direct request per endpoint and one own request per origin
/// connection, shared among the origin connections. None when there is no budget to keep
/// (`max_rps` = 0) — and never less than one target.
pub fn per_connection_limit(
    max_rps: u32,
    interval: std::time::Duration,
    origin_jobs: usize,
    direct_jobs: usize,
) -> Option<usize> {
    if max_rps == 0 || origin_jobs == 0 {
        return None;
    }
    let budget = (f64::from(max_rps) * interval.as_secs_f64()).floor() as usize;
    let left = budget.saturating_sub(origin_jobs + direct_jobs);
    Some((left / origin_jobs).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashSet;
    use std::time::Duration;

    fn probe(state: &mut PlanState, origin: usize, picked: &[usize], at: Instant) {
        for &t in picked {
            state.entry((origin, t)).or_default().last_probe = Some(at);
        }
    }

    #[test]
    fn small_groups_get_every_target_every_round() {
        let mut rng = StdRng::seed_from_u64(1);
        let covered = [3, 5, 8];
        for limit in [None, Some(3), Some(10)] {
            let mut got = select(0, &covered, limit, &PlanState::new(), &mut rng);
            got.sort();
            assert_eq!(got, covered);
        }
    }

    #[test]
    fn coverage_reaches_every_pair_within_a_cycle_and_never_exceeds_the_limit() {
        let mut rng = StdRng::seed_from_u64(7);
        let covered: Vec<usize> = (1..=200).collect();
        let limit = 20;
        let mut state = PlanState::new();
        let mut seen = HashSet::new();
        let start = Instant::now();
        // 18 by priority per round: 200 pairs take ceil(200 / 18) = 12 rounds at most.
        for round in 0..12 {
            let picked = select(0, &covered, Some(limit), &state, &mut rng);
            assert!(picked.len() <= limit);
            let unique: HashSet<_> = picked.iter().collect();
            assert_eq!(unique.len(), picked.len(), "no target twice on one connection");
            probe(&mut state, 0, &picked, start + Duration::from_secs(round));
            seen.extend(picked);
        }
        assert_eq!(seen.len(), covered.len(), "100% coverage over the cycle");
    }

    #[test]
    fn problem_pairs_are_probed_again_first() {
        let mut rng = StdRng::seed_from_u64(3);
        let covered: Vec<usize> = (1..=100).collect();
        let mut state = PlanState::new();
        let t0 = Instant::now();
        probe(&mut state, 0, &covered, t0);
        // Pairs 40 and 41 went wrong; everything else was probed later than them.
        for t in 1..=100 {
            let s = state.get_mut(&(0, t)).unwrap();
            s.last_probe = Some(t0 + Duration::from_secs(if t == 40 || t == 41 { 0 } else { 5 }));
            s.urgent = t == 40 || t == 41 || t == 77;
        }
        let picked = select(0, &covered, Some(10), &state, &mut rng);
        for t in [40, 41, 77] {
            assert!(picked.contains(&t), "urgent pair {t} missing from {picked:?}");
        }
    }

    #[test]
    fn never_probed_pairs_come_before_urgent_ones() {
        let mut rng = StdRng::seed_from_u64(9);
        let covered: Vec<usize> = (1..=30).collect();
        let mut state = PlanState::new();
        let t0 = Instant::now();
        probe(&mut state, 0, &covered[..20], t0);
        for t in 1..=20 {
            state.get_mut(&(0, t)).unwrap().urgent = true;
        }
        // Limit 11: 2 random picks, 9 by priority — all 9 from the never-probed ten.
        let picked = select(0, &covered, Some(11), &state, &mut rng);
        let fresh = picked.iter().filter(|&&t| t > 20).count();
        assert!(fresh >= 9, "the never-probed pairs go first: {picked:?}");
    }

    #[test]
    fn the_random_share_reaches_beyond_the_priority_order() {
        // With a strict priority order the same "oldest" pairs would always win after a tie;
        // the random share keeps every pair in reach. Over many rounds with a fixed state,
        // more distinct targets than the limit appear.
        let covered: Vec<usize> = (1..=50).collect();
        let mut state = PlanState::new();
        let t0 = Instant::now();
        for &t in &covered {
            state.insert(
                (0, t),
                PairState {
                    last_probe: Some(t0 + Duration::from_secs(t as u64)),
                    urgent: false,
                },
            );
        }
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = HashSet::new();
        for _ in 0..50 {
            seen.extend(select(0, &covered, Some(10), &state, &mut rng));
        }
        assert!(seen.len() > 20, "{}", seen.len());
    }

    #[test]
    fn the_budget_is_shared_among_origin_connections() {
        let i = Duration::from_secs(30);
        assert_eq!(per_connection_limit(0, i, 10, 10), None);
        // 50 rps × 30 s = 1500 requests; 100 origin + 100 direct leave 1300 → 13 each.
        assert_eq!(per_connection_limit(50, i, 100, 100), Some(13));
        // Not even enough for the connections themselves: still one target each.
        assert_eq!(per_connection_limit(1, i, 100, 100), Some(1));
    }
}

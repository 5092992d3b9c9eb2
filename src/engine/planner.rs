//! Which targets one origin connection carries in this round. Small groups: every target,
//! every round. Big groups (a wildcard certificate over 1,000 names is a million ordered
//! pairs): at most `limit` targets per connection, chosen so that every pair is covered over a
//! cycle of rounds — pairs with a problem or a recent change first (at most half of the
//! slots), then never-probed pairs, then the least recently probed — plus a random share, so that no pair is starved by an
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
            // Ties (never probed, equally old) are broken at random, not by position.
            let mut ranked: Vec<usize> = covered.to_vec();
            ranked.shuffle(rng);
            let state_of = |t: usize| state.get(&(origin, t)).copied().unwrap_or_default();
            ranked.sort_by_key(|&t| {
                let s = state_of(t);
                match s.last_probe {
                    Some(at) if s.urgent => (0, Some(at)),
                    None => (1, None),
                    Some(at) => (2, Some(at)),
                }
            });
            // Problem pairs first, but at most half of the slots: a whole group going bad
            // must not stop the never-probed pairs from being reached.
            let urgent_cap = by_priority.div_ceil(2);
            let urgent = ranked
                .iter()
                .take_while(|&&t| state_of(t).urgent && state_of(t).last_probe.is_some())
                .count();
            if urgent > urgent_cap {
                let mut over: Vec<usize> = ranked.drain(urgent_cap..urgent).collect();
                // The urgent pairs beyond the cap compete by age with the others.
                let rest = ranked.split_off(urgent_cap);
                let (fresh, mut old): (Vec<usize>, Vec<usize>) =
                    rest.into_iter().partition(|&t| state_of(t).last_probe.is_none());
                old.append(&mut over);
                old.sort_by_key(|&t| state_of(t).last_probe);
                ranked.extend(fresh);
                ranked.extend(old);
            }
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

/// Targets per origin connection so that a cycle of `interval` stays within `max_rps`.
/// `demands` has one entry per origin connection of the cycle: how many targets it could
/// carry (its candidates). The budget left after one own request per origin connection and
/// the `direct_jobs` direct requests is shared out by water-filling: origins that want fewer
/// targets than the fair share get all of them (small groups keep probing every pair every
/// round), the big ones share the rest equally. None when no limit is needed (`max_rps` = 0,
/// or the budget covers every demand) — and never less than one target.
pub fn per_connection_limit(
    max_rps: u32,
    interval: std::time::Duration,
    demands: &[usize],
    direct_jobs: usize,
) -> Option<usize> {
    if max_rps == 0 || demands.is_empty() {
        return None;
    }
    let budget = (f64::from(max_rps) * interval.as_secs_f64()).floor() as usize;
    let mut left = budget.saturating_sub(demands.len() + direct_jobs);
    let mut sorted = demands.to_vec();
    sorted.sort_unstable();
    for (i, &d) in sorted.iter().enumerate() {
        let rest = sorted.len() - i;
        if d.saturating_mul(rest) <= left {
            // Every remaining origin could take d: the smallest takes all it wants.
            left -= d;
            continue;
        }
        // The fair share of the remaining origins is below this one's demand.
        return Some((left / rest).max(1));
    }
    None
}

/// Requests a cycle plans with `limit`: one own request per origin connection, its targets
/// (at most `limit`), and the direct requests.
pub fn planned_requests(demands: &[usize], limit: Option<usize>, direct_jobs: usize) -> usize {
    demands
        .iter()
        .map(|&d| 1 + limit.map_or(d, |l| d.min(l)))
        .sum::<usize>()
        + direct_jobs
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
    fn urgent_pairs_go_first_but_leave_room_for_the_never_probed() {
        let mut rng = StdRng::seed_from_u64(9);
        let covered: Vec<usize> = (1..=30).collect();
        let mut state = PlanState::new();
        let t0 = Instant::now();
        probe(&mut state, 0, &covered[..20], t0);
        for t in 1..=20 {
            state.get_mut(&(0, t)).unwrap().urgent = true;
        }
        // Limit 11: 2 random picks, 9 by priority: 5 urgent (half, rounded up), then 4 of the
        // never-probed ten.
        for _ in 0..20 {
            let picked = select(0, &covered, Some(11), &state, &mut rng);
            let fresh = picked.iter().filter(|&&t| t > 20).count();
            let urgent = picked.len() - fresh;
            assert!(urgent >= 5 && fresh >= 4, "{picked:?}");
        }
        // With few urgent pairs, all of them go first, then the never-probed.
        let mut state = PlanState::new();
        probe(&mut state, 0, &covered[..20], t0);
        state.get_mut(&(0, 3)).unwrap().urgent = true;
        let picked = select(0, &covered, Some(11), &state, &mut rng);
        assert!(picked.contains(&3), "{picked:?}");
        assert!(picked.iter().filter(|&&t| t > 20).count() >= 8, "{picked:?}");
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
        assert_eq!(per_connection_limit(0, i, &[10; 10], 10), None);
        // 50 rps × 30 s = 1500 requests; 100 origin + 100 direct leave 1300 → 13 each.
        assert_eq!(per_connection_limit(50, i, &[100; 100], 100), Some(13));
        // Not even enough for the connections themselves: still one target each.
        assert_eq!(per_connection_limit(1, i, &[100; 100], 100), Some(1));
        // Enough for everything: no limit.
        assert_eq!(per_connection_limit(50, i, &[5; 100], 100), None);
        // Small origins take all they want, the big ones share the rest:
        // 1500 - 200 = 1300; 90 origins × 2 = 180 → 1120 left for 10 → 112 each.
        let mut demands = vec![2; 90];
        demands.extend([1000; 10]);
        assert_eq!(per_connection_limit(50, i, &demands, 100), Some(112));
    }

    proptest::proptest! {
        /// Whatever the demands, a cycle planned with the limit stays within the budget as long
        /// as the budget covers the connections' own requests, one target each and the direct
        /// requests; and no origin that wants no more than the limit is cut.
        #[test]
        fn the_request_budget_is_never_exceeded(
            demands in proptest::collection::vec(0usize..400, 1..200),
            rps in 1u32..400,
            secs in 1u64..120,
            direct in 0usize..400,
        ) {
            let interval = Duration::from_secs(secs);
            let budget = rps as usize * secs as usize;
            let limit = per_connection_limit(rps, interval, &demands, direct);
            let planned = planned_requests(&demands, limit, direct);
            if budget >= 2 * demands.len() + direct {
                proptest::prop_assert!(planned <= budget, "{planned} > {budget} with {limit:?}");
            }
            if limit.is_none() {
                proptest::prop_assert!(planned <= budget);
            }
        }
    }

    /// A whole engine's worth of origins, simulated over cycles with the real limit and
    /// `select`: one big wildcard group (200 names: 39,800 pairs) and many small groups.
    /// Small groups get every pair every cycle, the big group reaches 100% coverage within
    /// the cycles its share allows, every cycle stays within the budget, and a pair that turns
    /// bad is probed again in the next cycle.
    #[test]
    fn simulated_cycles_cover_everything_within_the_budget() {
        let big: Vec<usize> = (0..200).collect();
        let small: Vec<Vec<usize>> = (0..100)
            .map(|g| vec![1000 + 3 * g, 1001 + 3 * g, 1002 + 3 * g])
            .collect();
        // (origin, its covered targets)
        let mut origins: Vec<(usize, Vec<usize>)> = Vec::new();
        for &a in &big {
            origins.push((a, big.iter().copied().filter(|&b| b != a).collect()));
        }
        for g in &small {
            for &a in g {
                origins.push((a, g.iter().copied().filter(|&b| b != a).collect()));
            }
        }
        let demands: Vec<usize> = origins.iter().map(|(_, c)| c.len()).collect();
        let direct = origins.len();
        let (rps, interval) = (100, Duration::from_secs(30));
        let limit = per_connection_limit(rps, interval, &demands, direct).expect("a limit");
        let random = ((limit as f64 * RANDOM_SHARE).ceil() as usize).max(1);
        let by_priority = limit - random;
        // One more than the priority slots alone need: the urgent pair takes a slot of origin 7.
        let cycles_needed = 199usize.div_ceil(by_priority) + 1;

        let mut rng = StdRng::seed_from_u64(5);
        let mut state = PlanState::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        let t0 = Instant::now();
        let mut bad_pair_seen_again = false;
        for cycle in 0..cycles_needed as u64 {
            let at = t0 + interval * cycle as u32;
            let mut requests = direct;
            for (a, covered) in &origins {
                let picked = select(*a, covered, Some(limit), &state, &mut rng);
                requests += 1 + picked.len();
                if covered.len() <= limit {
                    let mut p = picked.clone();
                    p.sort();
                    assert_eq!(&p, covered, "small group cut in cycle {cycle}");
                }
                if cycle == 2 && *a == 7 {
                    bad_pair_seen_again = picked.contains(&8);
                }
                probe(&mut state, *a, &picked, at);
                seen.extend(picked.iter().map(|&b| (*a, b)));
            }
            assert!(
                requests <= rps as usize * 30,
                "cycle {cycle}: {requests} requests"
            );
            // 7 → 8 went wrong in cycle 1: marked urgent, as the engine does for problems; it
            // is fine again after its probe in cycle 2.
            let s = state.entry((7, 8)).or_default();
            s.urgent = cycle == 1;
            if cycle == 1 {
                s.last_probe.get_or_insert(at);
                seen.insert((7, 8));
            }
        }
        let total: usize = demands.iter().sum();
        assert_eq!(seen.len(), total, "100% of pairs within {cycles_needed} cycles");
        assert!(
            bad_pair_seen_again,
            "the problem pair is probed again in the next cycle"
        );
    }
}

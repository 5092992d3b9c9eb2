//! What the live engine probes in a cycle, within `--max-rps × --interval` requests.
//!
//! `select_cycle` chooses the connections: everything when the budget allows (small watch
//! lists probe every pair every cycle); otherwise fewer connections carrying more targets each,
//! with direct answers reused for a while, origins with problem pairs first, small groups
//! next, then the origins whose last full connection is oldest — so that a handshake, the
//! expensive part of a probe, buys as many pair probes as possible — and, from an eighth of
//! the budget, a connection to every address the others leave out, so that an outage shows
//! within an interval.
//!
//! `select` chooses the targets one origin connection carries: all of them when it may, else
//! pairs with a problem or a recent change first (at most half of the slots), then
//! never-probed pairs, then the least recently probed, plus a random share, so that no pair is
//! starved by an unlucky ordering and sampling never becomes systematic.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

use crate::engine::probe::signals::{origin_of, OriginSet};
use crate::engine::prober::TargetPlan;
use crate::engine::record::{EndpointRecord, HostRecord};

/// What the planner remembers of one ordered pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairState {
    /// The last time a request for the target went out on a connection for the origin.
    pub last_probe: Option<Instant>,
    /// The pair has a problem verdict or changed verdict recently: probe it again first.
    pub urgent: bool,
    /// When a handshake of the origin last showed a certificate that does not cover the
    /// target (it cannot ride on the origin's connections: not worth planning for a while).
    pub uncovered: Option<Instant>,
}

/// Pair states by (origin index, target index) of the hosts list a round works on.
pub type PlanState = HashMap<(usize, usize), PairState>;

/// Everything a round's origin probes need to choose their targets.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per origin index: hosts on the same port whose DNS answers overlap its own
    /// (`address_peers`).
    pub peers: Vec<Vec<usize>>,
    /// Targets per origin connection at most (None: all).
    pub limit: Option<usize>,
    /// A limit for one (origin index, address), before `limit`.
    pub per_origin: HashMap<(usize, IpAddr), usize>,
    /// A limit for the HTTP/3 connection of one (origin index, address), after its HTTP/2
    /// one's (the HTTP/3 connections' share of the budget).
    pub per_origin_h3: HashMap<(usize, IpAddr), usize>,
    /// Targets one (origin index, address) tries first: not tried within the window yet
    /// (`select_cycle`'s target coverage).
    pub assigned: HashMap<(usize, IpAddr), Vec<usize>>,
    pub state: PlanState,
    /// Hosts by their origin (`https://host[:port]`), to find the names an ORIGIN frame
    /// lists (`origin_index`; None: ORIGIN-listed names are not probed).
    pub origins: Option<Arc<HashMap<String, usize>>>,
}

impl Plan {
    /// Targets a connection for `origin` at `addr` carries at most (None: all it covers).
    pub fn limit_for(&self, origin: usize, addr: IpAddr) -> Option<usize> {
        self.per_origin.get(&(origin, addr)).copied().or(self.limit)
    }
}

impl TargetPlan for Plan {
    fn peers(&self, origin: usize) -> &[usize] {
        self.peers.get(origin).map(Vec::as_slice).unwrap_or_default()
    }

    fn choose_h3(&self, origin: usize, addr: IpAddr, covered: &[usize]) -> Vec<usize> {
        let mut chosen = self.choose(origin, addr, covered);
        if let Some(&limit) = self.per_origin_h3.get(&(origin, addr)) {
            chosen.truncate(limit);
        }
        chosen
    }

    fn listed(&self, origin: usize, set: &OriginSet) -> Vec<usize> {
        let Some(index) = &self.origins else {
            return Vec::new();
        };
        let mut v: Vec<usize> = set
            .origins
            .iter()
            .filter_map(|o| index.get(o).copied())
            .filter(|&b| b != origin)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn choose(&self, origin: usize, addr: IpAddr, covered: &[usize]) -> Vec<usize> {
        let limit = self.limit_for(origin, addr);
        let Some(assigned) = self.assigned.get(&(origin, addr)) else {
            return select(origin, covered, limit, &self.state, &mut rand::rng());
        };
        // The assigned targets first (those the certificate covers), then the others.
        let (mut first, rest): (Vec<usize>, Vec<usize>) = covered.iter().partition(|t| assigned.contains(t));
        let left = limit.map(|l| l.saturating_sub(first.len()));
        if left != Some(0) {
            first.extend(select(origin, &rest, left, &self.state, &mut rand::rng()));
        }
        first.truncate(limit.unwrap_or(usize::MAX));
        first
    }
}

/// Hosts by their origin (`https://host[:port]`, as ORIGIN frames list them).
pub fn origin_index(hosts: &[HostRecord]) -> HashMap<String, usize> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (origin_of(&h.entry.host, h.entry.port), i))
        .collect()
}

/// For every host, the other hosts on the same port whose DNS answers overlap its own
/// (Firefox's condition, a superset of Chromium's), and those an ORIGIN frame of one of its
/// connections listed (Firefox pools them whatever DNS says): the targets a connection for it
/// may carry once its certificate is seen.
pub fn address_peers(hosts: &[HostRecord]) -> Vec<Vec<usize>> {
    let mut peers = overlap_peers(hosts);
    let framed = |h: &HostRecord| h.endpoints.values().any(|ep| origin_sets(ep).next().is_some());
    if !hosts.iter().any(framed) {
        return peers;
    }
    let index = origin_index(hosts);
    for (a, h) in hosts.iter().enumerate() {
        let sets = h.endpoints.values().flat_map(|ep| origin_sets(ep));
        // Same port only: pairs across ports are never judged (as for DNS-linked peers).
        let mut listed: Vec<usize> = sets
            .flat_map(|set| set.origins.iter().filter_map(|o| index.get(o).copied()))
            .filter(|&b| b != a && hosts[b].entry.port == h.entry.port)
            .collect();
        if listed.is_empty() {
            continue;
        }
        listed.extend(&peers[a]);
        listed.sort_unstable();
        listed.dedup();
        peers[a] = listed;
    }
    peers
}

/// The ORIGIN sets of an endpoint: its HTTP/2 connection's and its HTTP/3 connection's.
fn origin_sets(ep: &EndpointRecord) -> impl Iterator<Item = &OriginSet> {
    let h2 = ep.signals.as_ref().and_then(|s| s.origin.as_ref());
    let h3 = ep.h3.as_ref().and_then(|h| h.origin.as_ref());
    h2.into_iter().chain(h3)
}

/// For every host, the other hosts on the same port whose DNS answers overlap its own.
fn overlap_peers(hosts: &[HostRecord]) -> Vec<Vec<usize>> {
    let mut by_addr: HashMap<(IpAddr, u16), Vec<usize>> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        for a in &h.dns.addresses {
            by_addr.entry((*a, h.entry.port)).or_default().push(i);
        }
    }
    (0..hosts.len())
        .map(|a| {
            let mut v: Vec<usize> = hosts[a]
                .dns
                .addresses
                .iter()
                .flat_map(|x| {
                    by_addr
                        .get(&(*x, hosts[a].entry.port))
                        .into_iter()
                        .flatten()
                        .copied()
                })
                .filter(|&b| b != a)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

/// Is a target due to be tried again as a coalesced target (by any origin)? When it never was,
/// or its last try is older than the window less two intervals: tried again before that try
/// leaves the window (a cycle's jobs spread over up to one interval), so that every target
/// stays covered in every window.
pub fn target_due(last: Option<Instant>, now: Instant, window: Duration, interval: Duration) -> bool {
    let fresh_for = window.saturating_sub(interval * 2).max(interval);
    last.is_none_or(|at| now.saturating_duration_since(at) >= fresh_for)
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

/// Targets one origin connection carries at most when the budget is tight: a wildcard over
/// thousands of names must not turn one connection into thousands of requests.
pub const MAX_TARGETS_PER_CONNECTION: usize = 100;

/// Origins wanting at most this many targets are "small groups": they go before the big ones.
pub const SMALL_GROUP: usize = 8;

/// One connection a cycle could open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A connection for an origin at one address: its own request plus up to `demand` targets.
    Origin {
        demand: usize,
        /// When a connection for it last carried all the targets it could (None: never).
        last: Option<Instant>,
        /// How many of its pairs have an unsettled problem or changed recently (probed again
        /// first, those alone).
        urgent: usize,
        /// Where the connection goes (the address and the host's port).
        place: SocketAddr,
        /// When a connection of any origin last went to `place` (None: never).
        place_last: Option<Instant>,
    },
    /// A direct request for a host at one address.
    Direct {
        /// The last healthy direct answer (None: never, or only failures since).
        last_ok: Option<Instant>,
    },
}

/// What a cycle runs, per slot: None (not this cycle) or Some(targets at most; 0 for direct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CyclePlan {
    pub chosen: Vec<Option<usize>>,
    /// Per slot: the targets not tried within the window that its connection tries first
    /// (empty for most).
    pub assigned: Vec<Vec<usize>>,
    /// Requests the chosen slots make at most.
    pub requests: usize,
    /// The budget did not cover every slot with every target.
    pub tight: bool,
}

/// The share of `budget` kept for the HTTP/3 connections beside the HTTP/2 origin ones
/// (`h3[i]`: slot `i` has one): None without a budget; when everything fits, what they all
/// cost; else the HTTP/3 connections' part of what everything would cost, so that both
/// protocols are sampled alike.
pub fn h3_reserve(slots: &[Slot], h3: &[Option<u16>], budget: Option<usize>) -> Option<usize> {
    let budget = budget?;
    let cost = |s: &Slot| match *s {
        Slot::Origin { demand, .. } => 1 + demand,
        Slot::Direct { .. } => 1,
    };
    let full: usize = slots.iter().map(cost).sum();
    let twins: usize = slots
        .iter()
        .zip(h3)
        .filter(|(_, p)| p.is_some())
        .map(|(s, _)| cost(s))
        .sum();
    if full + twins <= budget {
        return Some(twins);
    }
    Some((budget as u128 * twins as u128 / (full + twins).max(1) as u128) as usize)
}

/// Which HTTP/3 connections a cycle opens within `reserve` requests (None: no budget), each
/// wanted as (when its last one went, the targets of its HTTP/2 twin): the oldest first (never
/// first), each with its own request and as many targets as are left, until the reserve is
/// spent. Returns (index in `wanted`, targets) and the requests planned, at most `reserve`.
pub fn fit_h3(wanted: &[(Option<Instant>, usize)], reserve: Option<usize>) -> (Vec<(usize, usize)>, usize) {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&k| wanted[k].0);
    let mut left = reserve.unwrap_or(usize::MAX);
    let (mut fitted, mut spent) = (Vec::new(), 0);
    for k in order {
        if left == 0 {
            break;
        }
        let cost = (1 + wanted[k].1).min(left);
        left -= cost;
        spent += cost;
        fitted.push((k, cost - 1));
    }
    (fitted, spent)
}

/// Choose a cycle's connections within `budget` requests (None: no budget). `untried[i]` are
/// the targets origin slot `i` could carry that no connection tried within the window (empty
/// for the others).
///
/// When the budget covers every connection with every target, everything runs (small watch
/// lists probe every pair every cycle). Otherwise — 1,000 names behind wildcards are a
/// million pairs, and one fresh connection per name and cycle would already exceed a polite
/// budget — fewer connections carry more targets each, and the rest wait for a later cycle:
/// 1. direct requests run when their last healthy answer is older than `reuse`, oldest first,
///    within half the budget (a host has a direct slot only when its own connections brought
///    no answer: every origin connection's first request is its host's reference);
/// 2. **targets**: while some target was not tried within the window, the origin whose
///    connection would try the most of them (never-probed and oldest origins first on a tie)
///    goes next, carrying exactly those targets (so a name left over in a group costs two
///    requests, not a hundred); the origins rotate, since the targets tried by one are no gain
///    for the next;
/// 3. small groups (every pair, every cycle; within half the budget);
/// 4. origins whose last full connection is older than `reuse` (most of the window), never
///    probed first: every pair covered within the window before any is repeated;
/// 5. origins with an urgent pair, within a quarter of the budget, their urgent targets
///    first (`urgent[i]`, the targets of slot `i` to probe again first), then as many others
///    as an aged connection carries: a handshake is the expensive part, so none carries a
///    single target for long;
/// 6. every other origin by the age of its last connection.
///
/// Tiers 3, 4 and 6 take up to `MAX_TARGETS_PER_CONNECTION` targets per connection, or what is
/// left of the budget.
///
/// 7. **Every address each cycle**: an eighth of the budget is kept back from steps 2–6 for
///    the places (address and port) none of their connections goes to, least recently
///    reached first, each the connection of its origin slot whose last full connection is
///    oldest, sharing that eighth evenly (at least its own request each). A server that stops
///    answering is then seen within an interval, not only when its names' turn comes (at
///    1,000 names, minutes later); with more places than that eighth has requests, they take
///    turns.
///
/// The requests planned never exceed the budget. Every target is tried within
/// ⌈(Σ its cheapest connection) / (budget left by the directs)⌉ cycles, and every
/// origin is reached since the oldest go first once the targets are covered.
pub fn select_cycle(
    slots: &[Slot],
    untried: &[Vec<usize>],
    urgent: &[Vec<usize>],
    budget: Option<usize>,
    now: Instant,
    reuse: std::time::Duration,
) -> CyclePlan {
    let cost = |s: &Slot| match *s {
        Slot::Origin { demand, .. } => 1 + demand,
        Slot::Direct { .. } => 1,
    };
    let full: usize = slots.iter().map(cost).sum();
    let everything = || CyclePlan {
        chosen: slots
            .iter()
            .map(|s| match *s {
                Slot::Origin { demand, .. } => Some(demand),
                Slot::Direct { .. } => Some(0),
            })
            .collect(),
        assigned: vec![Vec::new(); slots.len()],
        requests: full,
        tight: false,
    };
    let Some(budget) = budget else {
        return everything();
    };
    if full <= budget {
        return everything();
    }
    let mut chosen = vec![None; slots.len()];
    let assigned = vec![Vec::new(); slots.len()];
    let half = budget / 2;
    // 1. Direct requests that are due, oldest first, within half the budget.
    let directs = due_directs(slots, now, reuse);
    for &i in directs.iter().take(half) {
        chosen[i] = Some(0);
    }
    let left = budget - directs.len().min(half);
    let tiers = origin_tiers(slots, now, reuse, budget / 4, half);
    // Steps 2–6 from `left` requests: 2. targets not tried within the window, then the tiers.
    let plan_rest = |mut left: usize| {
        let (mut chosen, mut assigned) = (chosen.clone(), assigned.clone());
        cover_targets(slots, untried, &mut chosen, &mut assigned, &mut left);
        fill_tiers(&tiers, urgent, &mut chosen, &mut assigned, &mut left);
        (chosen, assigned, left)
    };
    // 7. is planned last, from what is kept back for it: as much as the places steps 2–6
    // leave unreached need, up to an eighth of the budget. Keeping some back can leave one
    // more place out: a few rounds settle it (what is kept only grows).
    let most = (budget / 8).min(left);
    let mut kept = 0;
    let (mut chosen, assigned, mut left) = loop {
        let (chosen, assigned, rest) = plan_rest(left - kept);
        let need = unreached_places(slots, &chosen).len().min(most);
        if need <= kept {
            break (chosen, assigned, rest);
        }
        kept = need;
    };
    left += kept;
    reach_every_place(slots, &mut chosen, &mut left, kept);
    CyclePlan {
        chosen,
        assigned,
        requests: budget - left,
        tight: true,
    }
}

/// Steps 3–6 of `select_cycle`: the origins of each tier, in order, while the budget lasts.
fn fill_tiers(
    tiers: &Tiers,
    urgent: &[Vec<usize>],
    chosen: &mut [Option<usize>],
    assigned: &mut [Vec<usize>],
    left: &mut usize,
) {
    // 3. small groups, 4. origins without a connection for most of the window (coverage
    // before repetition), 5. urgent origins (their urgent targets first), 6. the rest by age.
    let order = [
        (&tiers.small, false),
        (&tiers.stale, false),
        (&tiers.urgent, true),
        (&tiers.aged, false),
    ];
    for (tier, urgent_first) in order {
        for &(i, demand) in tier {
            if *left == 0 {
                return;
            }
            if chosen[i].is_some() {
                continue;
            }
            // The last connection that fits may carry fewer targets: `select` puts its most
            // important ones first.
            let targets = demand.min(MAX_TARGETS_PER_CONNECTION).min(*left - 1);
            chosen[i] = Some(targets);
            *left -= 1 + targets;
            if let (true, Some(list)) = (urgent_first, urgent.get(i)) {
                assigned[i] = list.iter().copied().take(targets).collect();
            }
        }
    }
}

/// Step 2 of `select_cycle`: a greedy cover of the untried targets (lazy: a slot's gain is
/// counted again only when it comes up, since gains only shrink as targets get planned).
fn cover_targets(
    slots: &[Slot],
    untried: &[Vec<usize>],
    chosen: &mut [Option<usize>],
    assigned: &mut [Vec<usize>],
    left: &mut usize,
) {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashSet};
    let mut planned: HashSet<usize> = HashSet::new();
    // (gain, never probed, older first, slot)
    let mut heap: BinaryHeap<(usize, bool, Reverse<Option<Instant>>, usize)> = BinaryHeap::new();
    for (i, s) in slots.iter().enumerate() {
        if let (Slot::Origin { last, .. }, None) = (s, chosen[i]) {
            let gain = untried.get(i).map_or(0, Vec::len);
            if gain > 0 {
                heap.push((gain, last.is_none(), Reverse(*last), i));
            }
        }
    }
    while *left >= 2 {
        let Some((gain, never, age, i)) = heap.pop() else {
            break;
        };
        let fresh: Vec<usize> = untried[i]
            .iter()
            .copied()
            .filter(|t| !planned.contains(t))
            .take(MAX_TARGETS_PER_CONNECTION.min(*left - 1))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        if fresh.len() < gain && heap.peek().is_some_and(|top| top.0 > fresh.len()) {
            heap.push((fresh.len(), never, age, i));
            continue;
        }
        *left -= 1 + fresh.len();
        chosen[i] = Some(fresh.len());
        planned.extend(fresh.iter().copied());
        assigned[i] = fresh;
    }
}

/// The places (address and port) no chosen connection goes to, each as its origin slot whose
/// last full connection is oldest (never first) and when the place was last reached, least
/// recently reached first.
fn unreached_places(slots: &[Slot], chosen: &[Option<usize>]) -> Vec<usize> {
    // Per place: None once reached, else (slot, its last full connection, place reached).
    type Best = Option<(usize, Option<Instant>, Option<Instant>)>;
    let mut best: HashMap<SocketAddr, Best> = HashMap::new();
    for (i, s) in slots.iter().enumerate() {
        let Slot::Origin {
            last,
            place,
            place_last,
            ..
        } = *s
        else {
            continue;
        };
        let entry = best.entry(place).or_insert(Some((i, last, place_last)));
        match (chosen[i], entry.as_ref()) {
            (Some(_), _) => *entry = None,
            (None, Some(&(_, l, _))) if last < l => *entry = Some((i, last, place_last)),
            _ => {}
        }
    }
    let mut unreached: Vec<(usize, Option<Instant>)> = best
        .into_values()
        .flatten()
        .map(|(i, _, place_last)| (i, place_last))
        .collect();
    unreached.sort_by_key(|&(i, place_last)| (place_last, i));
    unreached.into_iter().map(|(i, _)| i).collect()
}

/// Step 7 of `select_cycle`: a connection to each unreached place, least recently reached
/// first, within `share` requests (or what is left, if less), shared evenly.
fn reach_every_place(slots: &[Slot], chosen: &mut [Option<usize>], left: &mut usize, share: usize) {
    let unreached = unreached_places(slots, chosen);
    let share = share.min(*left);
    let each = (share / unreached.len().max(1)).max(1);
    let mut spent = 0;
    for i in unreached {
        if spent >= share {
            break;
        }
        let Slot::Origin { demand, .. } = slots[i] else {
            continue;
        };
        let targets = demand
            .min(MAX_TARGETS_PER_CONNECTION)
            .min(each - 1)
            .min(share - spent - 1);
        chosen[i] = Some(targets);
        *left -= 1 + targets;
        spent += 1 + targets;
    }
}

/// The direct slots whose last healthy answer is older than `reuse` (or missing), oldest
/// first.
fn due_directs(slots: &[Slot], now: Instant, reuse: std::time::Duration) -> Vec<usize> {
    let mut directs: Vec<(usize, Option<Instant>)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match *s {
            Slot::Direct { last_ok } => {
                let due = last_ok.is_none_or(|at| now.saturating_duration_since(at) >= reuse);
                due.then_some((i, last_ok))
            }
            Slot::Origin { .. } => None,
        })
        .collect();
    directs.sort_by_key(|&(_, at)| at);
    directs.into_iter().map(|(i, _)| i).collect()
}

/// The origin slots in the tiers of `select_cycle`, each as (slot, targets wanted), oldest
/// first (never probed first).
struct Tiers {
    /// Small groups, within `half` the budget.
    small: Vec<(usize, usize)>,
    /// Origins whose last full connection is older than `reuse`, or missing.
    stale: Vec<(usize, usize)>,
    /// Origins with urgent pairs, within `urgent_share` of the budget.
    urgent: Vec<(usize, usize)>,
    /// Every origin not small or stale, by age.
    aged: Vec<(usize, usize)>,
}

fn origin_tiers(slots: &[Slot], now: Instant, reuse: Duration, urgent_share: usize, half: usize) -> Tiers {
    let mut origins: Vec<(usize, usize, Option<Instant>, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match *s {
            Slot::Origin {
                demand, last, urgent, ..
            } => Some((i, demand, last, urgent.min(demand))),
            Slot::Direct { .. } => None,
        })
        .collect();
    origins.sort_by_key(|&(_, _, last, _)| last);
    let mut tiers = Tiers {
        small: Vec::new(),
        stale: Vec::new(),
        urgent: Vec::new(),
        aged: Vec::new(),
    };
    let (mut urgent_spent, mut small_spent) = (0usize, 0usize);
    for &(i, demand, last, urgent) in &origins {
        let want = 1 + demand.min(MAX_TARGETS_PER_CONNECTION);
        if urgent > 0 && urgent_spent + want <= urgent_share {
            urgent_spent += want;
            tiers.urgent.push((i, demand));
        }
        if demand <= SMALL_GROUP && small_spent + 1 + demand <= half {
            small_spent += 1 + demand;
            tiers.small.push((i, demand));
        } else if last.is_none_or(|at| now.saturating_duration_since(at) >= reuse) {
            tiers.stale.push((i, demand));
        } else {
            tiers.aged.push((i, demand));
        }
    }
    tiers
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
                    ..PairState::default()
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

    /// The one place the tests' origin slots go to, unless they say otherwise.
    fn here() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 443))
    }

    fn origin(demand: usize) -> Slot {
        Slot::Origin {
            demand,
            last: None,
            urgent: 0,
            place: here(),
            place_last: None,
        }
    }

    #[test]
    fn everything_runs_when_the_budget_allows() {
        let now = Instant::now();
        let slots = [origin(3), Slot::Direct { last_ok: Some(now) }, origin(0)];
        let reuse = Duration::from_secs(60);
        for budget in [None, Some(6), Some(1000)] {
            let plan = select_cycle(&slots, &[], &[], budget, now, reuse);
            assert_eq!(plan.chosen, vec![Some(3), Some(0), Some(0)]);
            assert_eq!(plan.requests, 6);
            assert!(!plan.tight);
        }
        // One request short: a fresh direct answer is reused, the rest runs.
        let plan = select_cycle(&slots, &[], &[], Some(5), now, reuse);
        assert!(plan.tight);
        assert_eq!(plan.chosen, vec![Some(3), None, Some(0)]);
    }

    /// HTTP/3 connections are kept their part of the budget: all of what they cost when
    /// everything fits, a share proportional to their cost when not, nothing to keep without
    /// a budget.
    #[test]
    fn http3_connections_get_their_share_of_the_budget() {
        let slots = [origin(3), Slot::Direct { last_ok: None }, origin(1)];
        // Origin 0 (4 requests) advertises HTTP/3; the rest cost 1 + 2 requests.
        let h3 = [Some(443), None, None];
        assert_eq!(h3_reserve(&slots, &h3, None), None);
        assert_eq!(h3_reserve(&slots, &h3, Some(11)), Some(4));
        assert_eq!(h3_reserve(&slots, &h3, Some(100)), Some(4));
        // 7 for HTTP/2 and 4 for HTTP/3 do not fit in 10: 4/11 of it (3.6) for HTTP/3.
        assert_eq!(h3_reserve(&slots, &h3, Some(10)), Some(3));
        assert_eq!(h3_reserve(&slots, &h3, Some(0)), Some(0));
        assert_eq!(h3_reserve(&slots, &[None; 3], Some(5)), Some(0));
    }

    /// HTTP/3 connections fit their reserve: the oldest (never first) go first, the last one
    /// with the targets left; the requests never exceed the reserve; without a budget all go
    /// with all their targets.
    #[test]
    fn http3_connections_fit_their_reserve_oldest_first() {
        let now = Instant::now();
        let old = Some(now - Duration::from_secs(60));
        let recent = Some(now - Duration::from_secs(5));
        let wanted = [(recent, 20), (None, 2), (old, 9)];
        assert_eq!(fit_h3(&wanted, None), (vec![(1, 2), (2, 9), (0, 20)], 34));
        // 5 requests: the never-probed one whole (3), the oldest cut to one target (2).
        assert_eq!(fit_h3(&wanted, Some(5)), (vec![(1, 2), (2, 1)], 5));
        assert_eq!(fit_h3(&wanted, Some(4)), (vec![(1, 2), (2, 0)], 4));
        assert_eq!(fit_h3(&wanted, Some(0)), (vec![], 0));
        for reserve in 0..40 {
            let (fitted, spent) = fit_h3(&wanted, Some(reserve));
            assert!(spent <= reserve);
            assert_eq!(spent, fitted.iter().map(|(_, t)| 1 + t).sum::<usize>());
        }
    }

    #[test]
    fn a_tight_budget_opens_fewer_connections_with_more_targets() {
        let now = Instant::now();
        let old = now - Duration::from_secs(100);
        // 100 origins wanting 19 targets each (2,000 requests) and their direct requests.
        let mut slots = Vec::new();
        for i in 0..100 {
            slots.push(Slot::Origin {
                demand: 19,
                last: (i >= 50).then_some(old),
                urgent: 0,
                place: here(),
                place_last: None,
            });
            slots.push(Slot::Direct {
                last_ok: (i % 2 == 0).then_some(now),
            });
        }
        let plan = select_cycle(&slots, &[], &[], Some(500), now, Duration::from_secs(60));
        assert!(plan.tight);
        assert!(plan.requests <= 500);
        // The 50 directs without a recent healthy answer run; the others reuse theirs.
        let directs: Vec<usize> = (0..100).filter(|i| plan.chosen[2 * i + 1].is_some()).collect();
        assert_eq!(directs, (0..100).filter(|i| i % 2 == 1).collect::<Vec<_>>());
        // 450 requests left: 22 full connections of 20 requests, the next gets the last 10,
        // and the never-probed origins (0..50) go before the older ones.
        let origins: Vec<(usize, usize)> = (0..100)
            .filter_map(|i| plan.chosen[2 * i].map(|t| (i, t)))
            .collect();
        assert_eq!(origins.len(), 23, "{origins:?}");
        assert!(origins.iter().all(|&(i, _)| i < 50));
        assert_eq!(origins.iter().filter(|&&(_, t)| t == 19).count(), 22);
        assert_eq!(plan.requests, 500);
    }

    /// Under a tight budget every place (address and port) gets a connection each cycle,
    /// from an eighth of the budget kept back for the places the other steps leave out; with
    /// more places than that eighth has requests, the least recently reached go first.
    #[test]
    fn every_address_is_reached_each_cycle_within_an_eighth_of_the_budget() {
        let now = Instant::now();
        let old = now - Duration::from_secs(100);
        let place = |p: u32| SocketAddr::from((std::net::Ipv4Addr::from(0x7f00_0000 + p), 443));
        // 50 places with 20 origins each wanting 19 targets: 20,000 requests.
        let slots: Vec<Slot> = (0..1000u32)
            .map(|i| Slot::Origin {
                demand: 19,
                last: Some(old),
                urgent: 0,
                place: place(i % 50),
                place_last: Some(old),
            })
            .collect();
        let plan = select_cycle(&slots, &[], &[], Some(480), now, Duration::from_secs(60));
        assert!(plan.tight && plan.requests <= 480, "{}", plan.requests);
        let reached: HashSet<SocketAddr> = (0..1000)
            .filter(|&i| plan.chosen[i].is_some())
            .map(|i| match slots[i] {
                Slot::Origin { place, .. } => place,
                Slot::Direct { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(reached.len(), 50, "every place, every cycle");
        // Most of the budget still goes to full connections.
        let full = plan.chosen.iter().filter(|c| **c == Some(19)).count();
        assert!(full >= 20, "{full} full connections");

        // 400 places, 480 requests: the 60 kept back reach 60 of the places the others leave,
        // the least recently reached first.
        let slots: Vec<Slot> = (0..400u32)
            .map(|i| Slot::Origin {
                demand: 19,
                last: Some(old),
                urgent: 0,
                place: place(i),
                place_last: Some(now - Duration::from_secs(u64::from(400 - i))),
            })
            .collect();
        let plan = select_cycle(&slots, &[], &[], Some(480), now, Duration::from_secs(60));
        assert!(plan.requests <= 480);
        let bare: Vec<usize> = (0..400).filter(|&i| plan.chosen[i] == Some(0)).collect();
        assert_eq!(bare.len(), 60, "{bare:?}");
        let full: Vec<usize> = (0..400).filter(|&i| plan.chosen[i] == Some(19)).collect();
        let oldest_left = (0..400).find(|i| !full.contains(i)).unwrap();
        assert_eq!(bare, (oldest_left..oldest_left + 60).collect::<Vec<_>>());

        // A single place reached by the other steps needs nothing kept back.
        let slots: Vec<Slot> = (0..100).map(|_| origin(19)).collect();
        let plan = select_cycle(&slots, &[], &[], Some(480), now, Duration::from_secs(60));
        assert_eq!(plan.requests, 480);
    }

    proptest::proptest! {
        /// Whatever the slots and untried targets, the requests a cycle plans never exceed its
        /// budget, the count it reports is the real one, no connection carries more targets
        /// than it wants or than the per-connection cap, and the targets assigned to a
        /// connection are untried ones of its own, each assigned once. One piece: one generated
        /// case, its plan and every property checked against it.
        #[test]
        fn the_request_budget_is_never_exceeded(
            slots in proptest::collection::vec(
                (
                    0usize..400,
                    proptest::option::of(0u64..600),
                    0usize..5,
                    proptest::bool::ANY,
                    proptest::collection::vec(0usize..300, 0..40),
                    0u32..12,
                ),
                0..200,
            ),
            budget in proptest::option::of(0usize..3000),
        ) {
            let now = Instant::now() + Duration::from_secs(1000);
            let mut untried: Vec<Vec<usize>> = Vec::new();
            let slots: Vec<Slot> = slots
                .into_iter()
                .map(|(demand, age, urgent, direct, mut open, place)| {
                    let at = age.map(|s| now - Duration::from_secs(s));
                    open.sort_unstable();
                    open.dedup();
                    open.truncate(demand);
                    if direct {
                        untried.push(Vec::new());
                        Slot::Direct { last_ok: at }
                    } else {
                        untried.push(open);
                        Slot::Origin {
                            demand,
                            last: at,
                            urgent,
                            place: SocketAddr::from((std::net::Ipv4Addr::from(0x7f00_0000 + place), 443)),
                            place_last: at,
                        }
                    }
                })
                .collect();
            let plan = select_cycle(&slots, &untried, &[], budget, now, Duration::from_secs(240));
            // With no more places than an eighth of the budget, every one is reached.
            let places: std::collections::HashSet<SocketAddr> = slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Origin { place, .. } => Some(*place),
                    Slot::Direct { .. } => None,
                })
                .collect();
            if let Some(b) = budget {
                if places.len() <= b / 8 {
                    let reached: std::collections::HashSet<SocketAddr> = slots
                        .iter()
                        .zip(&plan.chosen)
                        .filter_map(|(s, c)| match (s, c) {
                            (Slot::Origin { place, .. }, Some(_)) => Some(*place),
                            _ => None,
                        })
                        .collect();
                    proptest::prop_assert_eq!(reached.len(), places.len());
                }
            }
            let mut counted = 0;
            let mut assigned_once = std::collections::HashSet::new();
            for (i, (slot, chosen)) in slots.iter().zip(&plan.chosen).enumerate() {
                for t in &plan.assigned[i] {
                    proptest::prop_assert!(untried[i].contains(t));
                    proptest::prop_assert!(assigned_once.insert(*t), "target {} assigned twice", t);
                }
                match (slot, chosen) {
                    (Slot::Origin { demand, .. }, Some(t)) => {
                        proptest::prop_assert!(t <= demand);
                        proptest::prop_assert!(plan.assigned[i].len() <= *t);
                        if plan.tight {
                            proptest::prop_assert!(*t <= MAX_TARGETS_PER_CONNECTION);
                        }
                        counted += 1 + t;
                    }
                    (Slot::Direct { .. }, Some(t)) => {
                        proptest::prop_assert_eq!(*t, 0);
                        counted += 1;
                    }
                    (_, None) => {
                        proptest::prop_assert!(plan.tight);
                        proptest::prop_assert!(plan.assigned[i].is_empty());
                    }
                }
            }
            proptest::prop_assert_eq!(counted, plan.requests);
            if let Some(b) = budget {
                proptest::prop_assert!(plan.requests <= b, "{} > {}", plan.requests, b);
            }
        }
    }

    /// The live engine's planning on a simulated clock, with the real `select_cycle` and
    /// `Plan::choose`: `groups` wildcard groups of `size` names at one address each, `--max-rps
    /// rps`, `--interval interval`, `--window window`, every connection answering (each origin
    /// connection's first answer is its host's reference: no direct slots), the first name of every
    /// group refused on the others' connections (a problem pair is probed again first until it
    /// has 4 probes, as the scheduler's `unsettled` does for a misdirected pair). Returns, per
    /// cycle, the pair coverage and target coverage over the window ending with that cycle,
    /// and checks the budget of every cycle. Jobs run at the cycle's start (no jitter).
    ///
    /// One piece: the simulation's state is shared by every step, made cycle by cycle.
    fn simulate(
        groups: usize,
        size: usize,
        rps: usize,
        interval: Duration,
        window: Duration,
        cycles: u32,
    ) -> Vec<(f64, f64)> {
        let n = groups * size;
        let peers: Vec<Vec<usize>> = (0..n)
            .map(|a| {
                let g = a / size;
                (g * size..g * size + size).filter(|&b| b != a).collect()
            })
            .collect();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let budget = rps * interval.as_secs() as usize;
        let total_pairs = n * (size - 1);
        let mut state = PlanState::new();
        let mut last_origin: Vec<Option<Instant>> = vec![None; n];
        let mut target_last: Vec<Option<Instant>> = vec![None; n];
        let mut probes: Vec<(Instant, usize, usize)> = Vec::new();
        let mut counts: HashMap<(usize, usize), u32> = HashMap::new();
        let t0 = Instant::now() + window;
        let mut out = Vec::new();
        for cycle in 0..cycles {
            let now = t0 + interval * cycle;
            let window_start = now - window;
            let again: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    peers[i]
                        .iter()
                        .copied()
                        .filter(|&t| t % size == 0 && (1..4).contains(counts.get(&(i, t)).unwrap_or(&0)))
                        .collect()
                })
                .collect();
            let slots: Vec<Slot> = (0..n)
                .map(|i| Slot::Origin {
                    demand: peers[i].len(),
                    last: last_origin[i],
                    urgent: again[i].len(),
                    place: here(),
                    place_last: None,
                })
                .collect();
            let untried: Vec<Vec<usize>> = (0..n)
                .map(|i| {
                    peers[i]
                        .iter()
                        .copied()
                        .filter(|&t| target_due(target_last[t], now, window, interval))
                        .collect()
                })
                .collect();
            let cycle_plan = select_cycle(&slots, &untried, &again, Some(budget), now, window - interval * 3);
            let mut plan = Plan {
                peers: peers.clone(),
                state: state.clone(),
                ..Plan::default()
            };
            for i in 0..n {
                if let Some(limit) = cycle_plan.chosen[i] {
                    plan.per_origin.insert((i, addr), limit);
                    if !cycle_plan.assigned[i].is_empty() {
                        plan.assigned.insert((i, addr), cycle_plan.assigned[i].clone());
                    }
                }
            }
            let mut requests = 0;
            for i in 0..n {
                let Some(limit) = cycle_plan.chosen[i] else {
                    continue;
                };
                let picked = plan.choose(i, addr, &peers[i]);
                assert!(picked.len() <= limit);
                requests += 1 + picked.len();
                probe(&mut state, i, &picked, now);
                for &t in &picked {
                    target_last[t] = Some(now);
                    probes.push((now, i, t));
                    *counts.entry((i, t)).or_default() += 1;
                }
                if limit >= peers[i].len().min(MAX_TARGETS_PER_CONNECTION) {
                    last_origin[i] = Some(now);
                }
            }
            assert!(requests <= budget, "cycle {cycle}: {requests} > {budget}");
            probes.retain(|&(at, _, _)| at > window_start);
            let pairs: HashSet<(usize, usize)> = probes.iter().map(|&(_, a, b)| (a, b)).collect();
            let targets: HashSet<usize> = probes.iter().map(|&(_, _, b)| b).collect();
            out.push((
                pairs.len() as f64 / total_pairs as f64,
                targets.len() as f64 / n as f64,
            ));
        }
        out
    }

    /// 1,000 names in groups of 10 at the defaults (50 rps, 30 s, 5 min): 10,000 requests per
    /// window are needed and 15,000 allowed, so every pair is covered within the first window
    /// and stays covered.
    #[test]
    fn a_thousand_names_in_groups_of_ten_are_covered_within_the_first_window() {
        let (interval, window) = (Duration::from_secs(30), Duration::from_secs(300));
        let coverage = simulate(100, 10, 50, interval, window, 30);
        // The jobs of the first window's cycles: the 10 cycles that start within 300 s.
        let first_window = coverage[9];
        assert!(
            first_window.0 >= 0.95,
            "pair coverage after the first window: {coverage:?}"
        );
        assert_eq!(first_window.1, 1.0, "target coverage {coverage:?}");
        // Every target in the first cycle: the targets go first.
        assert_eq!(coverage[0].1, 1.0, "{coverage:?}");
        for (c, (pairs, targets)) in coverage.iter().enumerate().skip(10) {
            assert!(
                *pairs >= 0.95 && *targets == 1.0,
                "window ending with cycle {c}: {pairs} {targets}"
            );
        }
    }

    /// 10,000 names in groups of 100 at the defaults: 990,000 pairs cannot be covered, but
    /// every name is tried as a coalesced target within every window, the origins rotating.
    #[test]
    fn ten_thousand_names_in_groups_of_a_hundred_cover_every_target_every_window() {
        let (interval, window) = (Duration::from_secs(30), Duration::from_secs(300));
        let coverage = simulate(100, 100, 50, interval, window, 30);
        for (c, (_, targets)) in coverage.iter().enumerate().skip(9) {
            assert_eq!(*targets, 1.0, "window ending with cycle {c}: {coverage:?}");
        }
        // The rest of the budget (15,000 requests a window, about 10,200 of them for the
        // targets) goes to pairs: most requests try a pair not tried in the window.
        for (c, (pairs, _)) in coverage.iter().enumerate().skip(9) {
            assert!(
                pairs * 990_000.0 >= 0.75 * 15_000.0,
                "window ending with cycle {c}: {coverage:?}"
            );
        }
    }
}

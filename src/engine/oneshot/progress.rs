//! What a `check` run tells whoever shows its progress: typed events through a small sink.
//! The engine knows no terminal; `commands` draws them (a bar on a terminal, a line per phase
//! elsewhere). The sink is called from the run's own task, once per event: it must be cheap
//! (drawing is the receiver's business, and so is bounding how often it draws).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::engine::record::{HostRecord, Records};

/// One step of a `check` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckProgress {
    /// Resolving the watched names.
    Resolving { names: usize },
    /// DNS answered: what the rounds will do.
    Planned(CheckPlan),
    /// A phase of jobs starts: its fresh connections and the requests planned on them.
    Phase {
        phase: Phase,
        connections: usize,
        requests: u64,
    },
    /// A job of the current phase ended after making `requests` requests.
    JobDone { requests: u64 },
    /// Every job ended; the judgement runs.
    Judging,
    /// The run ended.
    Done {
        elapsed: Duration,
        connections: u64,
        requests: u64,
    },
}

/// The phases of a `check` run, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Round `round` (from 1) of `rounds`: a fresh connection per (origin, address).
    Round { round: u32, rounds: u32 },
    /// Direct requests where a host's own connections brought no answer.
    Directs,
    /// Direct requests for origins whose page a coalesced answer is compared with.
    OriginReferences,
    /// HTTP/1.1 requests where the HTTP/2 answers failed.
    Http1Fallback,
    /// Round `round` of `rounds` over HTTP/3: a fresh QUIC connection per (origin, address)
    /// that advertises it.
    Http3 { round: u32, rounds: u32 },
}

/// The work planned once DNS has answered. The targets a connection carries are known only
/// once its certificate is seen, so the requests are an upper bound: every peer (a name
/// sharing an address) counted as covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckPlan {
    pub names: usize,
    /// Names DNS gave no address.
    pub unresolved: usize,
    /// Distinct addresses, which the per-address cap applies to.
    pub addresses: usize,
    /// Fresh connections per round: one per (origin, address).
    pub connections: usize,
    /// Requests per round at most: per connection, the origin and its covered peers.
    pub requests: u64,
    pub rounds: u32,
}

/// Who receives a run's progress.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: CheckProgress);
}

/// No one: the run is silent.
impl ProgressSink for () {
    fn event(&self, _: CheckProgress) {}
}

/// The plan for `rounds` rounds over `hosts` as resolved, `peers` per origin (the planner's
/// `address_peers`), at most `limit` targets per connection.
pub fn plan(hosts: &[HostRecord], peers: &[Vec<usize>], limit: Option<usize>, rounds: u32) -> CheckPlan {
    let addresses: std::collections::HashSet<IpAddr> = hosts
        .iter()
        .flat_map(|h| h.dns.addresses.iter().copied())
        .collect();
    let mut connections = 0;
    let mut requests = 0;
    for (i, h) in hosts.iter().enumerate() {
        let n = h.dns.addresses.len();
        let targets = peers.get(i).map_or(0, Vec::len);
        let targets = limit.map_or(targets, |l| targets.min(l));
        connections += n;
        requests += (n * (1 + targets)) as u64;
    }
    CheckPlan {
        names: hosts.len(),
        unresolved: hosts.iter().filter(|h| h.dns.addresses.is_empty()).count(),
        addresses: addresses.len(),
        connections,
        requests,
        rounds,
    }
}

/// The requests a later round plans: per (origin, address), the origin and the targets the
/// rounds so far carried on its connections there (the certificate is known by now).
pub fn later_round_requests(records: &Records) -> u64 {
    let places = records
        .hosts
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.dns.addresses.iter().map(move |&addr| (i, addr)));
    requests_at(records, places)
}

/// The requests an HTTP/3 round plans: per (origin, address) it opens a connection to, the
/// origin and the targets its HTTP/2 connections there carried.
pub fn h3_round_requests(records: &Records, places: impl Iterator<Item = (usize, IpAddr)>) -> u64 {
    requests_at(records, places)
}

/// Per place (origin, address): its own request and the targets HTTP/2 connections there
/// carried.
fn requests_at(records: &Records, places: impl Iterator<Item = (usize, IpAddr)>) -> u64 {
    let mut carried: HashMap<(usize, IpAddr), u64> = HashMap::new();
    for &(a, _, addr) in records.coalesced.keys() {
        *carried.entry((a, addr)).or_default() += 1;
    }
    places
        .map(|key| 1 + carried.get(&key).copied().unwrap_or(0))
        .sum()
}

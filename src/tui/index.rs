//! Indexes derived from one `LiveView` (one engine generation): which hosts and pairs belong
//! to which group, and what each group's row needs (pair counts per verdict, problems, the
//! highest refusal rate). Shared by every frame and every key press until the next view
//! arrives.
//!
//! A new view of the same engine is folded in incrementally ([`ViewIndex::update`]): the
//! host part is kept while the hosts' names are the same, the groups while the report's groups
//! are, and of the pairs only the reports the engine made anew are read. What the index keeps
//! per pair ([`PairFacts`]) is compact and aligned with `report.pairs`, so that the per-view
//! work on the other pairs is a pass over two vectors of pointers and one of facts, never a
//! read of 490,000 reports scattered over the heap. The selected group's pairs are listed on
//! demand ([`ViewIndex::pairs_of`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::snapshot::{LiveView, PairReport, Snapshot, Verdict};

/// Number of verdicts (`Verdict as usize` indexes per-verdict counts).
pub const VERDICTS: usize = Verdict::ALL.len();

/// A group as the dashboard lists it: a coalescing group of the report, or the pseudo-group
/// of hosts that coalesce with nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupEntry {
    /// `report.groups` index; None for the pseudo-group.
    pub report: Option<usize>,
    /// Indexes into `report.hosts`, in report order.
    pub hosts: Vec<u32>,
    /// Pairs whose origin is a member (`ViewIndex::pairs_of` lists them).
    pub pairs: u32,
    /// Those pairs per verdict (`Verdict as usize`).
    pub verdicts: [u32; VERDICTS],
    pub problems: u32,
    /// The worst verdict among the pairs (None without pairs).
    pub worst: Option<Verdict>,
    /// The highest refusal rate among the pairs, in millionths (0 without pairs).
    pub max_refused: u32,
    /// How many pairs have that rate (kept so that a pair leaving does not need a recount).
    at_max: u32,
    /// Common ".suffix" of the member keys (at a label boundary), dropped from names in the
    /// pair list; "" when none.
    pub suffix: String,
}

/// What the index keeps of one pair of `report.pairs`, at the same position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairFacts {
    /// The origin's index in `report.hosts` (`NONE` when it is not a listed host).
    pub origin: u32,
    /// The refusal rate in millionths (as the rate sort compares them; a rate is at most 1).
    pub refused: u32,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewIndex {
    pub groups: Vec<GroupEntry>,
    /// Per host index: its position in `groups`.
    pub group_of_host: Vec<u32>,
    /// "host:port" → host index.
    pub host_by_key: HashMap<String, u32>,
    /// Common suffix of every host key (dropped from names in the event log).
    pub suffix: String,
    /// Per pair of `report.pairs`, at the same position.
    pub pairs: Vec<PairFacts>,
    /// Groups made from the report's groups and hosts; a pseudo-group for pairs whose origin
    /// is not a listed host may follow (`orphans`).
    made: usize,
    /// Position in `groups` of the pairs whose origin is not a listed host, when there are.
    orphans: Option<u32>,
    /// The previous view's facts, kept to write the next view's into (no allocation and no
    /// fresh pages per view).
    spare: Spare,
}

/// A buffer with no part in the index's value: equal to any other, cloned empty.
#[derive(Default)]
struct Spare(Vec<PairFacts>);

impl Clone for Spare {
    fn clone(&self) -> Spare {
        Spare::default()
    }
}

impl PartialEq for Spare {
    fn eq(&self, _: &Spare) -> bool {
        true
    }
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spare({})", self.0.capacity())
    }
}

/// Not a host or group index.
pub const NONE: u32 = u32::MAX;

impl GroupEntry {
    fn new(report: Option<usize>, hosts: Vec<u32>, suffix: String) -> GroupEntry {
        GroupEntry {
            report,
            hosts,
            pairs: 0,
            verdicts: [0; VERDICTS],
            problems: 0,
            worst: None,
            max_refused: 0,
            at_max: 0,
            suffix,
        }
    }

    /// The group's name in lists: its common suffix as a wildcard, or its first host.
    pub fn label(&self, view: &LiveView) -> String {
        if self.report.is_none() {
            return "not coalescing".into();
        }
        if !self.suffix.is_empty() {
            let s = self
                .suffix
                .rsplit_once(':')
                .map_or(self.suffix.as_str(), |(h, _)| h);
            return format!("*{s}");
        }
        match self.hosts.first() {
            Some(&h) => view.report.hosts[h as usize].host.clone(),
            None => "-".into(),
        }
    }

    fn count(&mut self, pair: &PairFacts) {
        self.pairs += 1;
        self.verdicts[pair.verdict as usize] += 1;
        self.see_rate(pair.refused);
    }

    fn see_rate(&mut self, refused: u32) {
        if refused > self.max_refused || self.at_max == 0 {
            (self.max_refused, self.at_max) = (refused, 1);
        } else if refused == self.max_refused {
            self.at_max += 1;
        }
    }

    /// Take a counted pair out; false when the highest rate must be found again (the last
    /// pair at it left).
    fn uncount(&mut self, pair: &PairFacts) -> bool {
        self.pairs -= 1;
        self.verdicts[pair.verdict as usize] -= 1;
        if self.at_max > 0 && pair.refused == self.max_refused {
            self.at_max -= 1;
        }
        if self.at_max == 0 {
            self.max_refused = 0;
            return false;
        }
        true
    }

    /// Problems and the worst verdict from the per-verdict counts.
    fn settle(&mut self) {
        self.problems = Verdict::ALL
            .iter()
            .filter(|v| v.is_problem())
            .map(|&v| self.verdicts[v as usize])
            .sum();
        self.worst = Verdict::ALL.into_iter().find(|&v| self.verdicts[v as usize] > 0);
    }
}

impl ViewIndex {
    /// Everything derived from `view` alone.
    pub fn build(view: &LiveView) -> ViewIndex {
        let mut index = ViewIndex::default();
        index.index_hosts(&view.report);
        index.make_groups(&view.report);
        index.pairs = facts_of(&view.report.pairs, &index.host_by_key);
        index.count_pairs();
        index
    }

    /// Fold in `view`, the successor of `previous` (the view this index was derived from):
    /// the same index as `ViewIndex::build(view)`, made from what changed. Nothing is assumed
    /// of how the two views relate: what is kept is checked (host names, groups, and a pair's
    /// report by identity, `Arc::ptr_eq`); the engine's change numbers only say where to look.
    pub fn update(&mut self, previous: &LiveView, view: &LiveView) {
        let (old, new) = (&previous.report, &view.report);
        if self.pairs.len() != old.pairs.len() || !same_hosts(old, new) {
            *self = ViewIndex::build(view);
            return;
        }
        let regrouped = !same_groups(old, new);
        if regrouped {
            self.make_groups(new);
        }
        let into = std::mem::take(&mut self.spare.0);
        let merged = merge_facts(previous, &self.pairs, view, &self.host_by_key, into);
        self.spare.0 = std::mem::replace(&mut self.pairs, merged.facts);
        if regrouped || !self.count_changes(&merged.added, &merged.removed) {
            self.count_pairs();
        }
    }

    pub fn group_of(&self, host: u32) -> Option<usize> {
        self.group_of_host
            .get(host as usize)
            .filter(|&&g| g != NONE)
            .map(|&g| g as usize)
    }

    /// Indexes into `report.pairs` of the pairs of group `group` (position in `groups`), in
    /// report order.
    pub fn pairs_of(&self, group: usize) -> Vec<u32> {
        let Some(entry) = self.groups.get(group) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(entry.pairs as usize);
        if entry.pairs == 0 {
            return out;
        }
        let group = group as u32;
        let orphans = self.orphans.unwrap_or(NONE);
        let group_of_host = &self.group_of_host;
        for (i, p) in self.pairs.iter().enumerate() {
            if group_of_host.get(p.origin as usize).copied().unwrap_or(orphans) == group {
                out.push(i as u32);
            }
        }
        out
    }

    /// "host:port" → index, and the common suffix of every key.
    fn index_hosts(&mut self, report: &Snapshot) {
        let mut host_by_key = HashMap::with_capacity(report.hosts.len());
        for (i, h) in report.hosts.iter().enumerate() {
            host_by_key.insert(format!("{}:{}", h.host, h.port), i as u32);
        }
        self.suffix = common_suffix(host_by_key.keys().map(String::as_str));
        self.host_by_key = host_by_key;
    }

    /// The report's coalescing groups in report order, then the pseudo-group of the hosts in
    /// none (when there are such hosts); notes each host's group. Counts are left at zero.
    fn make_groups(&mut self, report: &Snapshot) {
        let mut group_of_host = vec![NONE; report.hosts.len()];
        let mut groups: Vec<GroupEntry> = Vec::with_capacity(report.groups.len() + 1);
        for (gi, g) in report.groups.iter().enumerate() {
            let hosts: Vec<u32> = g
                .members
                .iter()
                .filter_map(|m| self.host_by_key.get(m.as_str()).copied())
                .collect();
            for &h in &hosts {
                group_of_host[h as usize] = groups.len() as u32;
            }
            let suffix = common_suffix(g.members.iter().map(String::as_str));
            groups.push(GroupEntry::new(Some(gi), hosts, suffix));
        }
        let loose: Vec<u32> = (0..report.hosts.len() as u32)
            .filter(|&h| group_of_host[h as usize] == NONE)
            .collect();
        if !loose.is_empty() {
            for &h in &loose {
                group_of_host[h as usize] = groups.len() as u32;
            }
            let keys: Vec<String> = loose
                .iter()
                .map(|&h| {
                    let h = &report.hosts[h as usize];
                    format!("{}:{}", h.host, h.port)
                })
                .collect();
            let suffix = common_suffix(keys.iter().map(String::as_str));
            groups.push(GroupEntry::new(None, loose, suffix));
        }
        self.made = groups.len();
        self.groups = groups;
        self.group_of_host = group_of_host;
    }

    /// Every pair to its origin's group, which counts it. A pair whose origin is not a listed
    /// host (should not happen) stays visible: it goes to the last group when that is a
    /// pseudo-group, else to a pseudo-group without hosts added at the end.
    fn count_pairs(&mut self) {
        self.groups.truncate(self.made);
        for g in &mut self.groups {
            *g = GroupEntry::new(
                g.report,
                std::mem::take(&mut g.hosts),
                std::mem::take(&mut g.suffix),
            );
        }
        self.orphans = None;
        if self.pairs.iter().any(|p| p.origin == NONE) {
            if self.groups.last().is_none_or(|l| l.report.is_some()) {
                self.groups.push(GroupEntry::new(None, vec![], String::new()));
            }
            self.orphans = Some(self.groups.len() as u32 - 1);
        }
        let (groups, group_of_host) = (&mut self.groups, &self.group_of_host);
        let orphans = self.orphans.unwrap_or(NONE) as usize;
        for p in &self.pairs {
            let g = match group_of_host.get(p.origin as usize) {
                Some(&g) => g as usize,
                None => orphans,
            };
            groups[g].count(p);
        }
        for g in groups.iter_mut() {
            g.settle();
        }
    }

    /// Count the pairs that came and uncount those that left instead of counting every
    /// pair again; false (nothing changed) when that cannot be done: a pair without a listed
    /// origin came or left (the orphans' group may come or go), or most pairs changed.
    fn count_changes(&mut self, added: &[PairFacts], removed: &[PairFacts]) -> bool {
        let orphan = |p: &PairFacts| p.origin == NONE;
        if added.iter().any(orphan)
            || removed.iter().any(orphan)
            || added.len() + removed.len() > self.pairs.len() / 4
        {
            return false;
        }
        let (groups, group_of_host) = (&mut self.groups, &self.group_of_host);
        for p in added {
            groups[group_of_host[p.origin as usize] as usize].count(p);
        }
        let mut lost_max = vec![];
        for p in removed {
            let g = group_of_host[p.origin as usize];
            if !groups[g as usize].uncount(p) {
                lost_max.push(g);
            }
        }
        if !lost_max.is_empty() {
            // The highest rate of these groups, from all their pairs again.
            let mut again = vec![false; groups.len()];
            for &g in &lost_max {
                again[g as usize] = true;
            }
            let orphans = self.orphans.unwrap_or(NONE);
            for p in &self.pairs {
                let g = group_of_host.get(p.origin as usize).copied().unwrap_or(orphans) as usize;
                if again.get(g).copied().unwrap_or(false) {
                    groups[g].see_rate(p.refused);
                }
            }
        }
        for g in groups.iter_mut() {
            g.settle();
        }
        true
    }
}

/// Whether the two reports list the same hosts ("host:port", in the same order).
fn same_hosts(old: &Snapshot, new: &Snapshot) -> bool {
    old.hosts.len() == new.hosts.len()
        && old
            .hosts
            .iter()
            .zip(&new.hosts)
            .all(|(a, b)| Arc::ptr_eq(a, b) || (a.host == b.host && a.port == b.port))
}

/// Whether the two reports have the same groups (ids and members, in the same order).
fn same_groups(old: &Snapshot, new: &Snapshot) -> bool {
    old.groups.len() == new.groups.len()
        && old
            .groups
            .iter()
            .zip(&new.groups)
            .all(|(a, b)| a.id == b.id && a.members == b.members)
}

#[cfg(test)]
thread_local! {
    static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Pair reports read for their facts so far on this thread (tests).
#[cfg(test)]
pub fn reads() -> usize {
    READS.with(|r| r.get())
}

/// The facts of one pair: its origin looked up (the last lookup remembered, since consecutive
/// pairs mostly share their origin).
fn facts(
    p: &PairReport,
    host_by_key: &HashMap<String, u32>,
    last: &mut (Option<Arc<str>>, u32),
) -> PairFacts {
    #[cfg(test)]
    READS.with(|r| r.set(r.get() + 1));
    let origin = match &last.0 {
        Some(o) if Arc::ptr_eq(o, &p.origin) || **o == *p.origin => last.1,
        _ => {
            let h = host_by_key.get(&*p.origin).copied().unwrap_or(NONE);
            *last = (Some(p.origin.clone()), h);
            h
        }
    };
    PairFacts {
        origin,
        refused: (refused(p) * 1e6) as u32,
        verdict: p.verdict,
    }
}

fn facts_of(pairs: &[Arc<PairReport>], host_by_key: &HashMap<String, u32>) -> Vec<PairFacts> {
    let mut last = (None, NONE);
    pairs.iter().map(|p| facts(p, host_by_key, &mut last)).collect()
}

/// The facts of a view's pairs, and how they differ from the previous view's.
struct Merged {
    facts: Vec<PairFacts>,
    /// Facts read from reports the previous view did not have.
    added: Vec<PairFacts>,
    /// Facts of the previous view's reports that are gone.
    removed: Vec<PairFacts>,
}

/// The facts of `view`'s pairs (written into `into`): those of `previous` for the reports it
/// shares (same `Arc`), read from the report for the others.
///
/// The engine keeps the pairs of a view in an order that reports it did not change keep
/// among themselves (by verdict, then origin and target), and numbers the views in which
/// each report last changed. So one walk along both lists suffices: runs of shared reports
/// are copied at once; a report of `view` changed after `previous` is read; any other is
/// looked for further along `previous` (the reports skipped are gone) and its facts are
/// copied. A report not found that way (views of different engines, or a list the engine
/// reordered) is read, and so is every one after it: the result is right whatever the views
/// are, only slower.
fn merge_facts(
    previous: &LiveView,
    old_facts: &[PairFacts],
    view: &LiveView,
    host_by_key: &HashMap<String, u32>,
    mut into: Vec<PairFacts>,
) -> Merged {
    let (old, new) = (&previous.report.pairs, &view.report.pairs);
    // Change numbers are usable when both views have them and `view` comes later.
    let since = previous.changes.seq;
    let seqs =
        Some(&view.changes.pairs).filter(|s| since > 0 && view.changes.seq > since && s.len() == new.len());
    let mut m = Merged {
        facts: {
            into.clear();
            into.reserve(new.len());
            into
        },
        added: Vec::new(),
        removed: Vec::new(),
    };
    let mut last = (None, NONE);
    let (mut i, mut j) = (0, 0);
    while j < new.len() {
        let run = shared_run(&old[i..], &new[j..]);
        if run > 0 {
            m.facts.extend_from_slice(&old_facts[i..i + run]);
            (i, j) = (i + run, j + run);
            continue;
        }
        let p = &new[j];
        let changed = seqs.is_none_or(|s| s[j] > since);
        j += 1;
        if !changed {
            if let Some(k) = old[i..].iter().position(|o| Arc::ptr_eq(o, p)) {
                m.removed.extend_from_slice(&old_facts[i..i + k]);
                m.facts.push(old_facts[i + k]);
                i += k + 1;
                continue;
            }
            // Not there: read it, and the rest will be read too.
            m.removed.extend_from_slice(&old_facts[i..]);
            i = old.len();
        }
        let f = facts(p, host_by_key, &mut last);
        m.facts.push(f);
        m.added.push(f);
    }
    m.removed.extend_from_slice(&old_facts[i..]);
    m
}

/// How many reports the two lists share from their start (the same `Arc`s), compared a
/// block at a time without branching inside the block, so that the compiler can compare
/// several at once.
fn shared_run(a: &[Arc<PairReport>], b: &[Arc<PairReport>]) -> usize {
    const BLOCK: usize = 16;
    let n = a.len().min(b.len());
    let mut k = 0;
    while k + BLOCK <= n
        && a[k..k + BLOCK]
            .iter()
            .zip(&b[k..k + BLOCK])
            .fold(true, |same, (x, y)| same & Arc::ptr_eq(x, y))
    {
        k += BLOCK;
    }
    while k < n && Arc::ptr_eq(&a[k], &b[k]) {
        k += 1;
    }
    k
}

/// The share of a pair's answered requests that were refused (421, reset, GOAWAY); 0 when
/// nothing was answered.
pub fn refused(p: &PairReport) -> f64 {
    p.refusal_rate.map_or(0.0, |r| r.rate)
}

/// The longest common suffix of the keys that starts with '.', so that every key keeps a
/// non-empty first part ("www.a.test:443", "api.a.test:443" → ".a.test:443").
pub fn common_suffix<'a>(mut keys: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = keys.next() else {
        return String::new();
    };
    let mut len = first.len();
    let mut count = 1;
    for k in keys {
        count += 1;
        let common = first
            .bytes()
            .rev()
            .zip(k.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count();
        len = len.min(common);
        if len == 0 {
            return String::new();
        }
    }
    let tail = &first[first.len() - len..];
    if count < 2 {
        return String::new();
    }
    // Cut at the first '.' of the common tail, and never swallow a whole key.
    match tail.find('.') {
        Some(dot) if first.len() - len + dot > 0 => tail[dot..].to_string(),
        Some(dot) => match tail[dot + 1..].find('.') {
            Some(next) => tail[dot + 1 + next..].to_string(),
            None => String::new(),
        },
        None => String::new(),
    }
}

/// A key without the group suffix (never empty).
pub fn short<'a>(key: &'a str, suffix: &str) -> &'a str {
    match key.strip_suffix(suffix) {
        Some(s) if !s.is_empty() && !suffix.is_empty() => s,
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_cut_at_labels() {
        let s = |v: &[&str]| common_suffix(v.iter().copied());
        assert_eq!(s(&["www.a.test:443", "api.a.test:443"]), ".a.test:443");
        assert_eq!(s(&["xa.test:443", "ya.test:443"]), ".test:443");
        assert_eq!(s(&["a.test:443", "b.a.test:443"]), ".test:443");
        assert_eq!(s(&["a.test:443", "b.other:80"]), "");
        assert_eq!(s(&["only.one:443"]), "");
        assert_eq!(short("www.a.test:443", ".a.test:443"), "www");
        assert_eq!(short("x:1", ""), "x:1");
    }
}

//! Indexes derived from one `LiveView` (one engine generation): which hosts and pairs belong
//! to which group. Built once per published view in O(hosts + pairs), then shared by every
//! frame and every key press until the next view arrives.

use std::collections::HashMap;

use crate::engine::snapshot::{LiveView, Snapshot, Verdict};

/// A group as the dashboard lists it: a coalescing group of the report, or the pseudo-group
/// of hosts that coalesce with nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupEntry {
    /// `report.groups` index; None for the pseudo-group.
    pub report: Option<usize>,
    /// Indexes into `report.hosts`, in report order.
    pub hosts: Vec<u32>,
    /// Indexes into `report.pairs` whose origin is a member, in report order.
    pub pairs: Vec<u32>,
    pub problems: u32,
    /// The worst verdict among the pairs (None without pairs).
    pub worst: Option<Verdict>,
    /// Common ".suffix" of the member keys (at a label boundary), dropped from names in the
    /// pair list; "" when none.
    pub suffix: String,
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
}

const NONE: u32 = u32::MAX;

impl GroupEntry {
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
}

impl ViewIndex {
    pub fn build(view: &LiveView) -> ViewIndex {
        let report = &view.report;
        let mut host_by_key = HashMap::with_capacity(report.hosts.len());
        for (i, h) in report.hosts.iter().enumerate() {
            host_by_key.insert(format!("{}:{}", h.host, h.port), i as u32);
        }
        let mut group_of_host = vec![NONE; report.hosts.len()];
        let mut groups = coalescing_groups(report, &host_by_key, &mut group_of_host);
        if let Some(loose) = loose_group(report, groups.len() as u32, &mut group_of_host) {
            groups.push(loose);
        }
        add_pairs(report, &host_by_key, &group_of_host, &mut groups);
        let suffix = common_suffix(host_by_key.keys().map(String::as_str));
        ViewIndex {
            suffix,
            groups,
            group_of_host,
            host_by_key,
        }
    }

    pub fn group_of(&self, host: u32) -> Option<usize> {
        self.group_of_host
            .get(host as usize)
            .filter(|&&g| g != NONE)
            .map(|&g| g as usize)
    }
}

/// The report's coalescing groups, in report order; notes each member's group.
fn coalescing_groups(
    report: &Snapshot,
    host_by_key: &HashMap<String, u32>,
    group_of_host: &mut [u32],
) -> Vec<GroupEntry> {
    let mut groups: Vec<GroupEntry> = Vec::with_capacity(report.groups.len() + 1);
    for (gi, g) in report.groups.iter().enumerate() {
        let hosts: Vec<u32> = g
            .members
            .iter()
            .filter_map(|m| host_by_key.get(m.as_str()).copied())
            .collect();
        for &h in &hosts {
            group_of_host[h as usize] = groups.len() as u32;
        }
        groups.push(GroupEntry {
            report: Some(gi),
            suffix: common_suffix(g.members.iter().map(String::as_str)),
            hosts,
            pairs: vec![],
            problems: 0,
            worst: None,
        });
    }
    groups
}

/// The pseudo-group of the hosts in no coalescing group (None when there are none), at
/// position `position` of the groups.
fn loose_group(report: &Snapshot, position: u32, group_of_host: &mut [u32]) -> Option<GroupEntry> {
    let loose: Vec<u32> = (0..report.hosts.len() as u32)
        .filter(|&h| group_of_host[h as usize] == NONE)
        .collect();
    if loose.is_empty() {
        return None;
    }
    for &h in &loose {
        group_of_host[h as usize] = position;
    }
    let keys: Vec<String> = loose
        .iter()
        .map(|&h| {
            let h = &report.hosts[h as usize];
            format!("{}:{}", h.host, h.port)
        })
        .collect();
    Some(GroupEntry {
        report: None,
        suffix: common_suffix(keys.iter().map(String::as_str)),
        hosts: loose,
        pairs: vec![],
        problems: 0,
        worst: None,
    })
}

/// Every pair goes to its origin's group, which counts its problems and worst verdict.
fn add_pairs(
    report: &Snapshot,
    host_by_key: &HashMap<String, u32>,
    group_of_host: &[u32],
    groups: &mut Vec<GroupEntry>,
) {
    // Consecutive pairs usually share their origin, so remember the last.
    let mut last: (&str, u32) = ("", NONE);
    for (pi, p) in report.pairs.iter().enumerate() {
        let g = if *p.origin == *last.0 {
            last.1
        } else {
            let g = host_by_key
                .get(&*p.origin)
                .map(|&h| group_of_host[h as usize])
                .unwrap_or(NONE);
            last = (&*p.origin, g);
            g
        };
        let g = if g == NONE { orphans_group(groups) } else { g };
        let entry = &mut groups[g as usize];
        entry.pairs.push(pi as u32);
        if p.verdict.is_problem() {
            entry.problems += 1;
        }
        if entry.worst.is_none_or(|w| p.verdict < w) {
            entry.worst = Some(p.verdict);
        }
    }
}

/// Where a pair whose origin is not a listed host goes (should not happen), so that it stays
/// visible: the last group when that is a pseudo-group, else a pseudo-group without hosts
/// added at the end.
fn orphans_group(groups: &mut Vec<GroupEntry>) -> u32 {
    if groups.last().is_none_or(|l| l.report.is_some()) {
        groups.push(GroupEntry {
            report: None,
            hosts: vec![],
            pairs: vec![],
            problems: 0,
            worst: None,
            suffix: String::new(),
        });
    }
    groups.len() as u32 - 1
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

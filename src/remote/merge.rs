//! The merge step: the vantages' reports (the local engine's view among them, first, when
//! there is one) into the one view the dashboard draws. Pure: no clock but the time given,
//! no I/O.
//!
//! The merged view lists the pairs vantage by vantage (a pair seen from two vantages is two
//! rows, each its vantage's verdict); its hosts are the union by "host:port" (the first
//! vantage's report of a host stands for it; the details show the others' addresses where
//! they differ); its groups the union of the vantages' coalescing groups (a group of the
//! merged view is a connected component over every vantage's groups); its summary the sums
//! (the worst coverage).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::engine::snapshot::{
    EngineStatus, Event, GroupReport, History, HostReport, LiveView, PairReport, Snapshot, Summary,
    Timestamp, Vantage, Vantages, VerdictEvent, SCHEMA,
};

/// Merge `list` (the local vantage first, when `local` is its view) into one view made at
/// `generated_at`. Names the same as an earlier vantage's get "#2", "#3", … .
pub fn merge(local: Option<&LiveView>, mut list: Vec<Vantage>, generated_at: Timestamp) -> LiveView {
    unique_names(&mut list);
    let reports: Vec<&Snapshot> = list.iter().map(|v| &*v.data.report).collect();
    let hosts = union_hosts(&reports);
    let pairs: Vec<Arc<PairReport>> = reports.iter().flat_map(|r| r.pairs.iter().cloned()).collect();
    let groups = union_groups(&reports, &pairs);
    let summary = sum(&reports, hosts.len() as u32);
    let histories = list
        .iter()
        .flat_map(|v| match local.filter(|_| v.local) {
            Some(view) if view.histories.len() == v.data.report.pairs.len() => view.histories.clone(),
            _ => vec![History::default(); v.data.report.pairs.len()],
        })
        .collect();
    let status = match local {
        Some(view) => view.status.clone(),
        None => EngineStatus {
            source: format!("{} vantages", list.len()),
            hosts: hosts.len(),
            ..EngineStatus::default()
        },
    };
    LiveView {
        report: Snapshot {
            schema: SCHEMA.into(),
            generated_at,
            vantage: None,
            hosts,
            pairs,
            groups,
            summary,
        },
        histories,
        events: local.map(|v| v.events.clone()).unwrap_or_default(),
        event_totals: local.map(|v| v.event_totals).unwrap_or_default(),
        status,
        changes: Default::default(),
        pending: Default::default(),
        vantages: Some(Vantages::new(list)),
    }
}

/// The local engine's events (if any: verdict changes and host events) and the remote
/// vantages' verdict changes (`events::Changes`), oldest first, the newest
/// `events::MAX_EVENTS` of them.
pub fn events(local: Option<&LiveView>, remote: Vec<VerdictEvent>) -> Vec<Event> {
    let mut all: Vec<Event> = local.map(|v| v.events.to_vec()).unwrap_or_default();
    all.extend(remote.into_iter().map(Event::Verdict));
    // Stable: events of the same second keep the order they were seen in.
    all.sort_by_key(Event::at);
    let extra = all.len().saturating_sub(super::events::MAX_EVENTS);
    all.drain(..extra);
    all
}

fn unique_names(list: &mut [Vantage]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for v in list.iter_mut() {
        let n = seen.entry(v.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            v.name = format!("{}#{n}", v.name);
        }
    }
}

/// Every host once, by "host:port", in the order the vantages list them.
fn union_hosts(reports: &[&Snapshot]) -> Vec<Arc<HostReport>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in reports {
        for h in &r.hosts {
            if seen.insert(format!("{}:{}", h.host, h.port)) {
                out.push(h.clone());
            }
        }
    }
    out
}

/// Connected components over every vantage's groups (union-find on member names), in the
/// order their first member appears; problems counted over the merged pairs.
fn union_groups(reports: &[&Snapshot], pairs: &[Arc<PairReport>]) -> Vec<GroupReport> {
    let mut id: HashMap<&str, usize> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for r in reports {
        for g in &r.groups {
            let mut first = None;
            for m in &g.members {
                let i = *id.entry(m.as_str()).or_insert_with(|| {
                    names.push(m.as_str());
                    parent.push(parent.len());
                    parent.len() - 1
                });
                match first {
                    None => first = Some(i),
                    Some(f) => {
                        let (a, b) = (root(&mut parent, f), root(&mut parent, i));
                        parent[b] = a;
                    }
                }
            }
        }
    }
    let mut by_root: BTreeMap<usize, usize> = BTreeMap::new();
    let mut groups: Vec<GroupReport> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let r = root(&mut parent, i);
        let g = *by_root.entry(r).or_insert_with(|| {
            groups.push(GroupReport {
                id: groups.len() as u32 + 1,
                members: Vec::new(),
                problems: 0,
            });
            groups.len() - 1
        });
        groups[g].members.push(name.to_string());
    }
    for p in pairs.iter().filter(|p| p.verdict.is_problem()) {
        if let Some(&i) = id.get(&*p.origin) {
            let r = root(&mut parent, i);
            if let Some(&g) = by_root.get(&r) {
                groups[g].problems += 1;
            }
        }
    }
    groups.retain(|g| g.members.len() > 1);
    for (i, g) in groups.iter_mut().enumerate() {
        g.id = i as u32 + 1;
    }
    groups
}

/// Counts summed over the vantages, shares at their worst.
fn sum(reports: &[&Snapshot], hosts: u32) -> Summary {
    let mut s = Snapshot::default().summary;
    s.hosts = hosts;
    for r in reports {
        let x = &r.summary;
        // Counts from the network: saturating, never a panic or a wrap.
        s.pairs = s.pairs.saturating_add(x.pairs);
        s.problems = s.problems.saturating_add(x.problems);
        s.cert_only_pairs = s.cert_only_pairs.saturating_add(x.cert_only_pairs);
        s.connections = s.connections.saturating_add(x.connections);
        s.requests = s.requests.saturating_add(x.requests);
        s.rounds = s.rounds.max(x.rounds);
        s.duration_s = s.duration_s.max(x.duration_s);
        for (v, n) in &x.verdicts {
            let c = s.verdicts.entry(*v).or_default();
            *c = c.saturating_add(*n);
        }
        s.host_errors = s.host_errors.saturating_add(x.host_errors);
        s.coverage = s.coverage.min(x.coverage);
        s.target_coverage = s.target_coverage.min(x.target_coverage);
        s.inconclusive = s.inconclusive.saturating_add(x.inconclusive);
        s.settle_rounds = s.settle_rounds.max(x.settle_rounds);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::snapshot::{Health, HostChange, HostEvent, VantageData, Verdict};
    use crate::report::json::{vantage_view_to_json, view_to_json};
    use crate::testing::views::lab_view;

    fn vantage(name: &str, report: Snapshot, local: bool) -> Vantage {
        Vantage {
            name: name.into(),
            source: if local {
                "local".into()
            } else {
                format!("http://{name}:9421")
            },
            local,
            health: Health {
                age: Duration::from_secs(1),
                answered: true,
                error: None,
                stale: false,
            },
            data: Arc::new(VantageData::new(Arc::new(report), None)),
        }
    }

    /// A lab view as `serve` writes it, read back as the fetcher reads it.
    fn served(name: Option<&str>) -> Snapshot {
        let json = vantage_view_to_json(&lab_view(), name);
        serde_json::from_str(&json).expect("serve's JSON parses as a Snapshot")
    }

    #[test]
    fn serve_json_round_trips_into_the_contract_type() {
        let view = lab_view();
        let back = served(Some("fra1"));
        assert_eq!(back.vantage.as_deref(), Some("fra1"));
        // Every listed pair comes back (pending ones included), the rest exactly.
        assert_eq!(back.pairs.len(), view.listed_len());
        let mut expected = view.report.clone();
        expected.vantage = Some("fra1".into());
        expected.pairs = view
            .listed_pairs()
            .filter_map(|p| view.listed_report(p))
            .collect();
        // A pair's cause (the table's grouping key) is not in the JSON.
        for p in &mut expected.pairs {
            Arc::make_mut(p).cause = None;
        }
        assert_eq!(back, expected);
        // Written again, the same text (fields skipped when empty stay skipped).
        assert_eq!(
            crate::report::json::to_json(&back),
            vantage_view_to_json(&view, Some("fra1"))
        );
        assert!(served(None).vantage.is_none());
        assert!(!view_to_json(&view).contains("\"vantage\""));
    }

    /// `serve`'s views list pending pairs by index: its JSON writes them in their place, and
    /// they come back as ordinary `pending` reports.
    #[test]
    fn pending_pairs_listed_by_index_come_back_as_reports() {
        use crate::engine::snapshot::EngineStatus;
        let synth = crate::testing::synth::Synth::new(30, 5);
        let mut store = synth.store(Duration::from_secs(60));
        store.list_pending_by_index(true);
        let view = store.publish(std::time::Instant::now(), EngineStatus::default(), false);
        assert!(!view.pending.is_empty(), "the view lists pending pairs by index");
        let json = vantage_view_to_json(&view, Some("lab"));
        let back: Snapshot = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.pairs.len(), view.listed_len());
        let pending = back
            .pairs
            .iter()
            .filter(|p| p.verdict == Verdict::Pending)
            .count();
        assert!(pending >= view.pending.len(), "{pending}");
        let listed: Vec<Arc<PairReport>> = view
            .listed_pairs()
            .filter_map(|p| view.listed_report(p))
            .collect();
        assert_eq!(back.pairs, listed);
        assert_eq!(back.vantage.as_deref(), Some("lab"));
    }

    #[test]
    fn two_vantages_merge_into_rows_per_vantage_and_a_union_of_hosts_and_groups() {
        let fra = served(Some("fra1"));
        let mut iad = served(Some("iad1"));
        // iad1 sees one pair differently and one host more.
        let p0 = Arc::make_mut(&mut iad.pairs[0]);
        p0.verdict = Verdict::NotCoalescable;
        let mut extra = (*iad.hosts[0]).clone();
        extra.host = "only-iad.test".into();
        iad.hosts.push(Arc::new(extra));
        let (nf, ni) = (fra.pairs.len(), iad.pairs.len());
        let list = vec![
            vantage("fra1", fra.clone(), false),
            vantage("iad1", iad.clone(), false),
        ];
        let view = merge(None, list, Timestamp::from_unix(0));
        assert_eq!(view.report.pairs.len(), nf + ni);
        assert_eq!(view.histories.len(), nf + ni);
        assert_eq!(view.report.hosts.len(), fra.hosts.len() + 1);
        assert_eq!(view.report.summary.hosts as usize, fra.hosts.len() + 1);
        assert_eq!(
            view.report.summary.problems,
            fra.summary.problems + iad.summary.problems
        );
        let vs = view.vantages.as_ref().expect("vantages");
        assert_eq!(
            (vs.of_pair(0), vs.of_pair(nf), vs.of_pair(nf + ni - 1)),
            (0, 1, 1)
        );
        let first = &fra.pairs[0];
        let verdicts: Vec<(String, Verdict)> = vs
            .verdicts(&first.origin, &first.target)
            .into_iter()
            .map(|(v, verdict)| (v.name.clone(), verdict))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("fra1".to_string(), first.verdict),
                ("iad1".to_string(), Verdict::NotCoalescable)
            ]
        );
        // The same groups as each (both see the lab's), members once each.
        let members = |g: &[GroupReport]| {
            let mut m: Vec<Vec<String>> = g
                .iter()
                .map(|g| {
                    let mut m = g.members.clone();
                    m.sort();
                    m
                })
                .collect();
            m.sort();
            m
        };
        assert_eq!(members(&view.report.groups), members(&fra.groups));
        // Narrowed to iad1: exactly its report.
        let iad_view = view.for_vantage(1).expect("iad1");
        assert_eq!(iad_view.report, iad);
        assert_eq!(view.status.source, "2 vantages");
    }

    #[test]
    fn groups_seen_apart_by_two_vantages_join_and_names_stay_unique() {
        let group = |members: &[&str]| GroupReport {
            id: 1,
            members: members.iter().map(|m| m.to_string()).collect(),
            problems: 0,
        };
        let a = Snapshot {
            groups: vec![group(&["a:443", "b:443"]), group(&["x:443", "y:443"])],
            ..Snapshot::default()
        };
        let b = Snapshot {
            groups: vec![group(&["b:443", "c:443"])],
            ..Snapshot::default()
        };
        let view = merge(
            None,
            vec![vantage("v", a, false), vantage("v", b, false)],
            Timestamp::from_unix(0),
        );
        let groups: Vec<(u32, Vec<String>)> = view
            .report
            .groups
            .iter()
            .map(|g| (g.id, g.members.clone()))
            .collect();
        assert_eq!(
            groups,
            vec![
                (1, vec!["a:443".into(), "b:443".into(), "c:443".into()]),
                (2, vec!["x:443".into(), "y:443".into()])
            ]
        );
        let names: Vec<&str> = view
            .vantages
            .as_ref()
            .unwrap()
            .list
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, vec!["v", "v#2"]);
    }

    #[test]
    fn remote_events_join_the_local_ones_in_time_order_within_the_bound() {
        let event = |at: i64, origin: &str| VerdictEvent {
            at: Timestamp::from_unix(at),
            origin: origin.into(),
            target: "t".into(),
            from: None,
            to: Verdict::Ok,
            message: String::new(),
        };
        let local = LiveView {
            events: Arc::new(vec![
                Event::Verdict(event(10, "local-a")),
                Event::Host(HostEvent {
                    at: Timestamp::from_unix(25),
                    host: "local-host".into(),
                    address: None,
                    change: HostChange::DnsRecovered,
                }),
                Event::Verdict(event(30, "local-b")),
            ]),
            ..LiveView::default()
        };
        let merged = events(Some(&local), vec![event(20, "fra1"), event(30, "fra1-late")]);
        let order: Vec<&str> = merged
            .iter()
            .map(|e| match e {
                Event::Verdict(v) => v.origin.as_str(),
                Event::Host(h) => h.host.as_str(),
            })
            .collect();
        assert_eq!(
            order,
            vec!["local-a", "fra1", "local-host", "local-b", "fra1-late"]
        );
        let many: Vec<VerdictEvent> = (0..1100).map(|i| event(i, "r")).collect();
        let kept = events(None, many);
        assert_eq!(kept.len(), crate::remote::events::MAX_EVENTS);
        assert_eq!(kept[0].at(), Timestamp::from_unix(100), "the oldest go first");
    }

    #[test]
    fn the_local_view_keeps_its_histories_events_and_status() {
        let local = lab_view();
        let remote = served(Some("fra1"));
        let list = vec![
            vantage("local", local.report.clone(), true),
            vantage("fra1", remote.clone(), false),
        ];
        let view = merge(Some(&local), list, Timestamp::from_unix(0));
        let n = local.report.pairs.len();
        assert_eq!(view.histories[..n], local.histories[..]);
        assert!(view.histories[n..].iter().all(|h| h.points().is_empty()));
        assert_eq!(view.status, local.status);
        assert!(Arc::ptr_eq(&view.events, &local.events));
        assert_eq!(view.for_vantage(0).expect("local").histories, local.histories);
    }
}

//! Vantage points of a merged view (`watch --from URL`): each is a `serve` instance seen over
//! HTTP, or the local engine. A merged `LiveView` lists the pairs vantage by vantage (each
//! row is one vantage's report of the pair) and carries each vantage's own report, its name,
//! where it comes from and how fresh it is; `LiveView::for_vantage` narrows it to one.
//!
//! Names, sources and errors come from the network or the command line: untrusted text,
//! sanitised where they are drawn.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{HostReport, LiveView, PairReport, Snapshot, Verdict};

/// (origin, target) → index into a report's pairs.
type PairIndex = HashMap<(Arc<str>, Arc<str>), u32>;

/// One vantage's last data, indexed by pair and host when first looked up (once per answer,
/// not per view; the local engine's data, remade per view, is indexed only when the details
/// ask: merging a view of 490,000 pairs must not build a map of them 4 times a second).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VantageData {
    pub report: Arc<Snapshot>,
    /// What the caps on accepted pairs and hosts left out, when they did.
    pub note: Option<String>,
    /// (origin, target) → index into `report.pairs`.
    pair_at: OnceLock<PairIndex>,
    /// "host:port" → index into `report.hosts`.
    host_at: OnceLock<HashMap<String, u32>>,
}

impl VantageData {
    pub fn new(report: Arc<Snapshot>, note: Option<String>) -> VantageData {
        VantageData {
            report,
            note,
            pair_at: OnceLock::new(),
            host_at: OnceLock::new(),
        }
    }

    /// This vantage's report of the pair `origin → target`.
    pub fn pair(&self, origin: &Arc<str>, target: &Arc<str>) -> Option<&Arc<PairReport>> {
        let pair_at = self.pair_at.get_or_init(|| {
            let pairs = self.report.pairs.iter().enumerate();
            pairs
                .map(|(i, p)| ((p.origin.clone(), p.target.clone()), i as u32))
                .collect()
        });
        let i = *pair_at.get(&(origin.clone(), target.clone()))?;
        self.report.pairs.get(i as usize)
    }

    /// This vantage's report of the host "host:port".
    pub fn host(&self, key: &str) -> Option<&Arc<HostReport>> {
        let host_at = self.host_at.get_or_init(|| {
            let hosts = self.report.hosts.iter().enumerate();
            hosts
                .map(|(i, h)| (format!("{}:{}", h.host, h.port), i as u32))
                .collect()
        });
        let i = *host_at.get(key)?;
        self.report.hosts.get(i as usize)
    }
}

/// Is a vantage answering?
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Time since its last answer, or since it was first asked when it never answered.
    pub age: Duration,
    /// It answered at least once (its data is real, not the empty report).
    pub answered: bool,
    /// Why the last request failed (None: it answered). Untrusted text.
    pub error: Option<String>,
    /// Not answering: the last request failed, or the last answer is older than the bound.
    pub stale: bool,
}

/// A vantage point of a merged view.
#[derive(Debug, Clone, PartialEq)]
pub struct Vantage {
    /// As named by `--from NAME=URL`, by the serve instance (`--vantage`), or its host:port.
    pub name: String,
    /// The URL asked, or "local" for the local engine.
    pub source: String,
    pub local: bool,
    pub health: Health,
    pub data: Arc<VantageData>,
}

/// The vantages of a merged view, and which of them it shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vantages {
    pub list: Arc<[Vantage]>,
    /// Where each vantage's pairs start in the merged `report.pairs`.
    starts: Arc<[u32]>,
    /// The vantage this view was narrowed to (`LiveView::for_vantage`); None: all of them.
    pub showing: Option<usize>,
}

impl Vantages {
    /// Vantages whose pairs are listed in this order, each `list[i].data.report.pairs` in full.
    pub fn new(list: Vec<Vantage>) -> Vantages {
        let mut starts = Vec::with_capacity(list.len());
        let mut at = 0u32;
        for v in &list {
            starts.push(at);
            at += v.data.report.pairs.len() as u32;
        }
        Vantages {
            list: list.into(),
            starts: starts.into(),
            showing: None,
        }
    }

    /// The vantage (index into `list`) whose report pair `p` of the view is.
    pub fn of_pair(&self, p: usize) -> usize {
        if let Some(v) = self.showing {
            return v;
        }
        self.starts
            .partition_point(|&s| s as usize <= p)
            .saturating_sub(1)
    }

    /// The positions of vantage `v`'s pairs in the merged (not narrowed) view.
    pub fn pairs_of(&self, v: usize) -> Range<usize> {
        let start = self.starts.get(v).map_or(0, |&s| s as usize);
        let len = self.list.get(v).map_or(0, |x| x.data.report.pairs.len());
        start..start + len
    }

    /// Every vantage's verdict on `origin → target` (those that list the pair), in list order.
    pub fn verdicts(&self, origin: &Arc<str>, target: &Arc<str>) -> Vec<(&Vantage, Verdict)> {
        self.list
            .iter()
            .filter_map(|v| v.data.pair(origin, target).map(|p| (v, p.verdict)))
            .collect()
    }
}

impl LiveView {
    /// The view narrowed to vantage `v` of a merged view: its own report, its pairs' rows
    /// and histories; the vantage list stays (with `showing` set). None when the view has
    /// no such vantage.
    pub fn for_vantage(&self, v: usize) -> Option<LiveView> {
        let vantages = self.vantages.as_ref()?;
        let vantage = vantages.list.get(v)?;
        let range = vantages.pairs_of(v);
        let histories = self.histories.get(range).map(<[_]>::to_vec).unwrap_or_default();
        Some(LiveView {
            report: (*vantage.data.report).clone(),
            histories,
            events: self.events.clone(),
            event_totals: self.event_totals,
            status: self.status.clone(),
            changes: Default::default(),
            pending: Default::default(),
            vantages: Some(Vantages {
                showing: Some(v),
                ..vantages.clone()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(o: &str, t: &str, verdict: Verdict) -> Arc<PairReport> {
        let mut p: PairReport = serde_json::from_value(serde_json::json!({
            "origin": o, "target": t, "verdict": "ok", "reason": null, "shared_addresses": [],
            "cert_covers": true, "coalesce": {"chrome": true, "firefox": true}, "probes": 1,
            "rate_421": 0.0, "addresses": [], "explanation": "", "fix": null, "error": null
        }))
        .expect("pair");
        p.verdict = verdict;
        Arc::new(p)
    }

    fn vantage(name: &str, pairs: Vec<Arc<PairReport>>) -> Vantage {
        let report = Snapshot {
            pairs,
            ..Snapshot::default()
        };
        Vantage {
            name: name.into(),
            source: format!("http://{name}"),
            local: false,
            health: Health::default(),
            data: Arc::new(VantageData::new(Arc::new(report), None)),
        }
    }

    #[test]
    fn pairs_are_found_by_vantage_and_views_narrow_to_one() {
        let (a, b) = ("a.test:443", "b.test:443");
        let fra = vantage(
            "fra1",
            vec![pair(a, b, Verdict::Misdirected), pair(b, a, Verdict::Ok)],
        );
        let iad = vantage("iad1", vec![pair(a, b, Verdict::NotCoalescable)]);
        let vantages = Vantages::new(vec![fra.clone(), iad]);
        assert_eq!(
            (0..3).map(|p| vantages.of_pair(p)).collect::<Vec<_>>(),
            vec![0, 0, 1]
        );
        assert_eq!(vantages.pairs_of(1), 2..3);
        let said: Vec<(&str, Verdict)> = vantages
            .verdicts(&Arc::from(a), &Arc::from(b))
            .into_iter()
            .map(|(v, verdict)| (v.name.as_str(), verdict))
            .collect();
        assert_eq!(
            said,
            vec![("fra1", Verdict::Misdirected), ("iad1", Verdict::NotCoalescable)]
        );
        let mut view = LiveView {
            vantages: Some(vantages),
            ..LiveView::default()
        };
        view.report.pairs = fra.data.report.pairs.clone();
        view.report.pairs.push(pair(a, b, Verdict::NotCoalescable));
        let iad_only = view.for_vantage(1).expect("vantage 1");
        assert_eq!(iad_only.report.pairs.len(), 1);
        assert_eq!(iad_only.report.pairs[0].verdict, Verdict::NotCoalescable);
        let narrowed = iad_only.vantages.as_ref().expect("vantages");
        assert_eq!((narrowed.showing, narrowed.of_pair(0)), (Some(1), 1));
        assert!(view.for_vantage(2).is_none());
        assert!(LiveView::default().for_vantage(0).is_none());
    }
}

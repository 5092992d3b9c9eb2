//! A merged view of two vantages for the dashboard's snapshot and key tests: the lab view as
//! `serve --vantage fra1` writes it (read back as `watch --from` reads it), and `iad1`, whose
//! DNS gave every name an address of its own (so what `fra1` finds refused, `iad1` finds
//! not coalescable), merged by the real merge step at fixed ages.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::snapshot::{Health, LiveView, NotCoalescable, Snapshot, Vantage, VantageData, Verdict};
use crate::remote::merge::merge;
use crate::report::json::vantage_view_to_json;
use crate::testing::views::lab_view;

/// The lab view as served by `serve --vantage NAME`, parsed back.
pub fn served(name: &str) -> Snapshot {
    let json = vantage_view_to_json(&lab_view(), Some(name));
    serde_json::from_str(&json).expect("serve's JSON parses as a Snapshot")
}

/// `fra1`'s report seen from a place where the names do not share addresses: the pairs some
/// client would coalesce become not coalescable (no shared address), the hosts' addresses
/// moved by one.
pub fn apart(mut report: Snapshot) -> Snapshot {
    report.vantage = Some("iad1".into());
    for p in &mut report.pairs {
        let p = Arc::make_mut(p);
        if p.verdict != Verdict::NotCoalescable {
            p.verdict = Verdict::NotCoalescable;
            p.reason = Some(NotCoalescable::NoSharedAddress);
            p.shared_addresses.clear();
            p.addresses.clear();
            p.probes = 0;
            p.refusal_rate = None;
            p.fix = None;
            p.impact.clear();
            p.explanation = "no address is shared: clients open a connection per name".into();
        }
    }
    for h in &mut report.hosts {
        let h = Arc::make_mut(h);
        for a in &mut h.addresses {
            *a = a.replace("127.0.0.", "127.0.1.");
        }
    }
    report.summary.problems = 0;
    for g in &mut report.groups {
        g.problems = 0;
    }
    report
}

fn vantage(name: &str, report: Snapshot, health: Health) -> Vantage {
    Vantage {
        name: name.into(),
        source: format!("http://{name}.test:9421/"),
        local: false,
        health,
        data: Arc::new(VantageData::new(Arc::new(report), None)),
    }
}

/// `fra1` (fresh, answered 1 s ago) and `iad1` (fresh too, or, when `iad1_stale`, not
/// answering for 34 s with the error a stopped `serve` gives).
pub fn two_vantage_view(iad1_stale: bool) -> LiveView {
    let fra = served("fra1");
    let iad = apart(served("iad1"));
    let fresh = Health {
        age: Duration::from_secs(1),
        answered: true,
        error: None,
        stale: false,
    };
    let iad_health = if iad1_stale {
        Health {
            age: Duration::from_secs(34),
            answered: true,
            error: Some("cannot connect: Connection refused (os error 111)".into()),
            stale: true,
        }
    } else {
        fresh.clone()
    };
    let at = fra.generated_at;
    merge(
        None,
        vec![vantage("fra1", fra, fresh), vantage("iad1", iad, iad_health)],
        at,
    )
}

//! Verdict changes of the remote vantages: a pair whose verdict differs between two answers
//! of one vantage is an event (its message led by the vantage's name), as the local engine
//! logs its own. The first answer of a vantage makes none. Bounded like the engine's log.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engine::snapshot::{VantageData, VerdictEvent};

pub use crate::engine::snapshot::MAX_EVENTS;

#[derive(Debug, Default)]
pub struct Changes {
    /// Per vantage (its position among the `--from`s): the answer last compared.
    seen: HashMap<usize, Arc<VantageData>>,
    events: VecDeque<VerdictEvent>,
    /// Events logged so far (dropped ones included): what changed since a reader last looked.
    logged: u64,
}

impl Changes {
    /// Compare vantage `v`'s data (named `name`) with what it answered before, when it is a
    /// new answer; log the pairs whose verdict changed.
    pub fn observe(&mut self, v: usize, name: &str, data: &Arc<VantageData>) {
        let answered = |d: &VantageData| !d.report.pairs.is_empty() || !d.report.hosts.is_empty();
        match self.seen.get(&v) {
            Some(old) if Arc::ptr_eq(old, data) => return,
            Some(old) if answered(old) => {
                for p in &data.report.pairs {
                    let before = old.pair(&p.origin, &p.target).map(|o| o.verdict);
                    if before == Some(p.verdict) {
                        continue;
                    }
                    if self.events.len() == MAX_EVENTS {
                        self.events.pop_front();
                    }
                    self.logged += 1;
                    self.events.push_back(VerdictEvent {
                        at: data.report.generated_at,
                        origin: p.origin.to_string(),
                        target: p.target.to_string(),
                        from: before,
                        to: p.verdict,
                        message: format!("{name}: {}", p.explanation),
                    });
                }
            }
            _ => {}
        }
        self.seen.insert(v, data.clone());
    }

    /// The events so far, oldest first.
    pub fn events(&self) -> Vec<VerdictEvent> {
        self.events.iter().cloned().collect()
    }

    /// Events logged so far, dropped ones included (grows with every new event).
    pub fn logged(&self) -> u64 {
        self.logged
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{Snapshot, Verdict};
    use crate::testing::vantages::{apart, served};

    fn data(report: Snapshot) -> Arc<VantageData> {
        Arc::new(VantageData::new(Arc::new(report), None))
    }

    #[test]
    fn a_changed_verdict_between_two_answers_is_an_event() {
        let mut c = Changes::default();
        let first = data(served("fra1"));
        c.observe(0, "fra1", &Arc::default());
        c.observe(0, "fra1", &first);
        assert!(c.is_empty(), "the first answer makes no events");
        c.observe(0, "fra1", &first);
        c.observe(0, "fra1", &data(served("fra1")));
        assert!(c.is_empty(), "the same verdicts make none");
        let moved = apart(served("fra1"));
        let changed = moved
            .pairs
            .iter()
            .zip(&first.report.pairs)
            .filter(|(a, b)| a.verdict != b.verdict)
            .count();
        c.observe(0, "fra1", &data(moved));
        let events = c.events();
        assert_eq!(events.len(), changed);
        assert!(changed > 0);
        assert!(events
            .iter()
            .all(|e| e.to == Verdict::NotCoalescable && e.from.is_some() && e.message.starts_with("fra1: ")));
        // Another vantage's first answer: nothing.
        c.observe(1, "iad1", &data(served("iad1")));
        assert_eq!(c.events().len(), changed);
    }
}

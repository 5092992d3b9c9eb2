//! What changed between two watch lists, for the live dashboard's hot reload: probes of
//! unchanged entries keep running and keep their history.

use std::collections::{HashMap, HashSet};

use super::{Entry, WatchList};

/// Entries keyed by `Entry::key()` (host and port). New-side entries are returned for
/// `added`, `changed` and `unchanged` (so line numbers are the new file's), old-side ones for
/// `removed`; each list keeps its file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchDiff {
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    /// Same key, another path.
    pub changed: Vec<Entry>,
    /// Same key and path (the line may have moved).
    pub unchanged: Vec<Entry>,
}

impl WatchDiff {
    /// True when the probes need no change at all.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

pub fn diff(old: &WatchList, new: &WatchList) -> WatchDiff {
    let old_by_key: HashMap<String, &Entry> = old.entries.iter().map(|e| (e.key(), e)).collect();
    let new_keys: HashSet<String> = new.entries.iter().map(Entry::key).collect();
    let mut d = WatchDiff::default();
    for e in &new.entries {
        match old_by_key.get(&e.key()) {
            None => d.added.push(e.clone()),
            Some(o) if o.path != e.path => d.changed.push(e.clone()),
            Some(_) => d.unchanged.push(e.clone()),
        }
    }
    d.removed = old
        .entries
        .iter()
        .filter(|e| !new_keys.contains(&e.key()))
        .cloned()
        .collect();
    d
}

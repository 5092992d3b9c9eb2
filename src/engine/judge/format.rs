//! How the report writes what the records hold: addresses, status counts, medians, and lists
//! cut to a readable length.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::engine::record::Outcome;

/// The contract's address text: a plain IP (IPv6 without brackets).
pub(super) fn addr_text(a: &IpAddr) -> String {
    a.to_string()
}

/// Answers per status ("200" → 3), failures left out.
pub(super) fn count_statuses<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> BTreeMap<String, u32> {
    let mut m = BTreeMap::new();
    for a in outcomes.into_iter().flatten() {
        *m.entry(a.status.to_string()).or_default() += 1;
    }
    m
}

/// The status counted most often (the highest of equals).
pub(super) fn most_frequent(statuses: &BTreeMap<String, u32>) -> Option<u16> {
    statuses
        .iter()
        .max_by_key(|(_, n)| **n)
        .and_then(|(s, _)| s.parse().ok())
}

/// The median, in milliseconds rounded to 0.01.
pub(super) fn median_ms(v: &[Duration]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort();
    Some((v[v.len() / 2].as_secs_f64() * 1e5).round() / 100.0)
}

/// Items shown in one finding message; the rest are counted ("and N more").
const LISTED: usize = 5;
/// Characters of one item shown in a message (a hostile certificate's names run to 10,000).
const ITEM_CHARS: usize = 256;

/// `s`, cut to `ITEM_CHARS` characters ("…" when cut).
pub(super) fn bounded(s: &str) -> String {
    match s.char_indices().nth(ITEM_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The first `LISTED` items joined (each `bounded`), then "and N more".
pub(super) fn first_of(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(LISTED)
        .map(|i| bounded(i))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED {
        s.push_str(&format!(" and {} more", items.len() - LISTED));
    }
    s
}

/// A certificate's SANs for a message: the first few, "and N more", or "none".
pub(super) fn summarise_sans(sans: &[String]) -> String {
    let mut s = first_of(sans);
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

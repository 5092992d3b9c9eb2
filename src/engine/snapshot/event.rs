//! The live engine's event log: pair verdict changes and what changed under a host (its
//! certificate, its addresses, its DNS answer going stale, failing, recovering). Typed until
//! written: `message` and `EventRow` (the `/api/events` JSON) are made from the data.

use serde::{Deserialize, Serialize};

use super::{EventKind, Timestamp, Verdict};

/// Events kept, oldest dropped first: by the live engine's store, by a remote vantage's
/// merged log, and in `/api/events` (which serves them all).
pub const MAX_EVENTS: usize = 1000;

/// A pair whose verdict changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictEvent {
    pub at: Timestamp,
    pub origin: String,
    pub target: String,
    /// Verdict before (None when the pair is new).
    pub from: Option<Verdict>,
    pub to: Verdict,
    /// The pair's explanation at the time of the change.
    pub message: String,
}

/// A certificate as an event names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// SHA-256 of the leaf's DER, hex.
    pub sha256: String,
    pub not_after: Timestamp,
}

/// What changed under a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// A different leaf certificate at the event's address.
    CertChanged {
        old: CertId,
        new: CertId,
        /// DNS SANs of the new certificate the old one lacked, and the other way round.
        sans_added: Vec<String>,
        sans_removed: Vec<String>,
    },
    /// The name's addresses changed (plain IPs).
    AddressesChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// A lookup failed; the last good answer is used until `until`.
    DnsStale { error: String, until: Timestamp },
    /// The last good answer is not used any more: `dns-error`.
    DnsFailed { error: String },
    /// A good answer after `DnsStale` or `DnsFailed`.
    DnsRecovered,
}

/// A host event: `host` is the watch-file's "host:port", `address` the IP it concerns (a
/// certificate change), unsanitised (names and SANs come from the network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEvent {
    pub at: Timestamp,
    pub host: String,
    pub address: Option<String>,
    pub change: HostChange,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Verdict(VerdictEvent),
    Host(HostEvent),
}

/// Events recorded since the start, per kind (`EventKind::ALL` order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTotals([u64; EventKind::ALL.len()]);

impl EventTotals {
    pub fn add(&mut self, kind: EventKind) {
        self.0[kind as usize] += 1;
    }

    pub fn get(&self, kind: EventKind) -> u64 {
        self.0[kind as usize]
    }

    /// Each count the larger of the two (a reader's guard against going down).
    pub fn keep_max(&mut self, other: &EventTotals) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = (*mine).max(theirs);
        }
    }
}

/// An event as `/api/events` writes it (the contract's flat row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub at: Timestamp,
    pub kind: EventKind,
    pub host: Option<String>,
    pub address: Option<String>,
    pub origin: Option<String>,
    pub target: Option<String>,
    pub from: Option<Verdict>,
    pub to: Option<Verdict>,
    pub message: String,
}

/// At most this many characters of a hex fingerprint in a message.
const SHORT_SHA: usize = 12;

fn short(sha: &str) -> &str {
    sha.get(..SHORT_SHA).unwrap_or(sha)
}

/// "+a +b -c": what was added, then what was removed.
fn added_removed(added: &[String], removed: &[String]) -> String {
    let added = added.iter().map(|n| format!("+{n}"));
    let removed = removed.iter().map(|n| format!("-{n}"));
    added.chain(removed).collect::<Vec<_>>().join(" ")
}

impl HostChange {
    pub fn kind(&self) -> EventKind {
        match self {
            HostChange::CertChanged { .. } => EventKind::CertChanged,
            HostChange::AddressesChanged { .. } => EventKind::AddressesChanged,
            HostChange::DnsStale { .. } => EventKind::DnsStale,
            HostChange::DnsFailed { .. } => EventKind::DnsFailed,
            HostChange::DnsRecovered => EventKind::DnsRecovered,
        }
    }

    /// One line saying what changed.
    pub fn message(&self) -> String {
        match self {
            HostChange::CertChanged {
                old,
                new,
                sans_added,
                sans_removed,
            } => {
                let mut text = format!(
                    "certificate changed: sha256 {} → {}, not after {} → {}",
                    short(&old.sha256),
                    short(&new.sha256),
                    old.not_after,
                    new.not_after
                );
                if !sans_added.is_empty() || !sans_removed.is_empty() {
                    text.push_str(&format!("; SANs {}", added_removed(sans_added, sans_removed)));
                }
                text
            }
            HostChange::AddressesChanged { added, removed } => {
                format!("addresses changed: {}", added_removed(added, removed))
            }
            HostChange::DnsStale { error, until } => {
                format!("DNS lookup failed ({error}): the last good answer is used until {until}")
            }
            HostChange::DnsFailed { error } => {
                format!("DNS lookup failed ({error}) and no good answer is left: dns-error")
            }
            HostChange::DnsRecovered => "DNS answers again".to_string(),
        }
    }
}

impl Event {
    pub fn at(&self) -> Timestamp {
        match self {
            Event::Verdict(v) => v.at,
            Event::Host(h) => h.at,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Event::Verdict(_) => EventKind::Verdict,
            Event::Host(h) => h.change.kind(),
        }
    }

    /// The verdict change, for the readers that want only those.
    pub fn as_verdict(&self) -> Option<&VerdictEvent> {
        match self {
            Event::Verdict(v) => Some(v),
            Event::Host(_) => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Event::Verdict(v) => v.message.clone(),
            Event::Host(h) => h.change.message(),
        }
    }

    /// The contract's row (`/api/events`).
    pub fn row(&self) -> EventRow {
        let (host, address, origin, target, from, to) = match self {
            Event::Verdict(v) => (
                None,
                None,
                Some(v.origin.clone()),
                Some(v.target.clone()),
                v.from,
                Some(v.to),
            ),
            Event::Host(h) => (Some(h.host.clone()), h.address.clone(), None, None, None, None),
        };
        EventRow {
            at: self.at(),
            kind: self.kind(),
            host,
            address,
            origin,
            target,
            from,
            to,
            message: self.message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_contract() {
        let cert = |sha: &str, at| CertId {
            sha256: sha.into(),
            not_after: Timestamp::from_unix(at),
        };
        let event = Event::Host(HostEvent {
            at: Timestamp::from_unix(0),
            host: "a.test:443".into(),
            address: Some("127.0.0.1".into()),
            change: HostChange::CertChanged {
                old: cert("aaaaaaaaaaaaaaaaaaaa", 86_400),
                new: cert("bbbbbbbbbbbbbbbbbbbb", 172_800),
                sans_added: vec!["c.test".into()],
                sans_removed: vec!["b.test".into()],
            },
        });
        let row = serde_json::to_value(event.row()).unwrap();
        assert_eq!(row["kind"], "cert-changed");
        assert_eq!(row["host"], "a.test:443");
        assert_eq!(row["address"], "127.0.0.1");
        assert!(row["origin"].is_null() && row["from"].is_null() && row["to"].is_null());
        assert_eq!(
            row["message"],
            "certificate changed: sha256 aaaaaaaaaaaa → bbbbbbbbbbbb, not after \
             1970-01-02T00:00:00Z → 1970-01-03T00:00:00Z; SANs +c.test -b.test"
        );
        let verdict = Event::Verdict(VerdictEvent {
            at: Timestamp::from_unix(0),
            origin: "a.test:443".into(),
            target: "b.test:443".into(),
            from: Some(Verdict::Ok),
            to: Verdict::Misdirected,
            message: "m".into(),
        });
        let row = serde_json::to_value(verdict.row()).unwrap();
        assert_eq!(
            (row["kind"].as_str(), row["from"].as_str()),
            (Some("verdict"), Some("ok"))
        );
        assert_eq!(row["to"], "misdirected");
        assert!(row["host"].is_null());
        let mut totals = EventTotals::default();
        totals.add(verdict.kind());
        totals.add(event.kind());
        totals.add(event.kind());
        assert_eq!(EventKind::ALL.map(|k| totals.get(k)), [1, 2, 0, 0, 0, 0]);
    }
}

//! DNS answers in the store, and the policy for failed lookups: a browser with a cached answer
//! keeps using it, so a failed lookup (no answer, SERVFAIL, REFUSED, a timeout, no nameserver)
//! keeps the last good answer in use until its TTL plus the grace (`--dns-grace`), marked
//! stale, while lookups are retried every cycle and probes go on against the kept addresses.
//! After that, or at once for a definitive failure (NXDOMAIN, a CNAME loop: the cached answer's
//! TTL has run out when the engine asks again), the failure replaces the answer (`dns-error`,
//! the addresses and their samples forgotten). Overrides and IP literals never fail. The
//! changes are host events: `dns-stale`, `dns-failed`, `dns-recovered`, `addresses-changed`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::engine::probe::dns::{DnsAnswer, StaleDns};
use crate::engine::snapshot::{HostChange, Timestamp};

use super::samples::LiveHost;
use super::Store;

/// Until when `h`'s answer may be kept through failed lookups: its TTL plus `grace` after it
/// came. None when there is no good answer to keep (none yet, an error, no TTL).
fn keep_until(h: &LiveHost, grace: Duration) -> Option<Instant> {
    if h.dns.error.is_some() || h.dns.overridden {
        return None;
    }
    let ttl = Duration::from_secs(u64::from(h.dns.ttl_s?));
    h.dns_at?.checked_add(ttl + grace)
}

/// What is in `new` and not in `old`, as text.
fn missing_from(new: &[IpAddr], old: &[IpAddr]) -> Vec<String> {
    new.iter()
        .filter(|a| !old.contains(a))
        .map(IpAddr::to_string)
        .collect()
}

impl Store {
    /// How long after its TTL a last good answer is used while lookups fail.
    pub fn set_dns_grace(&mut self, grace: Duration) {
        self.dns_grace = grace;
    }

    /// A DNS answer for a host, received now.
    pub fn set_dns(&mut self, key: &str, answer: DnsAnswer) {
        self.set_dns_at(key, answer, Instant::now(), Timestamp::now());
    }

    /// A DNS answer for a host received at `now` (`unix` the same moment): a good one replaces
    /// the last, a failure keeps it while the grace lasts (see the module's text).
    pub fn set_dns_at(&mut self, key: &str, answer: DnsAnswer, now: Instant, unix: Timestamp) {
        let Some(i) = self.index.get(key).copied() else {
            return;
        };
        let grace = self.dns_grace;
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        let mut changes = Vec::new();
        match &answer.error {
            None => {
                if h.dns_lost || h.dns.stale.is_some() {
                    changes.push(HostChange::DnsRecovered);
                }
                if let Some(old) = h
                    .good_addresses
                    .as_deref()
                    .filter(|old| **old != answer.addresses)
                {
                    changes.push(HostChange::AddressesChanged {
                        added: missing_from(&answer.addresses, old),
                        removed: missing_from(old, &answer.addresses),
                    });
                }
                h.good_addresses = Some(answer.addresses.clone());
                h.dns_lost = false;
                self.replace_dns(i, answer, now);
            }
            Some(error) => {
                let keeps = answer.failure.is_some_and(|f| f.keeps_last_answer());
                match keep_until(h, grace).filter(|until| keeps && now < *until) {
                    Some(until) => {
                        let until = Timestamp::from_unix(
                            unix.unix()
                                .saturating_add(until.duration_since(now).as_secs() as i64),
                        );
                        if h.dns.stale.is_none() {
                            changes.push(HostChange::DnsStale {
                                error: error.clone(),
                                until,
                            });
                        }
                        let since = h.dns.stale.as_ref().map_or(unix.unix(), |s| s.since);
                        h.dns.stale = Some(StaleDns {
                            since,
                            until: until.unix(),
                            error: error.clone(),
                        });
                        // The host's report changes (a finding), its pairs do not.
                        // (`tick`, which cannot be called while `h` is borrowed)
                        self.clock += 1;
                        h.gen = self.clock;
                    }
                    None => {
                        if h.dns.error.is_none() && h.dns_at.is_some() && !h.dns.overridden {
                            changes.push(HostChange::DnsFailed { error: error.clone() });
                            h.dns_lost = true;
                        }
                        self.replace_dns(i, answer, now);
                    }
                }
            }
        }
        for change in changes {
            self.host_event(i, None, change, unix);
        }
    }

    /// Today's behaviour for a new answer: addresses it no longer has are forgotten with
    /// their samples (clients no longer go there). The coalesced requests an origin made at
    /// such an address stay in the pair's sparkline until they leave the window, but its
    /// verdict is judged at the name's addresses only (`judge::pairs`), so they no longer
    /// count.
    fn replace_dns(&mut self, i: usize, answer: DnsAnswer, now: Instant) {
        let gen = self.tick();
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        let moved = h.dns.addresses != answer.addresses;
        if moved {
            self.topology_changed = true;
        }
        let before = h.endpoints.len();
        h.endpoints.retain(|a, _| answer.addresses.contains(a));
        self.sweep_due |= h.endpoints.len() != before;
        for a in &answer.addresses {
            h.endpoints.entry(*a).or_default();
        }
        h.dns = answer;
        h.dns_at = Some(now);
        h.gen = gen;
        if moved {
            h.pair_gen = gen;
        }
    }

    /// Is the DNS answer of `key` still good at `now`? Answers are reused within their TTL
    /// (overrides and IP literals forever); failures, stale answers included, are retried
    /// every time.
    pub fn dns_fresh(&self, key: &str, now: Instant) -> bool {
        let Some(h) = self.index.get(key).and_then(|&i| self.hosts.get(i)) else {
            return false;
        };
        if h.dns.stale.is_some() {
            return false;
        }
        match (h.dns_at, &h.dns.error) {
            (Some(at), None) => match h.dns.ttl_s {
                Some(ttl) => now.saturating_duration_since(at) < Duration::from_secs(u64::from(ttl)),
                None => h.dns.overridden,
            },
            _ => false,
        }
    }
}

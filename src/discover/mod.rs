//! `coalscope discover NAME…`: which names can coalesce with these? Candidates are the NAMEs,
//! the concrete SANs of the certificates they serve, and the names on the certificates
//! Certificate Transparency lists for them (`ct`, `crtsh`); wildcards stand for no name by
//! themselves. Every candidate is resolved with the engine's DNS and its certificate read at
//! its addresses (`probe`); names linked by a certificate covering another name at a shared
//! address are grouped (`group`) and written as a watch-file (`write`).
//!
//! Ports: a name found on a NAME's certificate takes that NAME's port; a name found in CT
//! takes the port of the first NAME on the same certificate, else the first NAME's.

pub mod crtsh;
pub mod ct;
pub mod group;
pub mod probe;
pub mod write;

use std::collections::{BTreeSet, HashMap};

use crate::engine::probe::cert;
use crate::engine::probe::dns::Dns;
use crate::engine::probe::tls::TlsSettings;
use crate::watchlist::Entry;

use self::crtsh::{CtCert, CtCollector, CtStats};
use self::ct::{CtClient, CtError, MAX_BODY};
use self::probe::Probed;

/// Where the Certificate Transparency names come from.
pub enum CtSource {
    /// `--no-ct`.
    Skip,
    /// An API in crt.sh's format.
    Api(CtClient),
    /// A saved answer (`--ct-file`), read (and found to be a crt.sh answer) before anything
    /// is probed: `name` is the file's, `collector` holds its certificates.
    File { name: String, collector: CtCollector },
}

pub struct DiscoverOptions {
    pub ct: CtSource,
    /// Domains asked about in CT (see [`ct_domains`]).
    pub ct_domains: Vec<String>,
    pub include_expired: bool,
    /// Also the names that share nothing.
    pub all: bool,
    /// Candidates probed at most (the NAMEs always are).
    pub max_names: usize,
    pub concurrency: usize,
    /// Seconds since the Unix epoch (expired certificates).
    pub now: i64,
}

/// What Certificate Transparency gave.
#[derive(Debug, Default)]
pub struct CtReport {
    /// The URL or file, for the header; None with `--no-ct`.
    pub source: Option<String>,
    pub certificates: usize,
    pub names: usize,
    pub stats: CtStats,
    /// Queries that failed after their retries (their answers are missing).
    pub failures: Vec<CtError>,
    /// Queries not sent because the API was found down (5xx, timeouts) on an earlier one.
    pub not_asked: usize,
}

/// What `discover` found and left out.
#[derive(Debug)]
pub struct Discovery {
    /// The watch-file.
    pub text: String,
    /// Entries in it.
    pub entries: usize,
    pub ct: CtReport,
    /// Distinct wildcard names seen (on the NAMEs' certificates and in CT).
    pub wildcards: usize,
    /// Names that did not resolve, with the reason.
    pub unresolved: Vec<(String, String)>,
    /// Resolved names whose certificate could not be read, with the reason.
    pub no_certificate: Vec<(String, String)>,
    /// Resolved names linked to no other (left out without `--all`).
    pub alone: Vec<String>,
    /// Candidates beyond `max_names`, not probed.
    pub capped: usize,
}

/// Run discovery for `seeds` (the NAMEs, normalised).
pub async fn discover(seeds: &[Entry], dns: &Dns, tls: &TlsSettings, options: DiscoverOptions) -> Discovery {
    let seed_names: Vec<(String, u16)> = unique(seeds.iter().map(|e| (e.host.clone(), e.port)));
    let (seed_probes, (ct_certs, ct)) = tokio::join!(
        probe::probe_names(dns, tls, &seed_names, options.concurrency),
        read_ct(&options),
    );
    let mut wildcards = BTreeSet::new();
    let mut candidates: Vec<(String, u16)> = seed_names.clone();
    for p in &seed_probes {
        for served in p.served.iter().filter_map(|(_, s)| s.as_ref().ok()) {
            for san in &served.summary.dns_sans {
                match crtsh::ct_name(san) {
                    Some(crtsh::CtName::Concrete(n)) => candidates.push((n, p.port)),
                    Some(crtsh::CtName::Wildcard(w)) => {
                        wildcards.insert(w);
                    }
                    None => {}
                }
            }
        }
    }
    let first_port = seed_names.first().map_or(443, |s| s.1);
    for c in &ct_certs {
        wildcards.extend(c.wildcards.iter().cloned());
        let port = ct_port(c, &seed_names).unwrap_or(first_port);
        candidates.extend(c.names.iter().map(|n| (n.clone(), port)));
    }
    let mut candidates = unique(candidates);
    let max = options.max_names.max(seed_names.len());
    let capped = candidates.len().saturating_sub(max);
    candidates.truncate(max);
    let rest = probe::probe_names(dns, tls, &candidates[seed_names.len()..], options.concurrency).await;
    let probed: Vec<Probed> = seed_probes.into_iter().chain(rest).collect();
    finish(probed, ct, ct_certs, wildcards.len(), capped, &options, seeds)
}

fn finish(
    probed: Vec<Probed>,
    ct: CtReport,
    ct_certs: Vec<CtCert>,
    wildcards: usize,
    capped: usize,
    options: &DiscoverOptions,
    seeds: &[Entry],
) -> Discovery {
    let grouping = group::group(&probed);
    let mut ct_issuers = HashMap::new();
    for c in &ct_certs {
        for n in &c.names {
            ct_issuers.entry(n.clone()).or_insert_with(|| c.issuer.clone());
        }
    }
    let header = write::Header {
        names: seeds.iter().map(Entry::key).collect(),
        ct: ct_line(&ct),
    };
    let text = write::watch_file(&probed, &grouping, &header, &ct_issuers, options.all);
    let grouped: usize = grouping.groups.iter().map(group::Group::len).sum();
    let entries = grouped + if options.all { grouping.alone.len() } else { 0 };
    let unresolved = probed
        .iter()
        .filter(|p| p.addresses.is_empty())
        .map(|p| {
            (
                p.host.clone(),
                p.dns_error.clone().unwrap_or_else(|| "no address".into()),
            )
        })
        .collect();
    let no_certificate = probed
        .iter()
        .filter_map(|p| Some((p.host.clone(), p.cert_error()?.to_string())))
        .collect();
    let alone = grouping.alone.iter().map(|i| write::entry(&probed[*i])).collect();
    Discovery {
        text,
        entries,
        ct,
        wildcards,
        unresolved,
        no_certificate,
        alone,
        capped,
    }
}

/// The header's line about CT.
fn ct_line(ct: &CtReport) -> String {
    let Some(source) = &ct.source else {
        return "not asked (--no-ct)".to_string();
    };
    let mut line = format!("{source}: {} certificates, {} names", ct.certificates, ct.names);
    if ct.stats.expired > 0 {
        line.push_str(&format!("; {} expired left out", ct.stats.expired));
    }
    if !ct.failures.is_empty() {
        line.push_str(&format!(
            "; {} quer{} FAILED, names from it missing",
            ct.failures.len(),
            if ct.failures.len() == 1 { "y" } else { "ies" }
        ));
    }
    if ct.not_asked > 0 {
        line.push_str(&format!("; {} not asked after that", ct.not_asked));
    }
    line
}

/// The port of the first NAME the certificate names (or covers by a wildcard).
fn ct_port(c: &CtCert, seeds: &[(String, u16)]) -> Option<u16> {
    seeds
        .iter()
        .find(|(host, _)| c.names.contains(host) || c.wildcards.iter().any(|w| cert::name_matches(w, host)))
        .map(|s| s.1)
}

/// The CT queries for `domains`, crt.sh's way: the name itself, and the names under it.
pub fn ct_queries(domains: &[String]) -> Vec<String> {
    unique(domains.iter().flat_map(|d| [d.clone(), format!("%.{d}")]))
}

/// The domains asked about in CT: `given` (`--ct-domain`), else the NAMEs' hosts (IP
/// addresses left out).
pub fn ct_domains(seeds: &[Entry], given: Vec<String>) -> Vec<String> {
    if given.is_empty() {
        unique(
            seeds
                .iter()
                .filter(|e| e.host.parse::<std::net::IpAddr>().is_err())
                .map(|e| e.host.clone()),
        )
    } else {
        unique(given)
    }
}

async fn read_ct(options: &DiscoverOptions) -> (Vec<CtCert>, CtReport) {
    let domains = &options.ct_domains;
    let mut report = CtReport::default();
    let collector = match &options.ct {
        CtSource::Skip => CtCollector::new(options.now, options.include_expired),
        CtSource::File { name, collector } => {
            report.source = Some(format!("file {name}"));
            collector.clone()
        }
        CtSource::Api(client) => {
            let mut collector = CtCollector::new(options.now, options.include_expired);
            let queries = ct_queries(domains);
            // One query at a time: crt.sh is a shared public service. Once it is found down
            // (after a query's retries), the others are not sent: the time CT may take stays
            // that of one query's attempts.
            for (n, q) in queries.iter().enumerate() {
                let url = client.query_url(q);
                let result = match client.get(&url).await {
                    Ok(body) => collector.add(url.as_str(), &body, domains).map_err(CtError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    let down = e.is_unavailable();
                    report.failures.push(e);
                    if down {
                        report.not_asked = queries.len() - n - 1;
                        break;
                    }
                }
            }
            let n = queries.len();
            let plural = if n == 1 { "y" } else { "ies" };
            report.source = Some(format!("{} ({n} quer{plural})", client.base()));
            collector
        }
    };
    let (certs, stats) = collector.finish();
    report.certificates = certs.len();
    report.names = certs.iter().flat_map(|c| &c.names).collect::<BTreeSet<_>>().len();
    report.stats = stats;
    (certs, report)
}

/// Read a saved CT answer, bounded like an API answer; the error names the file.
pub fn read_ct_file(path: &std::path::Path) -> Result<Vec<u8>, CtError> {
    use std::io::Read;
    let error = |message: String| CtError::File {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| error(format!("cannot read: {e}")))?;
    let mut body = Vec::new();
    file.take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| error(format!("cannot read: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(error(format!("larger than {} MiB", MAX_BODY / (1024 * 1024))));
    }
    Ok(body)
}

/// `items` without repeats, first occurrence kept, order kept.
fn unique<T: Clone + Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|i| seen.insert(i.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_ask_for_the_name_and_under_it_once() {
        let domains = vec![
            "example.com".to_string(),
            "www.example.com".into(),
            "example.com".into(),
        ];
        assert_eq!(
            ct_queries(&domains),
            vec![
                "example.com",
                "%.example.com",
                "www.example.com",
                "%.www.example.com"
            ]
        );
    }

    #[test]
    fn ct_names_take_the_port_of_the_name_on_their_certificate() {
        let cert = CtCert {
            id: 1,
            issuer: String::new(),
            names: vec!["api.a.test".into()],
            wildcards: vec!["*.a.test".into()],
            not_after: 0,
        };
        let seeds = vec![("x.b.test".to_string(), 443), ("www.a.test".to_string(), 8443)];
        assert_eq!(ct_port(&cert, &seeds), Some(8443));
        assert_eq!(ct_port(&cert, &seeds[..1]), None);
    }

    #[test]
    fn the_ct_line_says_what_was_left_out_and_what_failed() {
        let mut report = CtReport {
            source: Some("file ct.json".into()),
            certificates: 2,
            names: 5,
            ..CtReport::default()
        };
        assert_eq!(ct_line(&report), "file ct.json: 2 certificates, 5 names");
        report.stats.expired = 3;
        report.failures.push(CtError::Status {
            url: "https://ct.test/".into(),
            status: 503,
            attempts: 4,
        });
        assert_eq!(
            ct_line(&report),
            "file ct.json: 2 certificates, 5 names; 3 expired left out; 1 query FAILED, names from it missing"
        );
        assert_eq!(ct_line(&CtReport::default()), "not asked (--no-ct)");
    }
}

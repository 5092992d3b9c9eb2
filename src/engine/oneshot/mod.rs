//! One `check` run: resolve every name, then probe a fixed number of rounds. Each round opens
//! fresh connections, in a new random order: per (origin A, address X) one HTTP/2 connection
//! with SNI = A that requests A (A's direct answer), then every target B that A's certificate
//! could carry. That is the minimal work of the job: a connection per (name, address).
//! Separate direct connections follow only where an answer is missing: for a host whose own
//! connections brought no answer (over HTTP/1.1 too when HTTP/2 fails), and for an origin
//! whose page a coalesced answer must be compared with while its only answer went on that very
//! connection. Results flow back to this task, the only writer of the records; the judgement
//! turns them into a `Snapshot`.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;

use crate::engine::judge::verdict::wants_http1_check;
use crate::engine::judge::{analysis, content};
use crate::engine::live::planner::{address_peers, origin_index, Plan};
use crate::engine::probe::direct::DirectProtocol;
use crate::engine::prober::Prober;
use crate::engine::record::{h3_advert, HostRecord, Job, JobResult, Records};
use crate::engine::snapshot::Snapshot;
use crate::watchlist::Entry;

pub mod progress;

pub use progress::{CheckPlan, CheckProgress, Phase, ProgressSink};

/// What a `check` run does beyond probing.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Fresh connections per (origin, address) and per (host, address).
    pub rounds: u32,
    /// List the pairs linked only by the certificate too.
    pub all_pairs: bool,
    /// Targets per origin connection at most (None: every covered target, every round).
    pub max_targets: Option<usize>,
    /// Probe over HTTP/3 too where a host advertises it (`--protocols`).
    pub h3: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            rounds: 3,
            all_pairs: false,
            max_targets: None,
            h3: true,
        }
    }
}

/// Resolve every entry, run the rounds, judge, and return the snapshot.
pub async fn check(prober: &Prober, entries: &[Entry], options: &CheckOptions) -> Snapshot {
    check_with(prober, entries, options, &()).await
}

/// [`check`], telling `progress` what it does.
pub async fn check_with(
    prober: &Prober,
    entries: &[Entry],
    options: &CheckOptions,
    progress: &dyn ProgressSink,
) -> Snapshot {
    let started = Instant::now();
    let records = probe_with(prober, entries, options, progress).await;
    progress.event(CheckProgress::Judging);
    let snapshot = analysis::analyse(&records, options.all_pairs, started.elapsed());
    progress.event(CheckProgress::Done {
        elapsed: started.elapsed(),
        connections: records.connections,
        requests: records.requests,
    });
    snapshot
}

/// Resolve and probe; the raw records.
pub async fn probe(prober: &Prober, entries: &[Entry], options: &CheckOptions) -> Records {
    probe_with(prober, entries, options, &()).await
}

/// [`probe`], telling `progress` what it does.
pub async fn probe_with(
    prober: &Prober,
    entries: &[Entry],
    options: &CheckOptions,
    progress: &dyn ProgressSink,
) -> Records {
    progress.event(CheckProgress::Resolving { names: entries.len() });
    let mut records = Records {
        hosts: resolve_all(prober, entries).await,
        ..Default::default()
    };
    let mut plan = Plan {
        peers: address_peers(&records.hosts),
        limit: options.max_targets,
        origins: Some(Arc::new(origin_index(&records.hosts))),
        ..Plan::default()
    };
    let planned = progress::plan(&records.hosts, &plan.peers, plan.limit, options.rounds);
    progress.event(CheckProgress::Planned(planned));
    for round in 0..options.rounds {
        let mut requests = planned.requests;
        if round > 0 {
            // The names ORIGIN frames listed in the rounds so far are peers from now on (the
            // prober adds them on the connection that received the frame too).
            plan.peers = address_peers(&records.hosts);
            requests = progress::later_round_requests(&records);
        }
        let mut jobs: Vec<Job> = records
            .hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.dns.addresses.iter().map(move |&addr| Job::Origin(i, addr)))
            .collect();
        // A new random order every round: behind a balancer that alternates backends per
        // connection, a fixed order would land the probe on the same backend every time.
        jobs.shuffle(&mut rand::rng());
        let phase = Phase::Round {
            round: round + 1,
            rounds: options.rounds,
        };
        progress.event(CheckProgress::Phase {
            phase,
            connections: jobs.len(),
            requests,
        });
        run_jobs(prober, jobs, &mut records, &plan, progress).await;
        records.rounds += 1;
    }
    if options.h3 {
        run_h3_rounds(prober, options.rounds, &mut records, &plan, progress).await;
    }
    let missing = missing_directs(&records);
    run_phase(prober, Phase::Directs, missing, &mut records, &plan, progress).await;
    let origins = wanted_origin_references(&records);
    run_phase(
        prober,
        Phase::OriginReferences,
        origins,
        &mut records,
        &plan,
        progress,
    )
    .await;
    let fallback = http1_fallbacks(&records);
    run_phase(
        prober,
        Phase::Http1Fallback,
        fallback,
        &mut records,
        &plan,
        progress,
    )
    .await;
    records.connections = prober.connections();
    records
}

/// `rounds` rounds of HTTP/3 origin jobs (`h3_jobs`), each in a new random order.
async fn run_h3_rounds(
    prober: &Prober,
    rounds: u32,
    records: &mut Records,
    plan: &Plan,
    progress: &dyn ProgressSink,
) {
    for round in 0..rounds {
        let mut jobs = h3_jobs(records);
        jobs.shuffle(&mut rand::rng());
        let phase = Phase::Http3 {
            round: round + 1,
            rounds,
        };
        // Each connection carries its origin and the targets HTTP/2 carried there.
        let places = jobs.iter().filter_map(|j| match *j {
            Job::OriginH3(i, addr, _) => Some((i, addr)),
            _ => None,
        });
        let requests = progress::h3_round_requests(records, places);
        run_phase_planned(prober, (phase, requests), jobs, records, plan, progress).await;
    }
}

/// An HTTP/3 origin job per (host, address) that advertises HTTP/3 (`h3_advert`): as an
/// HTTP/2 round's, over QUIC.
fn h3_jobs(records: &Records) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, h) in records.hosts.iter().enumerate() {
        for (&addr, ep) in &h.endpoints {
            if let Some(port) = h3_advert(h, ep) {
                jobs.push(Job::OriginH3(i, addr, port));
            }
        }
    }
    jobs
}

/// When the answers of a host on its own connections fail, ask once over HTTP/1.1: it tells
/// whether only HTTP/2 is affected.
fn http1_fallbacks(records: &Records) -> Vec<Job> {
    let mut fallback = Vec::new();
    for (i, h) in records.hosts.iter().enumerate() {
        for (&addr, ep) in &h.endpoints {
            let answered = ep.references().any(|o| !wants_http1_check(o));
            if !answered && ep.references().next().is_some() {
                fallback.push(Job::Direct(i, addr, DirectProtocol::Http1Only));
            }
        }
    }
    fallback
}

/// A direct request per (host, address) where the host's own connections brought no answer
/// (a failed handshake, no HTTP/2, every request failed): its reference, or why there is none.
fn missing_directs(records: &Records) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, h) in records.hosts.iter().enumerate() {
        for (&addr, ep) in &h.endpoints {
            if !ep.own.iter().any(|o| o.outcome.is_ok()) {
                jobs.push(Job::Direct(i, addr, DirectProtocol::Negotiate));
            }
        }
    }
    jobs
}

/// A direct request per (origin, address) whose page a coalesced answer there must be
/// compared with, while the origin's only answers went on that answer's connection
/// (`content::wants_origin_reference`).
fn wanted_origin_references(records: &Records) -> Vec<Job> {
    let mut wanted: Vec<(usize, std::net::IpAddr)> = records
        .coalesced
        .iter()
        .filter(|(&(a, b, addr), samples)| {
            let target = records.hosts[b].references_at(&addr);
            content::wants_origin_reference(samples, &target, &records.hosts[a], addr)
        })
        .map(|(&(a, _, addr), _)| (a, addr))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
        .into_iter()
        .map(|(a, addr)| Job::Direct(a, addr, DirectProtocol::Negotiate))
        .collect()
}

/// Every entry resolved, as records with one empty endpoint per address.
pub async fn resolve_all(prober: &Prober, entries: &[Entry]) -> Vec<HostRecord> {
    let dns = &prober.dns;
    let default_path = &prober.options.default_path;
    stream::iter(entries.iter().cloned())
        .map(|entry| async move {
            let answer = dns.resolve(&entry.host, entry.port).await;
            let endpoints = answer.addresses.iter().map(|a| (*a, Box::default())).collect();
            let path = entry.path.clone().unwrap_or_else(|| default_path.clone());
            HostRecord {
                key: entry.key().into(),
                entry,
                path,
                dns: answer,
                endpoints,
            }
        })
        .buffered(prober.options.concurrency.max(1))
        .collect()
        .await
}

/// A phase of direct jobs (one request each), said only when it has any.
async fn run_phase(
    prober: &Prober,
    phase: Phase,
    jobs: Vec<Job>,
    records: &mut Records,
    plan: &Plan,
    progress: &dyn ProgressSink,
) {
    let requests = jobs.len() as u64;
    run_phase_planned(prober, (phase, requests), jobs, records, plan, progress).await;
}

/// `run_phase` for jobs that make `requests` requests in all (origin jobs carry targets).
async fn run_phase_planned(
    prober: &Prober,
    (phase, requests): (Phase, u64),
    jobs: Vec<Job>,
    records: &mut Records,
    plan: &Plan,
    progress: &dyn ProgressSink,
) {
    if jobs.is_empty() {
        return;
    }
    progress.event(CheckProgress::Phase {
        phase,
        connections: jobs.len(),
        requests,
    });
    run_jobs(prober, jobs, records, plan, progress).await;
}

async fn run_jobs(
    prober: &Prober,
    jobs: Vec<Job>,
    records: &mut Records,
    plan: &Plan,
    progress: &dyn ProgressSink,
) {
    let hosts = &records.hosts;
    let results: Vec<JobResult> = stream::iter(jobs)
        .map(|job| prober.run_job(job, hosts, plan))
        .buffer_unordered(prober.options.concurrency.max(1))
        .inspect(|r| {
            let requests = match r {
                JobResult::Origin { requests, .. } => *requests,
                JobResult::OriginH3(r) => r.requests,
                JobResult::Direct { .. } => 1,
            };
            progress.event(CheckProgress::JobDone { requests });
        })
        .collect()
        .await;
    for r in results {
        records.apply(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::dns::{Dns, DnsConfig, ResolveOverride};
    use crate::engine::prober::ProbeOptions;
    use crate::testing::net::{simple_server, Pki, Validity};
    use std::time::Duration;

    /// a.test at one address, b.test at it and at two where nothing listens (refused at once).
    async fn two_names() -> (crate::testing::net::TestServer, Prober, Vec<Entry>) {
        let pki = Pki::new("test CA");
        let server = simple_server(&pki, &["a.test", "b.test"], Validity::Current).await;
        let port = server.addr.port();
        // b.test also resolves to addresses where nothing listens (refused at once).
        let overrides = vec![
            ResolveOverride {
                host: "a.test".into(),
                port: None,
                addrs: vec![server.addr.ip()],
            },
            ResolveOverride {
                host: "b.test".into(),
                port: None,
                addrs: vec![
                    server.addr.ip(),
                    "127.0.3.250".parse().unwrap(),
                    "127.0.3.251".parse().unwrap(),
                ],
            },
        ];
        let dns = Dns::new(DnsConfig {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            overrides,
            timeout: Duration::from_secs(2),
        })
        .expect("dns");
        let prober = Prober::new(
            dns,
            pki.settings(Duration::from_secs(2)),
            ProbeOptions {
                timeout: Duration::from_secs(2),
                ..ProbeOptions::default()
            },
        );
        let entries: Vec<Entry> = ["a.test", "b.test"]
            .iter()
            .enumerate()
            .map(|(i, h)| Entry {
                host: h.to_string(),
                port,
                path: None,
                line: i + 1,
            })
            .collect();
        (server, prober, entries)
    }

    fn two_rounds() -> CheckOptions {
        CheckOptions {
            rounds: 2,
            ..CheckOptions::default()
        }
    }

    #[tokio::test]
    async fn the_per_address_map_only_holds_addresses_in_flight() {
        let (_server, prober, entries) = two_names().await;
        let options = two_rounds();
        let records = probe(&prober, &entries, &options).await;
        assert!(records.connections >= 2 * 4);
        assert_eq!(prober.tracked_addresses(), 0, "every semaphore was released");
    }

    /// Keeps every event it is sent.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<CheckProgress>>);

    impl ProgressSink for Recorder {
        fn event(&self, event: CheckProgress) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[tokio::test]
    async fn progress_says_each_phase_and_every_job() {
        let (_server, prober, entries) = two_names().await;
        let options = two_rounds();
        let recorder = Recorder::default();
        let snapshot = check_with(&prober, &entries, &options, &recorder).await;
        let events = recorder.0.into_inner().unwrap();
        let done: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                CheckProgress::JobDone { requests } => Some(*requests),
                _ => None,
            })
            .collect();
        let steps: Vec<&CheckProgress> = events
            .iter()
            .filter(|e| !matches!(e, CheckProgress::JobDone { .. }))
            .collect();
        let round = |round, requests| CheckProgress::Phase {
            phase: Phase::Round { round, rounds: 2 },
            connections: 4,
            requests,
        };
        // Per round 4 connections: a at its address, b at three. Planned before any
        // certificate is seen: each carries its peer too (8); once seen, only where the
        // handshake worked (6). The two dead addresses get a direct request, then HTTP/1.1.
        let expected = [
            CheckProgress::Resolving { names: 2 },
            CheckProgress::Planned(CheckPlan {
                names: 2,
                unresolved: 0,
                addresses: 3,
                connections: 4,
                requests: 8,
                rounds: 2,
            }),
            round(1, 8),
            round(2, 6),
            CheckProgress::Phase {
                phase: Phase::Directs,
                connections: 2,
                requests: 2,
            },
            CheckProgress::Phase {
                phase: Phase::Http1Fallback,
                connections: 2,
                requests: 2,
            },
            CheckProgress::Judging,
        ];
        assert_eq!(
            steps[..expected.len()],
            expected.iter().collect::<Vec<_>>()[..],
            "{steps:#?}"
        );
        let Some(CheckProgress::Done {
            connections,
            requests,
            ..
        }) = steps.last()
        else {
            panic!("no Done last: {steps:#?}");
        };
        assert_eq!(steps.len(), expected.len() + 1);
        assert_eq!(done.len(), 4 + 4 + 2 + 2, "a JobDone per job");
        assert_eq!(done.iter().sum::<u64>(), *requests);
        assert_eq!(*requests, snapshot.summary.requests);
        assert_eq!(*connections, snapshot.summary.connections);
    }
}

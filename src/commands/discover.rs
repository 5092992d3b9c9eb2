//! `coalscope discover NAME…`: print (stdout) a watch-file of the names that can coalesce with
//! the NAMEs; what was left out, and why, goes to stderr. The work is `crate::discover`'s.
//!
//! When Certificate Transparency fails (after its retries) but the names could be probed, the
//! watch-file is still printed, from the certificates alone, with a warning on stderr and a
//! line in its header; `--require-ct` makes that failure exit 2 instead. An unreadable or
//! malformed `--ct-file` is bad input: exit 2 before anything is probed.

use std::io::Write;

use crate::cli::DiscoverArgs;
use crate::discover::crtsh::CtCollector;
use crate::discover::ct::{self, CtClient, CtOptions};
use crate::discover::{self, CtSource, DiscoverOptions, Discovery};
use crate::sanitize;
use crate::watchlist::{self, Entry};

use super::{prober, UsageError, EXIT_OK};

/// Names listed in one stderr line at most.
const LISTED: usize = 5;

pub async fn discover(args: DiscoverArgs) -> Result<u8, UsageError> {
    let seeds = seeds(&args.names)?;
    let given = args
        .ct_domains
        .iter()
        .map(|d| watchlist::normalize_host(d).map_err(|e| UsageError(format!("--ct-domain {d:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // A saved answer is the user's choice: every certificate in it counts, unless
    // --ct-domain says which domains.
    let file_filter = if given.is_empty() {
        Vec::new()
    } else {
        given.clone()
    };
    let ct_domains = discover::ct_domains(&seeds, given);
    let prober = prober(&args.common)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ct = if args.no_ct {
        CtSource::Skip
    } else if let Some(path) = &args.ct_file {
        let body = discover::read_ct_file(path)?;
        let name = path.display().to_string();
        let mut collector = CtCollector::new(now, args.include_expired);
        collector.add(&name, &body, &file_filter)?;
        CtSource::File { name, collector }
    } else {
        let options = CtOptions {
            include_expired: args.include_expired,
            ..CtOptions::new(ct::parse_url(&args.ct_url)?, args.ct_timeout)
        };
        CtSource::Api(CtClient::new(options, prober.tls.roots.clone())?)
    };
    let options = DiscoverOptions {
        ct,
        ct_domains,
        include_expired: args.include_expired,
        all: args.all,
        max_names: args.max_names as usize,
        concurrency: args.common.concurrency as usize,
        now,
    };
    let found = discover::discover(&seeds, &prober.dns, &prober.tls, options).await;
    for failure in &found.ct.failures {
        eprintln!(
            "warning: Certificate Transparency: {}",
            sanitize::for_display(&failure.to_string())
        );
    }
    if found.ct.not_asked > 0 {
        let n = found.ct.not_asked;
        let queries = if n == 1 { "query" } else { "queries" };
        eprintln!("warning: Certificate Transparency: {n} more {queries} not sent: the API is down");
    }
    if args.require_ct {
        if let Some(first) = found.ct.failures.first() {
            return Err(UsageError(format!(
                "Certificate Transparency could not be read (--require-ct): {}",
                sanitize::for_display(&first.to_string())
            )));
        }
    }
    tell(&found, args.all);
    if found.entries == 0 {
        return Err(UsageError(format!(
            "no names to print for {}: none shares a certificate and an address with another name{}",
            args.names.join(" "),
            if args.all {
                ""
            } else {
                " (--all lists every name that resolved)"
            }
        )));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(found.text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| UsageError(format!("writing to stdout: {e}")))?;
    Ok(EXIT_OK)
}

/// The NAMEs as watch-file entries; a bad one is named.
fn seeds(names: &[String]) -> Result<Vec<Entry>, UsageError> {
    names
        .iter()
        .map(|raw| {
            let entry = watchlist::parse_one(raw).map_err(|e| UsageError(format!("NAME {raw:?}: {e}")))?;
            if entry.path.is_some() {
                return Err(UsageError(format!(
                    "NAME {raw:?}: a path is not part of a name; give HOST or HOST:PORT"
                )));
            }
            Ok(entry)
        })
        .collect()
}

/// What was left out, and why, on stderr.
fn tell(found: &Discovery, all: bool) {
    let s = &found.ct.stats;
    if found.ct.source.is_some() {
        let mut parts = vec![format!(
            "{} rows, {} certificates, {} names",
            s.rows, found.ct.certificates, found.ct.names
        )];
        let counts = [
            (s.malformed, "malformed row", "skipped"),
            (s.duplicates, "duplicate row", "collapsed"),
            (
                s.expired,
                "expired certificate",
                "left out (--include-expired keeps them)",
            ),
            (s.unrelated, "certificate| naming no asked domain", "left out"),
            (s.bad_names, "name| that is no host name", "skipped"),
            (s.beyond_limit, "row| beyond the limit", "not read"),
        ];
        parts.extend(
            counts
                .iter()
                .filter(|(n, ..)| *n > 0)
                .map(|(n, what, done)| format!("{} {done}", count(*n, what))),
        );
        eprintln!("discover: Certificate Transparency: {}", parts.join("; "));
    }
    if found.wildcards > 0 {
        eprintln!(
            "discover: {} stand for no name by themselves: only the names seen are kept",
            count(found.wildcards, "wildcard name")
        );
    }
    if found.capped > 0 {
        eprintln!(
            "discover: {} more not probed (--max-names)",
            count(found.capped, "name")
        );
    }
    let with_reason = |pairs: &[(String, String)]| -> Vec<String> {
        pairs.iter().map(|(n, why)| format!("{n} ({why})")).collect()
    };
    list("not resolving, left out", &with_reason(&found.unresolved));
    list("without a certificate read", &with_reason(&found.no_certificate));
    if !all {
        list(
            "sharing no certificate and address with another, left out (--all lists them)",
            &found.alone,
        );
    }
}

fn list(what: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let mut shown: Vec<String> = items
        .iter()
        .take(LISTED)
        .map(|i| sanitize::for_display(i))
        .collect();
    if items.len() > LISTED {
        shown.push(format!("and {} more", items.len() - LISTED));
    }
    eprintln!(
        "discover: {} {what}: {}",
        count(items.len(), "name"),
        shown.join(", ")
    );
}

/// `1 name`, `2 names`; the plural `s` goes before a `|` when there is one (`certificate|
/// naming …`: `2 certificates naming …`).
fn count(n: usize, what: &str) -> String {
    let (noun, rest) = what.split_once('|').unwrap_or((what, ""));
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {noun}{s}{rest}")
}

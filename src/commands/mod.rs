//! The subcommands behind the CLI, one file each. Each returns the process exit status: 0
//! clean, 1 problems found, 2 bad usage or unreadable input. What they share (reading the
//! watch-file, building the prober, printing a report) is here.

// The commands are where the program talks to its user: the only modules that print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod check;
mod dashboard;
pub mod demo;
pub mod discover;
pub mod docs;
pub mod lab;
pub mod progress;
pub mod serve;
pub mod watch;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{CommonArgs, Format};
use crate::engine::live::{LiveOptions, PUBLISH_EVERY};
use crate::engine::probe::dns::{Dns, DnsConfig};
use crate::engine::probe::tls::TlsSettings;
use crate::engine::prober::{ProbeOptions, Prober};
use crate::engine::snapshot::{Protocol, Snapshot};
use crate::report;
use crate::watchlist::{self, WatchList};

pub const EXIT_OK: u8 = 0;
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A failure that ends the command with `EXIT_USAGE` and a message naming the place.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(e: E) -> Self {
        UsageError(e.to_string())
    }
}

/// Read the watch-file (`-` = standard input); warnings go to stderr.
pub fn read_watchlist(path: &Path) -> Result<WatchList, UsageError> {
    let list = if path.as_os_str() == "-" {
        // Bounded: a runaway pipe must not exhaust memory (watchlist::MAX_BYTES).
        watchlist::read("-", std::io::stdin().lock())?
    } else {
        watchlist::load(path)?
    };
    for w in &list.warnings {
        eprintln!("warning: {w}");
    }
    if list.warnings_more > 0 {
        eprintln!(
            "warning: {}: and {} more warnings",
            path.display(),
            list.warnings_more
        );
    }
    if list.entries.is_empty() {
        return Err(UsageError(format!("{}: no hosts to watch", path.display())));
    }
    Ok(list)
}

/// The prober for the common options. The CA file is read before the resolver is built, so
/// that a bad `--ca-file` is named whatever the state of the system's resolver.
pub fn prober(common: &CommonArgs) -> Result<Prober, UsageError> {
    let tls = TlsSettings::new(common.ca_file.as_deref(), common.timeout)?;
    let dns = Dns::new(DnsConfig {
        nameservers: common.dns.clone(),
        overrides: common.resolve.clone(),
        timeout: common.timeout,
    })?;
    let options = ProbeOptions {
        default_path: common.path.clone(),
        timeout: common.timeout,
        concurrency: common.concurrency as usize,
        max_rps: common.max_rps,
        ..ProbeOptions::default()
    };
    Ok(Prober::new(dns, tls, options))
}

/// Whether `--protocols` asks for HTTP/3 beside HTTP/2 (which cannot be left out: HTTP/3 is
/// probed where the HTTP/2 answers advertise it).
pub fn wants_h3(common: &CommonArgs) -> Result<bool, UsageError> {
    if !common.protocols.contains(&Protocol::H2) {
        return Err(UsageError(
            "--protocols: h2 cannot be left out (HTTP/3 is probed beside it, where the HTTP/2 answers advertise it)".into(),
        ));
    }
    Ok(common.protocols.contains(&Protocol::H3))
}

/// The live engine's options for the common options (the dashboard's publishing rate).
pub fn live_options(common: &CommonArgs, source: String) -> Result<LiveOptions, UsageError> {
    Ok(LiveOptions {
        interval: common.interval,
        window: common.window,
        dns_grace: common.dns_grace,
        jitter: 0.8,
        concurrency: common.concurrency as usize,
        source,
        publish_every: PUBLISH_EVERY,
        lab_phase: None,
        pending_by_index: false,
        h3: wants_h3(common)?,
    })
}

/// Colour in the table when stdout is a terminal and NO_COLOR is not set.
fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn print_report(snapshot: &Snapshot, format: Format, verbose: bool) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = match format {
        // Streamed: the JSON of a big list is hundreds of megabytes.
        Format::Json => report::json::write_json(snapshot, &mut out).and_then(|()| writeln!(out)),
        Format::Table => {
            let options = report::table::TableOptions {
                colour: use_colour(),
                verbose,
            };
            writeln!(out, "{}", report::table::render(snapshot, options))
        }
    };
    let _ = out.flush();
}

fn exit_for(snapshot: &Snapshot) -> u8 {
    if snapshot.has_problems() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

fn require_terminal(what: &str) -> Result<(), UsageError> {
    if std::io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(UsageError(format!(
            "`coalscope {what}` draws a live dashboard and needs a terminal; for a report use `coalscope check WATCHFILE`, for metrics `coalscope serve WATCHFILE`"
        )))
    }
}

/// Print a usage error and give its exit status.
pub fn report_error(e: UsageError) -> ExitCode {
    eprintln!("coalscope: {}", e.0);
    ExitCode::from(EXIT_USAGE)
}

//! The commands behind the CLI. Each returns the process exit status: 0 clean, 1 problems
//! found, 2 bad usage or unreadable input.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{CheckArgs, CommonArgs, DemoArgs, Format, LabArgs};
use crate::engine::check::{CheckOptions, Prober};
use crate::engine::dns::{Dns, DnsConfig};
use crate::engine::snapshot::Snapshot;
use crate::engine::tls::TlsSettings;
use crate::lab::{Lab, LabOptions};
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
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| UsageError(format!("-: cannot read standard input: {e}")))?;
        watchlist::parse("-", &bytes)?
    } else {
        watchlist::load(path)?
    };
    for w in &list.warnings {
        eprintln!("warning: {w}");
    }
    if list.entries.is_empty() {
        return Err(UsageError(format!("{}: no hosts to watch", path.display())));
    }
    Ok(list)
}

/// The prober for the common options.
pub fn prober(common: &CommonArgs, rounds: u32, all_pairs: bool) -> Result<Prober, UsageError> {
    let dns = Dns::new(DnsConfig {
        nameservers: common.dns.clone(),
        overrides: common.resolve.clone(),
        timeout: common.timeout,
    })?;
    let tls = TlsSettings::new(common.ca_file.as_deref(), common.timeout)?;
    let options = CheckOptions {
        default_path: common.path.clone(),
        rounds,
        timeout: common.timeout,
        concurrency: common.concurrency as usize,
        max_rps: common.max_rps,
        all_pairs,
        ..CheckOptions::default()
    };
    Ok(Prober::new(dns, tls, options))
}

/// Colour in the table when stdout is a terminal and NO_COLOR is not set.
fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn print_report(snapshot: &Snapshot, format: Format) {
    let text = match format {
        Format::Json => report::json::to_json(snapshot),
        Format::Table => report::table::render(snapshot, use_colour()),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn exit_for(snapshot: &Snapshot) -> u8 {
    if snapshot.has_problems() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

pub async fn check(args: CheckArgs) -> Result<u8, UsageError> {
    let list = read_watchlist(&args.watchfile)?;
    let prober = prober(&args.common, args.rounds, args.all_pairs)?;
    let snapshot = prober.check(&list.entries).await;
    print_report(&snapshot, args.format);
    Ok(exit_for(&snapshot))
}

pub async fn lab(args: LabArgs) -> Result<u8, UsageError> {
    let lab = Lab::start(LabOptions {
        port: args.port,
        dns_port: args.dns_port,
        dir: args.dir,
        dynamic: args.dynamic,
    })
    .await
    .map_err(|e| UsageError(format!("cannot start the lab: {e:#}")))?;
    println!("{}", lab.describe());
    println!("Serving until Ctrl-C.");
    let _ = tokio::signal::ctrl_c().await;
    lab.shutdown().await;
    Ok(EXIT_OK)
}

/// Until the live dashboard lands, the demo starts the lab and shows one check of it.
pub async fn demo(args: DemoArgs) -> Result<u8, UsageError> {
    let lab = Lab::start(LabOptions {
        dynamic: true,
        ..LabOptions::default()
    })
    .await
    .map_err(|e| UsageError(format!("cannot start the lab: {e:#}")))?;
    eprintln!(
        "coalscope demo: embedded lab on loopback (DNS {}, CA {}), probing {} rounds…",
        lab.dns,
        lab.ca_file.display(),
        args.rounds
    );
    let list = read_watchlist(&lab.watchfile)?;
    let common = CommonArgs {
        dns: vec![lab.dns],
        resolve: vec![],
        ca_file: Some(lab.ca_file.clone()),
        interval: std::time::Duration::from_secs(30),
        timeout: std::time::Duration::from_secs(2),
        concurrency: 32,
        max_rps: 0,
        path: "/".into(),
        window: std::time::Duration::from_secs(300),
    };
    let snapshot = prober(&common, args.rounds, false)?.check(&list.entries).await;
    print_report(&snapshot, Format::Table);
    lab.shutdown().await;
    Ok(EXIT_OK)
}

pub fn not_yet(what: &str, issue: u32) -> Result<u8, UsageError> {
    Err(UsageError(format!(
        "`coalscope {what}` is not available in this build yet (tracked as issue #{issue}); use `coalscope check WATCHFILE` for a one-shot report"
    )))
}

/// Print a usage error and give its exit status.
pub fn report_error(e: UsageError) -> ExitCode {
    eprintln!("coalscope: {}", e.0);
    ExitCode::from(EXIT_USAGE)
}

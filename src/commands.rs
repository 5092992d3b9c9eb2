//! The commands behind the CLI. Each returns the process exit status: 0 clean, 1 problems
//! found, 2 bad usage or unreadable input.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cli::{CheckArgs, CommonArgs, DashboardArgs, DemoArgs, Format, LabArgs, Theme, WatchArgs};
use crate::engine::check::{CheckOptions, Prober};
use crate::engine::dns::{Dns, DnsConfig};
use crate::engine::scheduler::{Command, LiveEngine, LiveOptions};
use crate::engine::snapshot::LiveView;
use crate::engine::snapshot::Snapshot;
use crate::engine::tls::TlsSettings;
use crate::lab::{Lab, LabOptions};
use crate::report;
use crate::tui::{self, Control, TuiOptions};
use crate::watchlist::watcher;
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
        scale: args
            .scale
            .map(|n| crate::lab::scale::ScaleOptions::new(n as usize, args.group_size as usize)),
    })
    .await
    .map_err(|e| UsageError(format!("cannot start the lab: {e:#}")))?;
    println!("{}", lab.describe());
    println!("Serving until Ctrl-C.");
    let _ = tokio::signal::ctrl_c().await;
    lab.shutdown().await;
    Ok(EXIT_OK)
}

/// `watch`: the live dashboard on a watch-file, reloaded on every save.
pub async fn watch(args: WatchArgs) -> Result<u8, UsageError> {
    require_terminal("watch")?;
    let list = read_watchlist(&args.watchfile)?;
    let prober = Arc::new(prober(&args.common, 1, false)?);
    let options = live_options(&args.common, args.watchfile.display().to_string());
    dashboard(
        prober,
        &list,
        options,
        Some(&args.watchfile),
        None,
        &args.dashboard,
    )
    .await
}

/// `demo`: the embedded lab (changing its behaviour every minute) under the live dashboard.
pub async fn demo(args: DemoArgs) -> Result<u8, UsageError> {
    if !args.once {
        require_terminal("demo")?;
    }
    let lab = Arc::new(
        Lab::start(LabOptions {
            dynamic: true,
            ..LabOptions::default()
        })
        .await
        .map_err(|e| UsageError(format!("cannot start the lab: {e:#}")))?,
    );
    let list = read_watchlist(&lab.watchfile)?;
    let common = CommonArgs {
        dns: vec![lab.dns],
        resolve: vec![],
        ca_file: Some(lab.ca_file.clone()),
        interval: args.interval,
        timeout: Duration::from_secs(2),
        concurrency: 32,
        max_rps: 0,
        path: "/".into(),
        window: args.window,
    };
    if args.once {
        let snapshot = prober(&common, 4, false)?.check(&list.entries).await;
        print_report(&snapshot, Format::Table);
        return Ok(EXIT_OK);
    }
    let prober = Arc::new(prober(&common, 1, false)?);
    let options = live_options(&common, format!("embedded lab ({})", lab.watchfile.display()));
    let phase_lab = lab.clone();
    let phase: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || phase_lab.phase_description());
    let watchfile = lab.watchfile.clone();
    dashboard(
        prober,
        &list,
        options,
        Some(&watchfile),
        Some(phase),
        &args.dashboard,
    )
    .await
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

pub fn live_options(common: &CommonArgs, source: String) -> LiveOptions {
    LiveOptions {
        interval: common.interval,
        window: common.window,
        jitter: 0.8,
        concurrency: common.concurrency as usize,
        source,
        publish_every: crate::engine::scheduler::PUBLISH_EVERY,
    }
}

/// Run the engine, the watch-file watcher and the dashboard until the user quits.
async fn dashboard(
    prober: Arc<Prober>,
    list: &WatchList,
    options: LiveOptions,
    watchfile: Option<&Path>,
    lab_phase: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    ui: &DashboardArgs,
) -> Result<u8, UsageError> {
    let (commands, command_rx) = mpsc::channel(64);
    let (view_tx, view_rx) = watch::channel(Arc::new(LiveView::default()));
    let _watcher = match watchfile {
        Some(path) => Some(watcher::spawn(path, commands.clone()).map_err(UsageError)?),
        None => None,
    };
    let mut engine = LiveEngine::new(prober, list, options);
    if let Some(phase) = lab_phase {
        engine = engine.with_lab_phase(phase);
    }
    let engine = tokio::spawn(engine.run(command_rx, view_tx));
    let (control, mut control_rx) = mpsc::channel::<Control>(64);
    let forward = {
        let commands = commands.clone();
        tokio::spawn(async move {
            while let Some(c) = control_rx.recv().await {
                let command = match c {
                    Control::ProbeNow(key) => Command::ProbeNow(key),
                    Control::SetPaused(p) => Command::SetPaused(p),
                    Control::Quit => Command::Quit,
                };
                if commands.send(command).await.is_err() {
                    break;
                }
            }
        })
    };
    let options = TuiOptions {
        light: ui.theme == Theme::Light,
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        export_dir: ui.export_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let result = tui::run(view_rx, control, options).await;
    let _ = commands.send(Command::Quit).await;
    forward.abort();
    engine.abort();
    result.map_err(|e| UsageError(format!("terminal: {e}")))?;
    Ok(EXIT_OK)
}

/// Print a usage error and give its exit status.
pub fn report_error(e: UsageError) -> ExitCode {
    eprintln!("coalscope: {}", e.0);
    ExitCode::from(EXIT_USAGE)
}

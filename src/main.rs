//! Thin binary: parse the command line, pick the mode, map errors to exit codes.

// The binary talks to its user (where the logs went, a log file it cannot open).
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use coalscope::cli::{Cli, Command};
use coalscope::commands;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(Command::Watch(args)) = &mut cli.command {
        // `watch --from` fetches every 2 s unless --interval (or its variable) says otherwise.
        args.interval_given = matches
            .subcommand_matches("watch")
            .and_then(|m| m.value_source("interval"))
            .is_some_and(|s| s != ValueSource::DefaultValue);
    }
    let dashboard = matches!(cli.command, Some(Command::Demo(_)) | Some(Command::Watch(_)))
        || (cli.command.is_none() && cli.watchfile.is_some());
    let log_file = init_logging(dashboard);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return commands::report_error(commands::UsageError(format!("cannot start the runtime: {e}")))
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Check(args)) => commands::check::check(args).await,
            Some(Command::Lab(args)) => commands::lab::lab(args).await,
            Some(Command::Discover(args)) => commands::discover::discover(args).await,
            Some(Command::Demo(args)) => commands::demo::demo(args).await,
            Some(Command::Watch(args)) => commands::watch::watch(args).await,
            Some(Command::Serve(args)) => commands::serve::serve(args).await,
            Some(Command::Completions(args)) => commands::docs::completions(&args),
            Some(Command::Man(args)) => commands::docs::man(&args),
            None => match cli.watchfile {
                Some(watchfile) => {
                    commands::watch::watch(coalscope::cli::WatchArgs {
                        watchfile: Some(watchfile),
                        from: vec![],
                        interval_given: false,
                        common: cli.common,
                        dashboard: cli.dashboard,
                    })
                    .await
                }
                None => Err(commands::UsageError(
                    "a WATCHFILE or a command is needed; see `coalscope --help`".into(),
                )),
            },
        }
    });
    // Do not wait for probe tasks that are still draining (e.g. a server that never answers).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    if let Some(path) = log_file.filter(|_| dashboard) {
        eprintln!("coalscope: logs were written to {}", path.display());
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => commands::report_error(e),
    }
}

/// Logs are written only when COALSCOPE_LOG asks for them (e.g. COALSCOPE_LOG=debug): to
/// COALSCOPE_LOG_FILE when it is set, else to stderr — except under the dashboard, which owns
/// the terminal: there they go to a file in the temporary directory, named on exit.
fn init_logging(dashboard: bool) -> Option<std::path::PathBuf> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COALSCOPE_LOG").ok()?;
    let path = std::env::var_os("COALSCOPE_LOG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            dashboard.then(|| std::env::temp_dir().join(format!("coalscope-{}.log", std::process::id())))
        });
    let Some(path) = path else {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        return None;
    };
    match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
            Some(path)
        }
        Err(e) => {
            eprintln!(
                "coalscope: cannot open the log file {}: {e}; not logging",
                path.display()
            );
            None
        }
    }
}

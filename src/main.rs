//! Thin binary: parse the command line, pick the mode, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use coalscope::cli::{Cli, Command};
use coalscope::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return commands::report_error(commands::UsageError(format!("cannot start the runtime: {e}")))
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Check(args)) => commands::check(args).await,
            Some(Command::Lab(args)) => commands::lab(args).await,
            Some(Command::Demo(args)) => commands::demo(args).await,
            Some(Command::Watch(args)) => commands::watch(args).await,
            Some(Command::Serve(args)) => coalscope::serve::serve(args).await,
            None => match cli.watchfile {
                Some(watchfile) => {
                    commands::watch(coalscope::cli::WatchArgs {
                        watchfile,
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
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => commands::report_error(e),
    }
}

/// Logs go to stderr, only when COALSCOPE_LOG asks for them (e.g. COALSCOPE_LOG=debug).
fn init_logging() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("COALSCOPE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

//! `coalscope check WATCHFILE`: probe a fixed number of rounds, print a report, exit. Progress
//! goes to stderr (`progress`); Ctrl-C clears it and ends the run.

use crate::cli::CheckArgs;
use crate::engine::oneshot::{self, CheckOptions};

use super::progress::{estimate::Limits, Mode, ProgressView};
use super::{exit_for, print_report, prober, read_watchlist, wants_h3, UsageError};

/// The exit status of a run interrupted by Ctrl-C (128 + SIGINT, as the shell reports it).
const EXIT_INTERRUPTED: u8 = 130;

pub async fn check(args: CheckArgs) -> Result<u8, UsageError> {
    let h3 = wants_h3(&args.common)?;
    let list = read_watchlist(&args.watchfile)?;
    let prober = prober(&args.common)?;
    let options = CheckOptions {
        rounds: args.rounds,
        all_pairs: args.all_pairs,
        h3,
        ..CheckOptions::default()
    };
    let view = ProgressView::new(
        Mode::detect(args.quiet),
        Limits {
            max_rps: prober.options.max_rps,
            concurrency: prober.options.concurrency,
            per_address: prober.options.per_address,
        },
    );
    let snapshot = tokio::select! {
        snapshot = oneshot::check_with(&prober, &list.entries, &options, &view) => snapshot,
        _ = tokio::signal::ctrl_c() => {
            view.interrupted();
            return Ok(EXIT_INTERRUPTED);
        }
    };
    drop(view);
    print_report(&snapshot, args.format, args.verbose);
    Ok(exit_for(&snapshot))
}

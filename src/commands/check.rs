//! `coalscope check WATCHFILE`: probe a fixed number of rounds, print a report, exit.

use crate::cli::CheckArgs;
use crate::engine::oneshot::{self, CheckOptions};

use super::{exit_for, print_report, prober, read_watchlist, UsageError};

pub async fn check(args: CheckArgs) -> Result<u8, UsageError> {
    let list = read_watchlist(&args.watchfile)?;
    let prober = prober(&args.common)?;
    let options = CheckOptions {
        rounds: args.rounds,
        all_pairs: args.all_pairs,
        ..CheckOptions::default()
    };
    let snapshot = oneshot::check(&prober, &list.entries, &options).await;
    print_report(&snapshot, args.format);
    Ok(exit_for(&snapshot))
}

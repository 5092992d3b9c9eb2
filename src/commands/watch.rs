//! `coalscope watch WATCHFILE` (or just `coalscope WATCHFILE`): the live dashboard on a
//! watch-file, reloaded on every save. With `--from URL` (repeatable) it shows running `serve`
//! instances too, each as a vantage point; with `--from` alone, no local probing at all.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::WatchArgs;
use crate::remote::{self, RemoteOptions};

use super::dashboard::{dashboard, Local};
use super::{live_options, prober, read_watchlist, require_terminal, UsageError};

/// Time between two requests to a `--from` instance unless `--interval` is given.
const FROM_INTERVAL: Duration = Duration::from_secs(2);

pub async fn watch(args: WatchArgs) -> Result<u8, UsageError> {
    require_terminal("watch")?;
    let remote = if args.from.is_empty() {
        None
    } else {
        let interval = if args.interval_given {
            args.common.interval
        } else {
            FROM_INTERVAL
        };
        let client = remote::client(args.common.ca_file.as_deref(), args.common.timeout)?;
        Some((
            client,
            args.from.clone(),
            RemoteOptions::new(interval, args.common.timeout),
        ))
    };
    let local = match &args.watchfile {
        Some(watchfile) => {
            let list = read_watchlist(watchfile)?;
            let prober = Arc::new(prober(&args.common)?);
            let options = live_options(&args.common, watchfile.display().to_string())?;
            Some(Local {
                prober,
                list,
                options,
                watchfile: watchfile.clone(),
            })
        }
        None => None,
    };
    dashboard(local, remote, &args.dashboard).await
}

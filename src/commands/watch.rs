//! `coalscope watch WATCHFILE` (or just `coalscope WATCHFILE`): the live dashboard on a
//! watch-file, reloaded on every save.

use std::sync::Arc;

use crate::cli::WatchArgs;

use super::dashboard::dashboard;
use super::{live_options, prober, read_watchlist, require_terminal, UsageError};

pub async fn watch(args: WatchArgs) -> Result<u8, UsageError> {
    require_terminal("watch")?;
    let list = read_watchlist(&args.watchfile)?;
    let prober = Arc::new(prober(&args.common)?);
    let options = live_options(&args.common, args.watchfile.display().to_string());
    dashboard(prober, &list, options, &args.watchfile, &args.dashboard).await
}

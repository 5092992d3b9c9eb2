//! `coalscope demo`: the embedded lab (changing its behaviour every minute) under the live
//! dashboard; `--once` prints one report of it instead.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CommonArgs, DemoArgs, Format};
use crate::engine::live::LabPhase;
use crate::engine::oneshot::{self, CheckOptions};
use crate::engine::snapshot::Protocol;
use crate::lab::{Lab, LabOptions};

use super::dashboard::{dashboard, Local};
use super::{live_options, print_report, prober, read_watchlist, require_terminal, UsageError, EXIT_OK};

/// Rounds of `demo --once`: enough for the load balancer to show both backends.
const ONCE_ROUNDS: u32 = 4;

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
        dns_grace: args.dns_grace,
        protocols: Protocol::ALL.to_vec(),
    };
    let prober = prober(&common)?;
    if args.once {
        let options = CheckOptions {
            rounds: ONCE_ROUNDS,
            ..CheckOptions::default()
        };
        let snapshot = oneshot::check(&prober, &list.entries, &options).await;
        print_report(&snapshot, Format::Table, false);
        return Ok(EXIT_OK);
    }
    let mut options = live_options(&common, format!("embedded lab ({})", lab.watchfile.display()))?;
    let phase_lab = lab.clone();
    options.lab_phase = Some(LabPhase(Arc::new(move || phase_lab.phase_description())));
    let local = Local {
        prober: Arc::new(prober),
        list,
        options,
        watchfile: lab.watchfile.clone(),
    };
    dashboard(Some(local), None, &args.dashboard).await
}

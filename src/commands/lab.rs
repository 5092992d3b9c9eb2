//! `coalscope lab`: the embedded lab alone, until Ctrl-C.

use crate::cli::LabArgs;
use crate::lab::scale::ScaleOptions;
use crate::lab::{Lab, LabOptions};

use super::{UsageError, EXIT_OK};

pub async fn lab(args: LabArgs) -> Result<u8, UsageError> {
    let lab = Lab::start(LabOptions {
        port: args.port,
        dns_port: args.dns_port,
        dir: args.dir,
        dynamic: args.dynamic,
        scale: args
            .scale
            .map(|n| ScaleOptions::new(n as usize, args.group_size as usize)),
    })
    .await
    .map_err(|e| UsageError(format!("cannot start the lab: {e:#}")))?;
    println!("{}", lab.describe());
    println!("Serving until Ctrl-C.");
    let _ = tokio::signal::ctrl_c().await;
    lab.shutdown().await;
    Ok(EXIT_OK)
}

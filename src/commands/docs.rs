//! What a packaged tool ships beside its binary, generated from the clap definitions so it
//! never drifts from them: shell completion scripts and the manual page.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::commands::{UsageError, EXIT_OK};

/// `coalscope completions SHELL`: the completion script on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<u8, UsageError> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "coalscope", &mut out);
    write_out(&out)
}

/// `coalscope man [COMMAND]`: the manual page (roff) of the program or of one subcommand
/// (named `coalscope-COMMAND`), on stdout.
pub fn man(args: &ManArgs) -> Result<u8, UsageError> {
    let cmd = Cli::command();
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                UsageError(format!(
                    "man: no command {name:?}; the commands are {}",
                    known.join(", ")
                ))
            })?;
            let full = format!("coalscope-{}", sub.get_name());
            sub.name(full.clone())
                .display_name(full)
                .bin_name(format!("coalscope {name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| UsageError(format!("rendering the manual page: {e}")))?;
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> Result<u8, UsageError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| UsageError(format!("writing to stdout: {e}")))?;
    Ok(EXIT_OK)
}

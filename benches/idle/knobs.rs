//! The knobs of the bench: environment variables, read and checked once, printed at the start.

use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

pub(crate) struct Knobs {
    pub(crate) n: usize,
    pub(crate) group: usize,
    pub(crate) modes: Vec<String>,
    pub(crate) args: Vec<String>,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) mem_n: usize,
    pub(crate) mem_s: u64,
    pub(crate) mem_every: u64,
}

pub(crate) fn env_num<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => bail!("{name}: {e}"),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v.trim().parse().map_err(|e| anyhow!("{name}={v:?}: {e}")),
    }
}

pub(crate) const MODES: [&str; 3] = ["serve", "watch", "memory"];

impl Knobs {
    pub(crate) fn from_env() -> Result<Knobs> {
        let modes: Vec<String> = std::env::var("IDLE_MODES")
            .unwrap_or_else(|_| MODES.join(","))
            .split(',')
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty())
            .collect();
        if let Some(bad) = modes.iter().find(|m| !MODES.contains(&m.as_str())) {
            bail!("IDLE_MODES: unknown mode {bad:?} (known: {})", MODES.join(", "));
        }
        let knobs = Knobs {
            n: env_num("IDLE_N", 1000)?,
            group: env_num("IDLE_GROUP", 20)?,
            modes,
            args: std::env::var("IDLE_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            warmup: Duration::from_secs(env_num("IDLE_WARMUP_S", 60)?),
            measure: Duration::from_secs(env_num("IDLE_MEASURE_S", 120)?),
            mem_n: env_num("IDLE_MEM_N", 10_000)?,
            mem_s: env_num("IDLE_MEM_S", 300)?,
            mem_every: env_num("IDLE_MEM_SAMPLE_S", 10)?,
        };
        if knobs.n == 0 || knobs.group == 0 || knobs.mem_n == 0 {
            bail!("IDLE_N, IDLE_GROUP and IDLE_MEM_N must be at least 1");
        }
        if knobs.measure.is_zero() || knobs.mem_s == 0 || knobs.mem_every == 0 {
            bail!("IDLE_MEASURE_S, IDLE_MEM_S and IDLE_MEM_SAMPLE_S must be at least 1");
        }
        Ok(knobs)
    }

    pub(crate) fn wants(&self, mode: &str) -> bool {
        self.modes.iter().any(|m| m == mode)
    }

    pub(crate) fn print(&self, bin: &Path) {
        println!("idle: knobs");
        println!("  IDLE_N            = {}", self.n);
        println!("  IDLE_GROUP        = {}", self.group);
        println!("  IDLE_MODES        = {}", self.modes.join(","));
        println!(
            "  IDLE_ARGS         = {}",
            if self.args.is_empty() {
                "(none: default --interval, --window, --max-rps)".to_string()
            } else {
                self.args.join(" ")
            }
        );
        println!("  IDLE_WARMUP_S     = {}", self.warmup.as_secs());
        println!("  IDLE_MEASURE_S    = {}", self.measure.as_secs());
        println!("  IDLE_MEM_N        = {}", self.mem_n);
        println!("  IDLE_MEM_S        = {}", self.mem_s);
        println!("  IDLE_MEM_SAMPLE_S = {}", self.mem_every);
        println!("  COALSCOPE_BIN     = {}", bin.display());
    }

    /// Whether IDLE_ARGS sets option `--name` (as `--name V` or `--name=V`).
    pub(crate) fn sets(&self, name: &str) -> bool {
        self.args
            .iter()
            .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    }
}

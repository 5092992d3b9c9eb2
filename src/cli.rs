//! Command line (clap derive). Filled in by the check work.

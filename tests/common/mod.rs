//! Helpers shared by the end-to-end tests and the benches (which include this module with
//! `#[path = "../tests/common/mod.rs"] mod common;`): find and run the real binary, point a
//! subcommand at the embedded lab, validate the JSON, and decide whether a test that drives a
//! real server or tool runs, skips or fails (`COALSCOPE_REQUIRE_INTEROP`).
#![allow(dead_code)]

pub mod golden;
pub mod live;
pub mod serve;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::Output;

use coalscope::lab::Lab;
use serde_json::Value;

/// The `coalscope` binary Cargo built for this test or bench.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coalscope"))
}

/// The binary a bench measures: `COALSCOPE_BIN` (e.g. another build) or [`bin`]. Tests always
/// run [`bin`].
pub fn bench_bin() -> PathBuf {
    std::env::var_os("COALSCOPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin().to_path_buf())
}

/// Run `coalscope` with `args` (and `stdin`, if any); never inherits proxy settings.
pub async fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(args)
        .env_remove("COALSCOPE_DNS")
        .env_remove("COALSCOPE_RESOLVE")
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn coalscope");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // The program may exit (e.g. on a bad option) before reading stdin: a broken pipe is fine.
        if let Err(e) = pipe.write_all(bytes).await {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        drop(pipe);
    }
    child.wait_with_output().await.expect("coalscope output")
}

/// `SUBCOMMAND WATCHFILE --dns LAB_DNS --ca-file LAB_CA`: a subcommand pointed at `lab` (its
/// DNS server and CA) for `watchfile` (the lab's own, or an edited copy).
pub fn lab_args(sub: &str, lab: &Lab, watchfile: &Path) -> Vec<String> {
    vec![
        sub.to_string(),
        watchfile.display().to_string(),
        "--dns".to_string(),
        lab.dns.to_string(),
        "--ca-file".to_string(),
        lab.ca_file.display().to_string(),
    ]
}

/// `coalscope check` of the lab's watch-file against the lab, with `extra` arguments.
pub async fn check_lab(lab: &Lab, extra: &[&str]) -> Output {
    let mut args = lab_args("check", lab, &lab.watchfile);
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&argv, None).await
}

pub fn schema() -> Value {
    schema_at("assets/coalscope-1.schema.json")
}

fn schema_at(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON")
}

/// Panics with every schema violation when `doc` does not follow the contract's schema.
pub fn assert_valid(doc: &Value) {
    assert_valid_against("assets/coalscope-1.schema.json", doc);
}

/// Panics with every schema violation when `doc` does not follow the schema in `file` (a path
/// in the repository).
pub fn assert_valid_against(file: &str, doc: &Value) {
    let schema = schema_at(file);
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "JSON does not follow {file}:\n{}",
        errors.join("\n")
    );
}

/// (protocol, verdict, probes) of each row of a pair's `protocols`.
pub fn protocol_rows(p: &Value) -> Vec<(&str, &str, u64)> {
    p["protocols"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["protocol"].as_str().unwrap_or("?"),
                        r["verdict"].as_str().unwrap_or("?"),
                        r["probes"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn stdout_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The environment variable CI sets to `1`: every real server and tool a test drives must be
/// installed there.
pub const REQUIRE_INTEROP: &str = "COALSCOPE_REQUIRE_INTEROP";

/// Whether a missing real server or tool fails the test: `COALSCOPE_REQUIRE_INTEROP` is
/// exactly `1`. Unset, empty or any other value: a missing one skips the test.
pub fn interop_required() -> bool {
    requires_interop(std::env::var_os(REQUIRE_INTEROP).as_deref())
}

/// What a value of `COALSCOPE_REQUIRE_INTEROP` means: exactly `1` requires.
pub fn requires_interop(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// Whether `what` (a test or scenario) can run, `missing` being the servers or tools it needs
/// that are not installed: true when none is missing. Otherwise [`interop_required`] makes it
/// a panic naming them and how to install them (`install`); without it the test is skipped
/// after one line saying the same.
pub fn interop_available(what: &str, missing: &[&str], install: &str) -> bool {
    interop_available_or(what, missing, install, interop_required())
}

/// [`interop_available`] with the requirement given explicitly (to test the helper itself).
pub fn interop_available_or(what: &str, missing: &[&str], install: &str, required: bool) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if required {
        panic!("{what}: {missing} not installed and {REQUIRE_INTEROP}=1; install with: {install}");
    }
    eprintln!(
        "!!! SKIPPED {what}: {missing} not installed; install with: {install} (and set {REQUIRE_INTEROP}=1 to make this a failure)"
    );
    false
}

/// Whether this process's effective user is root (the `Uid:` line of its status: real,
/// effective, …). Root reads through chmod 000, and servers it starts need a user to drop to.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

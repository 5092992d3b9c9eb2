//! The real binary in a real terminal (tmux, on a private server socket) against the
//! embedded lab: the dashboard shows a misdirected pair, follows edits of the watch-file
//! (fewer hosts; a broken line named by file:line), quits on `q`, and leaves the terminal
//! as it found it (main screen, cooked mode, cursor shown, mouse reporting off).

// Test code: a failed expectation is a failed test, said where it happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

use common::tmux::{shell_quote, tmux_available, Tmux};

use std::path::{Path, PathBuf};

use coalscope::lab::{Lab, LabOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_tmux_follows_the_watchfile_and_quits_cleanly() {
    let missing: &[&str] = if tmux_available() { &[] } else { &["tmux"] };
    if !common::interop_available(
        "tui_e2e",
        missing,
        "apt-get install -y --no-install-recommends tmux",
    ) {
        return;
    }
    let lab = Lab::start(LabOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let watchfile = dir.path().join("lab.watch");
    let original = std::fs::read_to_string(&lab.watchfile).unwrap();
    std::fs::write(&watchfile, &original).unwrap();

    let script = format!(
        "env -u COALSCOPE_DNS -u COALSCOPE_RESOLVE -u COALSCOPE_FROM -u NO_COLOR -u COALSCOPE_LOG_FILE COALSCOPE_LOG=debug,h2=trace {bin} watch {wf} --dns {dns} --ca-file {ca} --interval 1s --export-dir {dir}; \
         echo EXITED $?; stty -a | tr ' ' '\\n' | grep -x -e '-\\?icanon' -e '-\\?echo' | tr '\\n' ' '; echo STTY-DONE; sleep 600",
        bin = shell_quote(Path::new(env!("CARGO_BIN_EXE_coalscope"))),
        wf = shell_quote(&watchfile),
        dns = lab.dns,
        ca = shell_quote(&lab.ca_file),
        dir = shell_quote(dir.path()),
    );
    let tmux = Tmux::start(format!("coalscope-test-{}", std::process::id()), &script);

    // The dashboard owns the alternate screen and shows the lab's problems.
    let screen = tmux
        .wait_for("a misdirected pair", |s| {
            s.contains("misdirected") && s.contains("41 hosts")
        })
        .await;
    assert!(screen.contains("Groups ("), "{screen}");
    // Logs asked for with COALSCOPE_LOG go to a file, not over the dashboard.
    assert!(
        !screen.contains("DEBUG") && !screen.contains("TRACE"),
        "log lines on the dashboard:\n{screen}"
    );
    assert_eq!(tmux.query("#{alternate_on}"), "1");

    // Keep only the nginx and caddy names: the header follows within a few seconds.
    let kept: Vec<&str> = original
        .lines()
        .filter(|l| l.contains(".nginx.") || l.contains(".caddy."))
        .collect();
    std::fs::write(&watchfile, kept.join("\n") + "\n").unwrap();
    let screen = tmux
        .wait_for("the reduced list", |s| s.contains(" 4 hosts · 2 groups"))
        .await;
    // (The event log keeps the removed pairs' past verdict changes, so "apache" may still show
    // there; the header is what proves the reload.)
    let _ = screen;

    // A broken line: the last good list stays, and the header names file:line.
    std::fs::write(&watchfile, kept.join("\n") + "\nnot a host name!\n").unwrap();
    let screen = tmux
        .wait_for("the reload error", |s| s.contains("reload failed"))
        .await;
    assert!(screen.contains("lab.watch:5"), "{screen}");
    assert!(screen.contains(" 4 hosts"), "{screen}");

    // Export from the keyboard: the footer names the file, which holds contract JSON.
    tmux.keys(&["e"]);
    let screen = tmux.wait_for("the export", |s| s.contains("exported to")).await;
    let exported: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("coalscope-"))
        .collect();
    assert_eq!(exported.len(), 1, "{screen}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(exported[0].path()).unwrap()).unwrap();
    assert_eq!(doc["schema"], "coalscope/1");
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 4);

    // q quits; the terminal is back to normal.
    tmux.keys(&["q"]);
    // Wait for the line after stty's: "EXITED" alone can be captured before stty has printed.
    let screen = tmux.wait_for("the exit", |s| s.contains("STTY-DONE")).await;
    assert!(screen.contains("EXITED 0"), "{screen}");
    let log = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("coalscope: logs were written to "))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no log file named on exit:\n{screen}"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(text.contains("TRACE"), "h2 trace lines in {}", log.display());
    assert!(
        screen.contains("icanon echo"),
        "cooked mode after exit:\n{screen}"
    );
    assert_eq!(tmux.query("#{alternate_on}"), "0");
    assert_eq!(tmux.query("#{cursor_flag}"), "1");
    assert_eq!(tmux.query("#{mouse_any_flag}"), "0");
    drop(tmux);
    lab.shutdown().await;
}

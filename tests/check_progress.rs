//! `check`'s progress on stderr, from the real binary against the embedded lab: a line per
//! phase when stderr is a pipe (and stdout's report as before), a bar when stderr is a
//! terminal (a pty opened here), cleared on Ctrl-C; nothing with `--quiet`.

// Test code: a failed expectation is a failed test, said where it happened. The pty is opened
// with libc (openpty, kill), as the benchmarks do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    unsafe_code
)]

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coalscope::lab::{Lab, LabOptions};
use serde_json::Value;

/// Short timeouts: the lab's hanging servers would make every round wait for them.
const FAST: [&str; 4] = ["--timeout", "1s", "--format", "json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piped_stderr_gets_a_line_per_phase_and_stdout_the_report() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let out = common::check_lab(&lab, &[&FAST[..], &["--rounds", "2"]].concat()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\x1b'),
        "no terminal sequences in a pipe:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let names = coalscope::watchlist::load(&lab.watchfile).unwrap().entries.len();
    assert_eq!(
        lines[0],
        format!("coalscope: resolving {names} names…"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("coalscope: {names} names at "))
            && lines[1].contains("2 rounds of ")
            && lines[1].contains("at --max-rps 50"),
        "the estimate up front: {stderr}"
    );
    for round in ["round 1/2: ", "round 2/2: "] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("coalscope: {round}")) && l.contains(" requests planned (≈ ")),
            "{round} said: {stderr}"
        );
    }
    assert!(lines.contains(&"coalscope: judging…"), "{stderr}");
    assert!(
        lines.last().unwrap().starts_with("coalscope: done in "),
        "the last line says it is done: {stderr}"
    );
    // Stdout is the report alone, as before.
    let doc = common::stdout_json(&out);
    common::assert_valid(&doc);
    assert_eq!(doc["schema"], "coalscope/1");
    let requests = doc["summary"]["requests"].as_u64().unwrap();
    assert!(
        lines.last().unwrap().ends_with(&format!(" {requests} requests")),
        "the done line counts what the summary counts ({requests}): {stderr}"
    );

    let quiet = common::check_lab(&lab, &[&FAST[..], &["--rounds", "2", "-q"]].concat()).await;
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let quiet_doc = common::stdout_json(&quiet);
    assert_eq!(
        shape(&quiet_doc),
        shape(&doc),
        "the report's shape does not depend on progress"
    );
}

/// The keys of a JSON document down to the first element of every array: its shape.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                // Counts keyed by what was seen (statuses, verdicts, refusal kinds).
                .filter(|(k, _)| !(k.ends_with("statuses") || *k == "verdicts" || *k == "refusals"))
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        _ => Value::Null,
    }
}

/// A child whose stderr is a pty (its output gathered by a thread), stdout a pipe.
struct PtyChild {
    child: std::process::Child,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl PtyChild {
    fn spawn(args: &[String]) -> PtyChild {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 30,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // Owned from here: closed on every path.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let child = std::process::Command::new(common::bin())
            .args(args)
            .env_remove("COALSCOPE_DNS")
            .env_remove("COALSCOPE_RESOLVE")
            .env("TERM", "xterm-256color")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("spawn coalscope");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        let mut master = std::fs::File::from(master);
        // Reads until the child's end of the pty closes (EIO on Linux).
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = master.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        PtyChild {
            child,
            screen,
            reader: Some(reader),
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Wait (bounded) until the pty shows `text`.
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never shown:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the exit; stdout, the exit status and everything the pty showed.
    fn finish(mut self) -> (String, Option<i32>, String) {
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (stdout, status.code(), self.screen())
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        // Only when a failed assertion left it running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lab_check(lab: &Lab, extra: &[&str]) -> Vec<String> {
    let mut args = common::lab_args("check", lab, &lab.watchfile);
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_stderr_gets_a_bar_and_stdout_the_report() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    let args = lab_check(
        &lab,
        &[&FAST[..], &["--rounds", "2", "--max-rps", "100"]].concat(),
    );
    let child = tokio::task::spawn_blocking(move || {
        let child = PtyChild::spawn(&args);
        child.finish()
    });
    let (stdout, code, screen) = child.await.unwrap();
    let doc: Value = serde_json::from_str(&stdout).expect("stdout is the JSON report");
    common::assert_valid(&doc);
    assert!(code == Some(0) || code == Some(1), "{code:?}\n{screen}");
    // The estimate, then the bar: its phase, its bar, its counts and ETA, redrawn in place.
    assert!(screen.contains("at --max-rps 100"), "{screen}");
    assert!(screen.contains("coalscope: round 1/2 ["), "{screen}");
    assert!(screen.contains("coalscope: round 2/2 ["), "{screen}");
    assert!(
        screen.contains(" connections · ") && screen.contains(", ETA "),
        "{screen}"
    );
    assert!(
        screen.contains("\r\x1b[2K"),
        "lines are cleared and redrawn: {screen:?}"
    );
    // Finished: the bar is cleared before the last line, which is the only one after it.
    let last_bar = screen.rfind("ETA ").unwrap();
    let done = screen.rfind("coalscope: done in ").expect("the done line");
    assert!(done > last_bar, "{screen:?}");
    assert!(
        screen[last_bar..done].contains("\x1b[2K"),
        "the bar is cleared: {screen:?}"
    );
    assert!(!screen[done..].contains("ETA"), "{screen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_clears_the_bar() {
    let lab = Lab::start(LabOptions::default()).await.expect("lab starts");
    // Slow enough to be interrupted mid-round: 1 request a second.
    let args = lab_check(&lab, &[&FAST[..], &["--max-rps", "1"]].concat());
    let child = tokio::task::spawn_blocking(move || {
        let child = PtyChild::spawn(&args);
        child.wait_for("round 1/3 [");
        let pid = child.child.id() as libc::pid_t;
        // The child is ours, started above, and still running (it waits on the rate limit).
        unsafe { libc::kill(pid, libc::SIGINT) };
        child.finish()
    });
    let (stdout, code, screen) = child.await.unwrap();
    assert_eq!(code, Some(130), "{screen}");
    assert!(stdout.is_empty(), "no report when interrupted: {stdout}");
    let last_bar = screen.rfind("ETA ").unwrap();
    let end = screen
        .rfind("coalscope: interrupted")
        .expect("says it was interrupted");
    assert!(
        end > last_bar && screen[last_bar..end].contains("\x1b[2K"),
        "{screen:?}"
    );
}

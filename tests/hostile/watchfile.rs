//! Watch-file abuse, end to end through the real binary (and the watcher in-process): huge,
//! binary, invalid UTF-8, over-long names, IDN, duplicates, CRLF, no final newline, files
//! that vanish or cannot be read, and standard input that never ends.

use std::time::Duration;

use coalscope::watchlist;
use coalscope::watchlist::watcher::{self, Reload};
use tokio::sync::mpsc;

use super::common;

/// An address where nothing listens: probes are refused at once.
const NOWHERE: &str = "127.0.3.97";

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    path.display().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean(text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c)),
        "control characters in {text:?}"
    );
}

async fn check(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--timeout", "1s", "--rounds", "1", "--dns", "127.0.3.96:53"]);
    let out = common::run(&all, stdin).await;
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    out
}

#[tokio::test]
async fn a_hundred_thousand_lines_and_capped_warnings() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 spellings of one name (case, trailing dot, CRLF, comments): one entry, the
    // duplicate warnings capped.
    let mut text = String::new();
    for i in 0..100_000 {
        match i % 4 {
            0 => text.push_str("Dup.Hostile.Test\r\n"),
            1 => text.push_str("dup.hostile.test.\n"),
            2 => text.push_str("  # a comment\n"),
            _ => text.push_str("DUP.hostile.TEST. # trailing comment\n"),
        }
    }
    let path = write(&dir, "huge.watch", text.as_bytes());
    let resolve = format!("dup.hostile.test:{NOWHERE}");
    let out = check(&[&path, "--resolve", &resolve, "--format", "json"], None).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc = common::stdout_json(&out);
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["hosts"][0]["host"], "dup.hostile.test");
    let err = stderr(&out);
    let warnings = err.lines().filter(|l| l.starts_with("warning:")).count();
    assert_eq!(warnings, watchlist::MAX_DIAGNOSTICS + 1, "{err}");
    assert!(
        err.contains(&format!(
            "and {} more warnings",
            74_999 - watchlist::MAX_DIAGNOSTICS
        )),
        "{err}"
    );

    // 100,000 distinct names parse, in order.
    let many: String = (0..100_000).map(|i| format!("h{i}.hostile.test\n")).collect();
    let started = std::time::Instant::now();
    let list = watchlist::parse("many.watch", many.as_bytes()).expect("parse");
    println!("parsed 100,000 names in {:?}", started.elapsed());
    assert_eq!(list.entries.len(), 100_000);
    assert_eq!(list.entries[99_999].host, "h99999.hostile.test");
}

#[tokio::test]
async fn binary_junk_nul_and_invalid_utf8_are_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let utf8 = write(&dir, "utf8.watch", b"a.hostile.test\n\xff\xfeb.hostile.test\n");
    let out = check(&[&utf8], None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("utf8.watch:2") && err.contains("not valid UTF-8"),
        "{err}"
    );

    // Junk: NUL bytes, escape sequences, bidi overrides, random bytes; thousands of lines.
    let mut junk = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        junk.push((x >> 16) as u8);
    }
    junk.extend_from_slice(b"\n\x00\x00\n\x1b[2J\x1b]0;pwned\x07\n\xe2\x80\xaeevil.test\n");
    let path = write(&dir, "junk.watch", &junk);
    let out = check(&[&path], None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_clean(&err);
    let lines = err.lines().count();
    assert!(lines <= watchlist::MAX_DIAGNOSTICS + 2, "{lines} lines:\n{err}");
    assert!(err.contains("more invalid lines"), "{err}");
}

#[tokio::test]
async fn over_long_names_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let long_label = format!("{}.hostile.test\n", "a".repeat(64));
    let long_name = format!("{}hostile.test\n", "abcdefghi.".repeat(30));
    let huge = format!("{}\n", "x".repeat(1_000_000));
    let path = write(
        &dir,
        "long.watch",
        format!("{long_label}{long_name}{huge}").as_bytes(),
    );
    let out = check(&[&path], None).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("long.watch:1") && err.contains("at most 63"),
        "{err}"
    );
    assert!(
        err.contains("long.watch:2") && err.contains("at most 253"),
        "{err}"
    );
    assert!(err.contains("long.watch:3"), "{err}");
    assert!(
        err.len() < 2_000,
        "messages quote bounded text: {} bytes",
        err.len()
    );
}

#[tokio::test]
async fn idn_crlf_and_no_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "idn.watch",
        "Bücher.Hostile.Test\r\nB\u{fc}CHER.hostile.test.\r\nplain.hostile.test".as_bytes(),
    );
    let r1 = format!("xn--bcher-kva.hostile.test:{NOWHERE}");
    let r2 = format!("plain.hostile.test:{NOWHERE}");
    let out = check(
        &[&path, "--resolve", &r1, "--resolve", &r2, "--format", "json"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc = common::stdout_json(&out);
    let hosts: Vec<&str> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["xn--bcher-kva.hostile.test", "plain.hostile.test"]);
    assert!(
        stderr(&out).contains("idn.watch:2: duplicate"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn unreadable_files_and_endless_input_are_bounded_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Not readable even by root: reading /proc/self/mem at offset 0 fails.
    let out = check(&["/proc/self/mem"], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/proc/self/mem"), "{}", stderr(&out));
    // A directory, a dangling symlink.
    let out = check(&[dir.path().to_str().unwrap()], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("directory"), "{}", stderr(&out));
    let link = dir.path().join("dangling.watch");
    std::os::unix::fs::symlink(dir.path().join("missing"), &link).unwrap();
    let out = check(&[link.to_str().unwrap()], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("dangling.watch"), "{}", stderr(&out));
    // A file that never ends.
    let out = check(&["/dev/zero"], None).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("larger than 16 MiB"), "{}", stderr(&out));
    // Standard input: bounded too.
    let big = vec![b'#'; (watchlist::MAX_BYTES + 1024 * 1024) as usize];
    let out = check(&["-"], Some(&big)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("-: larger than 16 MiB"), "{}", stderr(&out));
    // …and its diagnostics capped.
    let bad = "not a host\n".repeat(1000);
    let out = check(&["-"], Some(bad.as_bytes())).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("-:1:") && err.contains("and 980 more invalid lines"),
        "{err}"
    );
    assert!(err.lines().count() <= watchlist::MAX_DIAGNOSTICS + 2, "{err}");
}

async fn next(rx: &mut mpsc::Receiver<Reload>) -> Result<Vec<String>, String> {
    match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
        Ok(Some(Reload(r))) => r
            .map(|l| l.entries.iter().map(|e| e.host.clone()).collect())
            .map_err(|e| e.to_string()),
        other => panic!("expected a reload, got {other:?}"),
    }
}

#[tokio::test]
async fn the_watcher_keeps_the_last_good_list_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.watch");
    std::fs::write(&file, "a.hostile.test\n").unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let _w = watcher::spawn(&file, tx).expect("watcher");

    // Junk: an error naming file:line, with the terminal-unsafe bytes defused.
    std::fs::write(&file, b"a.hostile.test\n\x1b[2J\x00junk\n").unwrap();
    let err = next(&mut rx).await.unwrap_err();
    assert!(
        err.contains("live.watch:2") && err.contains("last good list"),
        "{err}"
    );
    assert_clean(&err);
    // Gone.
    std::fs::remove_file(&file).unwrap();
    assert!(next(&mut rx).await.unwrap_err().contains("gone"));
    // Back, with a new list.
    std::fs::write(&file, "b.hostile.test\r\nc.hostile.test").unwrap();
    assert_eq!(next(&mut rx).await.unwrap(), ["b.hostile.test", "c.hostile.test"]);
    // Replaced by something that never ends (a device): refused unread, an error.
    std::fs::remove_file(&file).unwrap();
    assert!(next(&mut rx).await.unwrap_err().contains("gone"));
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let err = next(&mut rx).await.unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    // And back again.
    std::fs::remove_file(&file).unwrap();
    let _ = next(&mut rx).await;
    std::fs::write(&file, "d.hostile.test\n").unwrap();
    assert_eq!(next(&mut rx).await.unwrap(), ["d.hostile.test"]);
}

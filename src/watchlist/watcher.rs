//! Hot reload of the watch-file with notify. The parent directory is watched, not the file:
//! editors that save by writing a new file and renaming it over the old one replace the
//! inode, and a watch on the old inode would go silent. Bursts of events are debounced; a
//! content that did not change is not sent again. A deleted or broken file is reported as an
//! error (naming file:line) and the engine keeps the last good list.
//!
//! The watcher knows nothing of its reader: it sends `Reload`s into any channel whose items
//! can be made from one (the live engine's commands).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, Notify};

use crate::watchlist::{self, WatchError, WatchList};

/// Quiet time after the last file-system event before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A new content of the watch-file, or why it cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Reload(pub Result<WatchList, ReloadError>);

/// Why a saved watch-file is not used; the last good list stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    #[error("{file}: the file is gone; keeping the last good list")]
    Gone { file: String },
    /// It cannot be read (permissions, a directory, too big) or has invalid lines.
    #[error("{0}; keeping the last good list")]
    Unusable(WatchError),
}

/// Keeps the file watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch `path` and send a `Reload` to `commands` whenever its content changes.
/// Must be called inside a tokio runtime.
pub fn spawn<C>(path: &Path, commands: mpsc::Sender<C>) -> Result<Watcher, String>
where
    C: From<Reload> + Send + 'static,
{
    let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| format!("{}: not a file", path.display()))?;
    let changed = Arc::new(Notify::new());
    let signal = changed.clone();
    let mut inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            // Opening and closing (our own reads among them) change nothing.
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => false,
            Ok(e) => e.paths.iter().any(|p| p.file_name() == Some(name.as_os_str())),
            // An overflow or watch error: re-read to be safe.
            Err(_) => true,
        };
        if relevant {
            signal.notify_one();
        }
    })
    .map_err(|e| format!("{}: cannot watch: {e}", dir.display()))?;
    inner
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("{}: cannot watch: {e}", dir.display()))?;
    let label = path.display().to_string();
    // What the caller loaded: read now, before any later save can slip in unnoticed.
    let mut last: Option<Result<Vec<u8>, ReloadError>> = read(&path, &label).ok().map(Ok);
    let task = tokio::spawn(async move {
        loop {
            changed.notified().await;
            // Debounce: wait until the events stop for a moment.
            loop {
                tokio::select! {
                    _ = changed.notified() => continue,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                }
            }
            let read = read(&path, &label);
            if last.as_ref() == Some(&read) {
                continue;
            }
            let reload = match &read {
                Ok(bytes) => Reload(watchlist::parse(&label, bytes).map_err(ReloadError::Unusable)),
                Err(e) => Reload(Err(e.clone())),
            };
            last = Some(read);
            if commands.send(C::from(reload)).await.is_err() {
                break;
            }
        }
    });
    Ok(Watcher { _inner: inner, task })
}

/// The file's bytes (bounded by `watchlist::MAX_BYTES`), or why they could not be read.
/// Only a regular file (or a link to one) is read: the open does not wait (a FIFO put in its
/// place would block it until a writer came), and what was opened is checked, not the path
/// before (it may be replaced in between); a directory is said to be one.
fn read(path: &Path, label: &str) -> Result<Vec<u8>, ReloadError> {
    let unusable = |message: String| {
        ReloadError::Unusable(WatchError::Io {
            file: label.into(),
            message,
        })
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReloadError::Gone { file: label.into() })
        }
        Err(e) => return Err(unusable(e.to_string())),
    };
    match file.metadata() {
        Ok(meta) if meta.is_dir() => return Err(unusable("a directory, not a file".into())),
        Ok(meta) if !meta.is_file() => return Err(unusable("not a regular file".into())),
        Ok(_) => {}
        Err(e) => return Err(unusable(e.to_string())),
    }
    watchlist::read_bounded(label, file).map_err(ReloadError::Unusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(rx: &mut mpsc::Receiver<Reload>) -> Result<Vec<String>, String> {
        // A generous bound: the wait ends as soon as the reload arrives.
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(Reload(r))) => r
                .map(|l| l.entries.iter().map(|e| e.host.clone()).collect())
                .map_err(|e| e.to_string()),
            other => panic!("expected a reload, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn reloads_on_save_rename_error_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.watch");
        std::fs::write(&file, "a.test\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _w = spawn(&file, tx).unwrap();

        // A plain save.
        std::fs::write(&file, "a.test\nb.test\n").unwrap();
        assert_eq!(next(&mut rx).await.unwrap(), ["a.test", "b.test"]);

        // An editor's save: write a new file, rename it over the old one.
        let tmp = dir.path().join(".hosts.watch.swp");
        std::fs::write(&tmp, "c.test\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        assert_eq!(next(&mut rx).await.unwrap(), ["c.test"]);

        // A broken edit names file:line.
        std::fs::write(&file, "c.test\nnot a host\n").unwrap();
        let err = next(&mut rx).await.unwrap_err();
        assert!(
            err.contains("hosts.watch:2") && err.contains("last good list"),
            "{err}"
        );

        // Deleted, then back.
        std::fs::remove_file(&file).unwrap();
        assert!(next(&mut rx).await.unwrap_err().contains("gone"));
        std::fs::write(&file, "d.test\n").unwrap();
        assert_eq!(next(&mut rx).await.unwrap(), ["d.test"]);
    }

    /// What takes the file's place and is no file: a directory, a FIFO (whose open would block
    /// the watcher until a writer came), a link loop (unreadable even for root). Each is said,
    /// naming the file, and the watcher goes on to pick up the file when it is back.
    #[tokio::test]
    async fn a_directory_fifo_or_link_loop_in_its_place_is_said_and_the_file_picked_up_after() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.watch");
        std::fs::write(&file, "a.test\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _w = spawn(&file, tx).unwrap();

        // (what is put in the file's place, what the error says, how it is taken away).
        type Put = fn(&Path) -> std::io::Result<()>;
        let fifo: Put = |p| match std::process::Command::new("mkfifo").arg(p).status() {
            Ok(s) if s.success() => Ok(()),
            _ => Err(std::io::Error::other("no mkfifo")),
        };
        let cases: [(&str, Put, &str); 3] = [
            ("a directory", |p| std::fs::create_dir(p), "a directory"),
            ("a FIFO", fifo, "not a regular file"),
            (
                "a link loop",
                |p| std::os::unix::fs::symlink(p, p),
                "symbolic links",
            ),
        ];
        for (i, (what, put, says)) in cases.into_iter().enumerate() {
            std::fs::remove_file(&file).unwrap();
            if put(&file).is_err() {
                // Only a missing mkfifo tool may skip a case.
                assert_eq!(what, "a FIFO", "{what} could not be made");
            } else {
                let err = next_past_gone(&mut rx).await.unwrap_err();
                assert!(err.contains("hosts.watch") && err.contains(says), "{what}: {err}");
                let _ = std::fs::remove_dir(&file);
                let _ = std::fs::remove_file(&file);
            }
            let host = format!("back{i}.test");
            std::fs::write(&file, format!("{host}\n")).unwrap();
            assert_eq!(next_past_gone(&mut rx).await.unwrap(), [host], "after {what}");
        }
    }

    /// The next reload past any "gone" read between a removal and a creation.
    async fn next_past_gone(rx: &mut mpsc::Receiver<Reload>) -> Result<Vec<String>, String> {
        loop {
            match next(rx).await {
                Err(e) if e.contains("gone") => continue,
                other => return other,
            }
        }
    }
}

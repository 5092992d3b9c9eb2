//! The watch-file: one entry per line (`HOST`, `HOST:PORT`, `HOST/PATH`, `HOST:PORT/PATH`,
//! `https://HOST[:PORT][/PATH]`), `#` comments, blank lines ignored. Strict: a bad line is an
//! error naming `file:line`; a duplicate is a warning.
//!
//! `#` always starts a comment, even inside a URL (a fragment is never sent to a server, so
//! nothing is lost). Parsing is linear in the file size: one pass, one hash map for duplicates.

mod diff;
mod entry;
mod host;
#[cfg(test)]
mod tests;
pub mod watcher;

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use diff::{diff, WatchDiff};

/// One watched name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Lower-case A-labels, no trailing dot; an IPv6 literal without brackets.
    pub host: String,
    pub port: u16,
    /// Starts with '/'; None when the line gave no path (the `--path` default applies).
    pub path: Option<String>,
    /// 1-based line in the file.
    pub line: usize,
}

impl Entry {
    /// "host:port", as the JSON contract writes origins and targets (IPv6: "[::1]:443").
    pub fn key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A problem on one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A parsed watch-file: entries in file order, first occurrence kept for duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchList {
    pub entries: Vec<Entry>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    /// Every bad line, in order.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// Normalise a host name: IDN → A-labels (UTS 46), lower case, trailing dot dropped, length
/// and label rules checked (≤ 253 octets, labels 1–63). IP literals (IPv6 with or without
/// brackets) come back in canonical text form without brackets.
pub fn normalize_host(raw: &str) -> Result<String, String> {
    host::normalize(raw)
}

/// Parse watch-file bytes; `file` is the label used in diagnostics (a path, or "-").
/// Invalid UTF-8 is an error naming the line.
pub fn parse(file: &str, bytes: &[u8]) -> Result<WatchList, WatchError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let diag = |line: usize, message: String| Diagnostic {
        file: file.to_string(),
        line,
        message,
    };
    let mut list = WatchList::default();
    let mut errors = Vec::new();
    // (host, port) -> line of the first occurrence.
    let mut seen: HashMap<(String, u16), usize> = HashMap::new();
    // `split` yields one empty piece after a final newline; it is blank, so it is skipped.
    for (idx, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = idx + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some(p)) => {
                let entry = Entry {
                    host: p.host,
                    port: p.port,
                    path: p.path,
                    line,
                };
                match seen.entry((entry.host.clone(), entry.port)) {
                    MapEntry::Occupied(first) => {
                        let first = *first.get();
                        let message = format!(
                            "duplicate entry {} (first on line {first}); line {first} is kept",
                            entry.key()
                        );
                        list.warnings.push(diag(line, message));
                    }
                    MapEntry::Vacant(slot) => {
                        slot.insert(line);
                        list.entries.push(entry);
                    }
                }
            }
            Err(message) => errors.push(diag(line, message)),
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(WatchError::Invalid(errors))
    }
}

/// One line without its end-of-line: `Ok(None)` when blank or a comment.
fn parse_line(raw: &[u8]) -> Result<Option<entry::Parsed>, String> {
    if raw.contains(&0) {
        return Err("line contains a NUL byte".to_string());
    }
    let text = std::str::from_utf8(raw)
        .map_err(|e| format!("line is not valid UTF-8 (at byte {})", e.valid_up_to() + 1))?;
    let content = text.split('#').next().unwrap_or("").trim();
    let mut tokens = content.split_whitespace();
    let Some(token) = tokens.next() else {
        return Ok(None);
    };
    if tokens.next().is_some() {
        return Err(format!(
            "{} holds more than one entry; write one entry per line",
            host::quote(content)
        ));
    }
    entry::parse_entry(token).map(Some)
}

/// Read and parse a file ("-" is not handled here: the caller reads stdin).
pub fn load(path: &Path) -> Result<WatchList, WatchError> {
    let file = path.display().to_string();
    let io = |message: String| WatchError::Io {
        file: file.clone(),
        message,
    };
    if path.is_dir() {
        return Err(io("is a directory, not a watch-file".to_string()));
    }
    let bytes = std::fs::read(path).map_err(|e| io(format!("cannot read: {e}")))?;
    parse(&file, &bytes)
}

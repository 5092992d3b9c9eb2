//! The watch-file: one entry per line (`HOST`, `HOST:PORT`, `HOST/PATH`, `HOST:PORT/PATH`,
//! `https://HOST[:PORT][/PATH]`), `#` comments, blank lines ignored. Strict: a bad line is an
//! error naming `file:line`; a duplicate is a warning.

use std::fmt;
use std::path::Path;

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
        let _ = self;
        todo!()
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
    let _ = raw;
    todo!()
}

/// Parse watch-file bytes; `file` is the label used in diagnostics (a path, or "-").
/// Invalid UTF-8 is an error naming the line.
pub fn parse(file: &str, bytes: &[u8]) -> Result<WatchList, WatchError> {
    let _ = (file, bytes);
    todo!()
}

/// Read and parse a file ("-" is not handled here: the caller reads stdin).
pub fn load(path: &Path) -> Result<WatchList, WatchError> {
    let _ = path;
    todo!()
}

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
use std::io::Read;
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
    /// The first `MAX_DIAGNOSTICS` warnings, in order.
    pub warnings: Vec<Diagnostic>,
    /// Warnings left out of `warnings`.
    pub warnings_more: usize,
}

/// Largest watch-file read (file or standard input), in bytes: a watch-file of 100,000 long
/// entries fits; a runaway pipe or `/dev/zero` does not exhaust memory.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Errors and warnings kept (and shown) per file; the rest are counted ("and N more").
pub const MAX_DIAGNOSTICS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("{file}: {message}")]
    Io { file: String, message: String },
    /// The first `MAX_DIAGNOSTICS` bad lines, in order, and how many more there are.
    #[error("{}", invalid_text(.errors, *.more))]
    Invalid { errors: Vec<Diagnostic>, more: usize },
}

fn invalid_text(errors: &[Diagnostic], more: usize) -> String {
    let mut lines: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    if more > 0 {
        let file = errors.first().map(|d| d.file.as_str()).unwrap_or("watch-file");
        lines.push(format!(
            "{file}: and {more} more invalid line{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    lines.join("\n")
}

/// Normalise a host name: IDN → A-labels (UTS 46), lower case, trailing dot dropped, length
/// and label rules checked (≤ 253 octets, labels 1–63). IP literals (IPv6 with or without
/// brackets) come back in canonical text form without brackets.
pub fn normalize_host(raw: &str) -> Result<String, String> {
    host::normalize(raw)
}

/// One entry given outside a file (a command-line NAME): the syntax of a watch-file entry, as
/// one token (no whitespace, no `#` comment, no control character). The error says why.
pub fn parse_one(text: &str) -> Result<Entry, String> {
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(
            "not one entry (HOST, HOST:PORT, https://HOST[:PORT][/PATH]): no spaces, `#` or control characters"
                .to_string(),
        );
    }
    let p = entry::parse_entry(text)?;
    Ok(Entry {
        host: p.host,
        port: p.port,
        path: p.path,
        line: 0,
    })
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
    let mut more_errors = 0usize;
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
                        if list.warnings.len() < MAX_DIAGNOSTICS {
                            list.warnings.push(diag(line, message));
                        } else {
                            list.warnings_more += 1;
                        }
                    }
                    MapEntry::Vacant(slot) => {
                        slot.insert(line);
                        list.entries.push(entry);
                    }
                }
            }
            Err(_) if errors.len() >= MAX_DIAGNOSTICS => more_errors += 1,
            Err(message) => errors.push(diag(line, message)),
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(WatchError::Invalid {
            errors,
            more: more_errors,
        })
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

/// Read at most `MAX_BYTES` from `reader` (a file, standard input); more is an error naming
/// `file`, and nothing beyond the limit is read.
pub fn read_bounded(file: &str, reader: impl Read) -> Result<Vec<u8>, WatchError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| WatchError::Io {
            file: file.to_string(),
            message: format!("cannot read: {e}"),
        })?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(WatchError::Io {
            file: file.to_string(),
            message: format!(
                "larger than {} MiB; a watch-file that big is not supported",
                MAX_BYTES / (1024 * 1024)
            ),
        });
    }
    Ok(bytes)
}

/// Read (bounded by `MAX_BYTES`) and parse a watch-file from `reader`; `file` names it in
/// diagnostics ("-" for standard input).
pub fn read(file: &str, reader: impl Read) -> Result<WatchList, WatchError> {
    let bytes = read_bounded(file, reader)?;
    parse(file, &bytes)
}

/// The bytes of the file at `path`, bounded by `MAX_BYTES`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, WatchError> {
    let file = path.display().to_string();
    let io = |message: String| WatchError::Io {
        file: file.clone(),
        message,
    };
    if path.is_dir() {
        return Err(io("is a directory, not a watch-file".to_string()));
    }
    let handle = std::fs::File::open(path).map_err(|e| io(format!("cannot read: {e}")))?;
    read_bounded(&file, handle)
}

/// Read and parse a file ("-" is not handled here: the caller reads stdin with `read`).
pub fn load(path: &Path) -> Result<WatchList, WatchError> {
    let bytes = read_file(path)?;
    parse(&path.display().to_string(), &bytes)
}

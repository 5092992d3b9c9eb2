//! One watch-file entry: `HOST`, `HOST:PORT`, `HOST/PATH`, `HOST:PORT/PATH` or
//! `https://HOST[:PORT][/PATH]`, as a single whitespace-free token (comments already removed).
//!
//! Decisions:
//! - Only `https` is accepted as a scheme (any case): coalescing is an HTTP/2-over-TLS matter.
//! - Userinfo (`user@host`) is an error: browsers never send it and it hides the host.
//! - A query (`?q=1`) is kept as part of the path, as it is sent in `:path`; `HOST?q` means
//!   `HOST/?q`, as in a browser. A `#` never reaches here: it starts a comment in the file.
//! - A path is kept as written (`/` included, so `https://a.example/` asks for `/` even when
//!   `--path` says otherwise), except that characters not allowed in a URI (non-ASCII, `"`,
//!   `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`) are percent-encoded as a browser would; control
//!   characters are an error.
//! - An empty port (`a.example:`) is an error rather than silently 443.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

use super::host::{normalize, quote};

/// The parts of one entry, host normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Parsed {
    pub host: String,
    pub port: u16,
    pub path: Option<String>,
}

pub(super) fn parse_entry(token: &str) -> Result<Parsed, String> {
    let rest = strip_scheme(token)?;
    // The authority ends at the first '/' or '?'; everything from there is the path.
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    if authority.contains('@') {
        return Err(format!(
            "{} has user information (user@host), which is not supported",
            quote(token)
        ));
    }
    let (host_raw, port) = split_port(authority)?;
    if host_raw.is_empty() {
        return Err(format!("{} has no host", quote(token)));
    }
    let host = normalize(host_raw)?;
    let path = match tail {
        "" => None,
        t if t.starts_with('?') => Some(encode_path(&format!("/{t}"))?),
        t => Some(encode_path(t)?),
    };
    Ok(Parsed { host, port, path })
}

/// `https://` (any case) is dropped; any other `scheme://` is an error.
fn strip_scheme(token: &str) -> Result<&str, String> {
    let Some(idx) = token.find("://") else {
        return Ok(token);
    };
    let scheme = &token[..idx];
    // A "://" after a '/' belongs to the path (`a.example/redirect?to=https://b`).
    if scheme.contains(['/', '?']) {
        return Ok(token);
    }
    if scheme.eq_ignore_ascii_case("https") {
        Ok(&token[idx + 3..])
    } else {
        Err(format!(
            "unsupported scheme {} (only https:// is watched)",
            quote(scheme)
        ))
    }
}

/// Split `host[:port]` or `[v6][:port]`; the port defaults to 443.
fn split_port(authority: &str) -> Result<(&str, u16), String> {
    if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(format!("{} lacks the closing ']'", quote(authority)));
        };
        let (host, after) = authority.split_at(close + 1);
        if host[1..close].parse::<Ipv6Addr>().is_err() {
            return Err(format!("{} is not a valid IPv6 address", quote(host)));
        }
        return match after {
            "" => Ok((host, 443)),
            a => match a.strip_prefix(':') {
                Some(p) => Ok((host, parse_port(p)?)),
                None => Err(format!("unexpected {} after {}", quote(a), quote(host))),
            },
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, 443)),
        Some((_, port)) if port.contains(':') => Err(format!(
            "{} has several ':'; write an IPv6 address in brackets, e.g. [2001:db8::1]:443",
            quote(authority)
        )),
        Some((host, port)) => Ok((host, parse_port(port)?)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err("missing port after ':'".to_string());
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {} is not a number", quote(p)));
    }
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("port {} is out of range 1-65535", quote(p))),
    }
}

/// Percent-encode what a URI may not contain, as a browser does before sending the path.
fn encode_path(path: &str) -> Result<String, String> {
    if path.chars().any(char::is_control) {
        return Err(format!("path {} contains control characters", quote(path)));
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    Ok(out)
}

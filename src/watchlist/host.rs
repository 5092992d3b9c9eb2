//! Host name normalisation, shared by the watch-file, `--resolve` and SAN matching.
//!
//! Decisions (the integrator should know them):
//! - IDN goes through UTS 46 ToASCII (the mapping browsers use: case folding, full-width dots,
//!   Punycode), with an ASCII deny list of every non-LDH character *except* `_`: underscores
//!   occur in real DNS names (`_dmarc`, some CDN hosts), and rejecting them would refuse names
//!   that browsers and resolvers accept.
//! - Hyphen positions are not checked (UTS 46 `CheckHyphens=false`, as in the WHATWG URL
//!   standard): browsers resolve `-a.example` and `a-.example`, so a monitor must too.
//! - A name whose last label looks numeric (`1.2.3`, `0x7f.1`) but is not a valid IPv4 address
//!   is rejected: browsers would parse it as an IPv4 address, DNS would look it up as a name.

use std::net::{IpAddr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::sanitize::for_terminal;

/// Printable ASCII that is not a letter, digit, `-`, `.` or `_`; space and controls are added
/// by `deny_glyphless`.
const DENY: AsciiDenyList = AsciiDenyList::new(true, "!\"#$%&'()*+,/:;<=>?@[\\]^`{|}~");

/// Longest name in octets, without the trailing dot (RFC 1035 §2.3.4 wire limit minus framing).
const MAX_NAME: usize = 253;
/// Longest label in octets.
const MAX_LABEL: usize = 63;

/// Quote untrusted text for a message: control characters replaced, cut to ~80 characters.
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", for_terminal(s, 80))
}

pub(super) fn normalize(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("empty host name".to_string());
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{} is not a valid IPv6 address", quote(raw)));
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    // One trailing dot names the root; strip it before UTS 46 so that `a.example.` and
    // `a.example` are the same entry. A second dot leaves an empty label, which is an error.
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() {
        return Err(format!("{} is not a host name", quote(raw)));
    }
    let ascii = Uts46::new()
        .to_ascii(name.as_bytes(), DENY, Hyphens::Allow, DnsLength::Ignore)
        .map_err(|_| invalid_idna(raw))?;
    check_ldh(raw, &ascii)?;
    Ok(ascii.into_owned())
}

/// Say what is wrong with a name UTS 46 refused, as precisely as cheaply possible.
fn invalid_idna(raw: &str) -> String {
    let q = quote(raw);
    if raw.chars().any(char::is_whitespace) {
        format!("host name {q} contains whitespace")
    } else if raw.chars().any(char::is_control) {
        format!("host name {q} contains a control character")
    } else if let Some(c) = raw.chars().find(|c| c.is_ascii() && !is_name_char(*c)) {
        format!(
            "host name {q} contains {}, which is not allowed in a host name",
            quote(&c.to_string())
        )
    } else if raw.contains("..") || raw.starts_with('.') {
        format!("host name {q} has an empty label")
    } else {
        format!("host name {q} is not a valid internationalised domain name (UTS 46)")
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Length and label rules on the A-label form (UTS 46 output), plus a final LDH(+`_`) check
/// so that nothing unexpected can slip through into SNI or `:authority`.
fn check_ldh(raw: &str, ascii: &str) -> Result<(), String> {
    let q = quote(raw);
    if ascii.len() > MAX_NAME {
        return Err(format!(
            "host name {q} is {} octets long (as A-labels); at most {MAX_NAME} are allowed",
            ascii.len()
        ));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(format!("host name {q} has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "host name {q} has a label of {} octets (as A-labels); at most {MAX_LABEL} are allowed",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !is_name_char(*c) || c.is_ascii_uppercase())
        {
            return Err(format!("host name {q} contains {}", quote(&c.to_string())));
        }
    }
    if let Some(last) = ascii.rsplit('.').next() {
        if looks_numeric(last) {
            return Err(format!(
                "host name {q} ends in a number but is not a valid IPv4 address"
            ));
        }
    }
    Ok(())
}

/// The WHATWG URL "ends in a number" test: decimal digits, or `0x` followed by hex digits.
fn looks_numeric(label: &str) -> bool {
    let hex = label.strip_prefix("0x").or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

//! The Alt-Svc field value (RFC 7838 §3), as an `Alt-Svc` response header or the value of an
//! HTTP/2 ALTSVC frame carries it: `h3=":443"; ma=86400, h2="alt.example:8443"`, or `clear`.
//! The text is the server's: a bad alternative is skipped (and counted), never a panic; the
//! work is bounded by `MAX_VALUE` bytes and `MAX_ALT_SVC` alternatives.

use crate::engine::probe::signals::{AltService, AltSvcSource, MAX_ALT_SVC};

/// Bytes of one field value that are read; the rest is ignored (real values are well under
/// 200 bytes: Google's, with two alternatives, is 48).
pub const MAX_VALUE: usize = 4096;
/// Longest protocol id kept (an ALPN id is at most 255 bytes, RFC 7301 §3.1).
const MAX_PROTOCOL: usize = 255;
/// Longest alternative host kept (a DNS name is at most 253 characters; brackets for IPv6).
const MAX_HOST: usize = 255;

/// One field value, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedAltSvc {
    /// The value was `clear`: the origin's alternatives are to be forgotten.
    pub clear: bool,
    /// The well-formed alternatives, in order, at most `MAX_ALT_SVC`.
    pub services: Vec<AltService>,
    /// Alternatives that did not parse, or were beyond `MAX_ALT_SVC`.
    pub skipped: usize,
}

/// Parse one Alt-Svc field value (bytes as received: it may not be UTF-8).
pub fn parse_alt_svc(value: &[u8], source: AltSvcSource) -> ParsedAltSvc {
    let value = bounded(value);
    let mut parsed = ParsedAltSvc::default();
    if trim(value) == b"clear" {
        parsed.clear = true;
        return parsed;
    }
    for alternative in split_unquoted(value, b',') {
        if trim(alternative).is_empty() {
            // `1#` lists allow empty elements (RFC 9110 §5.6.1).
            continue;
        }
        match parse_alternative(alternative, source) {
            Some(service) if parsed.services.len() < MAX_ALT_SVC => parsed.services.push(service),
            _ => parsed.skipped += 1,
        }
    }
    parsed
}

/// At most `MAX_VALUE` bytes, cut after the last whole alternative that fits (a cut
/// alternative would read as a different one, e.g. `ma=86` for `ma=86400`).
fn bounded(value: &[u8]) -> &[u8] {
    if value.len() <= MAX_VALUE {
        return value;
    }
    let head = &value[..MAX_VALUE];
    match head.iter().rposition(|&b| b == b',') {
        Some(comma) => &head[..comma],
        None => &[],
    }
}

/// `protocol-id "=" alt-authority *( OWS ";" OWS parameter )`.
fn parse_alternative(text: &[u8], source: AltSvcSource) -> Option<AltService> {
    let mut parts = split_unquoted(text, b';');
    let first = parts.next()?;
    let (protocol, authority) = split_once(first, b'=')?;
    let protocol = percent_decode(trim(protocol))?;
    let authority = unquote(trim(authority))?;
    let (host, port) = parse_authority(&authority)?;
    let mut max_age = None;
    for parameter in parts {
        let Some((name, value)) = split_once(parameter, b'=') else {
            continue;
        };
        // Parameter names are case-insensitive tokens; unknown ones (persist, …) are ignored.
        if trim(name).eq_ignore_ascii_case(b"ma") {
            max_age = unquote(trim(value)).and_then(|v| delta_seconds(&v));
        }
    }
    Some(AltService {
        protocol,
        host,
        port,
        max_age,
        source,
    })
}

/// `[ uri-host ] ":" port`, e.g. `:443`, `alt.example:8443`, `[2001:db8::1]:443`.
fn parse_authority(authority: &[u8]) -> Option<(Option<String>, u16)> {
    let colon = authority.iter().rposition(|&b| b == b':')?;
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    if port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port: u16 = std::str::from_utf8(port).ok()?.parse().ok()?;
    if port == 0 {
        return None;
    }
    if host.is_empty() {
        return Some((None, port));
    }
    let printable = |b: &u8| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'"' | b'\\');
    if host.len() > MAX_HOST || !host.iter().all(printable) {
        return None;
    }
    let bracketed = host.first() == Some(&b'[') && host.last() == Some(&b']');
    if !bracketed && host.contains(&b':') {
        return None;
    }
    let host = String::from_utf8(host.to_ascii_lowercase()).ok()?;
    Some((Some(host), port))
}

/// `delta-seconds`: digits; a value past `u32::MAX` is `u32::MAX` (RFC 9111 §1.2.2).
fn delta_seconds(value: &[u8]) -> Option<u32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u32 = 0;
    for &d in value {
        n = n.saturating_mul(10).saturating_add(u32::from(d - b'0'));
    }
    Some(n)
}

/// A protocol-id: a token with `%XX` escapes (RFC 7838 §3: `h2`, `w=x%3Ay` for "w=x:y").
/// The decoded id must be printable ASCII (the ALPN ids that matter are) and non-empty.
fn percent_decode(token: &[u8]) -> Option<String> {
    if token.is_empty() || token.len() > 3 * MAX_PROTOCOL || !token.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let mut out = Vec::with_capacity(token.len());
    let mut i = 0;
    while i < token.len() {
        if token[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(token[i]);
            i += 1;
        }
    }
    if out.len() > MAX_PROTOCOL || !out.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A quoted-string's content with its `\` escapes undone; a bare token is accepted as itself
/// (servers send `ma="86400"` and, rarely, an unquoted authority).
fn unquote(text: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = text.strip_prefix(b"\"") else {
        return (!text.is_empty() && !text.contains(&b'"')).then(|| text.to_vec());
    };
    let inner = inner.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut escaped = false;
    for &b in inner {
        if escaped {
            out.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return None;
        } else {
            out.push(b);
        }
    }
    (!escaped).then_some(out)
}

fn trim(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &text[start..end.max(start)]
}

fn split_once(text: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = text.iter().position(|&b| b == at)?;
    Some((&text[..i], &text[i + 1..]))
}

/// Pieces of `text` between `sep`s that are not inside a quoted-string.
fn split_unquoted(text: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in current.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&current[i + 1..]);
                return Some(&current[..i]);
            }
        }
        rest = None;
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alt(protocol: &str, host: Option<&str>, port: u16, max_age: Option<u32>) -> AltService {
        AltService {
            protocol: protocol.into(),
            host: host.map(str::to_string),
            port,
            max_age,
            source: AltSvcSource::Header,
        }
    }

    fn parse(value: &str) -> ParsedAltSvc {
        parse_alt_svc(value.as_bytes(), AltSvcSource::Header)
    }

    #[test]
    fn values_from_the_rfc_and_real_servers() {
        let cases: Vec<(&str, Vec<AltService>, usize)> = vec![
            // Cloudflare.
            (
                r#"h3=":443"; ma=86400"#,
                vec![alt("h3", None, 443, Some(86400))],
                0,
            ),
            // Google.
            (
                r#"h3=":443"; ma=2592000,h3-29=":443"; ma=2592000"#,
                vec![
                    alt("h3", None, 443, Some(2_592_000)),
                    alt("h3-29", None, 443, Some(2_592_000)),
                ],
                0,
            ),
            // RFC 7838 §3 examples.
            (r#"h2=":8000""#, vec![alt("h2", None, 8000, None)], 0),
            (
                r#"h2="new.example.org:80""#,
                vec![alt("h2", Some("new.example.org"), 80, None)],
                0,
            ),
            (
                r#"w=x%3Dy=":443""#,
                // The id `w=x%3Dy` splits at the first "=": `w` with the authority `x%3Dy=":443"`
                // which is no quoted-string: skipped.
                vec![],
                1,
            ),
            (r#"w%3Dx%3Ay=":443""#, vec![alt("w=x:y", None, 443, None)], 0),
            (
                r#"h3-29=":443"; ma=93600; persist=1, h2="alt.example:8443""#,
                vec![
                    alt("h3-29", None, 443, Some(93600)),
                    alt("h2", Some("alt.example"), 8443, None),
                ],
                0,
            ),
            // RFC 7838 §3.1: `ma` in quotes, unknown parameters ignored.
            (
                r#"h2=":443"; ma="60"; foo="bar;baz,qux""#,
                vec![alt("h2", None, 443, Some(60))],
                0,
            ),
            (
                r#"h2="[2001:DB8::1]:443""#,
                vec![alt("h2", Some("[2001:db8::1]"), 443, None)],
                0,
            ),
            (
                r#"h3=":443"; ma=99999999999"#,
                vec![alt("h3", None, 443, Some(u32::MAX))],
                0,
            ),
            (r#"h3=":443"; ma=-1"#, vec![alt("h3", None, 443, None)], 0),
            // Tolerated garbage: empty elements, spaces, an unquoted authority.
            (r#" , h3=":443" ,, "#, vec![alt("h3", None, 443, None)], 0),
            ("h3=:443", vec![alt("h3", None, 443, None)], 0),
            // Skipped: no port, port 0, too big, no "=", a path, a bad escape, an unterminated
            // quote (which swallows the rest of the value).
            (r#"h3="alt.example""#, vec![], 1),
            (r#"h3=":0", h3=":65536", h3"#, vec![], 3),
            (r#"h3="a.example/x:443", h%zz=":443", h3="#, vec![], 3),
            (r#"h3=":443, h2=":443"#, vec![], 1),
            ("\u{1b}[31m=\":443\"", vec![], 1),
        ];
        for (value, services, skipped) in cases {
            let parsed = parse(value);
            assert_eq!(parsed.services, services, "{value}");
            assert_eq!(parsed.skipped, skipped, "{value}");
            assert!(!parsed.clear, "{value}");
        }
    }

    #[test]
    fn clear_is_the_whole_value() {
        assert!(parse("clear").clear);
        assert!(parse("  clear ").clear);
        assert!(!parse("Clear").clear);
        assert_eq!(parse("clear, h3=\":443\"").services.len(), 1);
    }

    #[test]
    fn bounded_in_alternatives_and_bytes() {
        let many = vec![r#"h3=":443""#; 40].join(", ");
        let parsed = parse(&many);
        assert_eq!(parsed.services.len(), MAX_ALT_SVC);
        assert_eq!(parsed.skipped, 40 - MAX_ALT_SVC);

        // A value past MAX_VALUE is cut after its last whole alternative.
        let long = format!(
            r#"h3=":443"; ma=86400, h2=":443"; x="{}""#,
            "y".repeat(2 * MAX_VALUE)
        );
        let parsed = parse(&long);
        assert_eq!(parsed.services, vec![alt("h3", None, 443, Some(86400))]);
        assert!(parse(&"z".repeat(10 * MAX_VALUE)).services.is_empty());

        // Not UTF-8: skipped, no panic.
        let parsed = parse_alt_svc(b"h3=\":443\", \xff\xfe=\":1\"", AltSvcSource::Frame);
        assert_eq!(parsed.services.len(), 1);
        assert_eq!(parsed.services[0].source, AltSvcSource::Frame);
        assert_eq!(parsed.skipped, 1);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_stays_bounded(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let parsed = parse_alt_svc(&bytes, AltSvcSource::Header);
            proptest::prop_assert!(parsed.services.len() <= MAX_ALT_SVC);
            for s in &parsed.services {
                proptest::prop_assert!(s.protocol.len() <= MAX_PROTOCOL && s.port != 0);
            }
        }
    }
}

//! Strings from the network are untrusted: strip control characters (C0, C1, DEL, and the
//! bidirectional overrides) before they reach a terminal, and bound their length.

/// Replace every control or bidi-override character with U+FFFD and cut to `max_chars`
/// characters (adding "…" when cut).
pub fn for_terminal(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    for (n, c) in s.chars().enumerate() {
        if n >= max_chars {
            out.push('…');
            break;
        }
        out.push(if is_unsafe(c) { '\u{fffd}' } else { c });
    }
    out
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_bidi() {
        assert_eq!(for_terminal("a\x1b[31mb", 100), "a\u{fffd}[31mb");
        assert_eq!(for_terminal("x\u{202e}y\r\n", 100), "x\u{fffd}y\u{fffd}\u{fffd}");
        assert_eq!(for_terminal("\u{9b}", 100), "\u{fffd}");
    }

    #[test]
    fn bounds_length() {
        assert_eq!(for_terminal(&"a".repeat(10), 3), "aaa…");
        assert_eq!(for_terminal("abc", 3), "abc");
    }
}

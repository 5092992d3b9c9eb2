//! Strings from the network are untrusted: strip control characters (C0, C1, DEL), the
//! bidirectional controls (overrides, embeddings, isolates, marks, including U+061C ARABIC
//! LETTER MARK) and other invisible format characters before they reach a terminal, and bound
//! their length.

/// Longest network string drawn or printed in one place, in characters.
pub const DISPLAY_MAX: usize = 512;

/// Replace every control, bidi or format character with U+FFFD and cut to `max_chars`
/// characters (adding "…" when cut).
pub fn for_terminal(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_mul(4)));
    for (n, c) in s.chars().enumerate() {
        if n >= max_chars {
            out.push('…');
            break;
        }
        out.push(if is_unsafe(c) { '\u{fffd}' } else { c });
    }
    out
}

/// `for_terminal` with the default display bound.
pub fn for_display(s: &str) -> String {
    for_terminal(s, DISPLAY_MAX)
}

/// True when `s` holds nothing `for_terminal` would replace.
pub fn is_clean(s: &str) -> bool {
    !s.chars().any(is_unsafe)
}

/// Characters that must never reach a terminal: controls (C0, DEL, C1), line and paragraph
/// separators, the bidi controls, and invisible format characters (general category Cf) that
/// can hide or reorder text.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061c}'
                | '\u{06dd}'
                | '\u{070f}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
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
    fn strips_every_bidi_and_format_character() {
        for c in [
            '\u{061c}',
            '\u{200b}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202b}',
            '\u{202c}',
            '\u{202d}',
            '\u{202e}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{2028}',
            '\u{2029}',
            '\u{feff}',
            '\u{00ad}',
            '\u{e0041}',
            '\u{7f}',
            '\0',
        ] {
            let s = format!("a{c}b");
            assert_eq!(for_terminal(&s, 10), "a\u{fffd}b", "U+{:04X}", c as u32);
            assert!(!is_clean(&s));
        }
        // Ordinary non-ASCII text stays.
        assert_eq!(
            for_terminal("bücher.example مرحبا 日本", 100),
            "bücher.example مرحبا 日本"
        );
        assert!(is_clean("bücher.example"));
    }

    #[test]
    fn bounds_length() {
        assert_eq!(for_terminal(&"a".repeat(10), 3), "aaa…");
        assert_eq!(for_terminal("abc", 3), "abc");
        assert_eq!(for_display(&"x".repeat(10_000)).chars().count(), DISPLAY_MAX + 1);
    }
}

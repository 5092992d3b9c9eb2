//! A compact similarity fingerprint of a page (`PageSketch`), made while the body is read and
//! never keeping the body: a bottom-k MinHash of the page's word 3-shingles (the `K` smallest
//! 32-bit shingle hashes) and a hash of its `<title>`. Two sketches estimate how much of the two
//! pages' text is shared (the Jaccard similarity of their shingle sets), which tells "the same
//! page, varying by connection" (it prints the server name it was reached by, a client port, …)
//! from "another site's page".
//!
//! Resolution: a page of fewer than `K` distinct shingles (about 60 words) is kept whole, so
//! small pages (the ones where one word matters most) are compared exactly. Bigger pages are
//! estimated from the `K` smallest hashes of the union of both, with a standard error of about
//! sqrt(J(1 - J) / K), under 0.07: far below the margins the judgement uses. Every word is in
//! exactly 3 shingles, the first and last too (the page is framed by marks). Sketches are
//! deterministic (fixed hashes), so answers compare across probes and runs.

/// Hashes kept per page (bottom-k MinHash).
pub const K: usize = 64;
/// Words per shingle.
const SHINGLE: usize = 3;
/// Bytes of a title that are hashed (the rest is ignored).
const TITLE_CAP: usize = 256;
const TITLE_OPEN: &[u8] = b"<title";

/// What is kept of a page: 4 × `K` + 12 bytes, whatever the body's size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageSketch {
    /// The smallest distinct shingle hashes, ascending; `len` of them are set.
    hashes: [u32; K],
    len: u8,
    /// Hash of the first `<title>`'s text (trimmed, whitespace collapsed, ASCII lower-cased);
    /// None when there is none or it is empty.
    title: Option<u32>,
}

impl PageSketch {
    /// The sketch of a whole body (at most what the caller read).
    pub fn of(body: &[u8]) -> PageSketch {
        let mut s = Sketcher::new();
        s.update(body);
        s.finish()
    }

    /// Estimated Jaccard similarity of the two pages' shingle sets, in [0, 1]: 1 for
    /// identical pages, 0 for pages sharing nothing; exact when both have fewer than `K`
    /// distinct shingles. Bottom-k estimator: of the `K` smallest hashes of the union, the
    /// share found in both.
    pub fn similarity(&self, other: &PageSketch) -> f64 {
        let (a, b) = (self.hashes(), other.hashes());
        let (mut i, mut j, mut seen, mut both) = (0, 0, 0u32, 0u32);
        while (seen as usize) < K && (i < a.len() || j < b.len()) {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => {
                    both += 1;
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => i += 1,
                (Some(_), None) => i += 1,
                _ => j += 1,
            }
            seen += 1;
        }
        if seen == 0 {
            return 1.0;
        }
        f64::from(both) / f64::from(seen)
    }

    fn hashes(&self) -> &[u32] {
        &self.hashes[..usize::from(self.len).min(K)]
    }

    /// Both pages have a title, and it is the same.
    pub fn same_title(&self, other: &PageSketch) -> bool {
        self.title.is_some() && self.title == other.title
    }

    pub fn has_title(&self) -> bool {
        self.title.is_some()
    }
}

/// Where the search for the title stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TitleState {
    /// Looking for `<title`: this many of its bytes matched.
    Seek(usize),
    /// Inside the `<title …>` tag.
    Tag,
    /// In the title's text.
    Text,
    Done,
}

/// Builds a `PageSketch` from a body fed in pieces (words and the title may span pieces).
#[derive(Debug, Clone)]
pub struct Sketcher {
    /// The smallest distinct shingle hashes so far, ascending.
    smallest: Vec<u32>,
    /// Hash of the word being read, if inside one.
    word: Option<u64>,
    /// Hashes of the last words, oldest first, and how many words were seen.
    recent: [u64; SHINGLE],
    words: u64,
    title_state: TitleState,
    title_hash: u64,
    title_len: usize,
    title_space: bool,
}

impl Default for Sketcher {
    fn default() -> Self {
        Sketcher::new()
    }
}

/// The words before the first and after the last word of a page (no word hashes to them but
/// by a 2^-64 chance).
const START_MARK: u64 = 0x5354_4152_545f_5f5f;
const END_MARK: u64 = 0x454e_445f_5f5f_5f5f;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// SplitMix64's finaliser: spreads a combined hash over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Bytes that belong to words: ASCII letters and digits, and every non-ASCII byte (so UTF-8
/// words stay whole).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

impl Sketcher {
    pub fn new() -> Sketcher {
        Sketcher {
            smallest: Vec::with_capacity(K),
            word: None,
            // The page starts with SHINGLE - 1 start marks (and `finish` ends it with as many
            // end marks), so that every word is in exactly SHINGLE shingles: a word near an
            // edge weighs what any other word weighs. Without them, "host=b sni=a" was closer
            // to "host=a sni=a" than to "host=b sni=b" (the last word is in 3 shingles, the
            // second in 2).
            recent: [START_MARK; SHINGLE],
            words: SHINGLE as u64 - 1,
            title_state: TitleState::Seek(0),
            title_hash: FNV_OFFSET,
            title_len: 0,
            title_space: false,
        }
    }

    /// Feed the next bytes of the body.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            if is_word_byte(b) {
                let h = self.word.unwrap_or(FNV_OFFSET);
                self.word = Some(fnv(h, b.to_ascii_lowercase()));
            } else if let Some(w) = self.word.take() {
                self.push_word(w);
            }
            if self.title_state != TitleState::Done {
                self.title_byte(b);
            }
        }
    }

    /// The sketch of everything fed.
    pub fn finish(mut self) -> PageSketch {
        if let Some(w) = self.word.take() {
            self.push_word(w);
        }
        for _ in 1..SHINGLE {
            self.push_word(END_MARK);
        }
        let title = match self.title_state {
            TitleState::Text | TitleState::Done if self.title_len > 0 => {
                Some((self.title_hash ^ (self.title_hash >> 32)) as u32)
            }
            _ => None,
        };
        let mut hashes = [0u32; K];
        hashes[..self.smallest.len()].copy_from_slice(&self.smallest);
        PageSketch {
            hashes,
            len: self.smallest.len() as u8,
            title,
        }
    }

    fn push_word(&mut self, w: u64) {
        self.recent.rotate_left(1);
        self.recent[SHINGLE - 1] = w;
        self.words += 1;
        if self.words >= SHINGLE as u64 {
            let mut h = 0u64;
            for w in &self.recent {
                h = mix(h ^ w);
            }
            self.add_shingle(h);
        }
    }

    /// Bottom-k MinHash: keep the `K` smallest distinct hashes.
    fn add_shingle(&mut self, h: u64) {
        let h = (mix(h) >> 32) as u32;
        if self.smallest.len() == K && self.smallest.last().is_some_and(|m| h >= *m) {
            return;
        }
        if let Err(at) = self.smallest.binary_search(&h) {
            if self.smallest.len() == K {
                self.smallest.pop();
            }
            self.smallest.insert(at, h);
        }
    }

    fn title_byte(&mut self, b: u8) {
        self.title_state = match self.title_state {
            TitleState::Seek(n) => {
                if TITLE_OPEN.get(n) == Some(&b.to_ascii_lowercase()) {
                    if n + 1 == TITLE_OPEN.len() {
                        TitleState::Tag
                    } else {
                        TitleState::Seek(n + 1)
                    }
                } else if b == b'<' {
                    TitleState::Seek(1)
                } else {
                    TitleState::Seek(0)
                }
            }
            TitleState::Tag if b == b'>' => TitleState::Text,
            TitleState::Tag => TitleState::Tag,
            TitleState::Text if b == b'<' => TitleState::Done,
            TitleState::Text => {
                if b.is_ascii_whitespace() {
                    self.title_space = self.title_len > 0;
                } else if self.title_len < TITLE_CAP {
                    if std::mem::take(&mut self.title_space) {
                        self.title_hash = fnv(self.title_hash, b' ');
                    }
                    self.title_hash = fnv(self.title_hash, b.to_ascii_lowercase());
                    self.title_len += 1;
                }
                TitleState::Text
            }
            TitleState::Done => TitleState::Done,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of about 1 KB: 150 words of ordinary text around a line that names `name`.
    fn page(site: &str, name: &str) -> String {
        let words: Vec<String> = (0..150).map(|i| format!("{site}word{}", i % 97)).collect();
        format!(
            "<html><head><title>{site} home</title></head><body><p>{}</p><p>reached as {name}</p>{}</body></html>",
            words[..75].join(" "),
            words[75..].join(" ")
        )
    }

    fn sim(a: &str, b: &str) -> f64 {
        PageSketch::of(a.as_bytes()).similarity(&PageSketch::of(b.as_bytes()))
    }

    #[test]
    fn a_sketch_is_small() {
        assert!(std::mem::size_of::<PageSketch>() <= 4 * K + 12);
    }

    #[test]
    fn identical_pages_are_one() {
        let p = page("shop", "a.example");
        assert_eq!(sim(&p, &p), 1.0);
        assert_eq!(PageSketch::of(p.as_bytes()), PageSketch::of(p.as_bytes()));
    }

    #[test]
    fn one_word_moves_the_estimate_a_little() {
        let s = sim(&page("shop", "a"), &page("shop", "b"));
        assert!(s < 1.0 && s > 0.85, "{s}");
        // Case and separators do not make words differ.
        assert_eq!(sim("Hello,  World  again", "hello world; again"), 1.0);
        // In a short text one word is a big share.
        let s = sim("site b sni a path x", "site b sni c path x");
        assert!(s > 0.0 && s < 0.7, "{s}");
    }

    #[test]
    fn unrelated_pages_are_far_apart() {
        let s = sim(&page("shop", "a"), &page("blog", "a"));
        assert!(s < 0.2, "{s}");
        assert_eq!(sim("alpha beta gamma delta", "one two three four"), 0.0);
    }

    #[test]
    fn empty_and_tiny_bodies() {
        assert_eq!(sim("", ""), 1.0);
        assert_eq!(sim("", "<p>x</p>"), 0.0);
        assert_eq!(sim("   ", "<>"), 1.0, "no words on either side");
        assert_eq!(sim("one", "one"), 1.0);
        assert_eq!(sim("one", "two"), 0.0);
        assert_eq!(sim("one two", "one two"), 1.0);
        assert!(!PageSketch::of(b"").has_title());
    }

    #[test]
    fn pieces_give_the_same_sketch() {
        let p = page("shop", "a");
        let whole = PageSketch::of(p.as_bytes());
        for cut in [1, 7, 13, 100, 511] {
            let mut s = Sketcher::new();
            for chunk in p.as_bytes().chunks(cut) {
                s.update(chunk);
            }
            assert_eq!(s.finish(), whole, "pieces of {cut}");
        }
    }

    #[test]
    fn titles() {
        let t = |s: &str| PageSketch::of(s.as_bytes());
        let a = t("<html><HEAD><Title lang=en>\n  Shop   Home </title>");
        assert!(a.has_title());
        assert!(a.same_title(&t("<title>shop home</title><p>other text</p>")));
        assert!(!a.same_title(&t("<title>blog home</title>")));
        assert!(!t("<title></title>").has_title());
        assert!(!t("<p>no title</p>").same_title(&t("<p>none either</p>")));
        assert!(t("<<title>x").has_title(), "a `<` just before still matches");
        // Only the first TITLE_CAP bytes of a title count.
        let long = "x".repeat(TITLE_CAP);
        assert!(t(&format!("<title>{long}a</title>")).same_title(&t(&format!("<title>{long}b</title>"))));
    }

    #[test]
    fn big_pages_fill_the_bins_and_still_tell_pages_apart() {
        let big = |site: &str| -> String {
            (0..12_000)
                .map(|i| format!("{site}{} ", i * 7919 % 10_007))
                .collect()
        };
        let a = big("a");
        assert!(a.len() > 64 * 1024);
        assert_eq!(sim(&a, &a), 1.0);
        assert!(sim(&a, &big("b")) < 0.1);
        // The same page with one word changed in the middle.
        let mut changed = a.clone();
        changed.replace_range(40_000..40_001, "Q");
        let s = sim(&a, &changed);
        assert!(s > 0.9, "{s}");
    }

    /// nginx's `return 200 "host=$host sni=$ssl_server_name"` on a connection opened for n3
    /// asked for n5: one word away from n5's own page and one from n3's, so as close to each
    /// (the right vhost, printing the connection's name, is no evidence of another site).
    #[test]
    fn an_edge_word_weighs_what_a_middle_word_weighs() {
        let coalesced = PageSketch::of(b"host=n5-g0.scale.test sni=n3-g0.scale.test\n");
        let target = PageSketch::of(b"host=n5-g0.scale.test sni=n5-g0.scale.test\n");
        let origin = PageSketch::of(b"host=n3-g0.scale.test sni=n3-g0.scale.test\n");
        let (b, a) = (coalesced.similarity(&target), coalesced.similarity(&origin));
        assert!((b - a).abs() < 0.05, "like the target {b}, like the origin {a}");
    }
}

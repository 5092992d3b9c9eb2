//! A compact similarity fingerprint of a page (`PageSketch`), made while the body is read and
//! never keeping the body: a one-permutation MinHash of the page's word 3-shingles (128 bins,
//! b-bit with b = 8) and a hash of its `<title>`. Two sketches estimate how much of the two pages'
//! text is shared (the Jaccard similarity of their shingle sets), which tells "the same page,
//! varying by connection" (it prints the server name it was reached by, a client port, …)
//! from "another site's page".
//!
//! Resolution: a word changes the three shingles that contain it, so one different word in a
//! page of 150 words (about 1 KB) moves the estimate by about 0.04 on average; pages of fewer
//! shingles than bins are compared almost exactly. Keeping 8 bits of each bin's minimum makes
//! two different minima look equal once in 255: pages sharing nothing estimate about 0.004,
//! far below any margin the judgement uses, for half the memory of 16 bits (every 2xx answer
//! in the live window carries a sketch). Sketches are deterministic (fixed hashes), so answers
//! compare across probes and runs.

/// Bins of the sketch (one-permutation MinHash).
pub const BINS: usize = 128;
/// Words per shingle.
const SHINGLE: usize = 3;
/// Bytes of a title that are hashed (the rest is ignored).
const TITLE_CAP: usize = 256;
/// Marks an empty bin; values of full bins are reduced below it.
const EMPTY: u8 = u8::MAX;
const TITLE_OPEN: &[u8] = b"<title";

/// What is kept of a page: `BINS` + 8 bytes, whatever the body's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSketch {
    bins: [u8; BINS],
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
    /// identical pages (and for two pages without words), 0 for pages sharing nothing.
    pub fn similarity(&self, other: &PageSketch) -> f64 {
        let mut union = 0u32;
        let mut matches = 0u32;
        for (x, y) in self.bins.iter().zip(&other.bins) {
            if *x == EMPTY && *y == EMPTY {
                continue;
            }
            union += 1;
            matches += u32::from(x == y);
        }
        if union == 0 {
            return 1.0;
        }
        f64::from(matches) / f64::from(union)
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
    mins: [u64; BINS],
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
            mins: [u64::MAX; BINS],
            word: None,
            recent: [0; SHINGLE],
            words: 0,
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
        // A page of fewer words than a shingle is one shingle of all of them.
        if (1..SHINGLE as u64).contains(&self.words) {
            let mut h = 0u64;
            for w in &self.recent[SHINGLE - self.words as usize..] {
                h = mix(h ^ w);
            }
            self.add_shingle(h);
        }
        let title = match self.title_state {
            TitleState::Text | TitleState::Done if self.title_len > 0 => {
                Some((self.title_hash ^ (self.title_hash >> 32)) as u32)
            }
            _ => None,
        };
        let mut bins = [EMPTY; BINS];
        for (bin, min) in bins.iter_mut().zip(&self.mins) {
            if *min != u64::MAX {
                *bin = (*min % u64::from(EMPTY)) as u8;
            }
        }
        PageSketch { bins, title }
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

    /// One-permutation MinHash: the top bits choose the bin, the rest is minimised in it.
    fn add_shingle(&mut self, h: u64) {
        let h = mix(h);
        let bin = (h >> (64 - BINS.trailing_zeros())) as usize;
        let value = h & (u64::MAX >> BINS.trailing_zeros());
        if let Some(m) = self.mins.get_mut(bin) {
            *m = (*m).min(value);
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
        assert!(std::mem::size_of::<PageSketch>() <= BINS + 8);
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
}

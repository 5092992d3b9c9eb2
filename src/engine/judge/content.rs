//! Does a coalesced 2xx page come from the target, or from another site? `misrouted` needs
//! positive evidence: a page that only varies by connection (it prints the server name it was
//! reached by, the protocol, the client's port…) is the target's page, not the wrong site.
//!
//! A coalesced answer whose status and content-type match one of the target's direct
//! answers is compared with references: the target's own answers (direct, and on its own
//! connections), the origin's own answers, and those of the other watched hosts at that
//! address, each labelled by its "host:port". It is
//! - `Same`: byte for byte one of the target's answers (the body digest);
//! - `OtherSite`: clearly closer to another site's page than to any of the target's: its
//!   similarity (`PageSketch`, or 1 for an identical digest) beats the target's by `MARGIN`,
//!   or by `TITLE_MARGIN` when its title is that site's and none of the target's;
//! - `Similar` otherwise: closest to the target's page, or undecided (ties favour the target:
//!   no false alarm).
//!
//! Pure functions over the records; bounded (sites and answers compared per address).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::engine::probe::h2::HttpAnswer;
use crate::engine::record::{Coalesced, ConnId, HostRecord, Outcome};
use crate::engine::snapshot::Content;

/// How much closer to another site's page than to the target's a page must be to be that
/// site's (similarity, 0..1).
pub const MARGIN: f64 = 0.2;
/// The same, when the page's title is the other site's and none of the target's.
pub const TITLE_MARGIN: f64 = 0.1;
/// The least similarity to another site's page that can name it.
pub const FLOOR: f64 = 0.5;
/// Other sites compared at one address at most (the rest are not looked at: a miss, never a
/// false alarm).
pub const MAX_OTHER_SITES: usize = 64;
/// Answers of one site compared at most.
pub const MAX_ANSWERS_PER_SITE: usize = 8;

/// One answer of another site, labelled by its "host:port".
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    pub site: &'a str,
    pub answer: &'a HttpAnswer,
}

/// What one coalesced answer was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified<'a> {
    Same,
    Similar,
    /// The "host:port" of the site whose page it is.
    OtherSite(&'a str),
}

impl Classified<'_> {
    pub fn content(self) -> Content {
        match self {
            Classified::Same => Content::Same,
            Classified::Similar => Content::Similar,
            Classified::OtherSite(_) => Content::OtherSite,
        }
    }
}

/// How close a page is to one site's answers: the best similarity, and whether a title
/// matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closeness {
    pub similarity: f64,
    pub title: bool,
}

/// The closeness of `x` to the comparable (2xx, same content-type) answers among `refs`;
/// None when none is comparable.
fn closeness<'r>(x: &HttpAnswer, refs: impl IntoIterator<Item = &'r HttpAnswer>) -> Option<Closeness> {
    let mut best: Option<Closeness> = None;
    for r in refs
        .into_iter()
        .filter(|r| (200..300).contains(&r.status) && r.content_type == x.content_type)
        .take(MAX_ANSWERS_PER_SITE)
    {
        let (similarity, title) = if r.body_digest == x.body_digest {
            (1.0, x.page.as_ref().is_some_and(|p| p.has_title()))
        } else {
            match (&x.page, &r.page) {
                (Some(p), Some(q)) => (p.similarity(q), p.same_title(q)),
                _ => (0.0, false),
            }
        };
        let b = best.get_or_insert(Closeness { similarity, title });
        b.similarity = b.similarity.max(similarity);
        b.title |= title;
    }
    best
}

/// The first look, at the target's own answers: `Ok` when that decides (`Same`, or so close
/// to the target's page that no other site can beat it by a margin), else how close the page
/// is to the target's, for `against_others`.
pub fn against_target(x: &HttpAnswer, target: &[&HttpAnswer]) -> Result<Classified<'static>, Closeness> {
    if target.iter().any(|t| t.body_digest == x.body_digest) {
        return Ok(Classified::Same);
    }
    let c = closeness(x, target.iter().copied()).unwrap_or(Closeness {
        similarity: 0.0,
        title: false,
    });
    if c.similarity + TITLE_MARGIN.min(MARGIN) > 1.0 {
        return Ok(Classified::Similar);
    }
    Err(c)
}

/// The second look: is the page clearly another site's? `target` is its closeness to the
/// target's page; `others` are the other sites' answers (in order of preference on a tie).
pub fn against_others<'a>(x: &HttpAnswer, target: Closeness, others: &[Reference<'a>]) -> Classified<'a> {
    let mut sites: Vec<&'a str> = Vec::new();
    for r in others {
        if !sites.contains(&r.site) {
            if sites.len() >= MAX_OTHER_SITES {
                continue;
            }
            sites.push(r.site);
        }
    }
    let mut best: Option<(&'a str, Closeness)> = None;
    for site in sites {
        let answers = others.iter().filter(|r| r.site == site).map(|r| r.answer);
        let Some(c) = closeness(x, answers) else { continue };
        if best.is_none_or(|(_, b)| c.similarity > b.similarity) {
            best = Some((site, c));
        }
    }
    match best {
        Some((site, c)) if clearly_closer(c, target) => Classified::OtherSite(site),
        _ => Classified::Similar,
    }
}

/// Is `other` clearly closer than `target`? Ties, and near ties, favour the target.
fn clearly_closer(other: Closeness, target: Closeness) -> bool {
    if other.similarity < FLOOR {
        return false;
    }
    let lead = other.similarity - target.similarity;
    lead >= MARGIN || (other.title && !target.title && lead >= TITLE_MARGIN)
}

/// Both looks in one: `others` is asked for only when the target's own answers do not decide.
pub fn classify<'a, 'r>(
    x: &HttpAnswer,
    target: &[&HttpAnswer],
    others: impl FnOnce() -> &'r [Reference<'a>],
) -> Classified<'a>
where
    'a: 'r,
{
    match against_target(x, target) {
        Ok(c) => c,
        Err(closeness) => against_others(x, closeness, others()),
    }
}

/// What the comparison found at one address of a pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressContent {
    /// Per coalesced outcome (same order): the class of a 2xx answer whose status and
    /// content-type match one of the target's healthy direct answers; None for the others
    /// (errors, 421s, other statuses: judged by status).
    pub per_answer: Vec<Option<Content>>,
    /// The furthest of them (other-site > similar > same).
    pub content: Option<Content>,
    /// "host:port" of the site an `other-site` answer came from (the first one).
    pub looked_like: Option<String>,
}

/// Classify the coalesced answers at `addr` of `origin → target`. `direct` are the target's
/// reference answers (direct and own-connection); `neighbours()` the watched hosts at `addr`
/// (the origin and target among them are skipped), asked for only when the target's own
/// answers do not decide.
pub fn address_content<'a>(
    coalesced: &[&Coalesced],
    direct: &[&'a Outcome],
    origin: &'a HostRecord,
    target: &'a HostRecord,
    addr: IpAddr,
    neighbours: &dyn Fn(IpAddr) -> Vec<&'a HostRecord>,
) -> AddressContent {
    let healthy = healthy_references(direct);
    let mut others: Option<Vec<(ConnId, Reference<'a>)>> = None;
    // Answers repeat: one classification per distinct (status, content-type, body) and
    // connection (the origin's answer on the same connection is left out of the references).
    type Key<'k> = (u16, Option<&'k str>, &'k str, ConnId);
    let mut known: HashMap<Key<'_>, Classified<'a>> = HashMap::new();
    let mut out = AddressContent::default();
    for c in coalesced {
        let class = match &c.outcome {
            Ok(x) if comparable(x, &healthy) => {
                let key = (x.status, x.content_type.as_deref(), x.body_digest.as_str(), c.via);
                let class = known.entry(key).or_insert_with(|| {
                    let mut kept = Vec::new();
                    classify(x, &healthy, || {
                        let all =
                            others.get_or_insert_with(|| references(origin, target, addr, &neighbours(addr)));
                        kept = all
                            .iter()
                            .filter(|(via, _)| !via.same_as(c.via))
                            .map(|(_, r)| *r)
                            .collect();
                        &kept
                    })
                });
                Some(*class)
            }
            _ => None,
        };
        if let (Some(Classified::OtherSite(site)), None) = (class, &out.looked_like) {
            out.looked_like = Some(site.to_string());
        }
        let content = class.map(Classified::content);
        out.content = out.content.max(content);
        out.per_answer.push(content);
    }
    out
}

/// The target's healthy reference answers.
fn healthy_references<'a>(direct: &[&'a Outcome]) -> Vec<&'a HttpAnswer> {
    direct
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .filter(|a| crate::engine::judge::verdict::is_healthy_status(a.status))
        .collect()
}

/// A 2xx answer whose status and content-type match one of the target's healthy answers: its
/// page is compared; other answers are judged by status.
fn comparable(x: &HttpAnswer, healthy: &[&HttpAnswer]) -> bool {
    (200..300).contains(&x.status)
        && healthy
            .iter()
            .any(|d| d.status == x.status && d.content_type == x.content_type)
}

/// Would a coalesced answer of `origin → target` at `addr` be compared with the other sites'
/// pages, while the origin has no answer there on a connection other than the one the answer
/// came on, and the origin's answer on that very connection would call it the origin's page?
/// Then the comparison lacks the origin's page (an SNI router serving the origin's page for
/// every name on its connection would go unseen), and a direct request for the origin on a
/// connection of its own supplies it. The answer on the same connection is only a filter: it
/// shares whatever a page prints of its connection, so an unbiased one can only be further from
/// the coalesced answer; when even the biased one cannot name the origin's page, no request
/// is needed. `check` asks for one exactly then.
pub fn wants_origin_reference(
    coalesced: &[Coalesced],
    target: &[&Outcome],
    origin: &HostRecord,
    addr: IpAddr,
) -> bool {
    let healthy = healthy_references(target);
    let Some(ep) = origin.endpoints.get(&addr) else {
        return false;
    };
    if ep.direct.iter().any(|o| o.is_ok()) {
        return false;
    }
    coalesced.iter().any(|c| {
        let Ok(x) = &c.outcome else { return false };
        if !comparable(x, &healthy) {
            return false;
        }
        let Err(closeness) = against_target(x, &healthy) else {
            return false;
        };
        let elsewhere = ep.own.iter().any(|o| o.outcome.is_ok() && !o.via.same_as(c.via));
        let same: Vec<Reference<'_>> = ep
            .own
            .iter()
            .filter(|o| o.via.same_as(c.via))
            .filter_map(|o| o.outcome.as_ref().ok())
            .map(|answer| Reference {
                site: &origin.key,
                answer,
            })
            .collect();
        !elsewhere && matches!(against_others(x, closeness, &same), Classified::OtherSite(_))
    })
}

/// The other sites' answers at `addr`, each with the connection it went on: the origin's
/// answers first, then the neighbours' own and direct answers (at most `MAX_OTHER_SITES` of
/// them). The origin's own answers went on the very connections of the coalesced requests: a
/// coalesced answer is compared only with those from another connection, since two answers on
/// one connection share whatever a page prints of it (the client port, a connection id), which
/// would count for the origin and against the target.
fn references<'a>(
    origin: &'a HostRecord,
    target: &'a HostRecord,
    addr: IpAddr,
    neighbours: &[&'a HostRecord],
) -> Vec<(ConnId, Reference<'a>)> {
    let mut refs = Vec::new();
    let hosts = std::iter::once(origin).chain(
        neighbours
            .iter()
            .copied()
            .filter(|h| h.key != origin.key && h.key != target.key)
            .take(MAX_OTHER_SITES),
    );
    for h in hosts {
        let Some(ep) = h.endpoints.get(&addr) else {
            continue;
        };
        let own = ep.own.iter().map(|c| (c.via, &c.outcome));
        let direct = ep.direct.iter().map(|o| (ConnId::default(), o));
        let answers = own
            .chain(direct)
            .filter_map(|(via, o)| o.as_ref().ok().map(|a| (via, a)));
        // The origin's own answers are taken per connection below: keep them all.
        let cap = if h.key == origin.key {
            usize::MAX
        } else {
            MAX_ANSWERS_PER_SITE
        };
        refs.extend(
            answers
                .take(cap)
                .map(|(via, answer)| (via, Reference { site: &h.key, answer })),
        );
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::page::PageSketch;
    use std::sync::Arc;
    use std::time::Duration;

    fn page(body: &str) -> HttpAnswer {
        HttpAnswer {
            status: 200,
            version: "HTTP/2".into(),
            content_type: Some("text/html".into()),
            body_digest: format!("{:x}", {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                body.hash(&mut h);
                h.finish()
            }),
            body_len: body.len(),
            body_unbounded: false,
            page: Some(Arc::new(PageSketch::of(body.as_bytes()))),
            server: None,
            elapsed: Duration::from_millis(1),
        }
    }

    /// A page of a site: its own text (about 60 words), a title, and a line naming the
    /// server name it was reached by.
    fn site_page(site: &str, title: &str, sni: &str) -> String {
        let text: Vec<String> = (0..60).map(|i| format!("{site}{}", i * 7 % 61)).collect();
        format!(
            "<html><head><title>{title}</title></head><body><p>{}</p><p>reached as {sni} over HTTP/2</p></body></html>",
            text.join(" ")
        )
    }

    fn shared_template(site: &str, sni: &str) -> String {
        let text: Vec<String> = (0..60).map(|i| format!("common{}", i * 7 % 61)).collect();
        format!(
            "<html><head><title>{site}</title></head><body><p>{}</p><p>reached as {sni}</p></body></html>",
            text.join(" ")
        )
    }

    /// One piece: a table of (name, coalesced page, target pages, other sites' pages, class),
    /// read side by side.
    #[test]
    fn classification_table() {
        let shop = |sni: &str| page(&site_page("shop", "Shop", sni));
        let blog = |sni: &str| page(&site_page("blog", "Blog", sni));
        type Case = (
            &'static str,
            HttpAnswer,
            Vec<HttpAnswer>,
            Vec<(&'static str, HttpAnswer)>,
            Classified<'static>,
        );
        let cases: Vec<Case> = vec![
            (
                "identical",
                shop("b"),
                vec![shop("b")],
                vec![("a:443", blog("a"))],
                Classified::Same,
            ),
            (
                "prints the connection's server name",
                shop("a"),
                vec![shop("b")],
                vec![("a:443", blog("a"))],
                Classified::Similar,
            ),
            (
                "another site's page, byte for byte",
                blog("a"),
                vec![shop("b")],
                vec![("a:443", blog("a"))],
                Classified::OtherSite("a:443"),
            ),
            (
                "another site's page, varying by connection",
                blog("c"),
                vec![shop("b")],
                vec![("c:443", shop("x")), ("a:443", blog("a"))],
                Classified::OtherSite("a:443"),
            ),
            (
                "unlike every page: undecided",
                page(&site_page("wiki", "Wiki", "a")),
                vec![shop("b")],
                vec![("a:443", blog("a"))],
                Classified::Similar,
            ),
            (
                "no other site known",
                blog("a"),
                vec![shop("b")],
                vec![],
                Classified::Similar,
            ),
            (
                "a shared template: only the title tells, and it is the other site's",
                page(&shared_template("alpha", "a")),
                vec![page(&shared_template("beta", "b"))],
                vec![("a:443", page(&shared_template("alpha", "a")))],
                Classified::OtherSite("a:443"),
            ),
            (
                "same template, same title: near ties favour the target",
                page(&shared_template("same", "a")),
                vec![page(&shared_template("same", "b"))],
                vec![("a:443", page(&shared_template("same", "x")))],
                Classified::Similar,
            ),
        ];
        for (name, x, target, others, want) in cases {
            let target: Vec<&HttpAnswer> = target.iter().collect();
            let others: Vec<Reference<'_>> = others
                .iter()
                .map(|(site, answer)| Reference { site, answer })
                .collect();
            assert_eq!(classify(&x, &target, || &others), want, "case {name}");
        }
    }

    #[test]
    fn ties_favour_the_target_and_content_types_must_match() {
        let x = page("one two three four five");
        let t = page("one two three four six");
        let o = page("one two three four seven");
        let others = [Reference {
            site: "o:443",
            answer: &o,
        }];
        assert_eq!(classify(&x, &[&t], || &others), Classified::Similar);
        // A byte-identical page of another content-type is not that site's page.
        let mut json = x.clone();
        json.content_type = Some("application/json".into());
        let others = [Reference {
            site: "o:443",
            answer: &json,
        }];
        assert_eq!(classify(&x, &[&t], || &others), Classified::Similar);
    }

    #[test]
    fn without_sketches_only_digests_tell() {
        let bare = |body: &str| HttpAnswer {
            page: None,
            ..page(body)
        };
        let (x, t, o) = (bare("site a"), bare("site b"), bare("site a"));
        let others = [Reference {
            site: "a:443",
            answer: &o,
        }];
        assert_eq!(classify(&x, &[&t], || &others), Classified::OtherSite("a:443"));
        let other = bare("site c");
        let others = [Reference {
            site: "a:443",
            answer: &other,
        }];
        assert_eq!(classify(&x, &[&t], || &others), Classified::Similar);
    }

    #[test]
    fn close_to_the_target_decides_without_the_others() {
        let long: String = (0..400).map(|i| format!("w{i} ")).collect();
        let x = page(&format!("{long} sni a"));
        let t = page(&format!("{long} sni b"));
        assert_eq!(against_target(&x, &[&t]), Ok(Classified::Similar));
        assert_eq!(against_target(&x, &[&x.clone()]), Ok(Classified::Same));
    }
}

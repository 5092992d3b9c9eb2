//! Why a problem pair is a problem, said once for every pair it applies to: the server that
//! refused (as its `Server` header tells), and the explanation and fix written with role
//! words ("the origin", "the target") instead of the pair's names. Pairs of one group with
//! the same verdict and cause are reported together (`by_cause`): the table and the
//! dashboard's group details write the fix once and list the pairs under it.

use std::collections::HashMap;
use std::sync::Arc;

use super::{PairReport, Snapshot, Verdict};

/// Which server software answered, as far as its `Server` header tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    Nginx,
    Apache,
    Caddy,
    Envoy,
    Unknown,
}

impl ServerKind {
    pub fn from_header(server: Option<&str>) -> ServerKind {
        let s = server.unwrap_or("").to_ascii_lowercase();
        if s.contains("nginx") || s.contains("openresty") {
            ServerKind::Nginx
        } else if s.contains("apache") || s.contains("httpd") {
            ServerKind::Apache
        } else if s.contains("caddy") {
            ServerKind::Caddy
        } else if s.contains("envoy") || s.contains("istio") {
            ServerKind::Envoy
        } else {
            ServerKind::Unknown
        }
    }

    /// The software's name for people, None when the header did not tell.
    pub fn name(self) -> Option<&'static str> {
        match self {
            ServerKind::Nginx => Some("nginx"),
            ServerKind::Apache => Some("Apache httpd"),
            ServerKind::Caddy => Some("Caddy"),
            ServerKind::Envoy => Some("Envoy"),
            ServerKind::Unknown => None,
        }
    }
}

/// How the origin is named in a cause's texts.
pub const ORIGIN_ROLE: &str = "the origin";
/// How the target is named in a cause's texts.
pub const TARGET_ROLE: &str = "the target";

/// A problem pair's cause (not in the JSON: every pair there carries its own texts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub server: ServerKind,
    /// The pair's explanation with role words for its names.
    pub why: Arc<str>,
    /// The pair's fix with role words for its names.
    pub fix: Arc<str>,
}

/// Pairs reported together: one group, one verdict, one cause (or a pair alone, when it has
/// no cause to share).
#[derive(Debug, Clone, PartialEq)]
pub struct CauseBlock<'a> {
    /// The group's id, None when the pairs belong to none listed.
    pub group: Option<u32>,
    pub verdict: Verdict,
    pub cause: Option<&'a Cause>,
    /// In the order they were given.
    pub pairs: Vec<&'a PairReport>,
}

impl CauseBlock<'_> {
    /// The text every pair of the block says alike (`Some`), or None when they differ.
    pub fn common<T: PartialEq>(&self, text: impl Fn(&PairReport) -> T) -> Option<T> {
        let mut all = self.pairs.iter().map(|p| text(p));
        let first = all.next()?;
        all.all(|t| t == first).then_some(first)
    }
}

/// "2 pairs of group #3 refused by Apache httpd", "10 of 12 pairs refused by nginx" (`of`:
/// the pairs there are), "2 pairs of group #6": what a block's pairs have in common.
pub fn block_heading(block: &CauseBlock<'_>, of: Option<usize>) -> String {
    let n = block.pairs.len();
    let mut text = match of {
        Some(all) => format!("{n} of {all} pairs"),
        None if n == 1 => "1 pair".to_string(),
        None => format!("{n} pairs"),
    };
    if let Some(g) = block.group {
        text.push_str(&format!(" of group #{g}"));
    }
    let verb = match block.verdict {
        Verdict::Misdirected | Verdict::Intermittent => "refused",
        Verdict::Misrouted => "misrouted",
        Verdict::DirectBroken => "failing directly",
        _ => "probed",
    };
    if let Some(server) = block.cause.and_then(|c| c.server.name()) {
        text.push_str(&format!(" {verb} by {server}"));
    }
    text
}

/// Group id by member ("host:port") of a snapshot's groups.
pub fn group_ids(s: &Snapshot) -> HashMap<&str, u32> {
    s.groups
        .iter()
        .flat_map(|g| g.members.iter().map(move |m| (&**m, g.id)))
        .collect()
}

/// `pairs` in blocks by (group, verdict, cause), in the order of each block's first pair;
/// `group` gives a pair's group (its origin's). Pairs without a cause stay alone.
pub fn by_cause<'a>(
    pairs: impl IntoIterator<Item = &'a PairReport>,
    group: &dyn Fn(&PairReport) -> Option<u32>,
) -> Vec<CauseBlock<'a>> {
    type Key<'k> = (Option<u32>, Verdict, ServerKind, &'k str);
    let mut blocks: Vec<CauseBlock<'a>> = Vec::new();
    let mut index: HashMap<Key<'a>, usize> = HashMap::new();
    for pair in pairs {
        let g = group(pair);
        let Some(cause) = pair.cause.as_deref() else {
            blocks.push(CauseBlock {
                group: g,
                verdict: pair.verdict,
                cause: None,
                pairs: vec![pair],
            });
            continue;
        };
        // The explanation is not part of the key: the same cause at other addresses or
        // with other counts is still one cause.
        let key = (g, pair.verdict, cause.server, &*cause.fix);
        match index.get(&key) {
            Some(&i) => blocks[i].pairs.push(pair),
            None => {
                index.insert(key, blocks.len());
                blocks.push(CauseBlock {
                    group: g,
                    verdict: pair.verdict,
                    cause: Some(cause),
                    pairs: vec![pair],
                });
            }
        }
    }
    blocks
}

/// A problem pair `origin → target` whose texts name it, with its cause (`server`, `fix`
/// written with role words) when `fix` is given. For the tests of the modules that group.
#[cfg(test)]
pub(crate) fn problem_pair(
    origin: &str,
    target: &str,
    verdict: Verdict,
    cause: Option<(ServerKind, &str)>,
) -> PairReport {
    let named = |text: &str| text.replace(ORIGIN_ROLE, origin).replace(TARGET_ROLE, target);
    let why = "every request for the target on a connection opened for the origin got 421";
    let mut pair: PairReport = serde_json::from_value(serde_json::json!({
        "origin": origin, "target": target, "verdict": verdict,
        "shared_addresses": ["192.0.2.1"], "cert_covers": true,
        "coalesce": {"chrome": true, "firefox": true}, "probes": 3, "rate_421": 1.0,
        "addresses": [{"address": "192.0.2.1", "verdict": verdict, "probes": 3,
                       "statuses": {"421": 3}, "direct_statuses": {"200": 3},
                       "errors": 0, "misrouted": 0, "clients": ["chrome"], "dynamic": false}],
        "explanation": named(why),
        "fix": cause.map(|(_, fix)| named(fix)),
    }))
    .unwrap_or_else(|e| panic!("a pair: {e}"));
    pair.cause = cause.map(|(server, fix)| {
        Arc::new(Cause {
            server,
            why: why.into(),
            fix: fix.into(),
        })
    });
    pair
}

#[cfg(test)]
mod tests {
    use super::*;

    const APACHE: &str = "make the SSL settings of the origin and the target identical";
    const OTHER: &str = "let it serve the target on connections opened for the origin";

    fn names(block: &CauseBlock<'_>) -> Vec<String> {
        block
            .pairs
            .iter()
            .map(|p| format!("{}→{}", p.origin, p.target))
            .collect()
    }

    #[test]
    fn many_pairs_of_one_cause_make_one_block() {
        let hosts = ["a", "b", "c", "d", "e"];
        let pairs: Vec<PairReport> = hosts
            .iter()
            .flat_map(|o| hosts.iter().filter(move |t| *t != o).map(move |t| (o, t)))
            .map(|(o, t)| problem_pair(o, t, Verdict::Misdirected, Some((ServerKind::Apache, APACHE))))
            .collect();
        assert_eq!(pairs.len(), 20);
        let blocks = by_cause(&pairs, &|_| Some(1));
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].pairs.len(), 20);
        assert_eq!(blocks[0].cause.map(|c| &*c.fix), Some(APACHE));
        assert_eq!(
            block_heading(&blocks[0], Some(24)),
            "20 of 24 pairs of group #1 refused by Apache httpd"
        );
        // The per-pair texts differ (they name the pair), the cause's do not.
        assert_eq!(blocks[0].common(|p| p.fix.clone()), None);
        assert!(blocks[0]
            .common(|p| p.cause.as_ref().map(|c| c.why.clone()))
            .is_some());
    }

    #[test]
    fn other_fixes_servers_verdicts_and_groups_make_other_blocks() {
        let pair = problem_pair;
        let pairs = [
            pair("a", "b", Verdict::Misdirected, Some((ServerKind::Apache, APACHE))),
            pair("c", "d", Verdict::Misdirected, Some((ServerKind::Unknown, OTHER))),
            pair("b", "a", Verdict::Misdirected, Some((ServerKind::Apache, APACHE))),
            pair("d", "c", Verdict::Misdirected, Some((ServerKind::Nginx, OTHER))),
            pair(
                "e",
                "f",
                Verdict::Intermittent,
                Some((ServerKind::Apache, APACHE)),
            ),
            pair("x", "y", Verdict::Misdirected, Some((ServerKind::Apache, APACHE))),
            pair("p", "q", Verdict::Misdirected, None),
            pair("q", "p", Verdict::Misdirected, None),
        ];
        let group = |p: &PairReport| (&*p.origin != "x").then_some(1);
        let blocks = by_cause(&pairs, &group);
        let got: Vec<Vec<String>> = blocks.iter().map(names).collect();
        assert_eq!(
            got,
            [
                vec!["a→b", "b→a"],
                vec!["c→d"],
                vec!["d→c"],
                vec!["e→f"],
                vec!["x→y"],
                vec!["p→q"],
                vec!["q→p"],
            ]
        );
        assert_eq!(blocks[4].group, None);
        assert_eq!(block_heading(&blocks[4], None), "1 pair refused by Apache httpd");
        assert_eq!(block_heading(&blocks[1], None), "1 pair of group #1");
    }
}

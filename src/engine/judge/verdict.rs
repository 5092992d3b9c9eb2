//! Verdicts per (pair, address) and per pair, from the answers the probes collected.
//! Pure functions: every rule here is table-tested below.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::engine::probe::error::{H2Reason, H3Code, ProbeError};
use crate::engine::probe::h2::HttpAnswer;
use crate::engine::record::Outcome;
use crate::engine::snapshot::{Content, Verdict};

/// A status a healthy site answers with: not 421, not a server error.
pub fn is_healthy_status(status: u16) -> bool {
    status != 421 && status < 500
}

/// Should a failed direct request be asked again over HTTP/1.1? When an HTTP/2 request got no
/// healthy answer, the HTTP/1.1 answer tells whether only HTTP/2 is affected.
pub fn wants_http1_check(direct: &Outcome) -> bool {
    match direct {
        Ok(a) => !is_healthy_status(a.status) && a.version == "HTTP/2",
        Err(_) => true,
    }
}

/// A coalesced request the server turned away in a way clients answer by retrying it
/// elsewhere (a new connection, or HTTP/1.1): the site is not broken, this connection is
/// the wrong one for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// 421 Misdirected Request.
    Status421,
    /// The server reset the stream with `HTTP_1_1_REQUIRED` (retry over HTTP/1.1) or
    /// `REFUSED_STREAM` (not processed, retry).
    Reset(H2Reason),
    /// The server's GOAWAY left the request unprocessed. The h2 crate gives a request the
    /// GOAWAY's error only when its stream is above the frame's last_stream_id (or was opened
    /// after it), whatever the code: exactly the streams RFC 9113 §6.8 says were not
    /// processed. A stream at or below it that the server then drops ends in an I/O error,
    /// which is no refusal.
    GoAway(H2Reason),
    /// Over HTTP/3, the server reset the request's stream with `H3_REQUEST_REJECTED` (not
    /// processed, retry) or `H3_VERSION_FALLBACK` (retry over HTTP/1.1), RFC 9114 §8.1.
    H3Reset(H3Code),
    /// Over HTTP/3, the server's GOAWAY came before the request could be sent (again, after
    /// one retry on a fresh connection): HTTP/3's GOAWAY carries no error code.
    H3GoAway,
}

impl Refusal {
    /// The refusal in an outcome, if it is one.
    pub fn of(outcome: &Outcome) -> Option<Refusal> {
        match outcome {
            Ok(a) if a.status == 421 => Some(Refusal::Status421),
            Ok(_) => None,
            Err(ProbeError::Reset {
                reason,
                by_client: false,
            }) if [H2Reason::HTTP_1_1_REQUIRED, H2Reason::REFUSED_STREAM].contains(reason) => {
                Some(Refusal::Reset(*reason))
            }
            Err(ProbeError::GoAway {
                reason,
                by_client: false,
            }) => Some(Refusal::GoAway(*reason)),
            Err(ProbeError::H3Reset {
                code,
                by_client: false,
            }) if [H3Code::REQUEST_REJECTED, H3Code::VERSION_FALLBACK].contains(code) => {
                Some(Refusal::H3Reset(*code))
            }
            Err(ProbeError::H3GoAway) => Some(Refusal::H3GoAway),
            Err(_) => None,
        }
    }
}

/// The report's key of a refusal kind: "421", "reset HTTP_1_1_REQUIRED", "goaway NO_ERROR".
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Status421 => f.write_str("421"),
            Refusal::Reset(r) => write!(f, "reset {r}"),
            Refusal::GoAway(r) => write!(f, "goaway {r}"),
            Refusal::H3Reset(c) => write!(f, "reset {c}"),
            Refusal::H3GoAway => f.write_str("goaway"),
        }
    }
}

/// The evidence for one ordered pair at one address of the origin.
#[derive(Debug, Clone, Copy)]
pub struct AddressEvidence<'a> {
    /// Requests for the target on connections opened for the origin at this address.
    pub coalesced: &'a [&'a Outcome],
    /// Direct requests for the target (its own connection, SNI = target) used as reference:
    /// at this address when the target resolves to it, else at the target's addresses.
    pub direct: &'a [&'a Outcome],
    /// The target's page changes between two direct answers: compare status and
    /// content-type only (when `content` is not given).
    pub dynamic: bool,
    /// How each coalesced answer's page compares with the target's (`judge::content`, same
    /// order as `coalesced`): a 2xx answer of the right status and content-type is misrouted
    /// only when it is `other-site`. Empty: not compared, bodies are compared by digest.
    pub content: &'a [Option<Content>],
}

/// The verdict at one address and the counts that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressJudgement {
    pub verdict: Verdict,
    /// Coalesced requests that got an HTTP answer.
    pub answered: usize,
    /// Answers with status 421 (the pair's `rate_421` counts these among `answered`).
    pub misdirected: usize,
    /// Requests refused in any way clients retry elsewhere (421s included), by kind.
    pub refusals: BTreeMap<Refusal, u32>,
    /// Requests the server responded to: HTTP answers and refusals without one (resets,
    /// GOAWAY). The refusal rate is `refused() / responded`.
    pub responded: usize,
    /// Answers that were not 421 but differ from the direct answer.
    pub misrouted: usize,
    /// Coalesced requests that failed without an answer and were not refused.
    pub errors: usize,
    /// The first of those errors, for the `error` verdict.
    pub first_error: Option<ProbeError>,
}

impl AddressJudgement {
    /// Requests refused, of every kind.
    pub fn refused(&self) -> usize {
        self.refusals.values().map(|&n| n as usize).sum()
    }
}

/// Is the target's page dynamic? True when two healthy 2xx direct answers with the same
/// status and content-type have different bodies.
pub fn looks_dynamic<'a>(direct: impl IntoIterator<Item = &'a HttpAnswer>) -> bool {
    let mut seen: Vec<&HttpAnswer> = Vec::new();
    for a in direct {
        if !(200..300).contains(&a.status) {
            continue;
        }
        let mut known = false;
        for s in &seen {
            if s.status == a.status && s.content_type == a.content_type {
                if s.body_digest != a.body_digest {
                    return true;
                }
                known = true;
            }
        }
        // An answer like one seen already compares like it: keep one of each.
        if !known {
            seen.push(a);
        }
    }
    false
}

/// Judge one address of a coalescable pair. The rules, in order:
/// 0. nothing was requested on the origin's connections, or the target has no direct answer
///    at all to compare with (not even a failed one) → `pending`;
/// 1. the target fails directly (no healthy direct answer) → `direct-broken`;
/// 2. no coalesced request got an answer or a refusal → `error`;
/// 3. every request the server responded to was refused (a `Refusal`: 421, a reset with
///    HTTP_1_1_REQUIRED or REFUSED_STREAM, an unprocessed GOAWAY) → `misdirected`;
/// 4. some non-421 answer differs from every direct answer (status; for 2xx also
///    content-type), or its page is another site's (`content` other-site; without `content`:
///    its body digest differs, unless the page is dynamic) → `misrouted`;
/// 5. some refusals among otherwise matching answers → `intermittent`;
/// 6. otherwise `ok`.
pub fn judge_address(ev: AddressEvidence<'_>) -> AddressJudgement {
    let healthy_direct: Vec<&HttpAnswer> = ev
        .direct
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .filter(|a| is_healthy_status(a.status))
        .collect();
    let answers: Vec<&HttpAnswer> = ev.coalesced.iter().filter_map(|o| o.as_ref().ok()).collect();
    let mut refusals: BTreeMap<Refusal, u32> = BTreeMap::new();
    for r in ev.coalesced.iter().filter_map(|o| Refusal::of(o)) {
        *refusals.entry(r).or_default() += 1;
    }
    let errors: Vec<&ProbeError> = ev
        .coalesced
        .iter()
        .filter(|o| Refusal::of(o).is_none())
        .filter_map(|o| o.as_ref().err())
        .collect();
    let misdirected = answers.iter().filter(|a| a.status == 421).count();
    let responded = ev.coalesced.len() - errors.len();
    let refused: usize = refusals.values().map(|&n| n as usize).sum();
    let misrouted = ev
        .coalesced
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().ok().map(|a| (i, a)))
        .filter(|(i, a)| {
            a.status != 421
                && if ev.content.is_empty() {
                    differs(a, &healthy_direct, ev.dynamic)
                } else {
                    differs(a, &healthy_direct, true) || ev.content.get(*i) == Some(&Some(Content::OtherSite))
                }
        })
        .count();
    let verdict = if ev.coalesced.is_empty() || ev.direct.is_empty() {
        Verdict::Pending
    } else if healthy_direct.is_empty() {
        Verdict::DirectBroken
    } else if responded == 0 {
        Verdict::Error
    } else if refused == responded {
        Verdict::Misdirected
    } else if misrouted > 0 {
        Verdict::Misrouted
    } else if refused > 0 {
        Verdict::Intermittent
    } else {
        Verdict::Ok
    };
    AddressJudgement {
        verdict,
        answered: answers.len(),
        misdirected,
        refusals,
        responded,
        misrouted,
        errors: errors.len(),
        first_error: errors.first().map(|e| (*e).clone()),
    }
}

/// Does a coalesced answer differ from every healthy direct answer?
fn differs(a: &HttpAnswer, direct: &[&HttpAnswer], dynamic: bool) -> bool {
    !direct.iter().any(|d| same_answer(a, d, dynamic))
}

fn same_answer(a: &HttpAnswer, d: &HttpAnswer, dynamic: bool) -> bool {
    if a.status != d.status {
        return false;
    }
    if !(200..300).contains(&a.status) {
        return true;
    }
    a.content_type == d.content_type && (dynamic || a.body_digest == d.body_digest)
}

/// The distinct fingerprints of some answers, for explanations ("text/html 1a2b3c4d").
pub fn fingerprints<'a>(answers: impl IntoIterator<Item = &'a HttpAnswer>) -> BTreeSet<String> {
    answers
        .into_iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a.status,
                a.content_type.as_deref().unwrap_or("-"),
                a.body_digest.get(..8).unwrap_or(&a.body_digest)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ans(status: u16, body: &str) -> Outcome {
        Ok(HttpAnswer {
            status,
            version: "HTTP/2".into(),
            content_type: Some("text/html".into()),
            body_digest: body.into(),
            body_len: body.len(),
            body_unbounded: false,
            page: None,
            server: None,
            elapsed: Duration::from_millis(1),
        })
    }
    fn err(e: &str) -> Outcome {
        Err(ProbeError::Http(e.into()))
    }
    fn reset(reason: H2Reason, by_client: bool) -> Outcome {
        Err(ProbeError::Reset { reason, by_client })
    }
    fn goaway(code: u32, by_client: bool) -> Outcome {
        Err(ProbeError::GoAway {
            reason: H2Reason(code),
            by_client,
        })
    }

    fn judge(coalesced: &[Outcome], direct: &[Outcome]) -> Verdict {
        let dynamic = looks_dynamic(direct.iter().filter_map(|o| o.as_ref().ok()));
        let (coalesced, direct): (Vec<&Outcome>, Vec<&Outcome>) =
            (coalesced.iter().collect(), direct.iter().collect());
        judge_address(AddressEvidence {
            coalesced: &coalesced,
            direct: &direct,
            dynamic,
            content: &[],
        })
        .verdict
    }

    /// One piece: a table of (evidence, verdict), read side by side.
    #[test]
    fn verdict_table() {
        use Verdict::*;
        let ok_b = ans(200, "site-b");
        let cases: Vec<(&str, Vec<Outcome>, Vec<Outcome>, Verdict)> = vec![
            ("same answer", vec![ok_b.clone(); 3], vec![ok_b.clone(); 3], Ok),
            (
                "all 421",
                vec![ans(421, ""); 3],
                vec![ok_b.clone(); 3],
                Misdirected,
            ),
            (
                "one 421 one ok",
                vec![ans(421, ""), ok_b.clone()],
                vec![ok_b.clone()],
                Intermittent,
            ),
            ("envoy 404", vec![ans(404, ""); 2], vec![ok_b.clone()], Misrouted),
            (
                "wrong site 200",
                vec![ans(200, "site-a")],
                vec![ok_b.clone()],
                Misrouted,
            ),
            (
                "421 plus wrong site",
                vec![ans(421, ""), ans(200, "site-a")],
                vec![ok_b.clone()],
                Misrouted,
            ),
            ("direct 503", vec![ans(503, "")], vec![ans(503, "")], DirectBroken),
            ("direct 421", vec![ans(421, "")], vec![ans(421, "")], DirectBroken),
            (
                "direct unreachable",
                vec![ok_b.clone()],
                vec![Err(ProbeError::Connect("connection refused".into()))],
                DirectBroken,
            ),
            (
                "direct flaky but one good",
                vec![ok_b.clone()],
                vec![ans(503, ""), ok_b.clone()],
                Ok,
            ),
            (
                "coalesced errors only",
                vec![err("reset")],
                vec![ok_b.clone()],
                Error,
            ),
            ("nothing probed", vec![], vec![ok_b.clone()], Pending),
            (
                "no direct answer to compare with",
                vec![ans(421, "")],
                vec![],
                Pending,
            ),
            ("nothing at all", vec![], vec![], Pending),
            (
                "errors and 421",
                vec![err("x"), ans(421, "")],
                vec![ok_b.clone()],
                Misdirected,
            ),
            (
                "errors and ok",
                vec![err("x"), ok_b.clone()],
                vec![ok_b.clone()],
                Ok,
            ),
            // dynamic page: two direct answers differ, so bodies are not compared
            (
                "dynamic ok",
                vec![ans(200, "v3")],
                vec![ans(200, "v1"), ans(200, "v2")],
                Ok,
            ),
            (
                "dynamic but 404",
                vec![ans(404, "")],
                vec![ans(200, "v1"), ans(200, "v2")],
                Misrouted,
            ),
            (
                "redirect same status",
                vec![ans(301, "x")],
                vec![ans(301, "y")],
                Ok,
            ),
            (
                "redirect vs 200",
                vec![ans(301, "x")],
                vec![ok_b.clone()],
                Misrouted,
            ),
            ("404 site both ways", vec![ans(404, "a")], vec![ans(404, "b")], Ok),
            // refusals other than 421: what clients retry elsewhere
            (
                "all reset HTTP_1_1_REQUIRED",
                vec![reset(H2Reason::HTTP_1_1_REQUIRED, false); 3],
                vec![ok_b.clone()],
                Misdirected,
            ),
            (
                "refused stream and ok",
                vec![reset(H2Reason::REFUSED_STREAM, false), ok_b.clone()],
                vec![ok_b.clone()],
                Intermittent,
            ),
            (
                "unprocessed by GOAWAY",
                vec![goaway(0, false); 2],
                vec![ok_b.clone()],
                Misdirected,
            ),
            (
                "421 and reset",
                vec![ans(421, ""), reset(H2Reason::HTTP_1_1_REQUIRED, false)],
                vec![ok_b.clone()],
                Misdirected,
            ),
            (
                "timeout and reset: the reset is what responded",
                vec![err("timeout"), reset(H2Reason::HTTP_1_1_REQUIRED, false)],
                vec![ok_b.clone()],
                Misdirected,
            ),
            (
                "reset and wrong site",
                vec![reset(H2Reason::REFUSED_STREAM, false), ans(200, "site-a")],
                vec![ok_b.clone()],
                Misrouted,
            ),
            (
                "reset by the client is no refusal",
                vec![reset(H2Reason::HTTP_1_1_REQUIRED, true)],
                vec![ok_b.clone()],
                Error,
            ),
            (
                "GOAWAY by the client is no refusal",
                vec![goaway(0xb, true)],
                vec![ok_b.clone()],
                Error,
            ),
            (
                "reset CANCEL is no refusal",
                vec![reset(H2Reason(0x8), false)],
                vec![ok_b.clone()],
                Error,
            ),
            (
                "reset INTERNAL_ERROR among ok is no refusal",
                vec![reset(H2Reason(0x2), false), ok_b.clone()],
                vec![ok_b.clone()],
                Ok,
            ),
            (
                "direct broken wins over refusals",
                vec![reset(H2Reason::HTTP_1_1_REQUIRED, false)],
                vec![ans(503, "")],
                DirectBroken,
            ),
        ];
        for (name, coalesced, direct, want) in cases {
            assert_eq!(judge(&coalesced, &direct), want, "case {name}");
        }
    }

    #[test]
    fn content_type_difference_is_misrouted_even_when_dynamic() {
        let mut json = ans(200, "v9").unwrap();
        json.content_type = Some("application/json".into());
        assert_eq!(
            judge(&[Ok(json)], &[ans(200, "v1"), ans(200, "v2")]),
            Verdict::Misrouted
        );
    }

    #[test]
    fn repeated_answers_do_not_hide_a_dynamic_page() {
        let dynamic = |xs: &[Outcome]| looks_dynamic(xs.iter().filter_map(|o| o.as_ref().ok()));
        assert!(!dynamic(&[ans(200, "a"), ans(200, "a"), ans(200, "a")]));
        assert!(dynamic(&[
            ans(200, "a"),
            ans(200, "a"),
            ans(503, "x"),
            ans(200, "b")
        ]));
        assert!(!dynamic(&[ans(200, "a"), ans(404, "b"), ans(200, "a")]));
    }

    #[test]
    fn counts_explain_the_verdict() {
        let j = judge_address(AddressEvidence {
            coalesced: &[&ans(421, ""), &ans(200, "b"), &err("reset")],
            direct: &[&ans(200, "b")],
            dynamic: false,
            content: &[],
        });
        assert_eq!((j.answered, j.misdirected, j.misrouted, j.errors), (2, 1, 0, 1));
        assert_eq!(
            j.first_error.map(|e| e.to_string()).as_deref(),
            Some("http: reset")
        );
        assert_eq!(j.verdict, Verdict::Intermittent);
    }

    #[test]
    fn with_content_only_another_sites_page_is_misrouted() {
        use Content::*;
        let direct = [&ans(200, "b")];
        let judge = |coalesced: &[&Outcome], content: &[Option<Content>]| {
            judge_address(AddressEvidence {
                coalesced,
                direct: &direct,
                dynamic: false,
                content,
            })
            .verdict
        };
        let (varies, other) = (ans(200, "b-on-a"), ans(200, "a"));
        assert_eq!(judge(&[&varies], &[Some(Similar)]), Verdict::Ok);
        assert_eq!(
            judge(&[&varies, &varies], &[Some(Similar), Some(Same)]),
            Verdict::Ok
        );
        assert_eq!(
            judge(&[&varies, &other], &[Some(Similar), Some(OtherSite)]),
            Verdict::Misrouted
        );
        // Status and content-type differences stay misrouted whatever the content says.
        assert_eq!(judge(&[&ans(404, "")], &[None]), Verdict::Misrouted);
        let mut json = ans(200, "b").unwrap();
        json.content_type = Some("application/json".into());
        assert_eq!(judge(&[&Ok(json)], &[Some(Same)]), Verdict::Misrouted);
        assert_eq!(
            judge(
                &[&err("reset"), &ans(421, ""), &varies],
                &[None, None, Some(Similar)]
            ),
            Verdict::Intermittent
        );
    }

    #[test]
    fn refusals_are_counted_by_kind() {
        let j = judge_address(AddressEvidence {
            coalesced: &[
                &ans(421, ""),
                &reset(H2Reason::HTTP_1_1_REQUIRED, false),
                &reset(H2Reason::HTTP_1_1_REQUIRED, false),
                &goaway(0, false),
                &reset(H2Reason::REFUSED_STREAM, false),
                &ans(200, "b"),
                &err("timeout"),
            ],
            direct: &[&ans(200, "b")],
            dynamic: false,
            content: &[],
        });
        let keys: Vec<(String, u32)> = j.refusals.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        let want = [
            ("421", 1),
            ("reset REFUSED_STREAM", 1),
            ("reset HTTP_1_1_REQUIRED", 2),
            ("goaway NO_ERROR", 1),
        ];
        assert_eq!(
            keys,
            want.iter().map(|(k, n)| (k.to_string(), *n)).collect::<Vec<_>>()
        );
        // 421 stays counted apart (rate_421); the timeout is an error, not a response.
        assert_eq!(
            (j.answered, j.misdirected, j.refused(), j.responded, j.errors),
            (2, 1, 5, 6, 1)
        );
        assert_eq!(j.verdict, Verdict::Intermittent);
    }

    /// Over HTTP/3: a rejected stream and a request a GOAWAY left unsent (HTTP/3's GOAWAY has
    /// no code) are refusals; the connection closed without an error is not (it is retried
    /// on a fresh connection and, if it happens again, an error).
    #[test]
    fn http3_refusals_have_their_keys() {
        let h3 = |e: ProbeError| -> Outcome { Err(e) };
        let rejected = h3(ProbeError::H3Reset {
            code: H3Code::REQUEST_REJECTED,
            by_client: false,
        });
        let closed = h3(ProbeError::H3Closed {
            code: H3Code::NO_ERROR,
            by_client: false,
        });
        let unsent = h3(ProbeError::H3GoAway);
        let keys: Vec<Option<String>> = [&rejected, &unsent, &closed]
            .iter()
            .map(|o| Refusal::of(o).map(|r| r.to_string()))
            .collect();
        assert_eq!(
            keys,
            [
                Some("reset H3_REQUEST_REJECTED".to_string()),
                Some("goaway".to_string()),
                None
            ]
        );
        assert_eq!(
            unsent.unwrap_err().to_string(),
            "http: connection closing (GOAWAY)"
        );
    }

    #[test]
    fn dynamic_detection() {
        let a = ans(200, "x").unwrap();
        let b = ans(200, "y").unwrap();
        let c = ans(404, "z").unwrap();
        assert!(looks_dynamic([&a, &b]));
        assert!(!looks_dynamic([&a, &a.clone()]));
        assert!(!looks_dynamic([&a, &c]));
    }
}

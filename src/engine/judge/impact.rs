//! What the people using each client get on a pair (`impact`): would the client put the
//! target on the origin's connection, and what then happens. Pure functions, table-tested.
//!
//! The model, per client, from what is known of their code:
//!
//! - **Chromium** pools at an address only when the target's own DNS answer contains it (the
//!   policy's `chrome`). On a 421 it retries once on a fresh connection, without pooling (an
//!   extra handshake and round trip); on a reset with HTTP_1_1_REQUIRED it retries over
//!   HTTP/1.1; a 404 or another site's page is shown as is. It never pools onto a connection
//!   on which it sent a client certificate: the probes send none and the records do not say
//!   whether the origin's server asks for one, so for users who hold a certificate for the
//!   origin the model may say "pools" where Chromium would not.
//! - **Firefox** pools on any overlap of the two DNS answers (the policy's `firefox`), at the
//!   addresses of the origin's connections. It retries a 421 on a new connection, and a
//!   HTTP_1_1_REQUIRED reset over HTTP/1.1 (Necko's Http2Session disables h2 for the
//!   transaction and restarts it).
//! - **Safari** (CFNetwork, closed source). Pooling is modelled as Chromium's: every public
//!   report of Safari coalescing we found (openradar FB7745565, which names WebKit's
//!   rdar://34187588; WebKit bug 192926 as cited in projectcontour/contour#2619; traefik#7277
//!   on 13.1.2; pomerium#2150 on 14.1) involves names on one IP address with a certificate
//!   covering both, which Chromium's rule describes; nothing public shows Safari pooling on a
//!   mere overlap as Firefox does, so the stricter rule is taken (it may miss pairs Safari
//!   pools through an address the target does not resolve to). Before 15.1 Safari did not
//!   retry a 421: it showed an empty or error page (FB7745565, pomerium#2150); from 15.1 it
//!   retries on a new connection: that version is the project's premise, we found no Apple
//!   or WebKit text saying so. Uncertain: users report 421 pages in later Safari too
//!   (contour#5240 in 2023, johngodley/redirection#3868 on 17.5 in 2024,
//!   nginx-proxy-manager#5209 in 2026), which the model does not reproduce; and how either
//!   version treats a HTTP_1_1_REQUIRED reset is not documented: the model says 15.1 and
//!   later fall back to HTTP/1.1 as the other browsers do, and older versions show an error,
//!   as they did for a 421.
//! - **Non-pooling clients** (curl, Go's net/http, most SDKs) open a connection per name:
//!   never affected.
//!
//! Per verdict, for a client that pools: `ok` and `direct-broken` leave it unaffected (a
//! target broken on its own connection fails for everyone, pooled or not: coalescing changes
//! nothing); `misrouted` shows the wrong content; `misdirected` and `intermittent` (some of the
//! time) get the client's answer to the refusal; `error` too when the failed requests were
//! refused by the server (a reset with HTTP_1_1_REQUIRED or REFUSED_STREAM, a GOAWAY), otherwise
//! the outcome is unknown; `pending` is unknown. A client is judged by the worst of the
//! addresses where it pools, and is left out of the list when that is unknown (an address
//! unknown, unless another already shows an error): an empty or short list means "not known
//! yet", never "unaffected".

use std::collections::BTreeMap;

use crate::engine::judge::verdict;
use crate::engine::probe::error::{H2Reason, H3Code};
use crate::engine::snapshot::{Impact, ImpactClient, ImpactOutcome, Verdict};

/// How the server refused requests for the target on the origin's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 421 Misdirected Request.
    Status421,
    /// The stream (or the connection) was reset with HTTP_1_1_REQUIRED.
    Http1Required,
    /// A reset with REFUSED_STREAM, or a GOAWAY from the server (the request was not
    /// processed): clients retry the request on a new connection.
    Reset,
}

impl Refusal {
    /// How clients take one kind of refusal the judgement counted.
    fn kind(r: verdict::Refusal) -> Refusal {
        match r {
            verdict::Refusal::Status421 => Refusal::Status421,
            verdict::Refusal::Reset(H2Reason::HTTP_1_1_REQUIRED)
            | verdict::Refusal::GoAway(H2Reason::HTTP_1_1_REQUIRED)
            | verdict::Refusal::H3Reset(H3Code::VERSION_FALLBACK) => Refusal::Http1Required,
            verdict::Refusal::Reset(_)
            | verdict::Refusal::GoAway(_)
            | verdict::Refusal::H3Reset(_)
            | verdict::Refusal::H3GoAway => Refusal::Reset,
        }
    }

    /// The refusal among those counted at an address (`AddressJudgement::refusals`): the most
    /// frequent kind, 421 first on a tie; None when nothing was refused.
    pub fn of(counts: &BTreeMap<verdict::Refusal, u32>) -> Option<Refusal> {
        let mut by_kind = [0u32; 3];
        for (r, n) in counts {
            by_kind[Refusal::kind(*r) as usize] += n;
        }
        let most = by_kind.iter().copied().max().filter(|n| *n > 0)?;
        [Refusal::Status421, Refusal::Http1Required, Refusal::Reset]
            .into_iter()
            .find(|k| by_kind[*k as usize] == most)
    }
}

/// One address of the origin where some client would pool the target: its verdict, who pools
/// there, and how requests were refused there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressFate {
    pub verdict: Verdict,
    /// Chromium would pool at this address (the policy's `chrome_addrs`).
    pub chrome: bool,
    /// Firefox would pool at this address (the policy's `firefox_addrs`).
    pub firefox: bool,
    pub refusal: Option<Refusal>,
}

/// Every client's fate on a pair judged `verdict`, from the addresses where some client pools
/// the target; worst outcome first (then client order). Clients whose outcome is unknown
/// (pending, failed probes) are left out.
pub fn impact(verdict: Verdict, addresses: &[AddressFate]) -> Vec<Impact> {
    let mut out: Vec<Impact> = ImpactClient::ALL
        .iter()
        .filter_map(|&client| {
            let pools: Vec<&AddressFate> = addresses.iter().filter(|a| pools_at(client, a)).collect();
            if verdict == Verdict::Pending && client != ImpactClient::NonPooling {
                // Nothing is known of the pair yet, not even whether the client pools it.
                return None;
            }
            if pools.is_empty() {
                return Some(Impact {
                    client,
                    coalesces: false,
                    outcome: ImpactOutcome::Unaffected,
                });
            }
            let outcome = worst_known(pools.iter().map(|a| outcome(client, a)))?;
            Some(Impact {
                client,
                coalesces: true,
                outcome,
            })
        })
        .collect();
    out.sort_by_key(|i| (i.outcome, i.client));
    out
}

/// The worst of a client's outcomes at its addresses: unknown when one of them is unknown,
/// unless a known one is already the worst there is.
fn worst_known(outcomes: impl IntoIterator<Item = Option<ImpactOutcome>>) -> Option<ImpactOutcome> {
    let outcomes: Vec<Option<ImpactOutcome>> = outcomes.into_iter().collect();
    let worst = outcomes.iter().flatten().min().copied()?;
    if worst == ImpactOutcome::ShowsError || outcomes.iter().all(Option::is_some) {
        Some(worst)
    } else {
        None
    }
}

/// Would `client` put the target on the origin's connection at this address?
fn pools_at(client: ImpactClient, a: &AddressFate) -> bool {
    match client {
        ImpactClient::Chrome | ImpactClient::Safari | ImpactClient::SafariBefore15_1 => a.chrome,
        ImpactClient::Firefox => a.firefox,
        ImpactClient::NonPooling => false,
    }
}

/// What a client that pools at this address gets there; None when unknown.
fn outcome(client: ImpactClient, a: &AddressFate) -> Option<ImpactOutcome> {
    match a.verdict {
        Verdict::Ok | Verdict::DirectBroken => Some(ImpactOutcome::Unaffected),
        Verdict::Misrouted => Some(ImpactOutcome::WrongContent),
        Verdict::Misdirected | Verdict::Intermittent => {
            Some(refused(client, a.refusal.unwrap_or(Refusal::Status421)))
        }
        Verdict::Error => a.refusal.map(|r| refused(client, r)),
        Verdict::Pending | Verdict::NotCoalescable => None,
    }
}

/// What a client does when the server refuses the pooled request.
fn refused(client: ImpactClient, r: Refusal) -> ImpactOutcome {
    match (client, r) {
        (ImpactClient::NonPooling, _) => ImpactOutcome::Unaffected,
        (ImpactClient::SafariBefore15_1, _) => ImpactOutcome::ShowsError,
        (_, Refusal::Http1Required) => ImpactOutcome::RetriesOverHttp1,
        (_, Refusal::Status421 | Refusal::Reset) => ImpactOutcome::RetriesOnNewConnection,
    }
}

/// The fix hint, led by who is hurt most ("Safari < 15.1 users see an error page; …") when
/// someone notices anything.
pub fn lead_fix(impact: &[Impact], verdict: Verdict, fix: String) -> String {
    match crate::engine::snapshot::impact::lead(impact, verdict) {
        Some(who) => format!("{who}; {fix}"),
        None => fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::error::ProbeError;
    use crate::engine::record::Outcome;
    use ImpactClient::*;
    use ImpactOutcome::*;

    /// An address where both browsers pool, judged `verdict`, refused by `refusal`.
    fn both(verdict: Verdict, refusal: Option<Refusal>) -> AddressFate {
        AddressFate {
            verdict,
            chrome: true,
            firefox: true,
            refusal,
        }
    }

    fn firefox_only(verdict: Verdict, refusal: Option<Refusal>) -> AddressFate {
        AddressFate {
            chrome: false,
            ..both(verdict, refusal)
        }
    }

    /// (client, coalesces, outcome) rows, in the order expected.
    type Rows = &'static [(ImpactClient, bool, ImpactOutcome)];

    const RETRY: ImpactOutcome = RetriesOnNewConnection;
    const H1: ImpactOutcome = RetriesOverHttp1;

    struct Case {
        name: &'static str,
        verdict: Verdict,
        addresses: Vec<AddressFate>,
        expected: Rows,
    }

    /// One piece: the table, read side by side.
    fn cases() -> Vec<Case> {
        use Verdict as V;
        let r421 = Some(Refusal::Status421);
        let h1 = Some(Refusal::Http1Required);
        let reset = Some(Refusal::Reset);
        vec![
            Case {
                name: "ok: every browser pools, nobody notices",
                verdict: V::Ok,
                addresses: vec![both(V::Ok, None)],
                expected: &[
                    (Chrome, true, Unaffected),
                    (Firefox, true, Unaffected),
                    (Safari, true, Unaffected),
                    (SafariBefore15_1, true, Unaffected),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "misdirected by 421: old Safari shows it, the others retry",
                verdict: V::Misdirected,
                addresses: vec![both(V::Misdirected, r421)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, RETRY),
                    (Firefox, true, RETRY),
                    (Safari, true, RETRY),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "HTTP_1_1_REQUIRED, judged error today: browsers fall back to HTTP/1.1",
                verdict: V::Error,
                addresses: vec![both(V::Error, h1)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, H1),
                    (Firefox, true, H1),
                    (Safari, true, H1),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "HTTP_1_1_REQUIRED, judged misdirected once resets count as refusals",
                verdict: V::Misdirected,
                addresses: vec![both(V::Misdirected, h1)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, H1),
                    (Firefox, true, H1),
                    (Safari, true, H1),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "REFUSED_STREAM: a retry on a new connection",
                verdict: V::Misdirected,
                addresses: vec![both(V::Misdirected, reset)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, RETRY),
                    (Firefox, true, RETRY),
                    (Safari, true, RETRY),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "intermittent: the same outcomes, some of the time",
                verdict: V::Intermittent,
                addresses: vec![both(V::Intermittent, r421)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, RETRY),
                    (Firefox, true, RETRY),
                    (Safari, true, RETRY),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "misrouted: every pooling browser shows the wrong page",
                verdict: V::Misrouted,
                addresses: vec![both(V::Misrouted, None)],
                expected: &[
                    (Chrome, true, WrongContent),
                    (Firefox, true, WrongContent),
                    (Safari, true, WrongContent),
                    (SafariBefore15_1, true, WrongContent),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "misdirected only where Firefox alone pools: the IP poolers are fine",
                verdict: V::Misdirected,
                addresses: vec![both(V::Ok, None), firefox_only(V::Misdirected, r421)],
                expected: &[
                    (Firefox, true, RETRY),
                    (Chrome, true, Unaffected),
                    (Safari, true, Unaffected),
                    (SafariBefore15_1, true, Unaffected),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "only Firefox pools at all: Chromium and Safari do not coalesce",
                verdict: V::Misrouted,
                addresses: vec![firefox_only(V::Misrouted, None)],
                expected: &[
                    (Firefox, true, WrongContent),
                    (Chrome, false, Unaffected),
                    (Safari, false, Unaffected),
                    (SafariBefore15_1, false, Unaffected),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "the worst address decides: fine at one, misdirected at another",
                verdict: V::Misdirected,
                addresses: vec![both(V::Ok, None), both(V::Misdirected, r421)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (Chrome, true, RETRY),
                    (Firefox, true, RETRY),
                    (Safari, true, RETRY),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "direct-broken: broken for everyone, coalescing changes nothing",
                verdict: V::DirectBroken,
                addresses: vec![both(V::DirectBroken, None)],
                expected: &[
                    (Chrome, true, Unaffected),
                    (Firefox, true, Unaffected),
                    (Safari, true, Unaffected),
                    (SafariBefore15_1, true, Unaffected),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "not coalescable: no address where anyone pools",
                verdict: V::NotCoalescable,
                addresses: vec![],
                expected: &[
                    (Chrome, false, Unaffected),
                    (Firefox, false, Unaffected),
                    (Safari, false, Unaffected),
                    (SafariBefore15_1, false, Unaffected),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "error without a refusal (a timeout): the browsers' fate is unknown",
                verdict: V::Error,
                addresses: vec![both(V::Error, None)],
                expected: &[(NonPooling, false, Unaffected)],
            },
            Case {
                name: "unknown where Chromium pools, ok where only Firefox does: known where known",
                verdict: V::Error,
                addresses: vec![
                    AddressFate {
                        firefox: false,
                        ..both(V::Error, None)
                    },
                    firefox_only(V::Ok, None),
                ],
                expected: &[(Firefox, true, Unaffected), (NonPooling, false, Unaffected)],
            },
            Case {
                name: "ok at one address, unknown at another: not known to be fine",
                verdict: V::Error,
                addresses: vec![both(V::Ok, None), both(V::Error, None)],
                expected: &[(NonPooling, false, Unaffected)],
            },
            Case {
                name: "refused at one address, unknown at another: old Safari's error is known",
                verdict: V::Misdirected,
                addresses: vec![both(V::Misdirected, r421), both(V::Error, None)],
                expected: &[
                    (SafariBefore15_1, true, ShowsError),
                    (NonPooling, false, Unaffected),
                ],
            },
            Case {
                name: "pending: nothing known yet but that non-pooling clients never pool",
                verdict: V::Pending,
                addresses: vec![both(V::Pending, None)],
                expected: &[(NonPooling, false, Unaffected)],
            },
            Case {
                name: "pending before any handshake (no pooling facts): still unknown",
                verdict: V::Pending,
                addresses: vec![],
                expected: &[(NonPooling, false, Unaffected)],
            },
        ]
    }

    #[test]
    fn impact_table() {
        for c in cases() {
            let got: Vec<(ImpactClient, bool, ImpactOutcome)> = impact(c.verdict, &c.addresses)
                .iter()
                .map(|i| (i.client, i.coalesces, i.outcome))
                .collect();
            assert_eq!(got, c.expected, "{}", c.name);
        }
    }

    fn answer(status: u16) -> Outcome {
        crate::testing::synth::answer(status, "page")
    }

    fn reset(code: H2Reason) -> Outcome {
        Err(ProbeError::Reset {
            reason: code,
            by_client: false,
        })
    }

    #[test]
    fn the_refusal_is_the_most_frequent_kind() {
        let of = |v: Vec<Outcome>| {
            let mut counts = BTreeMap::new();
            for r in v.iter().filter_map(verdict::Refusal::of) {
                *counts.entry(r).or_default() += 1;
            }
            Refusal::of(&counts)
        };
        assert_eq!(of(vec![answer(421), answer(200)]), Some(Refusal::Status421));
        assert_eq!(
            of(vec![
                reset(H2Reason::HTTP_1_1_REQUIRED),
                reset(H2Reason::HTTP_1_1_REQUIRED),
                answer(421)
            ]),
            Some(Refusal::Http1Required)
        );
        assert_eq!(of(vec![reset(H2Reason::REFUSED_STREAM)]), Some(Refusal::Reset));
        // A tie goes to the 421; our own resets and timeouts are no refusal.
        assert_eq!(
            of(vec![reset(H2Reason::REFUSED_STREAM), answer(421)]),
            Some(Refusal::Status421)
        );
        let ours = Err(ProbeError::Reset {
            reason: H2Reason(1),
            by_client: true,
        });
        let failed = reset(H2Reason(2)); // INTERNAL_ERROR: a failure, not a refusal
        assert_eq!(of(vec![ours, failed, answer(200), answer(404)]), None);
        let goaway = Err(ProbeError::GoAway {
            reason: H2Reason(0),
            by_client: false,
        });
        assert_eq!(of(vec![goaway]), Some(Refusal::Reset));
        assert_eq!(of(vec![]), None);
    }

    #[test]
    fn the_fix_leads_with_who_is_hurt_most() {
        let imp = impact(
            Verdict::Misdirected,
            &[both(Verdict::Misdirected, Some(Refusal::Status421))],
        );
        assert_eq!(
            lead_fix(&imp, Verdict::Misdirected, "give b its own IP".into()),
            "Safari < 15.1 users see an error page; give b its own IP"
        );
        let fine = impact(Verdict::DirectBroken, &[both(Verdict::DirectBroken, None)]);
        assert_eq!(lead_fix(&fine, Verdict::DirectBroken, "fix b".into()), "fix b");
    }
}

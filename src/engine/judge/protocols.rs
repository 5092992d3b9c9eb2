//! A pair judged over HTTP/2 and HTTP/3: each protocol's verdict side by side, the pair's
//! the worst of them, and the explanation saying when only one protocol is broken (a server
//! clean over HTTP/2 can refuse coalesced requests over HTTP/3, where most browser traffic
//! goes once it is advertised).

use std::sync::Arc;

use crate::engine::snapshot::cause::Cause;
use crate::engine::snapshot::{PairReport, Protocol, ProtocolReport};

/// One protocol's row of a pair.
fn row(protocol: Protocol, r: &PairReport) -> ProtocolReport {
    ProtocolReport {
        protocol,
        verdict: r.verdict,
        coalesce: r.coalesce.clone(),
        probes: r.probes,
        rate_421: r.rate_421,
        refusal_rate: r.refusal_rate,
        explanation: r.explanation.clone(),
        error: r.error.clone(),
        addresses: r.addresses.clone(),
    }
}

/// `h2` (the pair's report over HTTP/2) with what `h3` (the same pair over HTTP/3, probed)
/// adds: both rows in `protocols`, the worse verdict, the clients that coalesce over either,
/// and when HTTP/3 is the worse one, its reason, explanation, fix, error and impact, said to
/// be HTTP/3's. The counts stay HTTP/2's, unless HTTP/2 carried no request for the target
/// (a pair linked over HTTP/3 only): then they are HTTP/3's, so that the pair counts as
/// probed.
pub(super) fn combine(h2: &mut PairReport, h3: PairReport) {
    h2.protocols = vec![row(Protocol::H2, h2), row(Protocol::H3, &h3)];
    // A client coalesces the pair when it does over either protocol (over HTTP/3 Chromium
    // follows the ORIGIN frame): the pair's `coalesce` says so, with the rule that let it.
    let (c2, c3) = (&mut h2.coalesce, &h3.coalesce);
    if !c2.chrome && c3.chrome {
        (c2.chrome, c2.rules.chrome) = (true, c3.rules.chrome);
    }
    if !c2.firefox && c3.firefox {
        (c2.firefox, c2.rules.firefox) = (true, c3.rules.firefox);
    }
    h2.cert_covers |= h3.cert_covers;
    if h2.probes == 0 {
        h2.probes = h3.probes;
        h2.rate_421 = h3.rate_421;
        h2.refusal_rate = h3.refusal_rate;
        h2.addresses = h3.addresses.clone();
    }
    if h3.verdict < h2.verdict {
        let only = format!(
            "over {} ({}; over {}: {})",
            Protocol::H3.label(),
            h3.verdict,
            Protocol::H2.label(),
            h2.verdict
        );
        h2.explanation = Arc::from(format!("{only}: {}", h3.explanation));
        // The cause's text too (the table says it once for the pairs that share it).
        let cause = h3.cause.map(|c| {
            Arc::new(Cause {
                why: Arc::from(format!("{only}: {}", c.why)),
                ..(*c).clone()
            })
        });
        h2.verdict = h3.verdict;
        h2.reason = h3.reason;
        h2.fix = h3.fix;
        h2.error = h3.error;
        h2.impact = h3.impact;
        h2.cause = cause;
        for f in h3.findings {
            if !h2.findings.contains(&f) {
                h2.findings.push(f);
            }
        }
    } else if h3.verdict > h2.verdict {
        h2.explanation = Arc::from(format!(
            "over {} ({}; over {}: {}): {}",
            Protocol::H2.label(),
            h2.verdict,
            Protocol::H3.label(),
            h3.verdict,
            h2.explanation
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::cause::problem_pair;
    use crate::engine::snapshot::Verdict;

    fn report(verdict: Verdict, why: &str) -> PairReport {
        PairReport {
            explanation: Arc::from(why),
            ..problem_pair("a.test", "b.test", verdict, None)
        }
    }

    #[test]
    fn the_worse_protocol_decides_and_the_explanation_says_which() {
        // Clean over HTTP/2, refused over HTTP/3: misdirected, in HTTP/3's words.
        let mut pair = report(Verdict::Ok, "served fine");
        combine(&mut pair, report(Verdict::Misdirected, "got 421"));
        assert_eq!(pair.verdict, Verdict::Misdirected);
        assert_eq!(
            &*pair.explanation,
            "over HTTP/3 (misdirected; over HTTP/2: ok): got 421"
        );
        let rows: Vec<(Protocol, Verdict)> = pair.protocols.iter().map(|r| (r.protocol, r.verdict)).collect();
        assert_eq!(
            rows,
            [(Protocol::H2, Verdict::Ok), (Protocol::H3, Verdict::Misdirected)]
        );
        assert_eq!(&*pair.protocols[0].explanation, "served fine");
        // Refused over HTTP/2 only: HTTP/2's verdict and words, said to be HTTP/2's.
        let mut pair = report(Verdict::Misdirected, "got 421");
        combine(&mut pair, report(Verdict::Ok, "served fine"));
        assert_eq!(pair.verdict, Verdict::Misdirected);
        assert_eq!(
            &*pair.explanation,
            "over HTTP/2 (misdirected; over HTTP/3: ok): got 421"
        );
        // The same over both: nothing to add but the rows.
        let mut pair = report(Verdict::Ok, "served fine");
        combine(&mut pair, report(Verdict::Ok, "served fine too"));
        assert_eq!((pair.verdict, &*pair.explanation), (Verdict::Ok, "served fine"));
        assert_eq!(pair.protocols.len(), 2);
    }
}

//! The contract's vocabularies as types: verdicts, the reasons a pair is not coalescable,
//! host finding kinds, severities and clients. Each is serialised as the contract spells it
//! (kebab-case) and parsed back the same way; nothing else in the program turns these words
//! into values or back.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Implements `as_str`, `Display` and `ALL` from one table of (variant, contract word).
macro_rules! contract_words {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: [$ty; [$($ty::$variant),+].len()] = [$($ty::$variant),+];

            /// The contract's word for it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A pair's (or one address's) verdict. The declaration order is the contract's order of
/// severity, worst first (`Ord` follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Misdirected,
    Misrouted,
    Intermittent,
    DirectBroken,
    Error,
    /// Coalescable, but nothing to judge by within the window yet: the planner has not reached
    /// the pair (a request budget smaller than the watch list), or the target has no direct
    /// answer to compare with. Live engine only; `summary.coverage` says how much is reached.
    Pending,
    Ok,
    NotCoalescable,
}

contract_words!(Verdict {
    Misdirected => "misdirected",
    Misrouted => "misrouted",
    Intermittent => "intermittent",
    DirectBroken => "direct-broken",
    Error => "error",
    Pending => "pending",
    Ok => "ok",
    NotCoalescable => "not-coalescable",
});

impl Verdict {
    /// Verdicts that make `check` exit 1 and that the dashboard highlights.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Verdict::Misdirected | Verdict::Misrouted | Verdict::Intermittent | Verdict::DirectBroken
        )
    }

    /// The worst of several verdicts (contract order); None for an empty list.
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        verdicts.into_iter().min()
    }
}

/// Why no client would coalesce a pair (`reason` of a `not-coalescable` pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotCoalescable {
    NoSharedAddress,
    CertNotCovering,
    NoH2,
    CertInvalid,
    /// The origin's connection received an ORIGIN frame (RFC 8336) without the target:
    /// Firefox keeps the target off it (and Chromium has a reason of its own).
    OriginFrameExcludes,
    /// The target's HTTPS records (RFC 9460) offer no `h2`: Chromium does not pool it onto an
    /// HTTP/2 connection (and Firefox has a reason of its own).
    HttpsRecordNoH2,
}

contract_words!(NotCoalescable {
    NoSharedAddress => "no-shared-address",
    CertNotCovering => "cert-not-covering",
    NoH2 => "no-h2",
    CertInvalid => "cert-invalid",
    OriginFrameExcludes => "origin-frame-excludes",
    HttpsRecordNoH2 => "https-record-no-h2",
});

/// Which rule decided whether one client puts the target on the origin's connection
/// (`coalesce.rules` of a pair).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoalesceRule {
    /// Chromium: the target's DNS answer contains the address of the open connection.
    IpMatch,
    /// Firefox: the two DNS answers overlap.
    AddressOverlap,
    /// Firefox: the connection's ORIGIN frame lists the target (DNS not consulted).
    OriginFrame,
    /// Firefox: the connection's ORIGIN frame leaves the target out.
    OriginFrameExcludes,
    /// Chromium: the target's HTTPS records offer no `h2`.
    HttpsRecordNoH2,
    NoSharedAddress,
    CertNotCovering,
    CertInvalid,
    NoH2,
    /// No handshake with the origin succeeded where it would matter: nothing to decide on.
    #[default]
    Unknown,
}

contract_words!(CoalesceRule {
    IpMatch => "ip-match",
    AddressOverlap => "address-overlap",
    OriginFrame => "origin-frame",
    OriginFrameExcludes => "origin-frame-excludes",
    HttpsRecordNoH2 => "https-record-no-h2",
    NoSharedAddress => "no-shared-address",
    CertNotCovering => "cert-not-covering",
    CertInvalid => "cert-invalid",
    NoH2 => "no-h2",
    Unknown => "unknown",
});

impl From<NotCoalescable> for CoalesceRule {
    fn from(r: NotCoalescable) -> CoalesceRule {
        match r {
            NotCoalescable::NoSharedAddress => CoalesceRule::NoSharedAddress,
            NotCoalescable::CertNotCovering => CoalesceRule::CertNotCovering,
            NotCoalescable::NoH2 => CoalesceRule::NoH2,
            NotCoalescable::CertInvalid => CoalesceRule::CertInvalid,
            NotCoalescable::OriginFrameExcludes => CoalesceRule::OriginFrameExcludes,
            NotCoalescable::HttpsRecordNoH2 => CoalesceRule::HttpsRecordNoH2,
        }
    }
}

/// What a host finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The DNS lookup failed.
    DnsError,
    /// The lookups fail for now: the last good answer is used until its TTL plus the grace.
    DnsStale,
    /// No TLS connection at some (warning) or every (error) address.
    Unreachable,
    /// The certificate served for the name does not cover it.
    SniMismatch,
    /// Expired, untrusted, unparsable…
    CertInvalid,
    /// Expires within the warning threshold.
    CertExpiring,
    /// ALPN did not negotiate h2.
    NoH2,
    /// Direct requests got no HTTP answer.
    HttpError,
    /// The server answers 421 even when SNI = Host.
    DirectMisdirected,
    /// More addresses than are probed.
    AddressesCapped,
    /// The ORIGIN frame lists names the certificate does not cover (clients ignore them).
    OriginFrameUncovered,
    /// ORIGIN or ALTSVC frames that do not parse, are too large, come on a stream, or never
    /// stop: handled, and said.
    OriginFrameMalformed,
    /// The name's HTTPS records offer no h2 while the name serves h2.
    HttpsRecordNoH2,
    /// HTTP/3 is advertised (Alt-Svc, HTTPS records): clients may move there.
    H3Advertised,
    /// Pair: the ORIGIN frame lists the target, and the server refuses or misroutes it on
    /// the origin's connection (Firefox pools it whatever DNS says).
    OriginAdvertisedRefused,
    /// Pair: the ORIGIN frame leaves out a target the server answers fine on the origin's
    /// connection (Firefox loses the pooling).
    OriginOmitsServed,
    /// The certificate's names carry escapes, controls, bidi or invisible characters, or run
    /// to thousands of characters (handled; said, escaped).
    CertOddNames,
    /// The certificate has more than a thousand SANs.
    CertManySans,
    /// An answer went on past the body cap with no declared length (it may never end).
    BodyUnbounded,
}

contract_words!(FindingKind {
    DnsError => "dns-error",
    DnsStale => "dns-stale",
    Unreachable => "unreachable",
    SniMismatch => "sni-mismatch",
    CertInvalid => "cert-invalid",
    CertExpiring => "cert-expiring",
    NoH2 => "no-h2",
    HttpError => "http-error",
    DirectMisdirected => "direct-misdirected",
    AddressesCapped => "addresses-capped",
    OriginFrameUncovered => "origin-frame-uncovered",
    OriginFrameMalformed => "origin-frame-malformed",
    HttpsRecordNoH2 => "https-record-no-h2",
    H3Advertised => "h3-advertised",
    OriginAdvertisedRefused => "origin-advertised-refused",
    OriginOmitsServed => "origin-omits-served",
    CertOddNames => "cert-odd-names",
    CertManySans => "cert-many-sans",
    BodyUnbounded => "body-unbounded",
});

/// How bad a host finding is; declaration order is worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Makes `check` exit 1.
    Error,
    Warning,
    Info,
}

contract_words!(Severity {
    Error => "error",
    Warning => "warning",
    Info => "info",
});

/// A browser whose pooling rules the policies model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Client {
    Chrome,
    Firefox,
}

contract_words!(Client {
    Chrome => "chrome",
    Firefox => "firefox",
});

/// The HTTP version a coalesced request went over: HTTP/2 over TLS, or HTTP/3 over QUIC
/// (probed where the origin advertises it: Alt-Svc, or an HTTPS record's `alpn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    H2,
    H3,
}

contract_words!(Protocol {
    H2 => "h2",
    H3 => "h3",
});

impl Protocol {
    /// How people write it: "HTTP/2", "HTTP/3".
    pub fn label(self) -> &'static str {
        match self {
            Protocol::H2 => "HTTP/2",
            Protocol::H3 => "HTTP/3",
        }
    }
}

/// How a coalesced answer's page compares with the target's own page (per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// Byte for byte one of the target's direct (or own-connection) answers.
    Same,
    /// Closest to the target's own page, not identical: the page differs by connection.
    Similar,
    /// Closer to another site's page than to the target's: the wrong site answered.
    OtherSite,
}

contract_words!(Content {
    Same => "same",
    Similar => "similar",
    OtherSite => "other-site",
});

/// The clients whose behaviour on a problem pair is reported (`impact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ImpactClient {
    #[serde(rename = "chrome")]
    Chrome,
    #[serde(rename = "firefox")]
    Firefox,
    /// Safari 15.1 and later.
    #[serde(rename = "safari")]
    Safari,
    /// Safari before 15.1: showed a 421 as an error page.
    #[serde(rename = "safari-before-15.1")]
    SafariBefore15_1,
    /// Clients that never pool across names (curl, Go's net/http, most SDKs).
    #[serde(rename = "non-pooling")]
    NonPooling,
}

contract_words!(ImpactClient {
    Chrome => "chrome",
    Firefox => "firefox",
    Safari => "safari",
    SafariBefore15_1 => "safari-before-15.1",
    NonPooling => "non-pooling",
});

/// What the people using a client get on a pair; declaration order is worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImpactOutcome {
    /// The client shows the refusal (an error page).
    ShowsError,
    /// The client shows another site's page, or a 404, as if it were the target's.
    WrongContent,
    /// The client retries the request over HTTP/1.1 on a new connection.
    RetriesOverHttp1,
    /// The client retries on a new connection: an extra handshake and round trip.
    RetriesOnNewConnection,
    /// Nothing changes for the user (the client does not pool the pair, or pooling works).
    Unaffected,
}

contract_words!(ImpactOutcome {
    ShowsError => "shows-error",
    WrongContent => "wrong-content",
    RetriesOverHttp1 => "retries-over-http1",
    RetriesOnNewConnection => "retries-on-new-connection",
    Unaffected => "unaffected",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Serde and `as_str` spell every value the same way, and parse it back.
    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Display + PartialEq + fmt::Debug + Serialize + for<'de> Deserialize<'de>,
    {
        for v in all {
            let json = serde_json::to_string(v).expect("serialise");
            assert_eq!(json, format!("\"{v}\""));
            let back: T = serde_json::from_str(&json).expect("parse back");
            assert_eq!(back, *v);
        }
    }

    #[test]
    fn serde_spells_what_as_str_spells() {
        round_trips(&Verdict::ALL);
        round_trips(&NotCoalescable::ALL);
        round_trips(&CoalesceRule::ALL);
        round_trips(&FindingKind::ALL);
        round_trips(&Severity::ALL);
        round_trips(&Client::ALL);
        round_trips(&Content::ALL);
        round_trips(&ImpactClient::ALL);
        round_trips(&ImpactOutcome::ALL);
    }

    /// The JSON schema's enums list exactly the words of the types.
    #[test]
    fn the_schema_spells_the_same_words() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../assets/coalscope-1.schema.json")).expect("schema");
        let mut enums: Vec<Vec<String>> = Vec::new();
        fn collect(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::Array(words)) = m.get("enum") {
                        let mut w: Vec<String> = words
                            .iter()
                            .filter_map(|x| x.as_str())
                            .map(String::from)
                            .collect();
                        w.sort();
                        out.push(w);
                    }
                    m.values().for_each(|x| collect(x, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
                _ => {}
            }
        }
        collect(&schema, &mut enums);
        fn words<T: Copy + fmt::Display>(all: &[T]) -> Vec<String> {
            let mut w: Vec<String> = all.iter().map(|v| v.to_string()).collect();
            w.sort();
            w
        }
        for expected in [
            words(&Verdict::ALL),
            words(&NotCoalescable::ALL),
            words(&CoalesceRule::ALL),
            words(&Severity::ALL),
            words(&Client::ALL),
            words(&Content::ALL),
            words(&ImpactClient::ALL),
            words(&ImpactOutcome::ALL),
        ] {
            assert!(
                enums.contains(&expected),
                "the schema has no enum {expected:?}: {enums:?}"
            );
        }
    }

    #[test]
    fn an_unknown_word_is_an_error_not_a_verdict() {
        assert!(serde_json::from_str::<Verdict>("\"no such verdict\"").is_err());
        assert!(serde_json::from_str::<Severity>("\"fatal\"").is_err());
    }

    #[test]
    fn worst_follows_contract_order() {
        use Verdict::*;
        assert_eq!(Verdict::worst([Ok, Intermittent, Misrouted]), Some(Misrouted));
        assert_eq!(Verdict::worst([Ok, Misdirected, Misrouted]), Some(Misdirected));
        assert_eq!(Verdict::worst([NotCoalescable, Ok]), Some(Ok));
        assert_eq!(Verdict::worst([Error, DirectBroken]), Some(DirectBroken));
        assert_eq!(Verdict::worst([Ok, Pending]), Some(Pending));
        assert_eq!(Verdict::worst([Pending, Error]), Some(Error));
        assert_eq!(Verdict::worst([]), None);
        let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "misdirected",
                "misrouted",
                "intermittent",
                "direct-broken",
                "error",
                "pending",
                "ok",
                "not-coalescable"
            ]
        );
        assert!(Severity::Error < Severity::Warning && Severity::Warning < Severity::Info);
    }
}

/// What an event of the live engine's log says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A pair's verdict changed.
    Verdict,
    /// The certificate served for a host at an address changed.
    CertChanged,
    /// A name's DNS addresses changed.
    AddressesChanged,
    /// A lookup failed; the last good answer is used until its TTL plus the grace.
    DnsStale,
    /// The grace ran out (or the failure is definitive): `dns-error`.
    DnsFailed,
    /// A good answer again after `dns-stale` or `dns-failed`.
    DnsRecovered,
}

contract_words!(EventKind {
    Verdict => "verdict",
    CertChanged => "cert-changed",
    AddressesChanged => "addresses-changed",
    DnsStale => "dns-stale",
    DnsFailed => "dns-failed",
    DnsRecovered => "dns-recovered",
});

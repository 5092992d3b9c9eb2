//! Which backends answer at one address: the coalesced requests grouped by what tells the
//! connections apart (leaf certificate, `Server` header, TLS version and cipher suite, ALPN),
//! and, when only some of them refuse, what sets the refusing ones apart.

use std::collections::BTreeMap;

use crate::engine::judge::verdict::Refusal;
use crate::engine::record::{Coalesced, ConnTraits};
use crate::engine::snapshot::BackendReport;

/// Most backends reported per address (a pool bigger than this is summed up by its first).
pub const MAX_BACKENDS: usize = 16;

/// The requests that went to one backend, and how many of them were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend<'a> {
    pub traits: &'a ConnTraits,
    pub probes: u32,
    pub refused: u32,
}

/// The distinct backends among `samples` (those with known connection traits), in the order
/// of their traits (at most `MAX_BACKENDS`, the busiest); empty when there was only one
/// (nothing to tell apart).
pub fn backends<'a>(samples: &[&'a Coalesced]) -> Vec<Backend<'a>> {
    let mut by: BTreeMap<&ConnTraits, (u32, u32)> = BTreeMap::new();
    for s in samples {
        let Some(traits) = s.conn.as_deref() else {
            continue;
        };
        let entry = by.entry(traits).or_default();
        entry.0 += 1;
        entry.1 += u32::from(Refusal::of(&s.outcome).is_some());
    }
    if by.len() < 2 {
        return Vec::new();
    }
    let mut list: Vec<Backend<'a>> = by
        .into_iter()
        .map(|(traits, (probes, refused))| Backend {
            traits,
            probes,
            refused,
        })
        .collect();
    // The busiest ones when there are too many, then in a stable order (by their traits).
    list.sort_by(|a, b| b.probes.cmp(&a.probes).then(a.traits.cmp(b.traits)));
    list.truncate(MAX_BACKENDS);
    list.sort_by(|a, b| a.traits.cmp(b.traits));
    list
}

/// The report's form of a backend (text made here, at the edge of the judgement).
pub fn report(b: &Backend<'_>) -> BackendReport {
    BackendReport {
        cert_sha256: hex::encode(b.traits.cert_sha256),
        server: b.traits.server.clone(),
        tls_version: Some(b.traits.tls_version.clone()),
        cipher: b.traits.cipher.clone(),
        alpn: b.traits.alpn.clone(),
        probes: b.probes,
        refused: b.refused,
    }
}

/// What sets the refusing backends apart from the others, first of: the certificate, the
/// `Server` header, the TLS version, the cipher suite, ALPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distinction {
    Cert([u8; 32]),
    Server(Option<String>),
    TlsVersion(String),
    Cipher(Option<String>),
    Alpn(Option<String>),
}

/// Some backends at an address refuse and the others do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    pub address: String,
    pub refusing: usize,
    pub backends: usize,
    /// What the (first) refusing backend has that no backend which never refused has.
    pub by: Option<Distinction>,
}

/// The blame at `address`, when some of its backends refused requests and others never did.
pub fn blame(address: &str, backends: &[Backend<'_>]) -> Option<Blame> {
    let (refusing, clean): (Vec<&Backend<'_>>, Vec<&Backend<'_>>) =
        backends.iter().partition(|b| b.refused > 0);
    let odd = refusing.first()?;
    if clean.is_empty() {
        return None;
    }
    let t = odd.traits;
    let unlike = |same: &dyn Fn(&ConnTraits) -> bool| clean.iter().all(|c| !same(c.traits));
    let by = if unlike(&|c| c.cert_sha256 == t.cert_sha256) {
        Some(Distinction::Cert(t.cert_sha256))
    } else if unlike(&|c| c.server == t.server) {
        Some(Distinction::Server(t.server.clone()))
    } else if unlike(&|c| c.tls_version == t.tls_version) {
        Some(Distinction::TlsVersion(t.tls_version.clone()))
    } else if unlike(&|c| c.cipher == t.cipher) {
        Some(Distinction::Cipher(t.cipher.clone()))
    } else if unlike(&|c| c.alpn == t.alpn) {
        Some(Distinction::Alpn(t.alpn.clone()))
    } else {
        None
    };
    Some(Blame {
        address: address.to_string(),
        refusing: refusing.len(),
        backends: backends.len(),
        by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::h2::HttpAnswer;
    use std::sync::Arc;
    use std::time::Duration;

    fn traits(cert: u8, server: &str) -> Arc<ConnTraits> {
        Arc::new(ConnTraits {
            cert_sha256: [cert; 32],
            server: Some(server.into()),
            tls_version: "TLSv1.3".into(),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: Some("h2".into()),
        })
    }

    fn sample(status: u16, conn: &Arc<ConnTraits>) -> Coalesced {
        Coalesced::new(
            Ok(HttpAnswer {
                status,
                version: "HTTP/2".into(),
                content_type: None,
                body_digest: String::new(),
                body_len: 0,
                body_unbounded: false,
                server: conn.server.clone(),
                elapsed: Duration::ZERO,
                page: None,
            }),
            Some(conn.clone()),
        )
    }

    #[test]
    fn one_backend_is_not_listed() {
        let t = traits(1, "a");
        let s = [sample(200, &t), sample(421, &t)];
        assert!(backends(&s.iter().collect::<Vec<_>>()).is_empty());
        assert!(backends(&[&Coalesced::new(Ok(s[0].outcome.clone().unwrap()), None)]).is_empty());
    }

    #[test]
    fn the_refusing_backend_is_named_by_what_differs_first() {
        let (good, bad) = (traits(1, "nginx"), traits(2, "nginx"));
        let s = [
            sample(200, &good),
            sample(421, &bad),
            sample(200, &good),
            sample(421, &bad),
            sample(200, &good),
        ];
        let list = backends(&s.iter().collect::<Vec<_>>());
        assert_eq!(
            list.iter().map(|b| (b.probes, b.refused)).collect::<Vec<_>>(),
            [(3, 0), (2, 2)],
            "ordered by traits: certificate 01… first"
        );
        let found = blame("192.0.2.1", &list).unwrap();
        assert_eq!((found.refusing, found.backends), (1, 2));
        assert_eq!(found.by, Some(Distinction::Cert([2; 32])));
        assert_eq!(report(&list[1]).cert_sha256, "02".repeat(32));

        // Same certificate: the Server header tells them apart.
        let (good, bad) = (traits(1, "backend-1"), traits(1, "backend-2"));
        let s = [sample(200, &good), sample(421, &bad)];
        let found = blame("192.0.2.1", &backends(&s.iter().collect::<Vec<_>>())).unwrap();
        assert_eq!(found.by, Some(Distinction::Server(Some("backend-2".into()))));
    }

    #[test]
    fn no_blame_when_every_backend_refuses_or_none_does() {
        let (a, b) = (traits(1, "x"), traits(2, "y"));
        let all = [sample(421, &a), sample(421, &b)];
        assert_eq!(blame("a", &backends(&all.iter().collect::<Vec<_>>())), None);
        let none = [sample(200, &a), sample(200, &b)];
        assert_eq!(blame("a", &backends(&none.iter().collect::<Vec<_>>())), None);
    }
}

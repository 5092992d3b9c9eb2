//! Certificates of the hostile lab, from the lab's certificate builder (`coalscope::lab::ca`):
//! a CA (written to a PEM file for `--ca-file`), ordinary leaves, a chain of 100 certificates,
//! a leaf with 5,000 SANs, and certificates whose subject, issuer and SANs carry escape
//! sequences, bidi controls and huge strings.

use std::sync::Arc;

use coalscope::lab::ca::{self, DistinguishedName, DnType, Leaf, SanType};
use rustls::sign::CertifiedKey;

pub use coalscope::lab::ca::Ca;

/// The text put into subject fields and SANs: an SGR escape, a screen clear, an OSC title
/// change, a bell, RTL override / Arabic letter mark / isolates, and a C1 CSI.
pub const EVIL: &str =
    "\u{1b}[31mRED\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}gnp.exe\u{061c}\u{2066}x\u{2069}\u{9b}31m\r\n";
/// Length of the huge subject field and SAN.
pub const HUGE: usize = 10_000;

/// A CA named `name`.
pub fn ca(name: &str) -> Ca {
    Ca::new(name).expect("hostile CA")
}

/// A CA whose own name is full of escape sequences and a 10,000-character organisation.
pub fn evil_ca() -> Ca {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("Evil CA {EVIL}"));
    dn.push(DnType::OrganizationName, "O".repeat(HUGE));
    Ca::with_subject(dn).expect("evil CA")
}

/// `leaf` issued by `ca`, loaded for rustls (chain: the leaf, then `ca`'s intermediates).
fn key(ca: &Ca, leaf: &Leaf) -> Arc<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    ca.issue(leaf)
        .and_then(|issued| issued.certified_key(&provider))
        .expect("hostile certificate")
}

/// An ordinary leaf for `names`.
pub fn leaf(ca: &Ca, names: &[&str]) -> Arc<CertifiedKey> {
    key(ca, &Leaf::for_names(names).expect("names"))
}

/// A leaf for `name` behind 99 intermediates: the server sends 100 certificates.
pub fn chain_of_100(root: &Ca, name: &str) -> Arc<CertifiedKey> {
    let mut current = root.intermediate("intermediate 1").expect("sub-CA");
    for i in 2..=99 {
        current = current
            .intermediate(&format!("intermediate {i}"))
            .expect("sub-CA");
    }
    leaf(&current, &[name])
}

/// A leaf for `name` with 5,000 more (short) DNS SANs.
pub fn many_sans(ca: &Ca, name: &str) -> Arc<CertifiedKey> {
    let more = (0..5000).map(|i| dns_san(&format!("n{i}.s")));
    key(ca, &Leaf::for_names(&[name]).expect("name").more_sans(more))
}

pub fn dns_san(name: &str) -> SanType {
    ca::dns_san(name).expect("IA5 name")
}

/// Subject and SANs full of escape sequences, bidi controls and 10,000-character strings;
/// `covering` decides whether one DNS SAN covers `name`.
pub fn evil_leaf(ca: &Ca, name: &str, covering: bool) -> Arc<CertifiedKey> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{name} {EVIL}"));
    dn.push(
        DnType::OrganizationName,
        format!("Org {EVIL} {}", "o".repeat(HUGE)),
    );
    dn.push(DnType::OrganizationalUnitName, "\u{202e}\u{200f}\u{061c}unit");
    // IA5 (ASCII) SANs: escape sequences and C0 controls fit; bidi controls do not.
    let ascii_evil = "\u{1b}[31mred\u{1b}[2J\u{1b}]0;pwned\u{7}\r\n";
    let mut sans = vec![
        dns_san(&format!("{ascii_evil}.hostile.test")),
        dns_san(&format!("{}.hostile.test", "d".repeat(HUGE))),
        SanType::URI(
            format!("https://{ascii_evil}/{}", "u".repeat(HUGE))
                .try_into()
                .expect("IA5"),
        ),
        SanType::Rfc822Name(format!("{ascii_evil}@x.test").try_into().expect("IA5")),
    ];
    if covering {
        sans.push(dns_san(name));
    }
    key(ca, &Leaf::with_subject(dn, sans))
}

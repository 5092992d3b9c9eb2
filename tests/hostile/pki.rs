//! Certificates of the hostile lab (rcgen): a CA (written to a PEM file for `--ca-file`),
//! ordinary leaves, a chain of 100 certificates, a leaf with 5,000 SANs, and certificates
//! whose subject, issuer and SANs carry escape sequences, bidi controls and huge strings.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// The text put into subject fields and SANs: an SGR escape, a screen clear, an OSC title
/// change, a bell, RTL override / Arabic letter mark / isolates, and a C1 CSI.
pub const EVIL: &str =
    "\u{1b}[31mRED\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}gnp.exe\u{061c}\u{2066}x\u{2069}\u{9b}31m\r\n";
/// Length of the huge subject field and SAN.
pub const HUGE: usize = 10_000;

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(90);
}

fn ca_params(dn: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    params
}

fn cn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "coalscope hostile lab");
    dn.push(DnType::CommonName, name);
    dn
}

impl Ca {
    pub fn new(dn: DistinguishedName) -> Ca {
        let params = ca_params(dn);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn named(name: &str) -> Ca {
        Ca::new(cn(name))
    }

    /// A CA whose own name is full of escape sequences and a 10,000-character organisation.
    pub fn evil() -> Ca {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Evil CA {EVIL}"));
        dn.push(DnType::OrganizationName, "O".repeat(HUGE));
        Ca::new(dn)
    }

    /// A sub-CA signed by this one.
    fn sub(&self, name: &str) -> (Ca, CertificateDer<'static>) {
        let params = ca_params(cn(name));
        let key = KeyPair::generate().expect("sub-CA key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign sub-CA");
        let der = cert.der().clone();
        (
            Ca {
                der: der.clone(),
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            },
            der,
        )
    }

    /// A leaf with the given subject and SANs; the chain is `[leaf] + extra`.
    pub fn leaf_with(
        &self,
        dn: DistinguishedName,
        sans: Vec<SanType>,
        extra: Vec<CertificateDer<'static>>,
    ) -> Arc<CertifiedKey> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let mut chain = vec![cert.der().clone()];
        chain.extend(extra);
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(chain, key_der, &provider).expect("certified key"))
    }

    /// An ordinary leaf for `names`.
    pub fn leaf(&self, names: &[&str]) -> Arc<CertifiedKey> {
        let sans = names.iter().map(|n| dns_san(n)).collect();
        self.leaf_with(cn(names[0]), sans, vec![])
    }

    /// A leaf for `name` behind 99 intermediates: the server sends 100 certificates.
    pub fn chain_of_100(&self, name: &str) -> Arc<CertifiedKey> {
        let mut intermediates = Vec::new();
        let (mut current, der) = self.sub("intermediate 1");
        intermediates.push(der);
        for i in 2..=99 {
            let (next, der) = current.sub(&format!("intermediate {i}"));
            intermediates.push(der);
            current = next;
        }
        // Leaf first, then the issuing intermediate, up towards the root.
        intermediates.reverse();
        current.leaf_with(cn(name), vec![dns_san(name)], intermediates)
    }

    /// A leaf for `name` with 5,000 more (short) DNS SANs.
    pub fn many_sans(&self, name: &str) -> Arc<CertifiedKey> {
        let mut sans = vec![dns_san(name)];
        sans.extend((0..5000).map(|i| dns_san(&format!("n{i}.s"))));
        self.leaf_with(cn(name), sans, vec![])
    }
}

pub fn dns_san(name: &str) -> SanType {
    SanType::DnsName(name.to_string().try_into().expect("IA5 name"))
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
        SanType::DnsName(format!("{ascii_evil}.hostile.test").try_into().expect("IA5")),
        SanType::DnsName(
            format!("{}.hostile.test", "d".repeat(HUGE))
                .try_into()
                .expect("IA5"),
        ),
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
    ca.leaf_with(dn, sans, vec![])
}

//! The one certificate builder (rcgen): the lab's throwaway certificate authorities and the
//! certificates they issue. The lab's scenarios use it, and so does every test and bench that
//! needs a certificate (the loopback fixtures of `testing::net`, the hostile lab, the interop
//! harness, the certificate parser's tests), so that there is one way to make a CA.
//!
//! A [`Ca`] is a root (or, from [`Ca::intermediate`], a sub-CA); it issues a [`Leaf`] (names,
//! subject, validity, serial) as an [`Issued`] certificate: DER and PEM, its key in DER and PEM,
//! the chain a server sends, and a rustls `CertifiedKey`. [`Leaf::self_signed`] makes a leaf
//! without a CA (the certificate parser's fixtures).

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// The vocabulary of subjects and SANs, so that users of this builder need no rcgen of their own.
pub use rcgen::{DistinguishedName, DnType, SanType};

// What only the tests use (odd validities, subjects, serials, sub-CAs, self-signed leaves) is
// compiled for them alone: `cfg(test)` or the dev-only `test-support` feature.

/// The organisation in the subject of every lab certificate ([`subject`]).
pub const ORGANIZATION: &str = "coalscope lab";

/// How long a CA is valid: from yesterday for a year.
const CA_DAYS: i64 = 365;
/// How long a leaf is valid (and, for [`Validity::Expired`], how long ago it started).
const LEAF_DAYS: i64 = 90;

/// When a certificate is valid, relative to now (or between two fixed instants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validity {
    /// From yesterday for 90 days.
    #[default]
    Current,
    /// Ended yesterday (after 89 days).
    Expired,
    /// From yesterday for `.0` days (a rotated certificate: a new expiry).
    Days(i64),
    /// Starts tomorrow.
    #[cfg(any(test, feature = "test-support"))]
    NotYetValid,
    /// Exactly from `.0` until `.1` (fixtures whose dates are asserted).
    #[cfg(any(test, feature = "test-support"))]
    Between(OffsetDateTime, OffsetDateTime),
}

impl Validity {
    fn apply(self, params: &mut CertificateParams) {
        let now = OffsetDateTime::now_utc();
        let day = Duration::days(1);
        let (from, until) = match self {
            Validity::Current => (now - day, now + Duration::days(LEAF_DAYS)),
            Validity::Expired => (now - Duration::days(LEAF_DAYS), now - day),
            Validity::Days(days) => (now - day, now + Duration::days(days)),
            #[cfg(any(test, feature = "test-support"))]
            Validity::NotYetValid => (now + day, now + Duration::days(LEAF_DAYS)),
            #[cfg(any(test, feature = "test-support"))]
            Validity::Between(from, until) => (from, until),
        };
        params.not_before = from;
        params.not_after = until;
    }
}

/// `O=coalscope lab, CN=common_name`: the subject of every lab certificate.
pub fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A DNS name SAN (IA5: ASCII only, so escape sequences and C0 controls fit, bidi controls not).
#[cfg(any(test, feature = "test-support"))]
pub fn dns_san(name: &str) -> anyhow::Result<SanType> {
    let ia5 = name
        .to_string()
        .try_into()
        .with_context(|| format!("{name:?} is not an IA5 string"))?;
    Ok(SanType::DnsName(ia5))
}

/// What a leaf certificate says: a server certificate (key usage digitalSignature, extended
/// key usage serverAuth, not a CA) with this subject, these SANs and this validity.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub subject: DistinguishedName,
    pub sans: Vec<SanType>,
    pub validity: Validity,
    /// The serial number (None: a random one).
    #[cfg(any(test, feature = "test-support"))]
    pub serial: Option<Vec<u8>>,
    /// Usable as a TLS client certificate too (extended key usage clientAuth).
    pub client_auth: bool,
}

impl Leaf {
    /// A leaf for `names` (DNS names; IP literals become IP address SANs), named after the
    /// first of them (`O=coalscope lab, CN=first`), currently valid.
    pub fn for_names(names: &[&str]) -> anyhow::Result<Leaf> {
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(owned).context("certificate names")?;
        Ok(Leaf {
            subject: subject(names.first().copied().unwrap_or(ORGANIZATION)),
            sans: params.subject_alt_names,
            validity: Validity::Current,
            #[cfg(any(test, feature = "test-support"))]
            serial: None,
            client_auth: false,
        })
    }

    /// A leaf with exactly this subject and these SANs, currently valid.
    #[cfg(any(test, feature = "test-support"))]
    pub fn with_subject(subject: DistinguishedName, sans: Vec<SanType>) -> Leaf {
        Leaf {
            subject,
            sans,
            validity: Validity::Current,
            serial: None,
            client_auth: false,
        }
    }

    pub fn valid(mut self, validity: Validity) -> Leaf {
        self.validity = validity;
        self
    }

    #[cfg(any(test, feature = "test-support"))]
    pub fn serial(mut self, serial: &[u8]) -> Leaf {
        self.serial = Some(serial.to_vec());
        self
    }

    /// Usable as a TLS client certificate too (clientAuth beside serverAuth).
    pub fn for_clients(mut self) -> Leaf {
        self.client_auth = true;
        self
    }

    /// More SANs after the ones already there.
    #[cfg(any(test, feature = "test-support"))]
    pub fn more_sans(mut self, sans: impl IntoIterator<Item = SanType>) -> Leaf {
        self.sans.extend(sans);
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = self.subject.clone();
        params.subject_alt_names = self.sans.clone();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if self.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        #[cfg(any(test, feature = "test-support"))]
        {
            params.serial_number = self.serial.as_deref().map(rcgen::SerialNumber::from_slice);
        }
        self.validity.apply(&mut params);
        params
    }

    /// This leaf signed by its own key (no CA; for parser fixtures).
    #[cfg(any(test, feature = "test-support"))]
    pub fn self_signed(&self) -> anyhow::Result<Issued> {
        let mut params = self.params();
        // Nothing issued it: an authority key identifier would name itself.
        params.use_authority_key_identifier_extension = false;
        let key = KeyPair::generate().context("generating a leaf key")?;
        let cert = params.self_signed(&key).context("self-signing a leaf")?;
        Ok(Issued::new(cert, key, Vec::new()))
    }
}

/// An issued certificate and its key.
pub struct Issued {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// The certificate, PEM.
    pub pem: String,
    key: KeyPair,
    /// The chain a server sends: this certificate, then the intermediates up to (without) the
    /// root.
    pub chain: Vec<CertificateDer<'static>>,
}

impl Issued {
    fn new(cert: rcgen::Certificate, key: KeyPair, intermediates: Vec<CertificateDer<'static>>) -> Issued {
        let der = cert.der().clone();
        let mut chain = vec![der.clone()];
        chain.extend(intermediates);
        Issued {
            pem: cert.pem(),
            der,
            key,
            chain,
        }
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// The private key, PKCS#8 PEM.
    #[cfg(any(test, feature = "test-support"))]
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The chain and key loaded for a rustls server.
    pub fn certified_key(&self, provider: &CryptoProvider) -> anyhow::Result<Arc<CertifiedKey>> {
        let certified = CertifiedKey::from_der(self.chain.clone(), self.key_der(), provider)
            .context("loading a leaf key into rustls")?;
        Ok(Arc::new(certified))
    }
}

/// A certificate authority that can issue leaf certificates and sub-CAs.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
    /// What this CA adds to the chain of a certificate it issues: itself and the CAs above it
    /// up to (without) the root, nearest first; empty for a root.
    chain_up: Vec<CertificateDer<'static>>,
}

fn ca_params(subject: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(CA_DAYS);
    params
}

impl Ca {
    /// A new self-signed CA named `common_name` (`O=coalscope lab`), valid from yesterday for
    /// a year.
    pub fn new(common_name: &str) -> anyhow::Result<Ca> {
        Ca::with_subject(subject(common_name))
    }

    /// A new self-signed CA with exactly this subject (odd subjects: escape sequences, huge
    /// fields).
    pub fn with_subject(subject: DistinguishedName) -> anyhow::Result<Ca> {
        let params = ca_params(subject);
        let key = KeyPair::generate().context("generating the CA key")?;
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        Ok(Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            chain_up: Vec::new(),
        })
    }

    /// A sub-CA named `common_name`, signed by this CA; what it issues chains up through this
    /// one.
    #[cfg(any(test, feature = "test-support"))]
    pub fn intermediate(&self, common_name: &str) -> anyhow::Result<Ca> {
        let mut params = ca_params(subject(common_name));
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().context("generating a sub-CA key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing a sub-CA certificate")?;
        let mut chain_up = vec![cert.der().clone()];
        chain_up.extend(self.chain_up.iter().cloned());
        Ok(Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            chain_up,
        })
    }

    /// Issue `leaf`. Its chain is the leaf, then the intermediates up to the root.
    pub fn issue(&self, leaf: &Leaf) -> anyhow::Result<Issued> {
        let key = KeyPair::generate().context("generating a leaf key")?;
        let cert = leaf
            .params()
            .signed_by(&key, &self.issuer)
            .context("signing a leaf certificate")?;
        Ok(Issued::new(cert, key, self.chain_up.clone()))
    }

    /// A server certificate for `names` with `validity`, loaded for rustls (the lab's servers).
    pub fn server_key(
        &self,
        names: &[&str],
        validity: Validity,
        provider: &CryptoProvider,
    ) -> anyhow::Result<Arc<CertifiedKey>> {
        self.issue(&Leaf::for_names(names)?.valid(validity))?
            .certified_key(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::probe::cert::parse_leaf;

    #[test]
    fn a_leaf_says_what_was_asked() {
        let ca = Ca::new("test CA").unwrap();
        let issued = ca
            .issue(&Leaf::for_names(&["a.test", "127.0.0.9", "::1"]).unwrap())
            .unwrap();
        let s = parse_leaf(&issued.der).unwrap();
        assert_eq!(s.dns_sans, ["a.test"]);
        assert_eq!(
            s.ip_sans,
            [
                "127.0.0.9".parse::<std::net::IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(s.subject, "O=coalscope lab, CN=a.test");
        assert_eq!(s.issuer, "O=coalscope lab, CN=test CA");
        assert_eq!(issued.chain.len(), 1, "a root's leaf: the leaf alone");
        assert_eq!(issued.chain[0], issued.der);
        assert!(issued.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(issued.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn validity_is_relative_to_now() {
        let ca = Ca::new("test CA").unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        for (validity, starts_before_now, ends_after_now) in [
            (Validity::Current, true, true),
            (Validity::Expired, true, false),
            (Validity::NotYetValid, false, true),
        ] {
            let issued = ca
                .issue(&Leaf::for_names(&["a.test"]).unwrap().valid(validity))
                .unwrap();
            let s = parse_leaf(&issued.der).unwrap();
            assert_eq!(s.not_before < now, starts_before_now, "{validity:?}");
            assert_eq!(s.not_after > now, ends_after_now, "{validity:?}");
        }
    }

    #[test]
    fn an_intermediate_chains_up_to_the_root() {
        let root = Ca::new("root").unwrap();
        let one = root.intermediate("one").unwrap();
        let two = one.intermediate("two").unwrap();
        let issued = two.issue(&Leaf::for_names(&["a.test"]).unwrap()).unwrap();
        assert_eq!(
            issued.chain,
            [issued.der.clone(), two.der.clone(), one.der.clone()]
        );
        let leaf = parse_leaf(&issued.der).unwrap();
        assert_eq!(leaf.issuer, "O=coalscope lab, CN=two");
    }
}

//! DANE TLSA matching for SMTP (RFC 7672 §3, RFC 6698 §2.1): which certificates of the chain
//! a server sent satisfy which TLSA record. Only DANE-EE(3) and DANE-TA(2) are usable for
//! SMTP (RFC 7672 §3.1.3); PKIX-TA(0) and PKIX-EE(1) records are dropped by [`Tlsa::usable`].

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha512};
use std::sync::Arc;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 = DANE-TA, 3 = DANE-EE.
    pub usage: u8,
    /// 0 = the full certificate, 1 = its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 = exact, 1 = SHA-256, 2 = SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Whether an SMTP client can use this record at all (RFC 7672 §3.1.3, RFC 6698 §2.1):
    /// unknown or PKIX usages, selectors and matching types are ignored, not failures.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` is the certificate (or key) this record names.
    fn names(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match spki(cert) {
                Some(spki) => spki,
                None => return false,
            },
            _ => return false,
        };
        let digest: Vec<u8> = match self.matching {
            0 => selected,
            1 => Sha256::digest(&selected).to_vec(),
            2 => Sha512::digest(&selected).to_vec(),
            _ => return false,
        };
        // Not secret: both sides are public; a plain comparison is fine.
        digest == self.data
    }
}

/// The DER SubjectPublicKeyInfo of a certificate (with its SEQUENCE header).
pub fn spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    Some(ee.subject_public_key_info().as_ref().to_vec())
}

/// Whether the chain (leaf first) satisfies one of `records` for the MX host `name`.
///
/// DANE-EE(3) matches the leaf only, and ignores its names and validity dates (RFC 7672
/// §3.1.1: the DNSSEC-signed record is the authentication). DANE-TA(2) matches a certificate
/// the server sent above the leaf (§3.1.2 requires servers to send it), which then anchors
/// an ordinary chain check of the leaf, names included (§3.2.2: the MX host name).
pub fn matches(records: &[Tlsa], chain: &[CertificateDer<'_>], name: &ServerName<'_>) -> bool {
    let Some((leaf, above)) = chain.split_first() else {
        return false;
    };
    records
        .iter()
        .filter(|r| r.usable())
        .any(|r| match r.usage {
            3 => r.names(leaf),
            2 => above
                .iter()
                .filter(|ta| r.names(ta))
                .any(|ta| anchored(ta, leaf, above, name)),
            _ => false,
        })
}

/// The leaf's chain checked against `anchor` as the only trust anchor.
fn anchored(
    anchor: &CertificateDer<'_>,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &ServerName<'_>,
) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(anchor.clone().into_owned()).is_err() {
        return false;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
    else {
        return false;
    };
    use rustls::client::danger::ServerCertVerifier;
    verifier
        .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(name: &str) -> CertificateDer<'static> {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        c.cert.der().clone()
    }

    fn name(n: &str) -> ServerName<'static> {
        ServerName::try_from(n.to_string()).unwrap()
    }

    #[test]
    fn dane_ee_matches_spki_and_full_cert_by_every_matching_type() {
        let c = cert("mx.b.test");
        let key = spki(&c).unwrap();
        let chain = [c.clone()];
        let cases = [
            (1, 1, Sha256::digest(&key).to_vec()),
            (1, 2, Sha512::digest(&key).to_vec()),
            (1, 0, key.clone()),
            (0, 1, Sha256::digest(c.as_ref()).to_vec()),
            (0, 0, c.as_ref().to_vec()),
        ];
        for (selector, matching, data) in cases {
            let r = Tlsa {
                usage: 3,
                selector,
                matching,
                data,
            };
            // DANE-EE ignores the name: another host name still matches.
            assert!(
                matches(&[r], &chain, &name("other.test")),
                "{selector} {matching}"
            );
        }
    }

    #[test]
    fn wrong_or_unusable_records_do_not_match() {
        let c = cert("mx.b.test");
        let key = spki(&c).unwrap();
        let chain = [c.clone()];
        let other = spki(&cert("mx.b.test")).unwrap();
        let wrong = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: Sha256::digest(&other).to_vec(),
        };
        assert!(!matches(&[wrong], &chain, &name("mx.b.test")));
        // PKIX-EE(1) is not usable for SMTP, even when it names the key.
        let pkix = Tlsa {
            usage: 1,
            selector: 1,
            matching: 1,
            data: Sha256::digest(&key).to_vec(),
        };
        assert!(!pkix.usable());
        assert!(!matches(&[pkix], &chain, &name("mx.b.test")));
        // A truncated digest is no match.
        let short = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: Sha256::digest(&key)[..16].to_vec(),
        };
        assert!(!matches(&[short], &chain, &name("mx.b.test")));
        assert!(!matches(&[], &chain, &name("mx.b.test")));
        assert!(!matches(
            &[Tlsa {
                usage: 3,
                selector: 1,
                matching: 0,
                data: key
            }],
            &[],
            &name("mx.b.test")
        ));
    }

    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain_and_the_mx_name() {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["mx.b.test".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let ca_der = ca.der().clone();
        let record = Tlsa {
            usage: 2,
            selector: 1,
            matching: 1,
            data: Sha256::digest(spki(&ca_der).unwrap()).to_vec(),
        };
        let chain = [leaf.der().clone(), ca_der];
        assert!(matches(
            std::slice::from_ref(&record),
            &chain,
            &name("mx.b.test")
        ));
        assert!(!matches(
            std::slice::from_ref(&record),
            &chain,
            &name("evil.test")
        ));
        // The anchor must be sent: a leaf alone does not match a TA record.
        assert!(!matches(&[record], &chain[..1], &name("mx.b.test")));
    }
}

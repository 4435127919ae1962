//! DNSSEC lookups for DANE (RFC 7672 §2.1-2.2) through a validating resolver: whether a
//! domain's MX records are secure, and the TLSA records of an MX host when they are.
//! Insecure answers mean "no DANE" (MTA-STS or opportunistic TLS apply); bogus answers, and
//! failed TLSA lookups for a secure MX, defer the delivery, as §2.2 says.

use super::dane::Tlsa;
use super::policy::{Failure, FailureKind};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use mail_auth::hickory_resolver::proto::rr::{RData, Record, RecordType};
use mail_auth::hickory_resolver::TokioResolver;
use std::path::Path;
use std::sync::Arc;

/// The validating resolver: the configured nameservers, the root trust anchors built into
/// hickory, or the DNSKEY records of `trust_anchor` (zone-file form; tests).
pub(crate) fn resolver(
    cfg: &crate::mailauth::ResolverConfig,
    trust_anchor: Option<&Path>,
) -> Result<TokioResolver, String> {
    let (config, mut opts) = cfg.hickory()?;
    opts.validate = true;
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts);
    if let Some(path) = trust_anchor {
        let anchors = TrustAnchors::from_file(path)
            .map_err(|e| format!("dns.trust_anchor_file {}: {e}", path.display()))?;
        builder = builder.with_trust_anchor(Arc::new(anchors));
    }
    builder.build().map_err(|e| e.to_string())
}

/// How DNSSEC judged an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Security<T> {
    /// Validated from the trust anchor.
    Secure(T),
    /// Provably unsigned (or no answer): DANE does not apply.
    Insecure,
    /// Signed but failing validation, or a lookup that failed where DANE needs an answer.
    Bogus(Failure),
}

fn judge(records: &[Record], rtype: RecordType) -> Option<Proof> {
    let proofs: Vec<Proof> = records
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| r.proof)
        .collect();
    if proofs.is_empty() {
        return None;
    }
    if proofs.contains(&Proof::Bogus) {
        return Some(Proof::Bogus);
    }
    if proofs.iter().all(|p| *p == Proof::Secure) {
        return Some(Proof::Secure);
    }
    Some(Proof::Insecure)
}

fn bogus(what: String) -> Failure {
    Failure::new(FailureKind::DnssecInvalid, what)
}

/// Whether `domain`'s MX RRset is DNSSEC-secure (the condition for looking up TLSA).
pub(crate) async fn mx(resolver: &TokioResolver, domain: &str) -> Security<()> {
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    match resolver.lookup(fqdn.as_str(), RecordType::MX).await {
        Ok(l) => match judge(l.answers(), RecordType::MX) {
            Some(Proof::Secure) => Security::Secure(()),
            Some(Proof::Bogus) => Security::Bogus(bogus(format!(
                "the MX records of {domain} fail DNSSEC validation"
            ))),
            _ => Security::Insecure,
        },
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Security::Insecure,
        Err(e) => Security::Bogus(bogus(format!(
            "MX lookup of {domain} with DNSSEC failed: {e}"
        ))),
    }
}

/// The usable TLSA records of `_<port>._tcp.<host>` when they are secure.
pub(crate) async fn tlsa(resolver: &TokioResolver, host: &str, port: u16) -> Security<Vec<Tlsa>> {
    let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
    match resolver.lookup(name.as_str(), RecordType::TLSA).await {
        Ok(l) => match judge(l.answers(), RecordType::TLSA) {
            Some(Proof::Secure) => {
                let records: Vec<Tlsa> = l
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: u8::from(t.cert_usage),
                            selector: u8::from(t.selector),
                            matching: u8::from(t.matching),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .filter(Tlsa::usable)
                    .collect();
                // Secure but nothing usable (RFC 7672 §2.2): no DANE authentication.
                match records.is_empty() {
                    true => Security::Insecure,
                    false => Security::Secure(records),
                }
            }
            Some(Proof::Bogus) => Security::Bogus(bogus(format!(
                "the TLSA records {name} fail DNSSEC validation"
            ))),
            _ => Security::Insecure,
        },
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Security::Insecure,
        // §2.2: a TLSA lookup that fails for a host in a signed zone defers the delivery.
        Err(e) => Security::Bogus(bogus(format!("TLSA lookup {name} failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::hickory_resolver::proto::rr::rdata::MX;
    use mail_auth::hickory_resolver::proto::rr::Name;

    fn mx(proof: Proof) -> Record {
        let name = Name::from_ascii("b.test.").unwrap();
        let exchange = Name::from_ascii("mx.b.test.").unwrap();
        let mut r = Record::from_rdata(name, 300, RData::MX(MX::new(10, exchange)));
        r.proof = proof;
        r
    }

    #[test]
    fn one_bogus_record_makes_the_rrset_bogus_and_all_secure_is_secure() {
        let t = RecordType::MX;
        assert_eq!(judge(&[], t), None);
        assert_eq!(judge(&[mx(Proof::Secure)], t), Some(Proof::Secure));
        assert_eq!(
            judge(&[mx(Proof::Secure), mx(Proof::Insecure)], t),
            Some(Proof::Insecure)
        );
        assert_eq!(
            judge(&[mx(Proof::Secure), mx(Proof::Bogus)], t),
            Some(Proof::Bogus)
        );
        assert_eq!(judge(&[mx(Proof::Indeterminate)], t), Some(Proof::Insecure));
        // Records of another type (an RRSIG, a CNAME) do not count.
        assert_eq!(judge(&[mx(Proof::Bogus)], RecordType::TLSA), None);
    }
}

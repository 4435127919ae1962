//! DNSSEC lookups for DANE (RFC 7672 §2.1-2.2) through a validating resolver: whether a
//! domain's MX records are secure, the TLSA base domains of a host whose address records are
//! secure (§2.2.2, CNAMEs included), and the TLSA records found there. Insecure answers mean
//! "no DANE" (MTA-STS or opportunistic TLS apply); bogus answers, and failed TLSA lookups for
//! a secure host, defer the delivery, as §2.1.1 and §2.2.3 say.

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
    verdict(records.iter().filter(|r| r.record_type() == rtype))
}

/// The verdict on a whole answer, the CNAME chain that led to the records included (RFC 7672
/// §2.1.1: one insecure link makes everything after it insecure). Signatures do not count.
fn judge_chain(records: &[Record]) -> Option<Proof> {
    verdict(
        records
            .iter()
            .filter(|r| r.record_type() != RecordType::RRSIG),
    )
}

/// Bogus if any record is, secure if all are, else insecure; None for no records.
fn verdict<'a>(records: impl Iterator<Item = &'a Record>) -> Option<Proof> {
    let proofs: Vec<Proof> = records.map(|r| r.proof).collect();
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

/// CNAME links followed by hand in [`mx`] before giving up (RFC 1034 chains are short).
const MAX_CNAME_LINKS: usize = 8;

/// Whether `domain`'s MX RRset is DNSSEC-secure (the condition for looking up TLSA).
/// `Insecure` also when there is no MX at all (the implicit MX is judged by its addresses).
pub(crate) async fn mx(resolver: &TokioResolver, domain: &str) -> Security<()> {
    let mut name = format!("{}.", domain.trim_end_matches('.'));
    for _ in 0..MAX_CNAME_LINKS {
        let e = match resolver.lookup(name.as_str(), RecordType::MX).await {
            Ok(l) => {
                return match judge(l.answers(), RecordType::MX) {
                    Some(Proof::Secure) => Security::Secure(()),
                    Some(Proof::Bogus) => Security::Bogus(bogus(format!(
                        "the MX records of {domain} fail DNSSEC validation"
                    ))),
                    _ => Security::Insecure,
                }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Security::Insecure,
            Err(e) => e,
        };
        // hickory 0.26 cannot validate a CNAME answered together with the NSEC proof that
        // its target has no MX (it checks the proof against the alias): when `name` is a
        // DNSSEC-secure alias, ask again at its target, whose denial it does validate.
        match secure_cname(resolver, &name).await {
            Some(target) => name = target,
            None => {
                return Security::Bogus(bogus(format!(
                    "MX lookup of {domain} with DNSSEC failed: {e}"
                )))
            }
        }
    }
    Security::Bogus(bogus(format!(
        "MX lookup of {domain}: CNAME chain too long"
    )))
}

/// The target of `name`'s CNAME record when there is one and it is DNSSEC-secure.
async fn secure_cname(resolver: &TokioResolver, name: &str) -> Option<String> {
    let lookup = resolver.lookup(name, RecordType::CNAME).await.ok()?;
    let records: Vec<&Record> = lookup
        .answers()
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .collect();
    if records.len() != 1 || records[0].proof != Proof::Secure {
        return None;
    }
    match &records[0].data {
        RData::CNAME(target) => Some(target.0.to_lowercase().to_ascii()),
        _ => None,
    }
}

/// The TLSA records DANE found for a host, and the names its certificate may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The usable records; empty for a secure RRset with no usable record.
    pub tlsa: Vec<Tlsa>,
    /// The TLSA base domains (the CNAME-expanded name, then the host itself): the reference
    /// identifiers a DANE-TA chain is checked against (RFC 7672 §2.2.2, §3.2.2).
    pub names: Vec<String>,
}

/// What DANE asks of `host` on `port`: the usable TLSA records at its first TLSA base domain
/// that has any (§2.2.2: the CNAME-expanded name, then the name itself). Empty records mean a
/// secure RRset with no usable record: TLS is still mandatory, without authentication
/// (§2.2.3: "unusable" records). `Insecure` when the host's address records, or every TLSA
/// lookup, are insecure.
pub(crate) async fn host(resolver: &TokioResolver, host: &str, port: u16) -> Security<Found> {
    let names = match bases(resolver, host).await {
        Security::Secure(bases) => bases,
        Security::Insecure => return Security::Insecure,
        Security::Bogus(f) => return Security::Bogus(f),
    };
    for base in &names {
        match tlsa(resolver, base, port).await {
            Security::Insecure => continue,
            Security::Secure(tlsa) => {
                return Security::Secure(Found {
                    tlsa,
                    names: names.clone(),
                })
            }
            Security::Bogus(f) => return Security::Bogus(f),
        }
    }
    Security::Insecure
}

/// The TLSA base domains of `host` when its address records are secure (RFC 7672 §2.2.1,
/// §2.2.2): the name the CNAME chain ends at, when there is one and every link is secure,
/// then `host` itself. hickory hands back the whole chain in the answer, each record with its
/// own proof; A is asked first, AAAA when there is no A.
async fn bases(resolver: &TokioResolver, host: &str) -> Security<Vec<String>> {
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    for rtype in [RecordType::A, RecordType::AAAA] {
        let lookup = match resolver.lookup(fqdn.as_str(), rtype).await {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => continue,
            Err(e) => {
                return Security::Bogus(bogus(format!(
                    "address lookup of {host} with DNSSEC failed: {e}"
                )))
            }
        };
        let answers = lookup.answers();
        let Some(target) = answers
            .iter()
            .find(|r| r.record_type() == rtype)
            .map(|r| r.name.to_lowercase().to_ascii())
        else {
            continue;
        };
        return match judge_chain(answers) {
            Some(Proof::Secure) => {
                let target = target.trim_end_matches('.').to_string();
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                match target == host {
                    true => Security::Secure(vec![host]),
                    false => Security::Secure(vec![target, host]),
                }
            }
            Some(Proof::Bogus) => Security::Bogus(bogus(format!(
                "the address records of {host} fail DNSSEC validation"
            ))),
            _ => Security::Insecure,
        };
    }
    // No address at all: nothing to secure; the route reports the missing address.
    Security::Insecure
}

/// The usable TLSA records of `_<port>._tcp.<host>` when they are secure (possibly none).
pub(crate) async fn tlsa(resolver: &TokioResolver, host: &str, port: u16) -> Security<Vec<Tlsa>> {
    let name = format!("_{port}._tcp.{}.", host.trim_end_matches('.'));
    match resolver.lookup(name.as_str(), RecordType::TLSA).await {
        Ok(l) => match judge(l.answers(), RecordType::TLSA) {
            // Secure: the usable records, or none (§2.2.3: TLS without authentication).
            Some(Proof::Secure) => Security::Secure(
                l.answers()
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
                    .collect(),
            ),
            Some(Proof::Bogus) => Security::Bogus(bogus(format!(
                "the TLSA records {name} fail DNSSEC validation"
            ))),
            _ => Security::Insecure,
        },
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Security::Insecure,
        // §2.2.3: a TLSA lookup that fails for a host in a signed zone defers the delivery.
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

    #[test]
    fn a_cname_chain_is_secure_only_when_every_link_is() {
        use mail_auth::hickory_resolver::proto::rr::rdata::{A, CNAME};
        let alias = Name::from_ascii("b.test.").unwrap();
        let target = Name::from_ascii("host.c.test.").unwrap();
        let cname = |proof| {
            let mut r = Record::from_rdata(alias.clone(), 300, RData::CNAME(CNAME(target.clone())));
            r.proof = proof;
            r
        };
        let a = |proof| {
            let mut r = Record::from_rdata(target.clone(), 300, RData::A(A::new(192, 0, 2, 1)));
            r.proof = proof;
            r
        };
        assert_eq!(judge_chain(&[]), None);
        assert_eq!(
            judge_chain(&[cname(Proof::Secure), a(Proof::Secure)]),
            Some(Proof::Secure)
        );
        // An insecure alias makes the secure address behind it insecure.
        assert_eq!(
            judge_chain(&[cname(Proof::Insecure), a(Proof::Secure)]),
            Some(Proof::Insecure)
        );
        assert_eq!(
            judge_chain(&[cname(Proof::Secure), a(Proof::Bogus)]),
            Some(Proof::Bogus)
        );
    }
}

//! Which MX hosts a delivery may use and the TLS each must reach: DANE for hosts with
//! DNSSEC-secure TLSA records (it takes precedence over MTA-STS, RFC 8461 §2), the domain's
//! MTA-STS policy for the others, opportunistic TLS when neither applies. A host whose secure
//! TLSA records are all unusable gets mandatory TLS without authentication (RFC 7672 §2.2.3),
//! or the domain's MTA-STS policy where that enforces more.

use super::mta_sts::Sts;
use super::observe::{Observer, TlsOutcome};
use super::policy::{PolicySource, TlsPolicy};
use super::route::Hop;
use super::secure::{self, Security};
use mail_auth::hickory_resolver::TokioResolver;

/// What DANE says about one hop.
#[derive(Debug, Clone, Default)]
enum Dane {
    /// Not applicable (DNSSEC off, or an insecure answer on the way).
    #[default]
    None,
    /// Usable TLSA records: the certificate must match one.
    Authenticate(TlsPolicy),
    /// A secure TLSA RRset without a usable record: encryption is mandatory.
    EncryptOnly,
    /// A bogus answer: the hop cannot be used.
    Bogus,
}

/// The hops in MX order, each with its requirement; `Err` is the temporary reply when no
/// hop is left.
pub(crate) async fn plan(
    domain: &str,
    hops: Vec<Hop>,
    dane: Option<&TokioResolver>,
    sts: Option<&Sts>,
    observer: &Observer,
) -> Result<Vec<(Hop, TlsPolicy)>, String> {
    let report = |f: &super::policy::Failure| {
        observer.record(&TlsOutcome {
            domain,
            mx: "",
            policy: PolicySource::Tlsa,
            result: Err(f),
        })
    };
    let mut dane_of: Vec<Dane> = vec![Dane::None; hops.len()];
    let mut bogus_reply = None;
    if let Some(resolver) = dane {
        // RFC 7672 §2.2.1: MX hosts are DANE candidates only when the MX RRset is secure. A
        // domain without MX (the implicit MX, §2.2.2) is judged by its own address records,
        // which `secure::host` checks; a bogus answer to the MX question defers either way
        // (it may be a forged denial hiding the real MX).
        let mx_secure = match secure::mx(resolver, domain).await {
            Security::Secure(()) => true,
            Security::Insecure => false,
            Security::Bogus(f) => {
                report(&f);
                return Err(format!(
                    "451 4.7.5 not delivered: {} ({})",
                    f.detail,
                    f.kind.as_str()
                ));
            }
        };
        for (i, hop) in hops.iter().enumerate() {
            if !(mx_secure || hop.implicit) {
                continue;
            }
            dane_of[i] = match secure::host(resolver, &hop.host, hop.port).await {
                Security::Secure(found) if found.tlsa.is_empty() => Dane::EncryptOnly,
                Security::Secure(found) => Dane::Authenticate(TlsPolicy {
                    tlsa: found.tlsa,
                    names: found.names,
                    ..TlsPolicy::enforced(PolicySource::Tlsa)
                }),
                Security::Insecure => Dane::None,
                Security::Bogus(f) => {
                    report(&f);
                    bogus_reply.get_or_insert(format!(
                        "451 4.7.5 {}: {} ({})",
                        hop.host,
                        f.detail,
                        f.kind.as_str()
                    ));
                    Dane::Bogus
                }
            };
        }
    }
    // MTA-STS for the hops DANE does not authenticate.
    let rest: Vec<Hop> = hops
        .iter()
        .zip(&dane_of)
        .filter(|(_, d)| matches!(d, Dane::None | Dane::EncryptOnly))
        .map(|(h, _)| h.clone())
        .collect();
    let sts_applied = match (sts, rest.is_empty()) {
        (Some(sts), false) => sts.apply(domain, rest, observer).await,
        _ => Ok((rest, TlsPolicy::opportunistic())),
    };
    let (allowed, sts_policy, sts_refusal) = match sts_applied {
        Ok((allowed, p)) => (allowed, p, None),
        Err(reply) => (Vec::new(), TlsPolicy::opportunistic(), Some(reply)),
    };
    let out = assign(hops, dane_of, &allowed, &sts_policy);
    if out.is_empty() {
        return Err(sts_refusal
            .or(bogus_reply)
            .unwrap_or_else(|| format!("451 4.4.1 no usable MX host for {domain}")));
    }
    Ok(out)
}

/// Each hop's policy: its DANE records when they authenticate, else the MTA-STS verdict
/// (`allowed` hops under `sts`), made mandatory-TLS by unusable TLSA records. Bogus hops and
/// hops MTA-STS does not allow are dropped.
fn assign(
    hops: Vec<Hop>,
    dane_of: Vec<Dane>,
    allowed: &[Hop],
    sts: &TlsPolicy,
) -> Vec<(Hop, TlsPolicy)> {
    let mut out = Vec::new();
    for (hop, dane) in hops.into_iter().zip(dane_of) {
        match dane {
            Dane::Authenticate(p) => out.push((hop, p)),
            Dane::Bogus => {}
            _ if !allowed.contains(&hop) => {}
            // An enforced MTA-STS policy asks for more (verified TLS) than unusable TLSA
            // records (any TLS); otherwise (none, or `testing`) those records make TLS
            // mandatory.
            Dane::EncryptOnly if !sts.requires_tls() => {
                out.push((hop, TlsPolicy::encrypted(PolicySource::Tlsa)))
            }
            Dane::EncryptOnly | Dane::None => out.push((hop, sts.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::TlsLevel;

    fn hop(name: &str) -> Hop {
        Hop {
            host: name.into(),
            port: 25,
            implicit: false,
        }
    }

    #[test]
    fn unusable_tlsa_makes_tls_mandatory_unless_mta_sts_enforces_more() {
        let hops = || vec![hop("a"), hop("b"), hop("c"), hop("d")];
        let dane = || {
            vec![
                Dane::Authenticate(TlsPolicy::enforced(PolicySource::Tlsa)),
                Dane::EncryptOnly,
                Dane::None,
                Dane::Bogus,
            ]
        };
        let levels = |out: &[(Hop, TlsPolicy)]| -> Vec<(String, PolicySource, TlsLevel)> {
            out.iter()
                .map(|(h, p)| (h.host.clone(), p.source, p.min_level()))
                .collect()
        };
        let all = hops();
        // No MTA-STS: DANE, mandatory TLS, opportunistic; the bogus hop is dropped.
        let out = assign(hops(), dane(), &all, &TlsPolicy::opportunistic());
        assert_eq!(
            levels(&out),
            vec![
                ("a".into(), PolicySource::Tlsa, TlsLevel::Dane),
                ("b".into(), PolicySource::Tlsa, TlsLevel::Opportunistic),
                ("c".into(), PolicySource::None, TlsLevel::None),
            ]
        );
        assert!(out[1].1.requires_tls() && !out[1].1.authenticate);
        // MTA-STS `testing` reports only: the unusable records still require TLS.
        let testing = TlsPolicy {
            enforce: false,
            ..TlsPolicy::enforced(PolicySource::Sts)
        };
        let out = assign(hops(), dane(), &all, &testing);
        assert_eq!(out[1].1.source, PolicySource::Tlsa);
        assert!(out[1].1.requires_tls());
        // MTA-STS `enforce` asks for verified TLS: it wins for that hop, and drops the hops
        // its `mx` patterns do not name.
        let enforce = TlsPolicy::enforced(PolicySource::Sts);
        let out = assign(hops(), dane(), &[hop("b")], &enforce);
        assert_eq!(
            levels(&out),
            vec![
                ("a".into(), PolicySource::Tlsa, TlsLevel::Dane),
                ("b".into(), PolicySource::Sts, TlsLevel::Verified),
            ]
        );
    }
}

//! Which MX hosts a delivery may use and the TLS each must reach: DANE for hosts with
//! DNSSEC-secure TLSA records (it takes precedence over MTA-STS, RFC 8461 §2), the domain's
//! MTA-STS policy for the others, opportunistic TLS when neither applies.

use super::mta_sts::Sts;
use super::observe::{Observer, TlsOutcome};
use super::policy::{PolicySource, TlsPolicy};
use super::route::Hop;
use super::secure::{self, Security};
use mail_auth::hickory_resolver::TokioResolver;

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
    // DANE first: for each hop, its TLSA records when the MX RRset is secure.
    let mut dane_of: Vec<Option<TlsPolicy>> = vec![None; hops.len()];
    let mut bogus_hops = vec![false; hops.len()];
    let mut bogus_reply = None;
    if let Some(resolver) = dane {
        match secure::mx(resolver, domain).await {
            Security::Secure(()) => {
                for (i, hop) in hops.iter().enumerate() {
                    match secure::tlsa(resolver, &hop.host, hop.port).await {
                        Security::Secure(tlsa) => {
                            dane_of[i] = Some(TlsPolicy {
                                tlsa,
                                ..TlsPolicy::enforced(PolicySource::Tlsa)
                            })
                        }
                        Security::Insecure => {}
                        Security::Bogus(f) => {
                            report(&f);
                            bogus_hops[i] = true;
                            bogus_reply.get_or_insert(format!(
                                "451 4.7.5 {}: {} ({})",
                                hop.host,
                                f.detail,
                                f.kind.as_str()
                            ));
                        }
                    }
                }
            }
            Security::Insecure => {}
            Security::Bogus(f) => {
                report(&f);
                return Err(format!(
                    "451 4.7.5 not delivered: {} ({})",
                    f.detail,
                    f.kind.as_str()
                ));
            }
        }
    }
    // MTA-STS for the hops DANE does not cover.
    let rest: Vec<Hop> = hops
        .iter()
        .enumerate()
        .filter(|(i, _)| dane_of[*i].is_none() && !bogus_hops[*i])
        .map(|(_, h)| h.clone())
        .collect();
    let sts_applied = match (sts, rest.is_empty()) {
        (Some(sts), false) => sts.apply(domain, rest, observer).await,
        _ => Ok((rest, TlsPolicy::opportunistic())),
    };
    let mut out = Vec::new();
    let (allowed, sts_policy, sts_refusal) = match sts_applied {
        Ok((allowed, p)) => (allowed, p, None),
        Err(reply) => (Vec::new(), TlsPolicy::opportunistic(), Some(reply)),
    };
    for (i, hop) in hops.into_iter().enumerate() {
        if let Some(p) = dane_of[i].take() {
            out.push((hop, p));
        } else if allowed.contains(&hop) {
            out.push((hop, sts_policy.clone()));
        }
    }
    if out.is_empty() {
        return Err(sts_refusal
            .or(bogus_reply)
            .unwrap_or_else(|| format!("451 4.4.1 no usable MX host for {domain}")));
    }
    Ok(out)
}

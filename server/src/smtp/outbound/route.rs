//! Where mail for a domain goes: a static `[[outbound.route]]`, else MX (RFC 5321 §5.1).
//! The answer is an ordered list of hops; their addresses are looked up one hop at a time
//! (`addresses`), so a dead first MX does not cost lookups for the rest up front.

use crate::queue::transport::RcptOutcome;
use mail_auth::hickory_resolver::net::NetError;
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::TokioResolver;
use std::net::IpAddr;

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    /// A host name (no trailing dot) or an IP literal.
    pub host: String,
    pub port: u16,
    /// Implicit MX: the domain itself; it having no address is final.
    pub implicit: bool,
}

/// A static route, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticRoute {
    /// Lower case, no trailing dot.
    pub domain: String,
    pub host: String,
    pub port: u16,
    pub require_tls: bool,
}

/// `host:port`, `[v6]:port`, or a bare host (port 25).
pub(crate) fn parse_next_hop(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 25,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
        None => (s, 25),
        // An unbracketed IPv6 literal: ambiguous, refuse.
        Some(_) => return None,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    Some((host.trim_end_matches('.').to_string(), port))
}

/// The MX hosts of `domain` in preference order, equal preferences shuffled (RFC 5321
/// §5.1) so that load spreads as the domain intended; the implicit MX when there is none.
pub(crate) async fn mx_hops(
    resolver: &TokioResolver,
    domain: &str,
    port: u16,
) -> Result<Vec<Hop>, RcptOutcome> {
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let lookup = match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_nx_domain() => return Err(no_such_domain(domain)),
        Err(e) if e.is_no_records_found() => {
            return Ok(vec![Hop {
                host: domain.to_string(),
                port,
                implicit: true,
            }])
        }
        Err(e) => return Err(dns_trouble(domain, "MX", &e)),
    };
    let mut mx: Vec<(u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((
                mx.preference,
                mx.exchange
                    .to_lowercase()
                    .to_ascii()
                    .trim_end_matches('.')
                    .to_string(),
            )),
            _ => None,
        })
        .collect();
    if mx.is_empty() {
        return Ok(vec![Hop {
            host: domain.to_string(),
            port,
            implicit: true,
        }]);
    }
    // RFC 7505: "MX 0 ." says the domain takes no mail. Mixed with real MX records it is a
    // misconfiguration; the real ones win.
    mx.retain(|(_, host)| !host.is_empty());
    if mx.is_empty() {
        return Err(RcptOutcome::Permanent {
            reply: format!("556 5.1.10 {domain} does not accept mail (null MX)"),
        });
    }
    shuffle(&mut mx);
    mx.sort_by_key(|(preference, _)| *preference);
    Ok(mx
        .into_iter()
        .map(|(_, host)| Hop {
            host,
            port,
            implicit: false,
        })
        .collect())
}

/// The addresses of one hop, A and AAAA as the resolver's options order them.
pub(crate) async fn addresses(
    resolver: &TokioResolver,
    hop: &Hop,
) -> Result<Vec<IpAddr>, RcptOutcome> {
    if let Ok(ip) = hop.host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let fqdn = format!("{}.", hop.host);
    match resolver.lookup_ip(fqdn.as_str()).await {
        Ok(ips) => {
            let ips: Vec<IpAddr> = ips.iter().collect();
            if ips.is_empty() {
                Err(no_address(hop))
            } else {
                Ok(ips)
            }
        }
        Err(e) if e.is_no_records_found() => Err(no_address(hop)),
        Err(e) => Err(dns_trouble(&hop.host, "A/AAAA", &e)),
    }
}

fn no_address(hop: &Hop) -> RcptOutcome {
    if hop.implicit {
        // No MX and no address: the domain cannot receive mail (RFC 5321 §5.1).
        no_such_domain(&hop.host)
    } else {
        // A named MX without an address is someone's typo or a DNS hiccup; it may heal.
        RcptOutcome::Temporary {
            reply: format!("451 4.4.4 mail exchanger {} has no address", hop.host),
        }
    }
}

fn no_such_domain(domain: &str) -> RcptOutcome {
    RcptOutcome::Permanent {
        reply: format!("550 5.1.2 domain {domain} does not exist or has no mail server"),
    }
}

fn dns_trouble(name: &str, what: &str, e: &NetError) -> RcptOutcome {
    RcptOutcome::Temporary {
        reply: format!("451 4.4.3 DNS {what} lookup for {name} failed: {e}"),
    }
}

/// Fisher-Yates with the OS RNG; the result is then stably sorted by preference, so only
/// hosts of equal preference end up reordered.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let r = u64::from_le_bytes(crate::util::random_bytes::<8>());
        let j = (r % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hops() {
        assert_eq!(
            parse_next_hop("mx.b.test:2525"),
            Some(("mx.b.test".into(), 2525))
        );
        assert_eq!(
            parse_next_hop("127.0.0.1:25"),
            Some(("127.0.0.1".into(), 25))
        );
        assert_eq!(parse_next_hop("[::1]:587"), Some(("::1".into(), 587)));
        assert_eq!(parse_next_hop("mx.b.test"), Some(("mx.b.test".into(), 25)));
        assert_eq!(parse_next_hop("::1"), None);
        assert_eq!(parse_next_hop("mx:port"), None);
        assert_eq!(parse_next_hop(""), None);
        assert_eq!(parse_next_hop("[::1"), None);
    }

    #[test]
    fn shuffle_keeps_preference_order() {
        let mut v: Vec<(u16, u32)> = (0..20).map(|i| (if i < 10 { 20 } else { 10 }, i)).collect();
        shuffle(&mut v);
        v.sort_by_key(|(p, _)| *p);
        assert!(v[..10].iter().all(|(p, _)| *p == 10));
        assert!(v[10..].iter().all(|(p, _)| *p == 20));
        let mut ids: Vec<u32> = v.iter().map(|(_, i)| *i).collect();
        ids.sort();
        assert_eq!(ids, (0..20).collect::<Vec<_>>());
    }
}

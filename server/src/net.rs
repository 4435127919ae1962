//! Which IP addresses are "somewhere else on the Internet". Anything that a name from the
//! outside world (an MX answer, a did:web host) may resolve to, and that would reach the
//! operator's own machine or network instead, is refused by the callers of this module
//! (issue 15, 11): outbound SMTP delivery and did:web fetches share this one classifier so
//! the two can never disagree about what "internal" means.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The unit one subscriber holds, for per-source limits and accounting: an IPv4 address
/// (also when written IPv4-mapped), or an IPv6 /64, since one host gets a whole /64.
pub fn subscriber(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// True when `ip` is a unicast address in public space.
pub fn is_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_none()
}

/// Why `ip` is not public ("loopback", "private", ...), for error messages and DSNs; `None`
/// for a public unicast address.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => "unspecified (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => "private",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (b & 0xc0) == 64 => "shared (CGNAT, 100.64.0.0/10)",
        [192, 0, 0, _] => "IETF protocol assignment (192.0.0.0/24)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, 18 | 19, ..] => "benchmarking (198.18.0.0/15)",
        [255, 255, 255, 255] => "broadcast",
        [224..=239, ..] => "multicast",
        [240..=255, ..] => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d is the IPv4 address itself on a dual-stack socket.
        return v4_reason(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        // IPv4-translated addresses (::ffff:0:a.b.c.d, RFC 2765 SIIT) reach the IPv4 address
        // they carry; judge that one.
        [0, 0, 0, 0, 0xffff, 0, a, b] => {
            let [a1, a2] = a.to_be_bytes();
            let [b1, b2] = b.to_be_bytes();
            return v4_reason(Ipv4Addr::new(a1, a2, b1, b2)).or(Some("IPv4-translated"));
        }
        // Deprecated IPv4-compatible addresses (::a.b.c.d): never a real destination.
        [0, 0, 0, 0, 0, 0, _, _] => "reserved (IPv4-compatible)",
        // NAT64 would reach any IPv4 address, the operator's own among them.
        [0x64, 0xff9b, ..] => "NAT64",
        [0x100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, 0x0db8, ..] => "documentation",
        [0x3fff, b, ..] if b < 0x1000 => "documentation",
        [0x2001, 0x0002, 0, ..] => "benchmarking (2001:2::/48)",
        // Teredo (2001::/32) tunnels to an IPv4 address of the peer's choosing; the rest of
        // 2001::/23 is protocol assignments, not mail servers.
        [0x2001, b, ..] if b < 0x0200 => "IETF protocol assignment (2001::/23)",
        [0x2002, a, b, ..] => {
            // 6to4 carries an IPv4 address; judge that one.
            let [a1, a2] = a.to_be_bytes();
            let [b1, b2] = b.to_be_bytes();
            return v4_reason(Ipv4Addr::new(a1, a2, b1, b2));
        }
        [a, ..] if (a & 0xfe00) == 0xfc00 => "private (unique local, fc00::/7)",
        [a, ..] if (a & 0xffc0) == 0xfe80 => "link-local",
        [a, ..] if (a & 0xffc0) == 0xfec0 => "site-local",
        [a, ..] if (a & 0xff00) == 0xff00 => "multicast",
        _ => return None,
    })
}

/// Destinations that are not public but that the operator allows anyway (`webhooks.
/// allow_private`): networks in CIDR form, or host names (matched case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct AllowPrivate {
    nets: Vec<(IpAddr, u8)>,
    hosts: Vec<String>,
}

impl AllowPrivate {
    /// Parses the config list; an entry that is neither a CIDR, an address nor a host name
    /// is an error naming it.
    pub fn parse(entries: &[String]) -> Result<AllowPrivate, String> {
        let mut out = AllowPrivate::default();
        for e in entries {
            match Self::parse_entry(e)? {
                Entry::Net(ip, len) => out.nets.push((ip, len)),
                Entry::Host(h) => out.hosts.push(h),
            }
        }
        Ok(out)
    }

    /// One entry, checked (config validation calls this).
    pub fn parse_entry(e: &str) -> Result<Entry, String> {
        let e = e.trim();
        let (addr, len) = match e.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (e, None),
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("{e:?}: bad prefix length"))?,
                None => max,
            };
            return Ok(Entry::Net(ip, len));
        }
        let valid_host = len.is_none()
            && !e.is_empty()
            && e.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if valid_host {
            Ok(Entry::Host(e.to_ascii_lowercase()))
        } else {
            Err(format!("{e:?} is neither a CIDR nor a host name"))
        }
    }

    /// Whether connecting to `ip` (resolved from `host`) is allowed: public addresses always,
    /// others only when listed.
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        if is_public(ip) {
            return true;
        }
        let ip = ip.to_canonical();
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
            || self.nets.iter().any(|(net, len)| in_net(ip, *net, *len))
    }
}

/// One `allow_private` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Net(IpAddr, u8),
    Host(String),
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The one resolver for outbound HTTP to hosts named from outside (did:web documents,
/// webhook endpoints): resolves with the system resolver and keeps only the addresses
/// [`AllowPrivate::permits`]. The client connects only to what this returns, so the address
/// checked is the address connected to (no DNS rebinding between check and connect).
/// Callers refuse IP-literal URLs or check them with the same rule, since a literal never
/// reaches a resolver.
pub struct GuardedResolver {
    pub allow: AllowPrivate,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow = self.allow.clone();
        Box::pin(async move {
            let mut refused = None;
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| {
                    let ok = allow.permits(&host, a.ip());
                    if !ok {
                        refused = non_public_reason(a.ip());
                    }
                    ok
                })
                .collect();
            if addrs.is_empty() {
                let why = refused.map_or(String::new(), |r| format!(" (found {r})"));
                return Err(format!("{host} has no public address{why}").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error and its causes on one line (reqwest's own message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_destinations_pass_only_when_listed() {
        let allow = AllowPrivate::parse(&[
            "127.0.0.1/32".into(),
            "10.1.0.0/16".into(),
            "Hooks.Internal".into(),
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(allow.permits("x.test", ip("8.8.8.8")));
        assert!(allow.permits("x.test", ip("127.0.0.1")));
        assert!(allow.permits("x.test", ip("::ffff:127.0.0.1")));
        assert!(!allow.permits("x.test", ip("127.0.0.2")));
        assert!(allow.permits("x.test", ip("10.1.200.3")));
        assert!(!allow.permits("x.test", ip("10.2.0.1")));
        assert!(allow.permits("hooks.internal", ip("192.168.1.1")));
        assert!(!AllowPrivate::default().permits("x.test", ip("169.254.169.254")));
        assert!(!AllowPrivate::default().permits("x.test", ip("::1")));
        assert!(AllowPrivate::parse_entry("10.0.0.0/33").is_err());
        assert!(AllowPrivate::parse_entry("bad host!").is_err());
        assert_eq!(
            AllowPrivate::parse_entry("::1").unwrap(),
            Entry::Net(ip("::1"), 128)
        );
    }

    #[test]
    fn a_subscriber_is_an_ipv4_address_or_an_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(subscriber(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(subscriber(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(subscriber(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn internal_and_special_addresses_are_named() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared"),
            ("100.127.255.255", "shared"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("fd00::1", "unique local"),
            ("fc12::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("100::1", "discard"),
            ("2001:2::1", "benchmarking"),
            ("2002:7f00:0001::1", "loopback"),
            ("::ffff:0:7f00:1", "loopback"),
            ("::ffff:0:808:808", "IPv4-translated"),
            ("2001::1", "IETF"),
            ("2001:0:4136:e378::1", "IETF"),
        ] {
            let got = non_public_reason(ip.parse().unwrap());
            assert!(got.is_some_and(|r| r.contains(why)), "{ip}: {got:?}");
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

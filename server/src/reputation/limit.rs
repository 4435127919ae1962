//! The public attestation route's rate limit, per client: each address (an IPv6 client by
//! its /64, which one host usually holds whole) gets `per_minute` answers in each clock
//! minute, so one busy or hostile client cannot use up the answers everyone else gets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Clients remembered per minute. Past it, a client not yet seen this minute is refused
/// until the minute ends: the table's memory stays bounded whatever arrives.
const MAX_CLIENTS: usize = 65_536;

pub struct PerClient {
    per_minute: u32,
    /// (minute, answers per client in it)
    window: Mutex<(i64, HashMap<IpAddr, u32>)>,
}

/// The key a client is counted under: an IPv4 address, or an IPv6 address's /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl PerClient {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            window: Mutex::new((i64::MIN, HashMap::new())),
        }
    }

    /// Counts one answer to `client` in `minute`; false when it has had its share.
    pub fn allow(&self, client: Option<IpAddr>, minute: i64) -> bool {
        // A request without a known peer (not over a socket) shares one bucket.
        let key = client
            .map(client_key)
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0 != minute {
            w.0 = minute;
            w.1.clear();
        }
        let full = w.1.len() >= MAX_CLIENTS;
        match w.1.get_mut(&key) {
            Some(n) if *n >= self.per_minute => false,
            Some(n) => {
                *n += 1;
                true
            }
            None if full || self.per_minute == 0 => false,
            None => {
                w.1.insert(key, 1);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn one_client_past_its_share_does_not_starve_another() {
        let l = PerClient::new(3);
        for _ in 0..3 {
            assert!(l.allow(ip("192.0.2.1"), 7));
        }
        assert!(!l.allow(ip("192.0.2.1"), 7));
        assert!(l.allow(ip("192.0.2.2"), 7), "another client still answered");
        assert!(l.allow(ip("192.0.2.1"), 8), "a new minute starts afresh");
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let l = PerClient::new(2);
        assert!(l.allow(ip("2001:db8:1:2::1"), 1));
        assert!(l.allow(ip("2001:db8:1:2::ffff"), 1));
        assert!(!l.allow(ip("2001:db8:1:2:abcd::9"), 1), "same /64");
        assert!(l.allow(ip("2001:db8:1:3::1"), 1), "another /64");
        assert_eq!(
            client_key("::ffff:192.0.2.9".parse().unwrap()),
            "192.0.2.9".parse::<IpAddr>().unwrap()
        );
    }
}

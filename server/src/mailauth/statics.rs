//! A table of DNS answers that stands in for the network.
//!
//! Two consumers share it: `MailAuth::with_static_records` answers mail-auth's lookups from it
//! through mail-auth's public `ResolverCache` trait (no sockets at all), and the test-only
//! crate `legate-testdns` serves the same table over real UDP/TCP on loopback. A `StaticDns` is a cheap handle to
//! shared data, so a test can change answers after the server or the `MailAuth` was started.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, DnssecStatus, RecordSet, ResolverCache, Txt, MX};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An SRV record: (priority, weight, port, target) per RFC 2782.
pub type Srv = (u16, u16, u16, String);
/// A TLSA record: usage, selector, matching type, data (RFC 6698 §2.1).
pub type TlsaRecord = (u8, u8, u8, Vec<u8>);

/// The record sets, keyed by lowercase fully qualified names (trailing dot). Public for
/// reading only (a [`StaticDns::read`] guard): `legate-testdns` answers queries from it.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub txt: HashMap<Box<str>, Vec<String>>,
    pub mx: HashMap<Box<str>, Vec<(u16, String)>>,
    pub a: HashMap<Box<str>, Vec<Ipv4Addr>>,
    pub aaaa: HashMap<Box<str>, Vec<Ipv6Addr>>,
    pub ptr: HashMap<IpAddr, Vec<String>>,
    pub srv: HashMap<Box<str>, Vec<Srv>>,
    pub cname: HashMap<Box<str>, String>,
    /// (usage, selector, matching type, data) of TLSA records (RFC 6698).
    pub tlsa: HashMap<Box<str>, Vec<TlsaRecord>>,
}

impl Records {
    /// True when `name` owns a record or is an empty non-terminal above one, which is what
    /// separates NODATA from NXDOMAIN (RFC 8020).
    pub fn name_exists(&self, name: &str) -> bool {
        let suffix = format!(".{name}");
        let covers = |k: &str| k == name || k.ends_with(&suffix);
        self.txt.keys().any(|k| covers(k))
            || self.mx.keys().any(|k| covers(k))
            || self.a.keys().any(|k| covers(k))
            || self.aaaa.keys().any(|k| covers(k))
            || self.srv.keys().any(|k| covers(k))
            || self.cname.keys().any(|k| covers(k))
            || self.tlsa.keys().any(|k| covers(k))
    }
}

/// Shared, mutable DNS answers for tests and for the loopback DNS server.
#[derive(Debug, Clone, Default)]
pub struct StaticDns {
    /// A std lock, not tokio's: it is held only to copy answers out, never across an await.
    inner: Arc<RwLock<Records>>,
}

/// Lowercases and adds the trailing dot, the form mail-auth uses for its lookup keys.
pub fn fqdn(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

impl StaticDns {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one TXT record; a value longer than 255 bytes is split into strings on the wire.
    pub fn add_txt(&self, name: &str, value: impl Into<String>) -> &Self {
        self.write()
            .txt
            .entry(fqdn(name).into())
            .or_default()
            .push(value.into());
        self
    }

    pub fn add_mx(&self, name: &str, preference: u16, exchange: &str) -> &Self {
        self.write()
            .mx
            .entry(fqdn(name).into())
            .or_default()
            .push((preference, fqdn(exchange)));
        self
    }

    pub fn add_a(&self, name: &str, addr: Ipv4Addr) -> &Self {
        self.write()
            .a
            .entry(fqdn(name).into())
            .or_default()
            .push(addr);
        self
    }

    pub fn add_aaaa(&self, name: &str, addr: Ipv6Addr) -> &Self {
        self.write()
            .aaaa
            .entry(fqdn(name).into())
            .or_default()
            .push(addr);
        self
    }

    /// Adds one SRV record; a target of "." means "service not offered" (RFC 2782).
    pub fn add_srv(
        &self,
        name: &str,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
    ) -> &Self {
        self.write()
            .srv
            .entry(fqdn(name).into())
            .or_default()
            .push((priority, weight, port, fqdn(target)));
        self
    }

    /// Adds one TLSA record (served by the loopback test DNS server).
    pub fn add_tlsa(
        &self,
        name: &str,
        usage: u8,
        selector: u8,
        matching: u8,
        data: Vec<u8>,
    ) -> &Self {
        self.write()
            .tlsa
            .entry(fqdn(name).into())
            .or_default()
            .push((usage, selector, matching, data));
        self
    }

    /// Sets the CNAME of `name` (answered to CNAME queries only; no chasing).
    pub fn set_cname(&self, name: &str, target: &str) -> &Self {
        self.write().cname.insert(fqdn(name).into(), fqdn(target));
        self
    }

    pub fn add_ptr(&self, addr: IpAddr, name: &str) -> &Self {
        self.write().ptr.entry(addr).or_default().push(fqdn(name));
        self
    }

    /// Removes every record owned by `name` (not the PTR table, which is keyed by address).
    pub fn remove(&self, name: &str) -> &Self {
        let key = fqdn(name);
        let mut records = self.write();
        records.txt.remove(key.as_str());
        records.mx.remove(key.as_str());
        records.a.remove(key.as_str());
        records.aaaa.remove(key.as_str());
        records.srv.remove(key.as_str());
        records.cname.remove(key.as_str());
        records.tlsa.remove(key.as_str());
        self
    }

    pub fn clear(&self) -> &Self {
        *self.write() = Records::default();
        self
    }

    /// The table as it is now, for answering from it; hold the guard only to copy answers out.
    /// A poisoned lock only means a test panicked mid-update; the maps are still usable.
    pub fn read(&self) -> RwLockReadGuard<'_, Records> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Records> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The caches handed to every mail-auth call. With no table every lookup misses and goes to
/// the real resolver; with a table every lookup is answered from it and never reaches the
/// network (missing TXT -> NXDOMAIN error, missing MX/A/AAAA/PTR -> an empty set).
///
/// Known gap of the table mode: mail-auth's SPF `exists:` treats any cache hit as "exists",
/// and an A/AAAA miss is an empty set here, so `exists:` always matches. No test relies on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DnsOverride(pub(crate) Option<StaticDns>);

/// Parses a name's TXT strings as the record type its name implies. mail-auth keys its TXT
/// cache by name only, and each kind of lookup lives under its own prefix.
fn parse_txt(name: &str, values: &[String]) -> Txt {
    fn first<T: TxtRecordParser + Into<Txt>>(values: &[String]) -> Txt {
        let mut last = Err(mail_auth::Error::Dns(DnsError::InvalidRecordType));
        for value in values {
            last = T::parse(value.as_bytes());
            if last.is_ok() {
                break;
            }
        }
        last.into()
    }
    if name.starts_with("_dmarc.") || name.contains("._dmarc.") {
        first::<Dmarc>(values)
    } else if name.contains("._domainkey.") {
        first::<DomainKey>(values)
    } else {
        first::<Spf>(values)
    }
}

fn find_key<'a, K, V, Q>(map: &'a HashMap<K, V>, name: &Q) -> Option<(&'a K, &'a V)>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    map.get_key_value(name)
}

fn record_set<T: Clone>(items: Option<&Vec<T>>) -> RecordSet<T> {
    RecordSet {
        rrset: items.map(|v| v.as_slice()).unwrap_or_default().into(),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

impl ResolverCache<Box<str>, Txt> for DnsOverride {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let records = self.0.as_ref()?.read();
        Some(match find_key(&records.txt, name) {
            Some((key, values)) if !values.is_empty() => parse_txt(key, values),
            _ => {
                let exists = records.mx.contains_key(name)
                    || records.a.contains_key(name)
                    || records.aaaa.contains_key(name);
                let code = if exists {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                Txt::Error(mail_auth::Error::Dns(DnsError::RecordNotFound(code)))
            }
        })
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    /// The table is authoritative; answers from the network are never stored in it.
    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

impl ResolverCache<Box<str>, RecordSet<MX>> for DnsOverride {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<MX>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let records = self.0.as_ref()?.read();
        // Same shape as mail-auth's own lookup: grouped by preference, lowest first.
        let mut grouped: Vec<(u16, Vec<Box<str>>)> = Vec::new();
        for (pref, exchange) in records
            .mx
            .get(name)
            .map(|v| v.as_slice())
            .unwrap_or_default()
        {
            match grouped.iter_mut().find(|(p, _)| p == pref) {
                Some((_, list)) => list.push(exchange.as_str().into()),
                None => grouped.push((*pref, vec![exchange.as_str().into()])),
            }
        }
        grouped.sort_unstable_by_key(|(p, _)| *p);
        let rrset: Vec<MX> = grouped
            .into_iter()
            .map(|(preference, exchanges)| MX {
                preference,
                exchanges: exchanges.into_boxed_slice(),
            })
            .collect();
        Some(RecordSet {
            rrset: rrset.into(),
            dnssec_status: DnssecStatus::Indeterminate,
        })
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<MX>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: RecordSet<MX>, _: std::time::Instant) {}
}

impl ResolverCache<Box<str>, RecordSet<Ipv4Addr>> for DnsOverride {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(record_set(self.0.as_ref()?.read().a.get(name)))
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Ipv4Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: RecordSet<Ipv4Addr>, _: std::time::Instant) {}
}

impl ResolverCache<Box<str>, RecordSet<Ipv6Addr>> for DnsOverride {
    fn get<Q>(&self, name: &Q) -> Option<RecordSet<Ipv6Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Some(record_set(self.0.as_ref()?.read().aaaa.get(name)))
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Ipv6Addr>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: RecordSet<Ipv6Addr>, _: std::time::Instant) {}
}

impl ResolverCache<IpAddr, RecordSet<Box<str>>> for DnsOverride {
    fn get<Q>(&self, addr: &Q) -> Option<RecordSet<Box<str>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let records = self.0.as_ref()?.read();
        let names: Vec<Box<str>> = records
            .ptr
            .get(addr)
            .map(|v| v.iter().map(|n| n.as_str().into()).collect())
            .unwrap_or_default();
        Some(RecordSet {
            rrset: names.into(),
            dnssec_status: DnssecStatus::Indeterminate,
        })
    }

    fn remove<Q>(&self, _: &Q) -> Option<RecordSet<Box<str>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: IpAddr, _: RecordSet<Box<str>>, _: std::time::Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(cache: &DnsOverride, name: &str) -> Txt {
        ResolverCache::<Box<str>, Txt>::get(cache, name).expect("table mode always answers")
    }

    #[test]
    fn names_are_normalised_and_typed_by_prefix() {
        let dns = StaticDns::new();
        dns.add_txt("Example.COM", "v=spf1 -all")
            .add_txt("_dmarc.example.com.", "v=DMARC1; p=reject")
            .add_txt("sel._domainkey.example.com", "v=DKIM1; k=ed25519; p=AAAA");
        let cache = DnsOverride(Some(dns));
        assert!(matches!(txt(&cache, "example.com."), Txt::Spf(_)));
        assert!(matches!(txt(&cache, "_dmarc.example.com."), Txt::Dmarc(_)));
        assert!(matches!(
            txt(&cache, "sel._domainkey.example.com."),
            Txt::DomainKey(_)
        ));
    }

    #[test]
    fn missing_txt_is_nxdomain_unless_the_name_has_other_records() {
        let dns = StaticDns::new();
        dns.add_a("host.example.com", Ipv4Addr::new(192, 0, 2, 1));
        let cache = DnsOverride(Some(dns.clone()));
        let code = |name| match txt(&cache, name) {
            Txt::Error(mail_auth::Error::Dns(DnsError::RecordNotFound(code))) => code,
            _ => panic!("expected not found"),
        };
        assert_eq!(code("nothing.example.com."), ResponseCode::NXDomain);
        assert_eq!(code("host.example.com."), ResponseCode::NoError);
        // Changes through any handle are visible to the cache at once.
        dns.add_txt("host.example.com", "v=spf1 a -all");
        assert!(matches!(txt(&cache, "host.example.com."), Txt::Spf(_)));
    }

    #[test]
    fn mx_sets_are_grouped_and_sorted_and_ptr_is_by_address() {
        let dns = StaticDns::new();
        dns.add_mx("example.com", 20, "b.example.com")
            .add_mx("example.com", 10, "a.example.com")
            .add_mx("example.com", 20, "c.example.com")
            .add_ptr("192.0.2.1".parse().unwrap(), "Host.Example.com");
        let cache = DnsOverride(Some(dns));
        let mx = ResolverCache::<Box<str>, RecordSet<MX>>::get(&cache, "example.com.").unwrap();
        assert_eq!(mx.rrset.len(), 2);
        assert_eq!(mx.rrset[0].preference, 10);
        assert_eq!(mx.rrset[1].exchanges.len(), 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let ptr = ResolverCache::<IpAddr, RecordSet<Box<str>>>::get(&cache, &ip).unwrap();
        assert_eq!(&*ptr.rrset[0], "host.example.com.");
    }

    #[test]
    fn no_table_means_every_lookup_misses() {
        let cache = DnsOverride(None);
        assert!(ResolverCache::<Box<str>, Txt>::get(&cache, "example.com.").is_none());
        assert!(ResolverCache::<Box<str>, RecordSet<Ipv4Addr>>::get(&cache, "x.").is_none());
    }

    #[test]
    fn empty_non_terminals_exist() {
        let dns = StaticDns::new();
        dns.add_txt("sel._domainkey.example.com", "v=DKIM1; p=");
        let records = dns.read();
        assert!(records.name_exists("_domainkey.example.com."));
        assert!(records.name_exists("example.com."));
        assert!(!records.name_exists("other.example.com."));
    }
}

//! Pure query -> response logic of the test DNS server: bytes in, bytes out, no sockets.
//!
//! Decoding is hickory-proto's (already built for the resolver), which bounds-checks every
//! read, so a malformed packet yields FORMERR or silence, never a panic.

use legate::mailauth::Records;
use mail_auth::hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use mail_auth::hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SRV, TLSA, TXT};
use mail_auth::hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Answers are never cached (TTL 0), so a test that edits the table sees the change at once.
const TTL: u32 = 0;
/// RFC 1035 §4.2.1: the UDP limit without EDNS.
const CLASSIC_UDP_LIMIT: usize = 512;
/// What we advertise and honour with EDNS (the DNS Flag Day 2020 figure).
const EDNS_UDP_LIMIT: u16 = 1232;
/// RFC 1035 §3.3: one character-string holds at most 255 bytes.
const TXT_CHUNK: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// Builds the reply to one query packet, or `None` when the packet deserves no reply
/// (shorter than an ID, or itself a response).
pub(crate) fn respond(records: &Records, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(_) => {
            let id = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let id = request.metadata.id;
    let mut response = Message::response(id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response.to_vec().ok();
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok();
    };
    response.add_query(query.clone());
    response.metadata.authoritative = true;
    response.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_UDP_LIMIT);
        response.set_edns(edns);
    }

    if query.query_class() != DNSClass::IN {
        response.metadata.response_code = ResponseCode::Refused;
    } else {
        let (answers, exists) = lookup(records, query.name(), query.query_type());
        if answers.is_empty() && !exists {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        response.add_answers(answers);
    }

    let limit = match (transport, &request.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => CLASSIC_UDP_LIMIT,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload().min(EDNS_UDP_LIMIT)).max(CLASSIC_UDP_LIMIT)
        }
    };
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    // Too big for this transport: TC=1 makes the resolver retry over TCP.
    response.truncate().to_vec().ok()
}

/// The answer records for `name`/`qtype`, and whether the name exists at all (so an empty
/// answer is NODATA rather than NXDOMAIN).
fn lookup(records: &Records, name: &Name, qtype: RecordType) -> (Vec<Record>, bool) {
    let mut key = name.to_ascii().to_ascii_lowercase();
    if !key.ends_with('.') {
        key.push('.');
    }
    let owner = name.clone();
    let record = |rdata| Record::from_rdata(owner.clone(), TTL, rdata);

    if let Some(ip) = reverse_ip(&key) {
        let names = records.ptr.get(&ip);
        let answers = match qtype {
            RecordType::PTR => names
                .into_iter()
                .flatten()
                .filter_map(|n| Name::from_ascii(n).ok())
                .map(|n| record(RData::PTR(PTR(n))))
                .collect(),
            _ => Vec::new(),
        };
        return (answers, names.is_some());
    }

    let answers = match qtype {
        RecordType::A => records
            .a
            .get(key.as_str())
            .into_iter()
            .flatten()
            .map(|ip| record(RData::A(A(*ip))))
            .collect(),
        RecordType::AAAA => records
            .aaaa
            .get(key.as_str())
            .into_iter()
            .flatten()
            .map(|ip| record(RData::AAAA(AAAA(*ip))))
            .collect(),
        RecordType::MX => records
            .mx
            .get(key.as_str())
            .into_iter()
            .flatten()
            .filter_map(|(pref, exchange)| {
                let exchange = Name::from_ascii(exchange).ok()?;
                Some(record(RData::MX(MX::new(*pref, exchange))))
            })
            .collect(),
        RecordType::TXT => records
            .txt
            .get(key.as_str())
            .into_iter()
            .flatten()
            .map(|value| record(RData::TXT(txt_strings(value))))
            .collect(),
        RecordType::SRV => records
            .srv
            .get(key.as_str())
            .into_iter()
            .flatten()
            .filter_map(|(priority, weight, port, target)| {
                let target = Name::from_ascii(target).ok()?;
                Some(record(RData::SRV(SRV::new(
                    *priority, *weight, *port, target,
                ))))
            })
            .collect(),
        RecordType::TLSA => records
            .tlsa
            .get(key.as_str())
            .into_iter()
            .flatten()
            .map(|(u, s, m, data)| {
                record(RData::TLSA(TLSA::new(
                    (*u).into(),
                    (*s).into(),
                    (*m).into(),
                    data.clone(),
                )))
            })
            .collect(),
        RecordType::CNAME => records
            .cname
            .get(key.as_str())
            .and_then(|target| Name::from_ascii(target).ok())
            .map(|target| record(RData::CNAME(CNAME(target))))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    (answers, records.name_exists(&key))
}

/// Splits a long value into 255-byte character-strings, as a zone file would.
fn txt_strings(value: &str) -> TXT {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return TXT::from_bytes(vec![b"".as_slice()]);
    }
    TXT::from_bytes(bytes.chunks(TXT_CHUNK).collect())
}

/// `4.3.2.1.in-addr.arpa.` -> 1.2.3.4, and the 32-nibble `ip6.arpa.` form -> an IPv6
/// address. Anything else (including partial reverse names) is not a PTR owner.
fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa.") {
        let mut octets = [0u8; 4];
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 4 {
            return None;
        }
        for (slot, label) in octets.iter_mut().zip(labels.iter().rev()) {
            *slot = label.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa.")?;
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() != 32 {
        return None;
    }
    let mut value: u128 = 0;
    for label in labels.iter().rev() {
        let [c] = label.as_bytes() else { return None };
        let nibble = char::from(*c).to_digit(16)?;
        value = (value << 4) | u128::from(nibble);
    }
    Some(IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use legate::mailauth::StaticDns;
    use mail_auth::hickory_resolver::proto::op::Query;

    fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            msg.set_edns(e);
        }
        msg.to_vec().unwrap()
    }

    fn ask(dns: &StaticDns, name: &str, qtype: RecordType, t: Transport) -> Message {
        let bytes = respond(&dns.read(), &query(name, qtype, false), t).unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    fn table() -> StaticDns {
        let dns = StaticDns::new();
        dns.add_a("host.example.com", Ipv4Addr::new(192, 0, 2, 1))
            .add_aaaa("host.example.com", "2001:db8::1".parse().unwrap())
            .add_mx("example.com", 10, "host.example.com")
            .add_txt("example.com", "v=spf1 -all")
            .add_txt("sel._domainkey.example.com", "k".repeat(600))
            .add_ptr("192.0.2.1".parse().unwrap(), "host.example.com")
            .add_ptr("2001:db8::1".parse().unwrap(), "host6.example.com");
        dns
    }

    #[test]
    fn answers_each_type_and_tells_nxdomain_from_nodata() {
        let dns = table();
        let r = ask(&dns, "HOST.example.com.", RecordType::A, Transport::Udp);
        assert_eq!(r.metadata.id, 0x4242);
        assert!(r.metadata.authoritative);
        assert!(matches!(r.answers[0].data, RData::A(A(ip)) if ip == Ipv4Addr::new(192, 0, 2, 1)));
        let r = ask(&dns, "host.example.com.", RecordType::AAAA, Transport::Udp);
        assert_eq!(r.answers.len(), 1);
        let r = ask(&dns, "example.com.", RecordType::MX, Transport::Udp);
        assert!(matches!(&r.answers[0].data, RData::MX(mx) if mx.preference == 10));
        // NODATA: the name exists (even as an empty non-terminal), the type does not.
        for name in ["host.example.com.", "_domainkey.example.com."] {
            let r = ask(&dns, name, RecordType::TXT, Transport::Udp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(r.answers.is_empty());
        }
        let r = ask(
            &dns,
            "missing.example.com.",
            RecordType::TXT,
            Transport::Udp,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn srv_and_cname() {
        let dns = StaticDns::new();
        dns.add_srv("_imap._tcp.example.com", 10, 1, 143, "mx.example.com")
            .add_srv("_pop3._tcp.example.com", 0, 0, 0, ".")
            .set_cname("autoconfig.example.com", "MX.example.com");
        let r = ask(
            &dns,
            "_imap._tcp.example.com.",
            RecordType::SRV,
            Transport::Udp,
        );
        assert!(matches!(&r.answers[0].data, RData::SRV(s)
            if s.port == 143 && s.priority == 10 && s.target.to_ascii() == "mx.example.com."));
        let r = ask(
            &dns,
            "_pop3._tcp.example.com.",
            RecordType::SRV,
            Transport::Udp,
        );
        assert!(matches!(&r.answers[0].data, RData::SRV(s) if s.target.is_root()));
        let r = ask(
            &dns,
            "autoconfig.example.com.",
            RecordType::CNAME,
            Transport::Udp,
        );
        assert!(
            matches!(&r.answers[0].data, RData::CNAME(c) if c.0.to_ascii() == "mx.example.com.")
        );
        // The owner exists, so another type is NODATA, not NXDOMAIN.
        let r = ask(
            &dns,
            "autoconfig.example.com.",
            RecordType::TXT,
            Transport::Udp,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        dns.remove("autoconfig.example.com");
        let r = ask(
            &dns,
            "autoconfig.example.com.",
            RecordType::CNAME,
            Transport::Udp,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn ptr_for_both_families() {
        let dns = table();
        let r = ask(
            &dns,
            "1.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            Transport::Udp,
        );
        assert!(
            matches!(&r.answers[0].data, RData::PTR(p) if p.0.to_ascii() == "host.example.com.")
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        let r = ask(&dns, v6, RecordType::PTR, Transport::Udp);
        assert_eq!(r.answers.len(), 1);
        let r = ask(
            &dns,
            "9.2.0.192.in-addr.arpa.",
            RecordType::PTR,
            Transport::Udp,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn long_txt_is_split_and_truncated_over_classic_udp() {
        let dns = table();
        let name = "sel._domainkey.example.com.";
        let r = ask(&dns, name, RecordType::TXT, Transport::Tcp);
        let RData::TXT(txt) = &r.answers[0].data else {
            panic!("not TXT")
        };
        let lens: Vec<usize> = txt.txt_data.iter().map(|s| s.len()).collect();
        assert_eq!(lens, [255, 255, 90]);
        let r = ask(&dns, name, RecordType::TXT, Transport::Udp);
        assert!(r.metadata.truncation && r.answers.is_empty());
        // With EDNS the 600-byte answer fits in one datagram.
        let bytes = respond(
            &dns.read(),
            &query(name, RecordType::TXT, true),
            Transport::Udp,
        );
        let r = Message::from_vec(&bytes.unwrap()).unwrap();
        assert!(!r.metadata.truncation && r.edns.is_some());
        assert_eq!(r.answers.len(), 1);
    }

    #[test]
    fn malformed_packets_never_panic() {
        let records = table().read().clone();
        assert!(respond(&records, &[], Transport::Udp).is_none());
        assert!(respond(&records, &[7], Transport::Udp).is_none());
        let r = respond(&records, &[0x12, 0x34, 0xff], Transport::Udp).unwrap();
        let r = Message::from_vec(&r).unwrap();
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
        // Every prefix and a byte-flipped copy of a valid query: a reply or silence, no panic.
        let good = query("example.com.", RecordType::TXT, true);
        for len in 0..good.len() {
            let _ = respond(&records, &good[..len], Transport::Udp);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = respond(&records, &bad, Transport::Tcp);
        }
        // A response packet gets no reply (no reflection loops).
        let mut resp = Message::response(1, OpCode::Query);
        resp.add_query(Query::query(Name::from_ascii("x.").unwrap(), RecordType::A));
        assert!(respond(&records, &resp.to_vec().unwrap(), Transport::Udp).is_none());
    }

    #[test]
    fn reverse_names_are_parsed_strictly() {
        assert_eq!(
            reverse_ip("4.3.2.1.in-addr.arpa."),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(reverse_ip("3.2.1.in-addr.arpa."), None);
        assert_eq!(reverse_ip("256.3.2.1.in-addr.arpa."), None);
        assert_eq!(reverse_ip("example.com."), None);
        assert_eq!(reverse_ip("x.ip6.arpa."), None);
    }
}

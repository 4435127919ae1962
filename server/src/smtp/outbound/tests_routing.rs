//! Routing over a loopback DNS server: MX order and fallback, implicit MX, null MX,
//! NXDOMAIN and an unreachable resolver.

use super::fake::{Fake, Script};
use super::tests::{delivered, env, no_dns, permanent, quick, temporary, MESSAGE};
use super::*;
use crate::mailauth::ResolverConfig;
use legate_testdns::{StaticDns, TestDns};
use std::net::Ipv4Addr;

/// MX routing over loopback needs the danger flag: the test's "remote" servers are ours.
async fn mx_transport(dns: &TestDns, port: u16) -> SmtpTransport {
    guarded_transport(dns, port, true).await
}

async fn guarded_transport(dns: &TestDns, port: u16, allow_private: bool) -> SmtpTransport {
    let mut s = quick(OutboundSettings::new(
        "mx.a.test",
        Vec::new(),
        ResolverConfig::test_server(dns.addr()),
    ));
    s.mx_port = port;
    s.danger_allow_private_destinations = allow_private;
    SmtpTransport::new(s).unwrap()
}

#[tokio::test]
async fn internal_mx_answers_are_refused_without_the_danger_flag() {
    let fake = Fake::start(Script::default()).await;
    let records = StaticDns::new();
    records
        .add_mx("b.test", 10, "mx1.b.test")
        .add_a("mx1.b.test", Ipv4Addr::LOCALHOST)
        .add_mx("c.test", 10, "mx1.c.test")
        .add_mx("c.test", 20, "mx2.c.test")
        .add_a("mx1.c.test", Ipv4Addr::new(10, 1, 2, 3))
        .add_aaaa("mx2.c.test", "fe80::1".parse().unwrap());
    let dns = TestDns::start(records).await.unwrap();
    let t = guarded_transport(&dns, fake.addr.port(), false).await;
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(permanent(&report.outcomes[0], "550 5.4.4"), "{report:?}");
    assert!(
        report.outcomes[0].reply().contains("loopback"),
        "{report:?}"
    );
    let mut e = env(&["x@c.test"]);
    e.domain = "c.test".into();
    let report = t.deliver(&e, MESSAGE).await;
    assert!(permanent(&report.outcomes[0], "550 5.4.4"), "{report:?}");
    assert!(report.outcomes[0].reply().contains("private"), "{report:?}");
    assert!(
        fake.log().data.is_empty(),
        "nothing reached the internal host"
    );

    // The same answers with the flag: delivered.
    let t = guarded_transport(&dns, fake.addr.port(), true).await;
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
}

#[tokio::test]
async fn mx_routing_in_preference_order() {
    let fake = Fake::start(Script::default()).await;
    let records = StaticDns::new();
    records
        .add_mx("b.test", 20, "mx2.b.test")
        .add_mx("b.test", 10, "mx1.b.test")
        // mx1 answers on 127.0.0.2, where nothing listens on the fake's port.
        .add_a("mx1.b.test", Ipv4Addr::new(127, 0, 0, 2))
        .add_a("mx2.b.test", Ipv4Addr::LOCALHOST);
    let dns = TestDns::start(records).await.unwrap();
    let t = mx_transport(&dns, fake.addr.port()).await;
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(
        report.remote_host.as_deref(),
        Some("mx2.b.test [127.0.0.1]")
    );
    assert_eq!(fake.log().data, MESSAGE);

    // One MX with two addresses: the dead one first, then the live one.
    dns.records()
        .remove("b.test")
        .add_mx("b.test", 10, "mx3.b.test")
        .add_a("mx3.b.test", Ipv4Addr::new(127, 0, 0, 3))
        .add_a("mx3.b.test", Ipv4Addr::LOCALHOST);
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert_eq!(
        report.remote_host.as_deref(),
        Some("mx3.b.test [127.0.0.1]")
    );
    assert!(delivered(&report.outcomes[0]), "{report:?}");

    // No MX: the domain's own address (implicit MX).
    dns.records().clear();
    dns.records().add_a("b.test", Ipv4Addr::LOCALHOST);
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(delivered(&report.outcomes[0]), "{report:?}");
    assert_eq!(report.remote_host.as_deref(), Some("b.test [127.0.0.1]"));
}

#[tokio::test]
async fn null_mx_and_missing_domains_are_permanent() {
    let records = StaticDns::new();
    records.add_mx("b.test", 0, ".");
    let dns = TestDns::start(records).await.unwrap();
    let t = mx_transport(&dns, 9).await;
    let report = t.deliver(&env(&["x@b.test", "y@b.test"]), MESSAGE).await;
    assert!(
        report.outcomes.iter().all(|o| permanent(o, "556 5.1.10")),
        "{report:?}"
    );

    let mut e = env(&["x@nowhere.test"]);
    e.domain = "nowhere.test".into();
    let report = t.deliver(&e, MESSAGE).await;
    assert!(permanent(&report.outcomes[0], "550 5.1.2"), "{report:?}");
}

#[tokio::test]
async fn dns_failure_is_temporary() {
    // A resolver pointed at a port where nothing answers: timeouts, not verdicts.
    let mut s = quick(OutboundSettings::new("mx.a.test", Vec::new(), no_dns()));
    s.mx_port = 9;
    let t = SmtpTransport::new(s).unwrap();
    let report = t.deliver(&env(&["x@b.test"]), MESSAGE).await;
    assert!(temporary(&report.outcomes[0], "451 4.4.3"), "{report:?}");
}

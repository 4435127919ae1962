//! Mail authentication over a real resolver: hickory -> loopback UDP/TCP -> the test DNS
//! server (`legate-testdns`) -> its table. The unit tests beside the code answer from the
//! table directly; these prove the wire path gives the same verdicts.

use super::testutil::{ed25519_key, message, rsa_key};
use super::{dkim_sign, AuthStatus, DkimSigning, MailAuth, PolicyAction, ResolverConfig};
use legate_testdns::{StaticDns, TestDns};
use std::net::{IpAddr, Ipv4Addr};

/// The full path: hickory resolver -> loopback UDP/TCP -> the test server -> the table.
#[tokio::test]
async fn spf_dkim_and_dmarc_pass_over_loopback_dns() {
    let (ed, ed_txt) = ed25519_key();
    let (rsa, rsa_txt) = rsa_key();
    let records = StaticDns::new();
    records
        .add_txt("example.com", "v=spf1 mx -all")
        .add_mx("example.com", 10, "mail.example.com")
        .add_a("mail.example.com", Ipv4Addr::new(127, 0, 0, 9))
        .add_txt("ed._domainkey.example.com", ed_txt)
        .add_txt("rsa._domainkey.example.com", rsa_txt)
        .add_txt("_dmarc.example.com", "v=DMARC1; p=reject");
    let server = TestDns::start(records).await.unwrap();
    let auth = MailAuth::new(&ResolverConfig::test_server(server.addr())).unwrap();

    let ip: IpAddr = "127.0.0.9".parse().unwrap();
    let spf = auth
        .check_spf_mail_from(ip, "mail.example.com", "mx.legate.test", "a@example.com")
        .await;
    assert_eq!(spf.result, AuthStatus::Pass);

    let signers = [
        DkimSigning::new("example.com", "ed", ed),
        DkimSigning::new("example.com", "rsa", rsa),
    ];
    let raw = message("example.com", "over the wire");
    let raw = dkim_sign(raw.as_bytes(), &signers).unwrap() + &raw;
    let v = auth
        .verify_message(
            raw.as_bytes(),
            ip,
            "mail.example.com",
            "a@example.com",
            &spf,
        )
        .await;
    assert_eq!(v.dkim.len(), 2);
    assert!(
        v.dkim.iter().all(|d| d.result == AuthStatus::Pass),
        "{:?}",
        v.dkim
    );
    assert_eq!(v.dmarc.result, AuthStatus::Pass);
    assert_eq!(v.action(), PolicyAction::Accept);

    // NXDOMAIN over the wire is SPF none, not an error.
    let r = auth
        .check_spf_mail_from(ip, "h", "mx", "a@nowhere.example")
        .await;
    assert_eq!(r.result, AuthStatus::None);
}

#[tokio::test]
async fn edits_are_live_and_big_answers_fall_back_to_tcp() {
    let records = StaticDns::new();
    records.add_txt("example.com", "v=spf1 -all");
    let server = TestDns::start(records).await.unwrap();
    let auth = MailAuth::new(&ResolverConfig::test_server(server.addr())).unwrap();
    let ip: IpAddr = "127.0.0.9".parse().unwrap();
    let check = || auth.check_spf_mail_from(ip, "h", "mx", "a@example.com");
    assert_eq!(check().await.result, AuthStatus::Fail);

    server
        .records()
        .remove("example.com")
        .add_txt("example.com", "v=spf1 ip4:127.0.0.0/8 -all");
    assert_eq!(check().await.result, AuthStatus::Pass);

    // 3000 bytes exceed the 1232-byte EDNS limit: answered with TC=1, then over TCP.
    let big = "x".repeat(3000);
    server.records().add_txt("big.example.com", big.clone());
    let got = auth
        .authenticator
        .txt_raw_lookup("big.example.com.")
        .await
        .unwrap();
    assert_eq!(got, big.into_bytes());
}

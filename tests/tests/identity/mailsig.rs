//! Agent-signed mail (issue 25 §5): two legate processes for two domains on loopback; mail
//! from an agent of one is recognised at the other with its delegation chain, and a forged
//! or replayed Agent-Signature reads `verified: false`.

use super::*;
use ed25519_dalek::{Signer, SigningKey};
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::SmtpClient;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server for `domain` whose DIDs live at `http://localhost:<http port>` (so another
/// server resolves them over loopback), SMTP on `smtp`, and static routes to its peers.
async fn server(domain: &str, smtp: u16, dns: &TestDns, routes: &[(&str, u16)]) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    let http = free_port();
    cfg.server.domain = domain.into();
    cfg.server.hostname = format!("mx.{domain}");
    cfg.server.public_url = format!("http://localhost:{http}");
    cfg.listen.http = format!("127.0.0.1:{http}");
    cfg.listen.smtp = format!("127.0.0.1:{smtp}");
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.identity.danger_allow_http_did_resolution = true;
    cfg.outbound.retry_secs = vec![1];
    cfg.outbound.scan_interval_secs = 1;
    for (d, port) in routes {
        cfg.outbound.route.push(legate::config::RouteConfig {
            domain: d.to_string(),
            next_hop: format!("127.0.0.1:{port}"),
            require_tls: false,
        });
    }
    TestServer::start_with(dir, cfg).await
}

fn publish(dns: &StaticDns, s: &TestServer, domain: &str) {
    dns.add_txt(domain, "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt(&format!("_dmarc.{domain}"), "v=DMARC1; p=reject");
    for k in s.services().vault.dkim_records(domain).unwrap() {
        dns.add_txt(&format!("{}._domainkey.{domain}", k.selector), k.txt());
    }
}

async fn inbox(s: &TestServer, key: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (_, v) = s
            .call("GET", "/v1/messages?folder=INBOX", Some(key), None)
            .await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("INBOX never reached {n} messages");
}

/// The unfolded value of header `name` in `raw`.
fn header(raw: &str, name: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for l in raw.split("\r\n") {
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            if on {
                out.push_str(l);
            }
            continue;
        }
        on = l
            .to_ascii_lowercase()
            .starts_with(&format!("{}:", name.to_ascii_lowercase()));
        if on {
            out.push_str(&l[name.len() + 1..]);
        }
    }
    out
}

#[tokio::test]
async fn agents_of_two_installations_recognise_each_other() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = server("a.test", pa, &dns, &[("b.test", pb)]).await;
    let b = server("b.test", pb, &dns, &[("a.test", pa)]).await;
    publish(dns.records(), &a, "a.test");
    publish(dns.records(), &b, "b.test");
    let (alice, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = b.agent("bob", &["mail:send", "mail:read"]).await;
    let did = alice["did"].as_str().unwrap().to_string();
    assert!(did.starts_with("did:web:localhost%3A"), "{did}");

    let (st, sent) = a
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ka),
            Some(json!({"to": "bob@b.test", "subject": "Hello B", "text": "from an agent of A"})),
        )
        .await;
    assert_eq!(st, 202, "{sent}");
    let got = inbox(&b, &kb, 1).await;
    let trust = &got[0]["trust"]["agent"];
    assert_eq!(trust["verified"], true, "{}", got[0]);
    assert_eq!(trust["did"], did);
    // Past the operator's walls a human is named by id, never by email.
    assert_eq!(alice["chain"][0], "human:admin@a.test");
    assert!(
        trust["chain"][0].as_str().unwrap().starts_with("human:hu_"),
        "{trust}"
    );
    assert_eq!(
        trust["chain"].as_array().unwrap()[1..],
        alice["chain"].as_array().unwrap()[1..]
    );
    assert!(!trust.to_string().contains("admin@a.test"), "{trust}");

    // DKIM covers the header; the Sent copy at A carries it too
    let id = got[0]["id"].as_str().unwrap();
    let (_, _, raw) = b.get_bytes(&format!("/v1/messages/{id}/raw"), &kb).await;
    let raw = String::from_utf8(raw).unwrap();
    let sig_header = header(&raw, "Agent-Signature");
    assert!(sig_header.contains(&format!("did={did};")), "{sig_header}");
    let dkim = header(&raw, "DKIM-Signature").to_ascii_lowercase();
    assert!(
        dkim.contains("agent-signature"),
        "DKIM h= lists Agent-Signature: {dkim}"
    );
    assert!(raw.split("\r\n").all(|l| l.len() <= 998));

    // the same header on another message (replay), and one signed with another key (forgery),
    // from a domain that authenticates (SPF-aligned DMARC pass): only then is the DID resolved
    dns.records().add_txt("c.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.records().add_txt("_dmarc.c.test", "v=DMARC1; p=none");
    let (mut c, _) = SmtpClient::connect(b.smtp_addr()).await;
    c.cmd("EHLO c.test").await;
    let date = "Sun, 6 Dec 2026 12:00:00 +0000";
    let replayed = format!(
        "Agent-Signature:{sig_header}\r\nFrom: mallory@c.test\r\nTo: bob@b.test\r\nDate: {date}\r\nMessage-ID: <replay@c.test>\r\nSubject: replay\r\n\r\npay me\r\n"
    );
    let r = c
        .send_mail("mallory@c.test", &["bob@b.test"], &replayed)
        .await;
    assert!(r.starts_with("250"), "{r}");
    let rogue = SigningKey::from_bytes(&[9; 32]);
    let head = BASE64URL_NOPAD.encode(
        json!({"alg": "EdDSA", "kid": format!("{did}#key-1")})
            .to_string()
            .as_bytes(),
    );
    let claims = BASE64URL_NOPAD.encode(
        json!({"iss": did, "sub": did, "mid": "forged@c.test",
        "from": "alice@a.test", "date": date, "chain": ["human:ceo@a.test"], "iat": 1})
        .to_string()
        .as_bytes(),
    );
    let sig = BASE64URL_NOPAD.encode(&rogue.sign(format!("{head}.{claims}").as_bytes()).to_bytes());
    let forged = format!(
        "Agent-Signature: v=1; did={did}; jws={head}.{claims}.{sig}\r\nFrom: alice@a.test\r\nTo: bob@b.test\r\nDate: {date}\r\nMessage-ID: <forged@c.test>\r\nSubject: forged\r\n\r\npay me\r\n"
    );
    // a.test publishes DMARC p=reject: a forged From of a.test is refused outright, so the
    // forgery rides under the attacker's own domain's From with alice's DID
    let r = c
        .send_mail(
            "mallory@c.test",
            &["bob@b.test"],
            &forged.replace("From: alice@a.test", "From: mallory@c.test"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let all = inbox(&b, &kb, 3).await;
    let by_subject =
        |s: &str| all.iter().find(|m| m["subject"] == s).unwrap()["trust"]["agent"].clone();
    let v = by_subject("replay");
    assert_eq!(
        (v["verified"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("bad_signature")),
        "{v}"
    );
    assert_eq!(
        v["did"], did,
        "the claimed DID is shown, flagged unverified"
    );
    let v = by_subject("forged");
    assert_eq!(
        (v["verified"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("bad_signature")),
        "{v}"
    );
    assert!(by_subject("Hello B")["verified"].as_bool().unwrap());

    // from a domain that does not authenticate, the DID's host is not even asked
    let r = c
        .send_mail(
            "eve@d.test",
            &["bob@b.test"],
            &replayed
                .replace("mallory@c.test", "eve@d.test")
                .replace("replay", "unauthenticated"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let all = inbox(&b, &kb, 4).await;
    let v = all
        .iter()
        .find(|m| m["subject"] == "unauthenticated")
        .unwrap()["trust"]["agent"]
        .clone();
    assert_eq!(
        (v["verified"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("from_not_authenticated")),
        "{v}"
    );

    // revoked at A: the next message's signature no longer verifies at B
    let (st, _) = a
        .call(
            "DELETE",
            &format!("/v1/agents/{}", alice["id"].as_str().unwrap()),
            Some(&a.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let r = c
        .send_mail(
            "mallory@c.test",
            &["bob@b.test"],
            &replayed.replace("replay", "after-revoke"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let all = inbox(&b, &kb, 5).await;
    let v = all.iter().find(|m| m["subject"] == "after-revoke").unwrap()["trust"]["agent"].clone();
    assert_eq!(
        (v["verified"].as_bool(), v["reason"].as_str()),
        (Some(false), Some("revoked")),
        "{v}"
    );
    // plain mail has no trust.agent
    let (_, kb2) = b.agent("carol", &["mail:read"]).await;
    let r = c.send_mail("mallory@c.test", &["carol@b.test"], &format!("From: mallory@c.test\r\nDate: {date}\r\nMessage-ID: <p@c.test>\r\nSubject: plain\r\n\r\nhi\r\n")).await;
    assert!(r.starts_with("250"), "{r}");
    let plain = inbox(&b, &kb2, 1).await;
    assert!(plain[0]["trust"].get("agent").is_none(), "{}", plain[0]);
    a.stop().await;
    b.stop().await;
}

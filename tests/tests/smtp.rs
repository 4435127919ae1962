//! Inbound SMTP suite: real sessions over TCP against a server whose DNS is a loopback server.

use legate::mailauth::StaticDns;
use legate_tests::tls_connector;
use legate_tests::{SmtpClient, TestServer};

const MSG: &str = "From: Alice <alice@sender.test>\r\nTo: ops@agents.test\r\nSubject: Your code\r\nMessage-ID: <m1@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nYour verification code is 482913.\r\n.leading dot line\r\n";

fn dns() -> StaticDns {
    let d = StaticDns::new();
    d.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    d.add_txt("spoof.test", "v=spf1 ip4:192.0.2.1 -all");
    d.add_txt("_dmarc.spoof.test", "v=DMARC1; p=reject");
    d.add_txt("quar.test", "v=spf1 ip4:192.0.2.1 -all");
    d.add_txt("_dmarc.quar.test", "v=DMARC1; p=quarantine");
    d
}

#[tokio::test]
async fn a_message_is_stored_with_auth_results() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, greet) = SmtpClient::connect(s.smtp_addr()).await;
    assert!(greet.starts_with("220 mx.agents.test"), "{greet}");
    let ehlo = c.cmd("EHLO client.sender.test").await;
    for kw in [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(kw), "{kw} missing: {ehlo}");
    }
    let r = c
        .send_mail("alice@sender.test", &["ops+signup@agents.test"], MSG)
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert!(c.cmd("QUIT").await.starts_with("221"));

    let (st, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    assert_eq!(st, 200, "{list}");
    let item = &list["items"][0];
    let id = item["id"].as_str().unwrap();
    let (_, m) = s
        .call("GET", &format!("/v1/messages/{id}"), Some(&key), None)
        .await;
    assert_eq!(m["subject"], "Your code");
    assert_eq!(m["folder"], "INBOX");
    assert!(
        m["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "signup"),
        "{m}"
    );
    assert_eq!(m["auth"]["spf"]["result"], "pass", "{}", m["auth"]);
    assert_eq!(
        m["codes"][0]["code"], "482913",
        "the verification code is extracted: {m}"
    );
    let raw = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
    let raw = String::from_utf8_lossy(&raw.2);
    assert!(
        raw.starts_with("Received: from client.sender.test (127.0.0.1)"),
        "{raw}"
    );
    assert!(
        raw.contains("Authentication-Results: mx.agents.test"),
        "{raw}"
    );
    assert!(raw.contains("spf=pass"));
    assert!(
        raw.contains("\r\n.leading dot line\r\n"),
        "dot-unstuffed: {raw}"
    );
    s.stop().await;
}

#[tokio::test]
async fn pipelining_and_bdat() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    // MAIL, two RCPTs (one unknown) and DATA in one write
    c.write(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<ops@agents.test>\r\nRCPT TO:<nobody@agents.test>\r\nDATA\r\n").await;
    assert!(c.read_reply().await.starts_with("250 2.1.0"));
    assert!(c.read_reply().await.starts_with("250 2.1.5"));
    assert!(c.read_reply().await.starts_with("550 5.1.1"));
    assert!(c.read_reply().await.starts_with("354"));
    c.write(format!("{MSG}.\r\n").as_bytes()).await;
    assert!(c.read_reply().await.starts_with("250 2.0.0"));
    // BDAT in two chunks
    assert!(c
        .cmd("MAIL FROM:<alice@sender.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
    let m = MSG.replace("Your code", "Chunked");
    let (a, b) = m.as_bytes().split_at(40);
    c.write(format!("BDAT {}\r\n", a.len()).as_bytes()).await;
    c.write(a).await;
    assert!(c.read_reply().await.starts_with("250"));
    c.write(format!("BDAT {} LAST\r\n", b.len()).as_bytes())
        .await;
    c.write(b).await;
    let r = c.read_reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    let subjects: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects, vec!["Chunked", "Your code"]);
    s.stop().await;
}

#[tokio::test]
async fn refusals_have_the_right_codes() {
    let s = TestServer::start_smtp(dns()).await;
    let (a, _) = s.agent("ops", &["mail:read"]).await;
    s.agent("gone", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    assert!(
        c.cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("503 5.5.1"),
        "MAIL before EHLO"
    );
    c.cmd("EHLO c.sender.test").await;
    assert!(c
        .cmd("RCPT TO:<ops@agents.test>")
        .await
        .starts_with("503 5.5.1"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1"));
    assert!(c
        .cmd("MAIL FROM:<a@sender.test> SIZE=999999999999")
        .await
        .starts_with("552 5.3.4"));
    assert!(c.cmd("MAIL FROM:<a@sender.test>").await.starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("503 5.5.1"),
        "nested MAIL"
    );
    for relay in [
        "x@b.test",
        "x%b.test@agents.test",
        "@agents.test:x@b.test",
        "b.test!x@agents.test",
        "\"x@b.test\"@agents.test",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{relay}>")).await;
        assert!(
            r.starts_with("554 5.7.1") || r.starts_with("501"),
            "{relay}: {r}"
        );
    }
    assert!(c
        .cmd("RCPT TO:<nobody@agents.test>")
        .await
        .starts_with("550 5.1.1"));
    // revoked agent
    let (_, g) = s
        .call(
            "GET",
            "/v1/agents/gone@agents.test",
            Some(&s.admin_token),
            None,
        )
        .await;
    s.call(
        "DELETE",
        &format!("/v1/agents/{}", g["id"].as_str().unwrap()),
        Some(&s.admin_token),
        None,
    )
    .await;
    assert!(c
        .cmd("RCPT TO:<gone@agents.test>")
        .await
        .starts_with("550 5.1.1"));
    assert!(
        c.cmd("DATA").await.starts_with("554 5.5.1"),
        "no valid recipients"
    );
    assert!(c.cmd("VRFY ops").await.starts_with("252"));
    assert!(c.cmd("XYZZY").await.starts_with("500 5.5.1"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert!(c.cmd("QUIT").await.starts_with("221"));
    // nothing was queued or stored for the relay attempts
    assert_eq!(s.services().store.len(legate::store::Tree::Queue), 0);
    // too many errors end the session
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    let mut last = String::new();
    for _ in 0..25 {
        last = c.cmd("XYZZY").await;
        if !last.starts_with("500") {
            break;
        }
    }
    assert!(last.starts_with("421 4.7.0"), "{last}");
    let _ = a;
    s.stop().await;
}

#[tokio::test]
async fn dmarc_reject_and_quarantine() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.spoof.test").await;
    let spoof = MSG.replace("alice@sender.test", "ceo@spoof.test");
    let r = c
        .send_mail("ceo@spoof.test", &["ops@agents.test"], &spoof)
        .await;
    assert!(r.starts_with("550 5.7.1"), "DMARC reject: {r}");
    let quar = MSG.replace("alice@sender.test", "x@quar.test");
    let r = c
        .send_mail("x@quar.test", &["ops@agents.test"], &quar)
        .await;
    assert!(r.starts_with("250"), "{r}");
    let (_, list) = s
        .call("GET", "/v1/messages?folder=Junk", Some(&key), None)
        .await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "quarantined to Junk: {list}"
    );
    let (_, inbox) = s
        .call("GET", "/v1/messages?folder=INBOX", Some(&key), None)
        .await;
    assert!(inbox["items"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn oversize_data_is_refused_after_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let dns_server = std::sync::Arc::new(legate_testdns::TestDns::start(dns()).await.unwrap());
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    cfg.smtp.max_message_size = 10_000;
    cfg.smtp.max_recipients = 2;
    let s = TestServer::start_with(dir, cfg).await;
    s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    c.cmd("MAIL FROM:<a@sender.test>").await;
    c.cmd("RCPT TO:<ops@agents.test>").await;
    c.cmd("RCPT TO:<ops+a@agents.test>").await;
    assert!(c
        .cmd("RCPT TO:<ops+b@agents.test>")
        .await
        .starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let big = format!(
        "Subject: big\r\n\r\n{}\r\n.\r\n",
        "x".repeat(998)
            .repeat(20)
            .chars()
            .collect::<Vec<_>>()
            .chunks(998)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("\r\n")
    );
    c.write(big.as_bytes()).await;
    let r = c.read_reply().await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    // the session is still usable
    assert!(c.cmd("NOOP").await.starts_with("250"));
    s.stop().await;
}

#[tokio::test]
async fn accepted_mail_survives_a_restart() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    for i in 0..5 {
        let r = c
            .send_mail(
                "alice@sender.test",
                &["ops@agents.test"],
                &MSG.replace("Your code", &format!("n{i}")),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    let s = s.restart().await;
    let (_, list) = s
        .call("GET", "/v1/messages?limit=50", Some(&key), None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
    s.stop().await;
}

async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap() == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

#[tokio::test]
async fn starttls_is_a_clean_restart_of_the_session() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let tcp = tokio::net::TcpStream::connect(s.smtp_addr()).await.unwrap();
    let mut r = BufReader::new(tcp);
    assert!(read_reply(&mut r).await.starts_with("220"));
    r.get_mut()
        .write_all(b"EHLO c.sender.test\r\n")
        .await
        .unwrap();
    assert!(read_reply(&mut r).await.contains("STARTTLS"));
    // a command pipelined after STARTTLS must be dropped (RFC 3207 §5)
    r.get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        .await
        .unwrap();
    assert!(read_reply(&mut r).await.starts_with("220 2.0.0"));
    let tcp = r.into_inner();
    let name = rustls::pki_types::ServerName::try_from("mx.agents.test").unwrap();
    let tls = tls_connector(&s.data_dir())
        .connect(name, tcp)
        .await
        .expect("handshake");
    let mut r = BufReader::new(tls);
    r.get_mut()
        .write_all(b"EHLO c.sender.test\r\n")
        .await
        .unwrap();
    let ehlo = read_reply(&mut r).await;
    assert!(
        ehlo.starts_with("250") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    r.get_mut()
        .write_all(b"MAIL FROM:<alice@sender.test>\r\n")
        .await
        .unwrap();
    let m = read_reply(&mut r).await;
    assert!(
        m.starts_with("250 2.1.0"),
        "the injected MAIL must not have opened a transaction: {m}"
    );
    r.get_mut()
        .write_all(b"RCPT TO:<ops@agents.test>\r\nDATA\r\n")
        .await
        .unwrap();
    assert!(read_reply(&mut r).await.starts_with("250"));
    assert!(read_reply(&mut r).await.starts_with("354"));
    r.get_mut()
        .write_all(format!("{MSG}.\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_reply(&mut r).await.starts_with("250 2.0.0"));
    r.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    assert!(
        read_reply(&mut r).await.starts_with("503"),
        "no second STARTTLS"
    );
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let raw = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
    assert!(String::from_utf8_lossy(&raw.2).contains("with ESMTPS"));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_says_421() {
    let s = TestServer::start_smtp(dns()).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    let stopper = tokio::spawn(async move { s.stop().await });
    let r = c.read_reply().await;
    assert!(r.starts_with("421 4.3.0"), "{r}");
    stopper.await.unwrap();
}

fn signed_message(s: &TestServer, domain: &str, body: &str) -> String {
    let vault = &s.services().vault;
    let records = vault.ensure_dkim(domain, "t").unwrap();
    let dns = s.dns.as_ref().unwrap().records();
    for r in &records {
        dns.add_txt(&format!("{}._domainkey.{domain}", r.selector), r.txt());
    }
    let msg = format!(
        "From: Bot <bot@{domain}>\r\nTo: ops@agents.test\r\nSubject: signed\r\nMessage-ID: <s1@{domain}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    );
    let sig =
        legate::mailauth::dkim_sign(msg.as_bytes(), &vault.dkim_signers(domain).unwrap()).unwrap();
    format!("{sig}{msg}")
}

#[tokio::test]
async fn dkim_signed_mail_passes_and_tampered_mail_fails() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    {
        let d = s.dns.as_ref().unwrap().records();
        // SPF does not authorise loopback: DMARC can only pass through aligned DKIM.
        d.add_txt("signer.test", "v=spf1 ip4:192.0.2.9 -all");
        d.add_txt("_dmarc.signer.test", "v=DMARC1; p=reject");
    }
    let good = signed_message(&s, "signer.test", "Genuine content.");
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.signer.test").await;
    let r = c
        .send_mail("bot@signer.test", &["ops@agents.test"], good.trim_end())
        .await;
    assert!(r.starts_with("250"), "signed mail accepted: {r}");
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (_, m) = s
        .call("GET", &format!("/v1/messages/{id}"), Some(&key), None)
        .await;
    let dkim = m["auth"]["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 2, "both signatures checked: {}", m["auth"]);
    assert!(dkim.iter().all(|d| d["result"] == "pass"), "{}", m["auth"]);
    assert_eq!(m["auth"]["spf"]["result"], "fail");
    assert_eq!(m["auth"]["dmarc"]["result"], "pass");

    let tampered = good.replace("Genuine content.", "Forged content!");
    let r = c
        .send_mail("bot@signer.test", &["ops@agents.test"], tampered.trim_end())
        .await;
    assert!(r.starts_with("550 5.7.1"), "tampered + p=reject: {r}");
    s.stop().await;
}

#[tokio::test]
async fn spf_results_are_recorded() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    {
        let d = s.dns.as_ref().unwrap().records();
        d.add_txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all");
        d.add_txt("hard.test", "v=spf1 ip4:192.0.2.1 -all");
    }
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.example.test").await;
    for (from, want) in [
        ("a@sender.test", "pass"),
        ("a@soft.test", "softfail"),
        ("a@hard.test", "fail"),
        ("a@nospf.test", "none"),
    ] {
        let msg = MSG
            .replace("alice@sender.test", from)
            .replace("Your code", want);
        let r = c.send_mail(from, &["ops@agents.test"], &msg).await;
        assert!(r.starts_with("250"), "{from}: {r}");
    }
    let (_, list) = s
        .call("GET", "/v1/messages?limit=10", Some(&key), None)
        .await;
    for item in list["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let (_, m) = s
            .call("GET", &format!("/v1/messages/{id}"), Some(&key), None)
            .await;
        assert_eq!(m["auth"]["spf"]["result"], m["subject"], "{}", m["auth"]);
    }
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("legate_mailauth_results_total{method=\"spf\",result=\"softfail\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("legate_smtp_messages_total{outcome=\"accepted\",reason=\"\"} 4"));
    s.stop().await;
}

#[path = "smtp/limits.rs"]
mod limits;

#[path = "smtp/corpus.rs"]
mod corpus;

#[path = "smtp/hardening.rs"]
mod hardening;

#[path = "smtp/submission.rs"]
mod submission;

#[path = "smtp/dashboard.rs"]
mod dashboard;

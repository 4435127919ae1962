//! Two servers (a.test and b.test) on loopback with static routes and seeded DNS, and a
//! scriptable SMTP sink standing in for remote servers that refuse or defer.

use super::wait_for;
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::{test_config, TestServer};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server for `domain` whose SMTP listens on `smtp_port` and routes `routes` statically.
pub(crate) async fn server(
    domain: &str,
    smtp_port: u16,
    dns: &TestDns,
    routes: &[(&str, u16)],
) -> TestServer {
    server_with(domain, smtp_port, dns, routes, |_| {}).await
}

/// [`server`] with `tweak` applied to its config last.
pub(crate) async fn server_with(
    domain: &str,
    smtp_port: u16,
    dns: &TestDns,
    routes: &[(&str, u16)],
    tweak: impl FnOnce(&mut legate::config::Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.domain = domain.into();
    cfg.server.hostname = format!("mx.{domain}");
    cfg.listen.smtp = format!("127.0.0.1:{smtp_port}");
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.outbound.retry_secs = vec![1];
    cfg.outbound.scan_interval_secs = 1;
    cfg.outbound.timeout_secs = 10;
    for (d, port) in routes {
        cfg.outbound.route.push(legate::config::RouteConfig {
            domain: d.to_string(),
            next_hop: format!("127.0.0.1:{port}"),
            require_tls: false,
        });
    }
    tweak(&mut cfg);
    TestServer::start_with(dir, cfg).await
}

/// Publishes SPF, DMARC p=reject and every DKIM key of `s`'s domain.
pub(crate) fn publish(dns: &StaticDns, s: &TestServer, domain: &str) {
    dns.add_txt(domain, "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt(&format!("_dmarc.{domain}"), "v=DMARC1; p=reject");
    for k in s.services().vault.dkim_records(domain).unwrap() {
        dns.add_txt(&format!("{}._domainkey.{domain}", k.selector), k.txt());
    }
}

#[tokio::test]
async fn mail_from_a_reaches_b_authenticated_and_a_reply_threads() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = server("a.test", pa, &dns, &[("b.test", pb)]).await;
    let b = server("b.test", pb, &dns, &[("a.test", pa)]).await;
    publish(dns.records(), &a, "a.test");
    publish(dns.records(), &b, "b.test");
    let (_, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = b.agent("bob", &["mail:send", "mail:read"]).await;
    let (st, sent) = a
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ka),
            Some(json!({"to": "bob@b.test", "subject": "Across", "text": "Hello from A"})),
        )
        .await;
    assert_eq!(st, 202, "{sent}");
    let got = wait_for(&b, &kb, "INBOX", 1).await;
    let id = got[0]["id"].as_str().unwrap();
    let (_, _, raw) = b.get_bytes(&format!("/v1/messages/{id}/raw"), &kb).await;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let ar: String = raw
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results:"))
        .take_while(|l| l.starts_with("Authentication-Results:") || l.starts_with([' ', '\t']))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert_eq!(
        ar.matches("dkim=pass").count(),
        2,
        "both signatures pass: {ar}"
    );
    assert!(
        ar.contains("ed25519") || raw.contains("a=ed25519-sha256"),
        "{ar}"
    );
    // A shows the recipient delivered.
    let sid = sent["id"].as_str().unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, v) = a
            .call("GET", &format!("/v1/messages/{sid}"), Some(&ka), None)
            .await;
        status = v["delivery"][0].clone();
        if status["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "delivered", "{status}");
    assert!(
        status["last_reply"].as_str().unwrap().starts_with("250"),
        "{status}"
    );
    // B replies; the answer lands in A's thread.
    let (st, r) = b
        .call(
            "POST",
            &format!("/v1/messages/{id}/reply"),
            Some(&kb),
            Some(json!({"text": "Got it"})),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    let back = wait_for(&a, &ka, "INBOX", 1).await;
    assert_eq!(back[0]["subject"], "Re: Across");
    let (_, orig) = a
        .call("GET", &format!("/v1/messages/{sid}"), Some(&ka), None)
        .await;
    assert_eq!(back[0]["thread_id"], orig["thread_id"]);
}

/// How the sink answers RCPT: a list of replies used in turn (the last repeats).
pub(crate) struct Sink {
    pub(crate) port: u16,
    pub(crate) got: Arc<Mutex<Vec<String>>>,
    pub(crate) attempts: Arc<Mutex<usize>>,
    /// The reverse-path of every MAIL command, in order.
    pub(crate) froms: Arc<Mutex<Vec<String>>>,
}

pub(crate) async fn sink(rcpt_replies: Vec<&'static str>) -> Sink {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0usize));
    let froms = Arc::new(Mutex::new(Vec::new()));
    let (g, at, fr) = (got.clone(), attempts.clone(), froms.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (g, at, fr, replies) = (g.clone(), at.clone(), fr.clone(), rcpt_replies.clone());
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                let _ = s.get_mut().write_all(b"220 sink ESMTP\r\n").await;
                let mut data = false;
                let mut body = String::new();
                loop {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if data {
                        if line == ".\r\n" {
                            data = false;
                            g.lock().unwrap().push(std::mem::take(&mut body));
                            let _ = s.get_mut().write_all(b"250 2.0.0 queued\r\n").await;
                        } else {
                            body.push_str(&line);
                        }
                        continue;
                    }
                    let up = line.to_ascii_uppercase();
                    if up.starts_with("MAIL FROM:") {
                        let path = line[10..].trim().trim_start_matches('<');
                        let path = path.split('>').next().unwrap_or("").to_string();
                        fr.lock().unwrap().push(path);
                    }
                    let reply = if up.starts_with("EHLO") {
                        "250-sink\r\n250 8BITMIME\r\n".to_string()
                    } else if up.starts_with("RCPT") {
                        let n = {
                            let mut a = at.lock().unwrap();
                            *a += 1;
                            *a
                        };
                        format!("{}\r\n", replies[(n - 1).min(replies.len() - 1)])
                    } else if up.starts_with("DATA") {
                        data = true;
                        "354 go ahead\r\n".into()
                    } else if up.starts_with("QUIT") {
                        let _ = s.get_mut().write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 2.0.0 ok\r\n".into()
                    };
                    let _ = s.get_mut().write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    Sink {
        port,
        got,
        attempts,
        froms,
    }
}

/// Sends one message to `u@x.test` as the agent holding `key`; returns its id.
async fn send_to_x(s: &TestServer, key: &str, subject: &str) -> String {
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(key),
            Some(json!({"to": "u@x.test", "subject": subject, "text": "x"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

pub(crate) async fn delivery_of(s: &TestServer, key: &str, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, v) = s
            .call("GET", &format!("/v1/messages/{id}"), Some(key), None)
            .await;
        last = v["delivery"][0].clone();
        if last["status"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery never became {want}: {last}");
}

#[tokio::test]
async fn a_deferring_receiver_gets_the_message_after_a_retry() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let sk = sink(vec!["451 4.3.0 try again later", "250 2.1.5 ok"]).await;
    let a = server("a.test", free_port(), &dns, &[("x.test", sk.port)]).await;
    let (_, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let id = send_to_x(&a, &ka, "Retry me").await;
    let d = delivery_of(&a, &ka, &id, "delivered").await;
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(*sk.attempts.lock().unwrap(), 2);
    let got = sk.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].matches("DKIM-Signature:").count(), 2, "{}", got[0]);
}

#[tokio::test]
async fn a_permanent_refusal_gives_a_dsn_with_the_original_headers() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let sk = sink(vec!["550 5.1.1 <u@x.test>: no such user"]).await;
    let a = server("a.test", free_port(), &dns, &[("x.test", sk.port)]).await;
    let (_, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let id = send_to_x(&a, &ka, "Doomed").await;
    let d = delivery_of(&a, &ka, &id, "permanent_failure").await;
    assert!(d["last_reply"].as_str().unwrap().contains("5.1.1"), "{d}");
    let inbox = wait_for(&a, &ka, "INBOX", 1).await;
    assert_eq!(inbox[0]["subject"], "Undelivered Mail Returned to Sender");
    let did = inbox[0]["id"].as_str().unwrap();
    let (_, _, raw) = a.get_bytes(&format!("/v1/messages/{did}/raw"), &ka).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.contains("multipart/report; report-type=delivery-status"),
        "{raw}"
    );
    assert!(raw.contains("Final-Recipient: rfc822; u@x.test"));
    assert!(raw.contains("Status: 5.1.1"));
    assert!(raw.contains("text/rfc822-headers"));
    assert!(
        raw.contains("Subject: Doomed"),
        "original headers are returned"
    );
}

#[tokio::test]
async fn a_restart_between_accept_and_delivery_still_delivers() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    // Nothing listens on the route's port yet: the first attempt fails temporarily.
    let port = free_port();
    let a = server("a.test", free_port(), &dns, &[("x.test", port)]).await;
    let (_, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let id = send_to_x(&a, &ka, "Survive").await;
    delivery_of(&a, &ka, &id, "temporary_failure").await;
    let a = a.restart().await;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    drop(l);
    let sk = sink_on(port, vec!["250 2.1.5 ok"]).await;
    let d = delivery_of(&a, &ka, &id, "delivered").await;
    assert!(d["attempts"].as_u64().unwrap() >= 2, "{d}");
    let n = sk.got.lock().unwrap().len();
    assert!(n >= 1, "delivered at least once (duplicates: {})", n - 1);
}

async fn sink_on(port: u16, replies: Vec<&'static str>) -> Sink {
    // The sink binds an ephemeral port; forward the fixed one to it.
    let inner = sink(replies).await;
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target = inner.port;
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if let Ok(mut u) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
            });
        }
    });
    inner
}

#[tokio::test]
async fn relay_attempts_are_refused_and_nothing_is_queued() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let a = server("a.test", free_port(), &dns, &[]).await;
    a.agent("alice", &["mail:read"]).await;
    let (mut c, _) = legate_tests::SmtpClient::connect(a.smtp_addr()).await;
    c.cmd("EHLO attacker.test").await;
    assert!(c
        .cmd("MAIL FROM:<x@attacker.test>")
        .await
        .starts_with("250"));
    for rcpt in [
        "victim@b.test",
        "x%b.test@a.test",
        "@a.test:x@b.test",
        "b.test!x@a.test",
        "\"x@b.test\"@a.test",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert!(
            r.starts_with("554 5.7.1") || r.starts_with("501"),
            "{rcpt}: {r}"
        );
    }
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("554") || r.starts_with("503"), "{r}");
    let (st, q) = a
        .call("GET", "/v1/queue?all=true", Some(&a.admin_token), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(q["items"].as_array().unwrap().len(), 0, "{q}");
}

//! Issue 15 over real sockets: several From headers, repeated recipients, long lines, SMTP
//! smuggling (every end-of-data look-alike), commands after BDAT errors, pipelining floods
//! and slowloris bodies.

use super::limits::server;
use super::{dns, MSG};
use legate_tests::{SmtpClient, TestServer};
use std::time::Duration;

async fn messages(s: &TestServer, key: &str) -> Vec<serde_json::Value> {
    let (st, list) = s
        .call("GET", "/v1/messages?limit=100", Some(key), None)
        .await;
    assert_eq!(st, 200, "{list}");
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn metrics(s: &TestServer) -> String {
    s.http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// One message through a fresh session; the reply to its data.
async fn send(s: &TestServer, body: &str) -> String {
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    c.send_mail("alice@sender.test", &["ops@agents.test"], body)
        .await
}

#[tokio::test]
async fn several_from_headers_are_refused_counted_and_audited() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let rest = "To: ops@agents.test\r\nSubject: Your code\r\n\r\nYour code is 111222.\r\n";
    let bad = [
        // the attack: DMARC judged one From, the mailbox showed the other
        format!("From: alice@sender.test\r\nFrom: security@bank.test\r\n{rest}"),
        format!("From: alice@sender.test\r\nFROM: security@bank.test\r\n{rest}"),
        format!("From: alice@sender.test\r\nFrom : security@bank.test\r\n{rest}"),
        format!("from:security@bank.test\r\nX-A: 1\r\nFrom: alice@sender.test\r\n{rest}"),
        // none at all
        rest.to_string(),
        // other fields allowed once (RFC 5322 §3.6)
        format!("From: alice@sender.test\r\nSubject: again\r\n{rest}"),
        format!("From: alice@sender.test\r\nSender: a@x.test\r\nsender: b@x.test\r\n{rest}"),
        format!("From: alice@sender.test\r\nReply-To: a@x.test\r\nReply-To: b@x.test\r\n{rest}"),
        format!("Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nFrom: alice@sender.test\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n{rest}"),
        format!("Message-ID: <1@x>\r\nFrom: alice@sender.test\r\nMessage-Id: <2@x>\r\n{rest}"),
        // a bare CR, which one parser reads as a line end and another does not
        format!("From: alice@sender.test\rFrom: security@bank.test\r\n{rest}"),
    ];
    for m in &bad {
        let r = send(&s, m).await;
        assert!(r.starts_with("550 5.6.0"), "{m:?}: {r}");
    }
    assert!(messages(&s, &key).await.is_empty(), "nothing was stored");
    // folded lines and a From in the body are not extra headers
    let folded = "From: Alice\r\n <alice@sender.test>\r\nTo: ops@agents.test\r\nSubject: a\r\n b\r\n\r\nFrom: x@y.test\r\nFrom: z@y.test\r\n";
    assert!(send(&s, folded).await.starts_with("250"));
    assert!(send(&s, MSG).await.starts_with("250"));
    assert_eq!(messages(&s, &key).await.len(), 2);
    let m = metrics(&s).await;
    let want = format!(
        "legate_smtp_messages_total{{outcome=\"rejected\",reason=\"headers\"}} {}",
        bad.len()
    );
    assert!(m.contains(&want), "{want} in {m}");
    // audited, but not one entry per refusal: the log must not grow at an attacker's pace
    let (st, audit) = s
        .call(
            "GET",
            "/v1/audit?action=smtp.rejected",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{audit}");
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one entry per source per interval: {audit}");
    assert_eq!(items[0]["outcome"], "denied");
    assert_eq!(items[0]["detail"]["reason"], "duplicate_From", "{audit}");
    assert_eq!(items[0]["detail"]["peer"], "127.0.0.1");
    s.stop().await;
}

#[tokio::test]
async fn repeated_recipients_store_one_copy() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    let to = [
        "ops@agents.test",
        "OPS@agents.test",
        "ops@AGENTS.TEST",
        "ops+signup@agents.test",
        "ops+signup@agents.test",
        "ops@agents.test",
    ];
    let r = c.send_mail("alice@sender.test", &to, MSG).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let items = messages(&s, &key).await;
    assert_eq!(items.len(), 1, "one copy, not {}", items.len());
    let id = items[0]["id"].as_str().unwrap();
    let (_, m) = s
        .call("GET", &format!("/v1/messages/{id}"), Some(&key), None)
        .await;
    assert!(
        m["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "signup"),
        "the tag still labels the copy: {m}"
    );
    s.stop().await;
}

#[tokio::test]
async fn lines_of_64_kib_are_accepted_by_default() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    // an Outlook-style HTML body on one 60,000-byte line
    let line = format!("<p>{}</p>", "x".repeat(60_000));
    let r = send(&s, &format!("{MSG}{line}\r\n")).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(messages(&s, &key).await.len(), 1);
    s.stop().await;
}

/// Each end-of-data look-alike from the 2023 SMTP smuggling reports, followed by a whole
/// second transaction. Each must be one message, stored whole, and the smuggled commands
/// must never run.
#[tokio::test]
async fn smuggled_end_of_data_variants_never_end_data() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let variants: [(&str, &[u8]); 8] = [
        ("LF.LF", b"\n.\n"),
        ("CR.CR", b"\r.\r"),
        ("LF.CRLF", b"\n.\r\n"),
        ("CRLF.LF", b"\r\n.\n"),
        ("CR.CRLF", b"\r.\r\n"),
        ("CRLF.CR", b"\r\n.\r"),
        ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
        ("LF.CRCRLF", b"\n.\r\r\n"),
    ];
    for (i, (name, v)) in variants.iter().enumerate() {
        let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
        c.cmd("EHLO c.sender.test").await;
        assert!(c
            .cmd("MAIL FROM:<alice@sender.test>")
            .await
            .starts_with("250"));
        assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
        assert!(c.cmd("DATA").await.starts_with("354"));
        let mut wire = format!("{}first {name}", MSG.replace("Your code", name)).into_bytes();
        wire.extend_from_slice(v);
        wire.extend_from_slice(
            b"MAIL FROM:<ceo@spoof.test>\r\nRCPT TO:<ops@agents.test>\r\nDATA\r\n\
              From: ceo@spoof.test\r\nSubject: smuggled\r\n\r\nwire money\r\n.\r\n",
        );
        c.write(&wire).await;
        let r = c.read_reply().await;
        assert!(r.starts_with("250 2.0.0"), "{name}: {r}");
        // the next reply is QUIT's: no reply was owed to a smuggled MAIL, RCPT or DATA
        let q = c.cmd("QUIT").await;
        assert!(q.starts_with("221"), "{name}: smuggled commands ran: {q}");
        let items = messages(&s, &key).await;
        assert_eq!(
            items.len(),
            i + 1,
            "{name}: exactly one message per session"
        );
        assert_eq!(items[0]["subject"], *name, "{name}");
        let id = items[0]["id"].as_str().unwrap();
        let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            raw.contains("Subject: smuggled") && raw.contains("wire money"),
            "{name}: stored whole: {raw}"
        );
    }
    // BDAT carries no end mark at all: a CRLF.CRLF inside a chunk is data
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<ops@agents.test>").await;
    let chunk = format!(
        "{}hello\r\n.\r\nMAIL FROM:<ceo@spoof.test>\r\nRCPT TO:<ops@agents.test>\r\nDATA\r\n",
        MSG.replace("Your code", "bdat")
    );
    c.write(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes())
        .await;
    assert!(c.read_reply().await.starts_with("250 2.0.0"));
    assert!(c.cmd("QUIT").await.starts_with("221"));
    let items = messages(&s, &key).await;
    assert_eq!(items.len(), variants.len() + 1);
    assert_eq!(items[0]["subject"], "bdat");
    s.stop().await;
}

#[tokio::test]
async fn commands_after_bdat_errors_get_clear_replies() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    // BDAT with no transaction: refused, and its chunk is read and dropped, not run
    c.write(b"BDAT 12\r\nNOOP\r\nRSET\r\nNOOP\r\n").await;
    let r = c.read_reply().await;
    assert!(r.starts_with("503 5.5.1"), "{r}");
    let r = c.read_reply().await;
    assert!(
        r.starts_with("250 2.0.0 OK"),
        "only the NOOP after the chunk ran: {r}"
    );
    assert!(c.cmd("NOOP").await.starts_with("250"), "in step after it");
    // malformed sizes
    assert!(c.cmd("BDAT").await.starts_with("501"));
    assert!(c.cmd("BDAT x LAST").await.starts_with("501"));
    // DATA after a BDAT chunk is a sequence error that resets the transaction
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<ops@agents.test>").await;
    c.write(b"BDAT 5\r\nFrom:").await;
    assert!(c.read_reply().await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1"));
    c.write(b"BDAT 3 LAST\r\nabc").await;
    assert!(
        c.read_reply().await.starts_with("503"),
        "no transaction any more"
    );
    // the session still delivers a clean transaction
    let r = c
        .send_mail("alice@sender.test", &["ops@agents.test"], MSG)
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(messages(&s, &key).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_pipelining_flood_gets_every_reply_in_order() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let tcp = tokio::net::TcpStream::connect(s.smtp_addr()).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let n = 20_000;
    let writer = tokio::spawn(async move {
        let mut flood = b"EHLO c.sender.test\r\n".to_vec();
        for _ in 0..n {
            flood.extend_from_slice(b"NOOP\r\n");
        }
        flood.extend_from_slice(
            b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<ops@agents.test>\r\nDATA\r\n",
        );
        flood.extend_from_slice(MSG.as_bytes());
        flood.extend_from_slice(b".\r\nQUIT\r\n");
        w.write_all(&flood).await.unwrap();
        w
    });
    let mut line = String::new();
    let mut replies = Vec::new();
    loop {
        line.clear();
        let got = tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut line))
            .await
            .expect("replies keep coming")
            .unwrap();
        if got == 0 {
            break;
        }
        if line.as_bytes().get(3) == Some(&b' ') {
            replies.push(line[..3].to_string());
        }
    }
    let _w = writer.await.unwrap();
    // greeting, EHLO, n NOOPs, MAIL, RCPT, DATA (354), the message, QUIT
    assert_eq!(replies.len(), n + 7, "one reply per command");
    assert!(replies[2..n + 2].iter().all(|c| c == "250"));
    assert_eq!(&replies[n + 2..], ["250", "250", "354", "250", "221"]);
    assert_eq!(messages(&s, &key).await.len(), 1);
    // a burst of errors ends in 421 at the error limit (20), not an endless stream of 500s
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.write("BOGUS\r\n".repeat(20).as_bytes()).await;
    let mut all = Vec::new();
    loop {
        let r = c.read_reply().await;
        if r.is_empty() {
            break;
        }
        all.push(r);
    }
    assert_eq!(all.len(), 21, "{all:?}");
    assert!(all[..20].iter().all(|r| r.starts_with("500")), "{all:?}");
    assert!(all[20].starts_with("421 4.7.0"), "{all:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_slowloris_body_is_cut_at_the_data_deadline() {
    let s = server(|c| {
        c.data_timeout_secs = 30;
        c.data_deadline_secs = 2;
    })
    .await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let tcp = tokio::net::TcpStream::connect(s.smtp_addr()).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"EHLO c.sender.test\r\nMAIL FROM:<alice@sender.test>\r\nRCPT TO:<ops@agents.test>\r\nDATA\r\n")
        .await
        .unwrap();
    // one byte every 200 ms: each read is well within the data timeout, so only a deadline
    // on the whole body stops it (the trickle would go on for 20 s)
    let trickle = tokio::spawn(async move {
        for b in MSG.as_bytes().iter().cycle().take(100) {
            if w.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut last = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(15), r.read_line(&mut line))
            .await
            .expect("the server must not wait for the trickle to end")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        last = line;
    }
    assert!(last.starts_with("421 4.4.2"), "{last}");
    trickle.abort();
    assert!(messages(&s, &key).await.is_empty());
    s.stop().await;
}

/// A client that floods commands and never reads its replies fills the socket buffers; the
/// session must not wait on its write forever (holding a connection slot as "busy").
#[tokio::test]
async fn a_flood_that_never_reads_its_replies_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let s = server(|c| c.command_timeout_secs = 1).await;
    let tcp = tokio::net::TcpStream::connect(s.smtp_addr()).await.unwrap();
    let (_r, mut w) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let flood = "NOOP\r\n".repeat(100_000).into_bytes();
        for _ in 0..100 {
            if w.write_all(&flood).await.is_err() {
                break;
            }
        }
    });
    let active = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("legate_smtp_sessions_active "))
            .map(|v| v.trim().to_string())
    };
    // the session is open while the flood fills the buffers...
    let mut seen_open = false;
    let mut closed = false;
    for _ in 0..100 {
        let m = metrics(&s).await;
        match active(&m).as_deref() {
            Some("1") => seen_open = true,
            Some("0") if seen_open => {
                closed = true;
                break;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_open && closed, "the stuck session was never ended");
    writer.abort();
    s.stop().await;
}

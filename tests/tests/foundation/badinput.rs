//! The bad-input corpus (`tests/corpus/bad/`, issue 15): malformed MIME, SMTP abuse scripts
//! and bad JSON, walked against a real server over loopback. Every case gets a clear answer
//! (an SMTP reply with an enhanced status code, an HTTP 4xx with a JSON error), nothing
//! crashes or drops the connection, the session still answers afterwards, and every message
//! accepted is readable through the API. The formats are described in the corpus README.

use legate::mailauth::StaticDns;
use legate_tests::{SmtpClient, TestServer};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn corpus(kind: &str, ext: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus/bad")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ext.contains(&e))
        })
        .collect();
    files.sort();
    files
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `\r \n \t \0 \\ \xHH` escapes.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let (byte, used) = match b[i + 1] {
                b'r' => (b'\r', 2),
                b'n' => (b'\n', 2),
                b't' => (b'\t', 2),
                b'0' => (0, 2),
                b'\\' => (b'\\', 2),
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => (v, 4),
                        Err(_) => (b'\\', 1),
                    }
                }
                _ => (b'\\', 1),
            };
            out.push(byte);
            i += used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Splits `op rest` and, for counted ops, `op N rest`.
fn split_op(line: &str) -> (&str, &str) {
    line.split_once(' ').unwrap_or((line, ""))
}

fn count_and_rest(rest: &str) -> (usize, &str) {
    let (n, s) = rest.split_once(' ').unwrap_or((rest, ""));
    (n.parse().expect("a count"), s)
}

/// Expands recipe directives (`text`, `repeat`, `repeat-down`).
fn expand<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (op, rest) = split_op(line);
        match op {
            "text" => out.extend_from_slice(&unescape(rest)),
            "repeat" | "repeat-down" => {
                let (n, s) = count_and_rest(rest);
                if !s.contains("{i}") {
                    out.extend_from_slice(&unescape(s).repeat(n));
                    continue;
                }
                for k in 0..n {
                    let i = if op == "repeat" { k } else { n - 1 - k };
                    out.extend_from_slice(&unescape(&s.replace("{i}", &i.to_string())));
                }
            }
            other => panic!("unknown recipe directive {other:?}"),
        }
    }
    out
}

/// The raw message as DATA: dot-stuffed at line starts, CRLF-terminated, `.` line added.
/// Bare LF/CR and 8-bit bytes go through as they are.
fn frame(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `NNN X.Y.Z text` with a class-matching enhanced code (RFC 3463), on the last line.
fn has_enhanced_code(reply: &str) -> bool {
    let last = reply.trim_end().rsplit("\r\n").next().unwrap_or("");
    let b = last.as_bytes();
    if b.len() < 9 || !matches!(b[0], b'2' | b'4' | b'5') || b[3] != b' ' {
        return false;
    }
    let Some(enhanced) = last[4..].split(' ').next() else {
        return false;
    };
    let parts: Vec<&str> = enhanced.split('.').collect();
    parts.len() == 3
        && parts[0].as_bytes() == [b[0]]
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

fn dns() -> StaticDns {
    let d = StaticDns::new();
    d.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
        .add_a("sender.test", Ipv4Addr::LOCALHOST);
    d
}

struct Walk {
    s: TestServer,
    key: String,
    agent_id: String,
}

impl Walk {
    async fn subjects(&self) -> Vec<String> {
        let (st, v) = self
            .s
            .call("GET", "/v1/messages?limit=500", Some(&self.key), None)
            .await;
        assert_eq!(st, 200, "{v}");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The newest message is readable: its record and its raw bytes.
    async fn newest_is_readable(&self, case: &str, min_size: usize) {
        let (st, list) = self
            .s
            .call("GET", "/v1/messages?limit=1", Some(&self.key), None)
            .await;
        assert_eq!(st, 200, "{case}: {list}");
        let id = list["items"][0]["id"].as_str().expect("newest").to_string();
        let (st, m) = self
            .s
            .call("GET", &format!("/v1/messages/{id}"), Some(&self.key), None)
            .await;
        assert_eq!(st, 200, "{case}: {m}");
        let (st, _, raw) = self
            .s
            .get_bytes(&format!("/v1/messages/{id}/raw"), &self.key)
            .await;
        assert_eq!(st, 200, "{case}");
        assert!(raw.len() >= min_size, "{case}: {} bytes stored", raw.len());
    }
}

/// Asserts the session still answers, then ends it.
async fn still_answers(c: &mut SmtpClient, case: &str) {
    let r = c.cmd("NOOP").await;
    assert!(r.starts_with("250"), "{case}: NOOP after the case: {r:?}");
    let r = c.cmd("RSET").await;
    assert!(r.starts_with("250"), "{case}: RSET after the case: {r:?}");
    let r = c.cmd("QUIT").await;
    assert!(r.starts_with("221"), "{case}: QUIT: {r:?}");
}

async fn walk_mime(w: &Walk) -> usize {
    let files = corpus("mime", &["eml", "gen"]);
    assert!(files.len() >= 15, "mime corpus missing");
    let mut accepted = 0;
    for f in &files {
        let case = name(f);
        let text = std::fs::read(f).expect("read");
        let raw = if case.ends_with(".gen") {
            expand(String::from_utf8_lossy(&text).lines())
        } else {
            text
        };
        let (mut c, greet) = SmtpClient::connect(w.s.smtp_addr()).await;
        assert!(greet.starts_with("220"), "{case}: {greet}");
        assert!(c.cmd("EHLO bad.sender.test").await.starts_with("250"));
        let r = c.cmd("MAIL FROM:<bad@sender.test>").await;
        assert!(r.starts_with("250"), "{case}: {r}");
        assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.write(&frame(&raw)).await;
        let r = c.read_reply().await;
        assert!(has_enhanced_code(&r), "{case}: unclear or no answer: {r:?}");
        eprintln!("bad corpus {case} ({} bytes): {}", raw.len(), r.trim_end());
        still_answers(&mut c, &case).await;
        if r.starts_with("250") {
            accepted += 1;
            w.newest_is_readable(&case, raw.len().min(1024) / 2).await;
        }
    }
    accepted
}

async fn walk_smtp(w: &Walk) {
    let files = corpus("smtp", &["smtp"]);
    assert!(files.len() >= 10, "smtp corpus missing");
    for f in &files {
        let case = name(f);
        let script = std::fs::read_to_string(f).expect("read");
        let (mut c, greet) = SmtpClient::connect(w.s.smtp_addr()).await;
        assert!(greet.starts_with("220"), "{case}: {greet}");
        let mut closed = false;
        let mut checks = Vec::new();
        let mut last_send = "";
        for line in script.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (op, rest) = split_op(line);
            if op.starts_with("send") || op == "slow" {
                last_send = line;
            }
            match op {
                "send" => c.write(&unescape(rest)).await,
                "send-repeat" => {
                    let (n, s) = count_and_rest(rest);
                    c.write(&unescape(s).repeat(n)).await;
                }
                "slow" => {
                    let (ms, s) = count_and_rest(rest);
                    for b in unescape(s) {
                        c.write(&[b]).await;
                        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                    }
                }
                "expect" | "expect-n" => {
                    let (n, codes) = if op == "expect" {
                        (1, rest)
                    } else {
                        count_and_rest(rest)
                    };
                    for k in 0..n {
                        let r = c.read_reply().await;
                        assert!(
                            codes.split('|').any(|p| r.starts_with(p)),
                            "{case}: `{line}` (reply {k}) after `{last_send:.80}`: got {r:?}"
                        );
                        if !r.starts_with('2') && !r.starts_with('3') {
                            assert!(has_enhanced_code(&r), "{case}: no enhanced code: {r:?}");
                        }
                    }
                }
                "expect-closed" => {
                    let r = c.read_reply().await;
                    assert!(r.is_empty(), "{case}: still open, got {r:?}");
                    closed = true;
                }
                "stored" | "absent" => checks.push((op == "stored", rest.to_string())),
                other => panic!("{case}: unknown directive {other:?}"),
            }
        }
        if !closed {
            still_answers(&mut c, &case).await;
        }
        let subjects = w.subjects().await;
        for (want, subject) in checks {
            assert_eq!(
                subjects.iter().any(|s| s == &subject),
                want,
                "{case}: a message with subject {subject:?} {}",
                if want { "was lost" } else { "was smuggled in" }
            );
        }
        eprintln!("bad corpus {case}: ok");
    }
}

async fn walk_json(w: &Walk, message_id: &str) {
    let files = corpus("json", &["http"]);
    assert!(files.len() >= 10, "json corpus missing");
    for f in &files {
        let case = name(f);
        let text = std::fs::read_to_string(f).expect("read");
        let mut lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        let head = lines.next().expect("METHOD PATH WHO");
        let mut words = head.split(' ');
        let method = words.next().expect("method");
        let path = words.next().expect("path").replace("@MSG@", message_id);
        let token = match words.next().unwrap_or("agent") {
            "admin" => Some(w.s.admin_token.clone()),
            "none" => None,
            _ => Some(w.key.clone()),
        };
        let body = expand(lines);
        let mcp = path.starts_with("/mcp");
        let (status, text) = raw_http(
            w.s.base.trim_start_matches("http://"),
            method,
            &path,
            token.as_deref(),
            mcp,
            &body,
        )
        .await
        .unwrap_or_else(|e| panic!("{case}: no answer ({} bytes sent): {e}", body.len()));
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        eprintln!(
            "bad corpus {case} ({} bytes): {status} {}",
            body.len(),
            text.chars().take(120).collect::<String>()
        );
        if mcp {
            let rpc_error = status == 200 && v["error"].is_object();
            assert!(
                (400..500).contains(&status) || rpc_error,
                "{case}: {status} {text:.300}"
            );
        } else {
            assert!((400..500).contains(&status), "{case}: {status} {text:.300}");
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{case}: not a JSON error: {text:.300}"
            );
        }
        // The server still serves this agent.
        let (st, _) = w.s.call("GET", "/v1/whoami", Some(&w.key), None).await;
        assert_eq!(st, 200, "{case}: the API stopped answering");
    }
}

/// One HTTP/1.1 request over a raw socket, the body written while the response is read: a
/// server may answer an oversized body (413) before reading it all and close, and a client
/// that only reads after writing everything (reqwest) reports a broken pipe instead of the
/// answer it was given.
async fn raw_http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    mcp: bool,
    body: &[u8],
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if mcp {
        head.push_str("Accept: application/json, text/event-stream\r\n");
    }
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
        wr
    });
    let mut resp = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(60), rd.read(&mut buf)).await {
            Err(_) => return Err("no answer within 60 s".into()),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => resp.extend_from_slice(&buf[..n]),
            // A reset after the whole answer arrived is the server closing on unread input.
            Ok(Err(e)) if complete(&resp) => {
                eprintln!("(reset after the answer: {e})");
                break;
            }
            Ok(Err(e)) => return Err(format!("{e} after {} bytes", resp.len())),
        }
        if complete(&resp) {
            break;
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Headers and a body of the announced length (or a chunked body's last chunk) arrived.
fn complete(resp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(resp);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    head.contains("chunked") && body.ends_with("0\r\n\r\n")
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_gets_clear_answers_and_loses_nothing() {
    let s = TestServer::start_smtp(dns()).await;
    let (agent, key) = s
        .agent(
            "ops",
            &[
                "mail:read",
                "mail:send",
                "mail:manage",
                "vault:read",
                "vault:write",
                "identity:sign",
            ],
        )
        .await;
    let agent_id = agent["id"].as_str().expect("id").to_string();
    let w = Walk { s, key, agent_id };

    let accepted = walk_mime(&w).await;
    assert_eq!(w.subjects().await.len(), accepted, "accepted mail was lost");

    walk_smtp(&w).await;

    let held =
        w.s.deliver(
            &w.agent_id,
            legate::mailbox::Folder::Inbox,
            b"From: a@sender.test\r\nSubject: target\r\n\r\nx\r\n",
        )
        .await;
    walk_json(&w, &held.id).await;

    // Nothing accepted before was lost along the way.
    let total = w.subjects().await.len();
    assert!(total > accepted, "{total} messages after the walk");
    w.s.stop().await;
}

#[test]
fn recipes_and_framing() {
    assert_eq!(unescape(r"a\r\n\x00\xff\\b\0"), b"a\r\n\x00\xff\\b\0");
    let r = expand(
        [
            "text <",
            "repeat 3 p{i},",
            "repeat-down 2 c{i}",
            "repeat 2 x",
            "# no",
        ]
        .into_iter(),
    );
    assert_eq!(r, b"<p0,p1,p2,c1c0xx");
    assert_eq!(frame(b"a\n.b\r\n.c"), b"a\n..b\r\n..c\r\n.\r\n");
    assert!(has_enhanced_code("250-x\r\n250 2.0.0 OK\r\n"));
    assert!(!has_enhanced_code("250 OK\r\n"));
}

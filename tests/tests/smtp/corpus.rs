//! Robustness against real-world and malformed mail: every message of the CPython email test
//! corpus and of PyPI mail-parser's sample mails (vendored in `tests/corpus/`) goes through a
//! real SMTP session. Each must get a final reply with an enhanced status code, never a panic
//! or a dropped connection; accepted ones must be readable through the API.

use super::dns;
use legate_tests::{SmtpClient, TestServer};
use std::path::{Path, PathBuf};

fn corpus_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files = Vec::new();
    for dir in ["cpython", "mail-parser"] {
        for e in std::fs::read_dir(root.join(dir)).expect("corpus dir") {
            let p = e.expect("entry").path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("msg_") || name.starts_with("mail_") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The file as SMTP DATA: every line ending CRLF, dot-stuffed, terminated.
fn as_data(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20 + 8);
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if body.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// `NNN X.Y.Z text` with a class-matching enhanced code (RFC 3463).
fn has_enhanced_code(reply: &str) -> bool {
    let b = reply.as_bytes();
    if b.len() < 10 || !matches!(b[0], b'2' | b'4' | b'5') || b[3] != b' ' {
        return false;
    }
    let Some(enhanced) = reply[4..].split(' ').next() else {
        return false;
    };
    let parts: Vec<&str> = enhanced.split('.').collect();
    parts.len() == 3
        && parts[0].as_bytes() == [b[0]]
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Whether the header block has no From, or more than one From, Sender, Reply-To, Subject,
/// Date or Message-ID (RFC 5322 §3.6), or a bare CR in a header line: an independent count
/// of what the server refuses.
fn breaks_header_counts(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let mut counts = std::collections::HashMap::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains('\r') {
            return true;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((name, _)) = line.split_once(':') {
            *counts
                .entry(name.trim_end().to_ascii_lowercase())
                .or_insert(0) += 1;
        }
    }
    counts.get("from").copied().unwrap_or(0) != 1
        || ["sender", "reply-to", "subject", "date", "message-id"]
            .iter()
            .any(|f| counts.get(*f).copied().unwrap_or(0) > 1)
}

#[tokio::test]
async fn every_corpus_message_gets_a_clear_answer() {
    let files = corpus_files();
    assert!(files.len() >= 70, "corpus missing: {} files", files.len());
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let max_line = s.services().config.smtp.max_line_length;
    let mut accepted = 0;
    let mut refused = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read(f).unwrap();
        let (mut c, greet) = SmtpClient::connect(s.smtp_addr()).await;
        assert!(greet.starts_with("220"), "{name}: {greet}");
        assert!(c.cmd("EHLO corpus.sender.test").await.starts_with("250"));
        let r = c.cmd("MAIL FROM:<corpus@sender.test> BODY=8BITMIME").await;
        assert!(r.starts_with("250"), "{name}: {r}");
        assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.write(&as_data(&raw)).await;
        let r = c.read_reply().await;
        assert!(has_enhanced_code(&r), "{name}: unclear or no answer: {r:?}");
        assert!(
            c.cmd("QUIT").await.starts_with("221"),
            "{name}: the session survives"
        );
        if r.starts_with("550 5.6.0") {
            // RFC 5322 §3.6: no From, or a field that may appear once appearing twice.
            assert!(
                breaks_header_counts(&raw),
                "{name}: refused for its headers without cause: {r}"
            );
            refused.push(format!("{name}: {}", r.trim_end()));
            continue;
        }
        if !r.starts_with("250") {
            // Otherwise the only refusal expected of this corpus: a line over `max_line_length`.
            let longest = as_data(&raw)
                .split(|&b| b == b'\n')
                .map(|l| l.len() + 1)
                .max()
                .unwrap_or(0);
            assert!(
                r.starts_with("500 5.5.2") && longest > max_line,
                "{name}: refused without cause ({longest} bytes max): {r}"
            );
            refused.push(format!("{name}: {}", r.trim_end()));
            continue;
        }
        accepted += 1;
        let (st, list) = s
            .call("GET", "/v1/messages?limit=1", Some(&key), None)
            .await;
        assert_eq!(st, 200, "{name}: {list}");
        let id = list["items"][0]["id"]
            .as_str()
            .expect("newest id")
            .to_string();
        let (st, m) = s
            .call("GET", &format!("/v1/messages/{id}"), Some(&key), None)
            .await;
        assert_eq!(st, 200, "{name}: {m}");
        assert_eq!(m["id"], id.as_str(), "{name}");
        assert!(
            m["size"].as_u64().unwrap_or(0) as usize >= raw.len() / 2,
            "{name}: {m}"
        );
        let (st, _, stored) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &key).await;
        assert_eq!(st, 200, "{name}");
        assert!(stored.len() > raw.len() / 2, "{name}");
    }
    eprintln!(
        "corpus: {} messages, {accepted} accepted, {} refused {refused:#?}",
        files.len(),
        refused.len()
    );
    let (_, all) = s
        .call("GET", "/v1/messages?limit=200", Some(&key), None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), accepted);
    s.stop().await;
}

#[test]
fn data_framing_and_reply_shape() {
    assert_eq!(as_data(b"a\n.b\r\nc"), b"a\r\n..b\r\nc\r\n.\r\n");
    assert!(has_enhanced_code("250 2.0.0 OK\r\n"));
    assert!(has_enhanced_code("552 5.3.4 too big\r\n"));
    assert!(!has_enhanced_code("250 OK\r\n"));
    assert!(!has_enhanced_code("451 5.3.0 mismatched class\r\n"));
    assert!(!has_enhanced_code(""));
}

//! IMAP suite (issue 16): a real legate with its IMAP listener on 127.0.0.1:0, spoken to
//! over real sockets (STARTTLS with the server's own certificate). Changes made over SMTP
//! and REST must show in IMAP sessions at once, and the other way round.

use legate::mailbox::Folder;
use legate_tests::imap::ImapClient;
use legate_tests::TestServer;
use std::time::Duration;

/// A server with IMAP (and SMTP, for deliveries) on ephemeral ports.
async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    TestServer::start_with(dir, cfg).await
}

fn config(dir: &std::path::Path) -> legate::config::Config {
    let mut cfg = legate_tests::test_config(dir);
    cfg.listen.imap = "127.0.0.1:0".into();
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg
}

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Ann Sender <ann@remote.test>\r\nTo: bot@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@remote.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// An agent `bot` with every mail scope, and its key.
async fn bot(s: &TestServer) -> (String, String) {
    let (a, key) = s
        .agent("bot", &["mail:read", "mail:manage", "mail:send"])
        .await;
    (a["id"].as_str().expect("id").to_string(), key)
}

async fn session(s: &TestServer, key: &str) -> ImapClient {
    let tls = legate_tests::tls_connector(&s.data_dir());
    ImapClient::login(s.imap_addr(), &tls, "bot@agents.test", key).await
}

#[path = "imap/basics.rs"]
mod basics;
#[path = "imap/bulk.rs"]
mod bulk;
#[path = "imap/concurrency.rs"]
mod concurrency;
#[path = "imap/limits.rs"]
mod limits;
#[path = "imap/search.rs"]
mod search;

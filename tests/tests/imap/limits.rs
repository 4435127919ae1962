//! Bad input and limits: BAD with a reason and the session goes on; literals over the
//! limit refused before they are read; overlong lines end the session; full disks refuse
//! APPEND with `NO [UNAVAILABLE]` (issue 23 item 6).

use super::*;

#[tokio::test]
async fn malformed_and_unknown_commands_get_bad_and_the_session_continues() {
    let s = start().await;
    let (_, key) = bot(&s).await;
    let mut c = session(&s, &key).await;
    let a = c.cmd("FROBNICATE now").await;
    assert!(
        a.tagged.contains("BAD") && a.tagged.contains("Unknown command FROBNICATE"),
        "{a:?}"
    );
    let a = c.cmd("FETCH (").await;
    assert!(a.tagged.contains("BAD"), "{a:?}");
    let a = c.cmd("FETCH 1 (FLAGS)").await;
    assert!(
        a.tagged.contains("BAD") && a.tagged.contains("Select a mailbox"),
        "{a:?}"
    );
    c.write(b"\r\n").await;
    let a = c.cmd("NOOP").await;
    assert!(a.all().contains("BAD") && a.ok(), "{a:?}");
    // Deep nesting is refused, not recursed into.
    let deep = format!("SEARCH {}ALL", "NOT ".repeat(100));
    c.cmd("SELECT INBOX").await;
    let a = c.cmd(&deep).await;
    assert!(a.tagged.contains("BAD") || a.tagged.contains("NO"), "{a:?}");
    assert!(c.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn oversized_literals_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.max_append_bytes = 1000;
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = bot(&s).await;
    let mut c = session(&s, &key).await;
    // Synchronising: NO [TOOBIG] at once, no continuation, and the session goes on.
    c.write(b"a1 APPEND INBOX {5000}\r\n").await;
    let line = c.read_line().await;
    assert!(line.starts_with("a1 NO [TOOBIG]"), "{line}");
    assert!(c.cmd("NOOP").await.ok());
    // LITERAL+: the bytes are read and dropped, then the same answer.
    let mut cmd = b"a2 APPEND INBOX {3000+}\r\n".to_vec();
    cmd.extend(std::iter::repeat_n(b'x', 3000));
    cmd.extend_from_slice(b"\r\n");
    let a = c.raw("a2", &cmd).await;
    assert!(a.tagged.starts_with("a2 NO [TOOBIG]"), "{a:?}");
    assert!(c.cmd("NOOP").await.ok());
    // Before login even small literals are capped.
    let (mut pre, _) = ImapClient::connect(s.imap_addr()).await;
    pre.write(b"p1 LOGIN {100000}\r\n").await;
    let line = pre.read_line().await;
    assert!(line.starts_with("p1 NO [TOOBIG]"), "{line}");
}

#[tokio::test]
async fn an_overlong_line_ends_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.max_line_bytes = 1000;
    let s = TestServer::start_with(dir, cfg).await;
    let (mut c, _) = ImapClient::connect(s.imap_addr()).await;
    let long = vec![b'a'; 50_000];
    c.write(&long).await;
    let line = c.read_line().await;
    assert!(line.starts_with("* BYE"), "{line}");
    assert_eq!(c.read_line().await, "");
}

#[tokio::test]
async fn append_below_the_disk_reserve_is_unavailable_and_resumes() {
    let s = start().await;
    let (_, key) = bot(&s).await;
    let mut c = session(&s, &key).await;
    s.services().storage.set_reserve_bytes(1 << 60);
    let msg = b"Subject: x\r\n\r\nhi\r\n";
    c.write(format!("a1 APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    let a = c.raw("a1", &[msg.as_slice(), b"\r\n"].concat()).await;
    assert!(a.tagged.contains("NO [UNAVAILABLE]"), "{a:?}");
    // Reads still work.
    assert!(c.cmd("SELECT INBOX").await.ok());
    s.services().storage.set_reserve_bytes(0);
    c.write(format!("a2 APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    let a = c.raw("a2", &[msg.as_slice(), b"\r\n"].concat()).await;
    assert!(a.ok(), "{a:?}");
}

#[tokio::test]
async fn connections_per_agent_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.max_connections_per_agent = 2;
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = bot(&s).await;
    let _a = session(&s, &key).await;
    let _b = session(&s, &key).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (c, _) = ImapClient::connect(s.imap_addr()).await;
    let mut c = c.starttls(&tls).await;
    let a = c.cmd(&format!("LOGIN bot@agents.test {key}")).await;
    assert!(a.tagged.contains("NO [LIMIT]"), "{a:?}");
}

#[tokio::test]
async fn repeated_failures_for_one_address_are_throttled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.auth_failures_per_address_per_minute = 2;
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = bot(&s).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (c, _) = ImapClient::connect(s.imap_addr()).await;
    let mut c = c.starttls(&tls).await;
    for _ in 0..2 {
        let a = c.cmd("LOGIN bot@agents.test lg_NOTAKEYNOTAKEY").await;
        assert!(a.tagged.contains("AUTHENTICATIONFAILED"), "{a:?}");
    }
    // Further guesses are refused without being tried ...
    let a = c.cmd("LOGIN bot@agents.test lg_NOTAKEYNOTAKEY").await;
    assert!(a.tagged.contains("NO [UNAVAILABLE]"), "{a:?}");
    // ... but the agent itself is not locked out by someone failing in its name.
    let a = c.cmd(&format!("LOGIN bot@agents.test {key}")).await;
    assert!(a.ok(), "{a:?}");
}

#[tokio::test]
async fn a_connection_that_keeps_failing_logins_is_closed() {
    let s = start().await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (c, _) = ImapClient::connect(s.imap_addr()).await;
    let mut c = c.starttls(&tls).await;
    let mut closed = false;
    for i in 0..10 {
        let a = c
            .cmd(&format!("LOGIN nobody{i}@agents.test lg_NOTAKEYNOTAKEY"))
            .await;
        if a.all().contains("* BYE") || a.tagged.is_empty() {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after 10 failed logins");
}

#[tokio::test]
async fn a_client_that_never_logs_in_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.pre_auth_timeout_secs = 1;
    let s = TestServer::start_with(dir, cfg).await;
    let (mut c, _) = ImapClient::connect(s.imap_addr()).await;
    // Commands do not extend the time to log in.
    assert!(c.cmd("NOOP").await.ok());
    let line = c
        .read_line_within(Duration::from_secs(3))
        .await
        .unwrap_or_default();
    assert!(line.starts_with("* BYE"), "{line}");
}

/// Hostile input never takes the server down: a stream of command lines made of IMAP
/// tokens, brackets, literals and garbage, before and after login, each answered, and the
/// session (or at least the server) still serving afterwards.
#[tokio::test]
async fn random_command_lines_get_answers_and_never_crash_the_server() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    const TOKENS: [&str; 40] = [
        "FETCH",
        "UID",
        "STORE",
        "SEARCH",
        "SELECT",
        "INBOX",
        "1:*",
        "*",
        "0",
        "4294967296",
        "(",
        ")",
        "[",
        "]",
        "BODY[",
        "BODY[1.2.3.4.5]",
        "<0.1>",
        "\"x\"",
        "{3}",
        "{5+}",
        "NIL",
        "FLAGS",
        "+FLAGS",
        "(\\Seen",
        "RETURN",
        "(MIN",
        "CHARSET",
        "UTF-8",
        "TEXT",
        "NOT",
        "OR",
        "MODSEQ",
        "UNCHANGEDSINCE",
        "LIST",
        "\"\"",
        "%",
        "ENVELOPE",
        "\u{7f}",
        "\u{e9}",
        "~{2}",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tls = legate_tests::tls_connector(&s.data_dir());
    for round in 0..2 {
        let (c, _) = ImapClient::connect(s.imap_addr()).await;
        let mut c = c.starttls(&tls).await;
        if round == 1 {
            assert!(c.cmd(&format!("LOGIN bot@agents.test {key}")).await.ok());
            assert!(c.cmd("SELECT INBOX").await.ok());
        }
        for i in 0..40 {
            let n = 1 + (next() % 8) as usize;
            let words: Vec<&str> = (0..n).map(|_| TOKENS[(next() % 40) as usize]).collect();
            let line = words.join(" ");
            // A line announcing a literal: send that many bytes so framing stays in step.
            let tag = format!("r{i}");
            c.write(format!("{tag} {line}\r\n").as_bytes()).await;
            if line.ends_with('}') {
                let len: usize = line
                    .rsplit('{')
                    .next()
                    .and_then(|t| t.trim_end_matches(['}', '+']).parse().ok())
                    .unwrap_or(0);
                if !line.ends_with("+}") {
                    let cont = c.read_line().await;
                    if !cont.starts_with('+') {
                        continue;
                    }
                }
                c.write(&vec![b'a'; len]).await;
                c.write(b"\r\n").await;
            }
            let a = c.read_answer(&tag).await;
            if a.tagged.is_empty() {
                break;
            }
        }
        let (c2, g) = ImapClient::connect(s.imap_addr()).await;
        assert!(g.starts_with("* OK"), "server still greets: {g}");
        drop(c2);
    }
}

#[tokio::test]
async fn commands_pipelined_after_login_are_kept() {
    let s = start().await;
    let (_, key) = bot(&s).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (c, _) = ImapClient::connect(s.imap_addr()).await;
    let mut c = c.starttls(&tls).await;
    c.write(format!("p1 LOGIN bot@agents.test {key}\r\np2 SELECT INBOX\r\np3 NOOP\r\n").as_bytes())
        .await;
    assert!(c.read_answer("p1").await.ok());
    assert!(c.read_answer("p2").await.ok());
    assert!(c.read_answer("p3").await.ok());
}

#[tokio::test]
async fn searches_and_fetches_too_large_to_serve_are_refused() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    let many = format!("SEARCH {}", "TEXT zz ".repeat(70).trim_end());
    let a = c.cmd(&many).await;
    assert!(a.tagged.contains("NO [LIMIT]"), "{a:?}");
    let mut long = b"l1 SEARCH TEXT {2000+}\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'q', 2000));
    long.extend_from_slice(b"\r\n");
    let a = c.raw("l1", &long).await;
    assert!(a.tagged.contains("NO [LIMIT]"), "{a:?}");
    // The same item many times is answered once; too many different ones are refused.
    let a = c
        .cmd(&format!("FETCH 1 ({})", "BODY.PEEK[] ".repeat(50).trim()))
        .await;
    assert!(a.ok() && a.lines("FETCH").len() == 1, "{}", a.all());
    assert_eq!(a.all().matches("BODY[]").count(), 1, "{}", a.all());
    let parts: Vec<String> = (0..20).map(|i| format!("BODY.PEEK[]<{i}.10>")).collect();
    let a = c.cmd(&format!("FETCH 1 ({})", parts.join(" "))).await;
    assert!(a.tagged.contains("BAD"), "{a:?}");
    assert!(c.cmd("NOOP").await.ok());
}

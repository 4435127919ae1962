//! SEARCH SUBJECT, FROM, TO and CC (issue 16, benchmark work): answered from light records and
//! a shared cache of the lower-cased subjects and addresses, they must match exactly what
//! evaluating the whole records matches — non-ASCII, RFC 2047 encoded words, folded lines,
//! any case — and follow flag changes, moves and expunges.

use super::*;

/// `tag UID SEARCH <prefix> {n}\r\n<word>` with the word as a literal (any UTF-8); the
/// matching UIDs, in the order the server gave them.
async fn uids_for(c: &mut ImapClient, tag: &str, prefix: &str, word: &str) -> Vec<u32> {
    c.write(
        format!(
            "{tag} UID SEARCH CHARSET UTF-8 {prefix} {{{}}}\r\n",
            word.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(c.read_line().await.starts_with('+'));
    let a = c.raw(tag, format!("{word}\r\n").as_bytes()).await;
    assert!(a.ok(), "{prefix} {word}: {}", a.all());
    let line = a.lines("SEARCH").first().map(|l| l.to_string());
    let line = line.unwrap_or_default();
    line.split_whitespace()
        .skip(2)
        .map(|u| u.parse().expect("a UID"))
        .collect()
}

const MESSAGES: [&[u8]; 4] = [
    // An encoded, folded subject: "Café € Report".
    b"From: =?UTF-8?Q?Zo=C3=AB_Ch=C3=A2telet?= <zoe@remote.test>\r\nTo: bot@agents.test\r\n\
Subject: =?UTF-8?Q?Caf=C3=A9?=\r\n =?UTF-8?B?IOKCrA==?= Report\r\nMessage-ID: <s1@remote.test>\r\n\r\none\r\n",
    // A plain subject folded over two lines, and a Cc.
    b"From: Ann Sender <ann@remote.test>\r\nTo: bot@agents.test\r\nCc: Boss <boss@remote.test>\r\n\
Subject: quarterly\r\n budget REVIEW\r\nMessage-ID: <s2@remote.test>\r\n\r\ntwo\r\n",
    // Raw UTF-8 in the subject (RFC 6532) and upper case to fold.
    "From: ann@remote.test\r\nTo: Other <other@agents.test>, bot@agents.test\r\n\
Subject: ÉTÉ invoice Straße\r\nMessage-ID: <s3@remote.test>\r\n\r\nthree\r\n"
        .as_bytes(),
    b"From: ann@remote.test\r\nTo: bot@agents.test\r\nSubject: \r\nMessage-ID: <s4@remote.test>\r\n\r\nfour\r\n",
];

/// Each query with the UIDs it must match among [`MESSAGES`] (UIDs 1-4).
const QUERIES: [(&str, &str, &[u32]); 14] = [
    ("SUBJECT", "café", &[1]),
    ("SUBJECT", "CAFÉ € rep", &[1]),
    ("SUBJECT", "quarterly budget", &[2]),
    ("SUBJECT", "budget review", &[2]),
    ("SUBJECT", "été INVOICE", &[3]),
    ("SUBJECT", "straße", &[3]),
    ("SUBJECT", "nothing like it", &[]),
    ("FROM", "zoë châtelet", &[1]),
    ("FROM", "ANN@remote", &[2, 3, 4]),
    ("FROM", "Ann Sender <ann@", &[2]),
    ("TO", "other <other@agents", &[3]),
    ("TO", "bot@agents.test", &[1, 2, 3, 4]),
    ("CC", "boss", &[2]),
    ("CC", "ann", &[]),
];

/// Every query gives the same UIDs from the cache (cold, then warm), and from whole records:
/// `OR <key> BODY <absent>` reads the messages, so it evaluates the whole record as before.
async fn check_queries(c: &mut ImapClient) {
    for round in 0..2 {
        for (i, (key, word, want)) in QUERIES.iter().enumerate() {
            let got = uids_for(c, &format!("q{round}x{i}"), key, word).await;
            assert_eq!(got, *want, "round {round}: {key} {word}");
            let prefix = format!("OR BODY zzz-absent-zzz {key}");
            let whole = uids_for(c, &format!("w{round}x{i}"), &prefix, word).await;
            assert_eq!(whole, *want, "whole records: {key} {word}");
        }
    }
}

#[tokio::test]
async fn subject_and_address_searches_match_the_whole_records() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    for m in MESSAGES {
        s.deliver(&id, Folder::Inbox, m).await;
    }
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    check_queries(&mut c).await;

    // A flag narrows the text search at once, in both directions.
    let se = c.cmd("UID SEARCH SUBJECT invoice FLAGGED").await;
    assert!(se.all().contains("* SEARCH\r\n"), "{}", se.all());
    c.cmd("UID STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    let se = c.cmd("UID SEARCH SUBJECT invoice FLAGGED").await;
    assert!(se.all().contains("* SEARCH 3\r\n"), "{}", se.all());
    let se = c.cmd("UID SEARCH NOT SUBJECT invoice UNFLAGGED").await;
    assert!(se.all().contains("* SEARCH 1 2 4\r\n"), "{}", se.all());

    // Moved (same message, new UID elsewhere) and expunged messages.
    let mv = c.cmd("UID MOVE 1 Archive").await;
    assert!(mv.ok(), "{}", mv.all());
    assert_eq!(
        uids_for(&mut c, "m1", "SUBJECT", "café").await,
        Vec::<u32>::new()
    );
    c.cmd("UID STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    c.cmd("EXPUNGE").await;
    let se = c.cmd("UID SEARCH FROM ann").await;
    assert!(se.all().contains("* SEARCH 3 4\r\n"), "{}", se.all());
    c.cmd("SELECT Archive").await;
    assert_eq!(uids_for(&mut c, "a1", "SUBJECT", "CAFÉ").await, vec![1]);
    assert_eq!(uids_for(&mut c, "a2", "FROM", "châtelet").await, vec![1]);
}

#[tokio::test]
async fn without_the_cache_searches_match_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.imap.search_cache_messages = 0;
    let s = TestServer::start_with(dir, cfg).await;
    let (id, key) = bot(&s).await;
    for m in MESSAGES {
        s.deliver(&id, Folder::Inbox, m).await;
    }
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    check_queries(&mut c).await;
}

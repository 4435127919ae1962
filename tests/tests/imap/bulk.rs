//! Bulk FETCH (issue 16, benchmark work): a FETCH of a whole mailbox is written out batch by
//! batch, small bodies inline and large ones streamed from their blobs; whatever the path,
//! every body must come out byte-identical to what REST's raw download serves.

use super::*;

/// A message of about `size` bytes, UTF-8 text (so the test client's lossy strings are the
/// bytes themselves), unique per `i`.
fn sized(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Bulk <bulk@remote.test>\r\nTo: bot@agents.test\r\nSubject: bulk {i}\r\n\
Message-ID: <bulk-{i}@remote.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let line = format!("line of message {i}, Grüße, {}\r\n", "x".repeat(i % 50));
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

/// The `(UID, literal)` pairs of FETCH responses that carry one literal each.
fn literals(a: &legate_tests::imap::Answer) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for l in a.lines("FETCH") {
        let uid = l
            .split("UID ")
            .nth(1)
            .and_then(|r| r.split([' ', ')']).next())
            .and_then(|u| u.parse().ok())
            .expect("UID in every FETCH response");
        let open = l.find('{').expect("a literal");
        let close = open + l[open..].find("}\r\n").expect("literal end");
        let len: usize = l[open + 1..close].parse().expect("literal length");
        let body = &l.as_bytes()[close + 3..close + 3 + len];
        assert_eq!(&l[close + 3 + len..], ")\r\n", "nothing after the literal");
        out.push((uid, String::from_utf8_lossy(body).into_owned()));
    }
    out
}

#[tokio::test]
async fn a_fetch_of_many_messages_returns_the_bytes_rest_serves() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    // Small and medium bodies across several batches (64 messages, 1 MiB) and output
    // flushes, and two bodies over the streaming size (1 MiB) among them.
    let mut ids = std::collections::HashMap::new();
    for i in 0..150 {
        let size = match i {
            40 | 97 => 1_300_000 + i,
            _ => 200 + (i * 7919) % 30_000,
        };
        let m = s.deliver(&id, Folder::Inbox, &sized(i, size)).await;
        ids.insert(m.uid, m.id);
    }
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    for cmd in ["UID FETCH 1:* (UID BODY.PEEK[])", "FETCH 1:* (UID RFC822)"] {
        let f = c.cmd(cmd).await;
        assert!(f.ok(), "{}", f.tagged);
        let got = literals(&f);
        assert_eq!(got.len(), 150, "{cmd}");
        for (uid, body) in got {
            let (st, _, raw) = s
                .get_bytes(&format!("/v1/messages/{}/raw", ids[&uid]), &key)
                .await;
            assert_eq!(st, 200);
            assert!(
                body.as_bytes() == raw.as_slice(),
                "{cmd}: UID {uid} differs"
            );
        }
    }
    // RFC822 is not PEEK: every message is now \Seen, and said so.
    let f = c.cmd("FETCH 1:* (FLAGS)").await;
    assert_eq!(
        f.lines("FETCH")
            .iter()
            .filter(|l| l.contains("\\Seen"))
            .count(),
        150
    );
}

#[tokio::test]
async fn partial_fetches_of_whole_messages_cut_the_stored_bytes() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    let small = sized(1, 3000);
    let large = sized(2, 1_500_000);
    let m1 = s.deliver(&id, Folder::Inbox, &small).await;
    let m2 = s.deliver(&id, Folder::Inbox, &large).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    let f = c.cmd("UID FETCH 1:* (BODY.PEEK[]<0.100>)").await;
    assert!(f.ok(), "{}", f.tagged);
    let got = literals(&f);
    assert_eq!(got.len(), 2);
    for ((uid, body), raw) in got.iter().zip([&small, &large]) {
        assert_eq!(body.as_bytes(), &raw[..100], "UID {uid}");
        assert!(f.all().contains("BODY[]<0> {100}\r\n"), "{}", f.tagged);
    }
    // A window inside the large body, one past the end of the small one, one across it.
    let f = c
        .cmd(&format!("UID FETCH {} (BODY.PEEK[]<1000000.50>)", m2.uid))
        .await;
    let got = literals(&f);
    assert_eq!(got[0].1.as_bytes(), &large[1_000_000..1_000_050]);
    assert!(f.all().contains("BODY[]<1000000> {50}"), "{}", f.tagged);
    let f = c
        .cmd(&format!("UID FETCH {} (BODY.PEEK[]<5000.10>)", m1.uid))
        .await;
    let all = f.all();
    assert!(
        all.contains("BODY[]<5000> {0}\r\n)") || all.contains("BODY[]<5000> \"\")"),
        "{all}"
    );
    let f = c
        .cmd(&format!("UID FETCH {} (BODY.PEEK[]<2990.100>)", m1.uid))
        .await;
    assert_eq!(literals(&f)[0].1.as_bytes(), &small[2990..]);
    // The whole and a part in one FETCH.
    let f = c
        .cmd(&format!(
            "UID FETCH {} (RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[])",
            m1.uid
        ))
        .await;
    assert!(
        f.all().contains(&format!("RFC822.SIZE {}", small.len())),
        "{}",
        f.all()
    );
    assert!(
        f.all().ends_with(&format!(
            "BODY[] {{{}}}\r\n{})\r\n{}",
            small.len(),
            String::from_utf8_lossy(&small),
            f.tagged
        )),
        "{}",
        f.all()
    );
}

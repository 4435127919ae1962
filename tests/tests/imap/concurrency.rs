//! Several sessions and surfaces on one mailbox: each sees the others' changes at the
//! points RFC 9051 allows, IDLE wakes promptly, and revocation ends sessions.

use super::*;

#[tokio::test]
async fn two_sessions_see_each_others_flags_and_expunges() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    for i in 1..=3 {
        s.deliver(&id, Folder::Inbox, &message(&format!("m{i}"), "x"))
            .await;
    }
    let mut a = session(&s, &key).await;
    let mut b = session(&s, &key).await;
    a.cmd("SELECT INBOX").await;
    b.cmd("SELECT INBOX").await;
    a.cmd("STORE 2 +FLAGS (\\Flagged)").await;
    let n = b.cmd("NOOP").await;
    assert!(
        n.all().contains("* 2 FETCH (UID 2 FLAGS (\\Flagged))"),
        "{}",
        n.all()
    );
    a.cmd("STORE 1 +FLAGS (\\Deleted)").await;
    a.cmd("EXPUNGE").await;
    // While B fetches by sequence number, the expunge is held back: its numbers stay right.
    let f = b.cmd("FETCH 3 (UID)").await;
    assert!(f.all().contains("* 3 FETCH (UID 3)"), "{}", f.all());
    assert!(!f.all().contains("EXPUNGE"), "{}", f.all());
    let n = b.cmd("NOOP").await;
    assert!(n.all().contains("* 1 EXPUNGE"), "{}", n.all());
    let f = b.cmd("FETCH 2 (UID)").await;
    assert!(f.all().contains("* 2 FETCH (UID 3)"), "{}", f.all());
    // A delivery shows as EXISTS on the next command.
    s.deliver(&id, Folder::Inbox, &message("m4", "x")).await;
    let n = b.cmd("NOOP").await;
    assert!(n.all().contains("* 3 EXISTS"), "{}", n.all());
}

#[tokio::test]
async fn changes_are_announced_after_any_command_not_only_noop() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    let mut a = session(&s, &key).await;
    let mut b = session(&s, &key).await;
    a.cmd("SELECT INBOX").await;
    b.cmd("SELECT INBOX").await;
    // APPEND into the selected folder answers EXISTS (RFC 9051 §6.3.12), and the message is
    // searchable at once.
    let msg = message("m2", "y");
    a.write(format!("ap APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    let ap = a.raw("ap", &[msg.as_slice(), b"\r\n"].concat()).await;
    assert!(ap.all().contains("* 2 EXISTS"), "{}", ap.all());
    let se = a.cmd("UID SEARCH ALL").await;
    assert!(se.all().contains("* SEARCH 1 2\r\n"), "{}", se.all());
    // Another session learns of it with its next command, whatever that is; an expunge
    // waits for a command that may carry it (not FETCH by sequence number).
    let f = b.cmd("FETCH 1 (UID)").await;
    assert!(f.all().contains("* 2 EXISTS"), "{}", f.all());
    a.cmd("STORE 1 +FLAGS (\\Deleted)").await;
    a.cmd("EXPUNGE").await;
    let f = b.cmd("FETCH 1 (UID)").await;
    assert!(!f.all().contains("EXPUNGE"), "{}", f.all());
    let f = b.cmd("UID FETCH 2 (UID)").await;
    assert!(f.all().contains("* 1 EXPUNGE"), "{}", f.all());
}

#[tokio::test]
async fn idle_wakes_on_smtp_delivery_rest_flag_change_and_delete() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    let first = s.deliver(&id, Folder::Inbox, &message("first", "x")).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    c.write(b"i1 IDLE\r\n").await;
    assert!(c.read_line().await.starts_with('+'));

    // SMTP delivery.
    let (mut smtp, _) = legate_tests::SmtpClient::connect(s.smtp_addr()).await;
    smtp.cmd("EHLO remote.test").await;
    let r = smtp
        .send_mail(
            "ann@remote.test",
            &["bot@agents.test"],
            &String::from_utf8_lossy(&message("second", "y")),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let line = c.read_line_within(Duration::from_secs(2)).await;
    assert_eq!(line.as_deref(), Some("* 2 EXISTS\r\n"));

    // REST flag change.
    let (st, v) = s
        .call(
            "PATCH",
            &format!("/v1/messages/{}", first.id),
            Some(&key),
            Some(serde_json::json!({"flags": {"add": ["\\Flagged"]}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let line = c
        .read_line_within(Duration::from_secs(2))
        .await
        .unwrap_or_default();
    assert!(
        line.starts_with("* 1 FETCH (UID 1 FLAGS (\\Flagged))"),
        "{line}"
    );

    // REST delete (to Trash): an expunge, allowed during IDLE.
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/messages/{}", first.id),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let line = c.read_line_within(Duration::from_secs(2)).await;
    assert_eq!(line.as_deref(), Some("* 1 EXPUNGE\r\n"));
    let done = c.raw("i1", b"DONE\r\n").await;
    assert!(done.ok(), "{done:?}");
}

#[tokio::test]
async fn a_revoked_key_ends_its_sessions_with_bye() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    let mut busy = session(&s, &key).await;
    busy.cmd("SELECT INBOX").await;
    let mut idle = session(&s, &key).await;
    idle.cmd("SELECT INBOX").await;
    idle.write(b"i1 IDLE\r\n").await;
    assert!(idle.read_line().await.starts_with('+'));

    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(st == 200 || st == 204, "{st} {v}");
    // The next command is not run: BYE instead.
    let f = busy.cmd("FETCH 1 (BODY.PEEK[])").await;
    assert!(f.all().contains("* BYE"), "{}", f.all());
    assert!(!f.all().contains("Subject: m1"), "{}", f.all());
    // The idling one is told within a few seconds.
    let line = idle
        .read_line_within(Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(line.starts_with("* BYE"), "{line}");
}

#[tokio::test]
async fn a_read_only_key_reads_but_cannot_change() {
    let s = start().await;
    let (a, key) = s.agent("bot", &["mail:read"]).await;
    let id = a["id"].as_str().expect("id").to_string();
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    let st = c.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(st.tagged.contains("NO [NOPERM]"), "{st:?}");
    let mv = c.cmd("MOVE 1 Trash").await;
    assert!(mv.tagged.contains("NO [NOPERM]"), "{mv:?}");
    let f = c.cmd("FETCH 1 (BODY[])").await;
    assert!(f.ok() && f.all().contains("Subject: m1"), "{}", f.all());
}

#[tokio::test]
async fn condstore_and_qresync_report_changes_and_vanished_uids() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    for i in 1..=4 {
        s.deliver(&id, Folder::Inbox, &message(&format!("m{i}"), "x"))
            .await;
    }
    let mut c = session(&s, &key).await;
    assert!(c
        .cmd("ENABLE QRESYNC")
        .await
        .all()
        .contains("* ENABLED QRESYNC"));
    let sel = c.cmd("SELECT INBOX").await;
    let validity: u32 = sel
        .all()
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|v| v.parse().ok())
        .expect("uidvalidity");
    let hms: u64 = sel
        .all()
        .split("[HIGHESTMODSEQ ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|v| v.parse().ok())
        .expect("highestmodseq");
    // UNCHANGEDSINCE below a message's modseq fails for it alone.
    let st = c
        .cmd("UID STORE 1:2 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)")
        .await;
    assert!(st.tagged.contains("[MODIFIED 2]"), "{st:?}");
    c.cmd("UID STORE 3 +FLAGS (\\Deleted)").await;
    let ex = c.cmd("EXPUNGE").await;
    assert!(ex.all().contains("* VANISHED 3"), "{}", ex.all());
    let f = c
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)"
        ))
        .await;
    assert!(f.all().contains("* VANISHED (EARLIER) 3"), "{}", f.all());
    assert!(
        f.all().contains("UID 1 FLAGS (\\Seen) MODSEQ"),
        "{}",
        f.all()
    );
    c.cmd("UNSELECT").await;
    let sel = c
        .cmd(&format!("SELECT INBOX (QRESYNC ({validity} {hms} 1:4))"))
        .await;
    assert!(
        sel.all().contains("* VANISHED (EARLIER) 3"),
        "{}",
        sel.all()
    );
    assert!(sel.all().contains("FLAGS (\\Seen)"), "{}", sel.all());
}

#[tokio::test]
async fn a_session_on_a_folder_deleted_elsewhere_is_told_bye() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("m1", "x")).await;
    let mut a = session(&s, &key).await;
    let mut b = session(&s, &key).await;
    assert!(a.cmd("CREATE Work").await.ok());
    assert!(a.cmd("SELECT INBOX").await.ok());
    assert!(a.cmd("COPY 1 Work").await.ok());
    assert!(b.cmd("SELECT Work").await.ok());
    assert!(a.cmd("DELETE Work").await.ok());
    let n = b.cmd("NOOP").await;
    assert!(n.all().contains("* BYE"), "{}", n.all());
    // Nothing can be filed into the deleted folder.
    let cp = a.cmd("COPY 1 Work").await;
    assert!(cp.tagged.contains("[TRYCREATE]"), "{cp:?}");
}

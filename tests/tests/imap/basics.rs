//! Login, folders, reading and changing mail, and what survives a restart.

use super::*;

#[tokio::test]
async fn plaintext_login_is_disabled_until_starttls() {
    let s = start().await;
    let (_, key) = bot(&s).await;
    let (mut c, greeting) = ImapClient::connect(s.imap_addr()).await;
    assert!(greeting.starts_with("* OK [CAPABILITY"), "{greeting}");
    assert!(greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"));
    let a = c.cmd(&format!("LOGIN bot@agents.test {key}")).await;
    assert!(a.tagged.contains("NO [PRIVACYREQUIRED]"), "{a:?}");
    let tls = legate_tests::tls_connector(&s.data_dir());
    let mut c = c.starttls(&tls).await;
    let caps = c.cmd("CAPABILITY").await;
    assert!(caps.all().contains("AUTH=PLAIN") && !caps.all().contains("STARTTLS"));
    // A wrong key, then another agent's address: both plain NO.
    let a = c.cmd("LOGIN bot@agents.test lg_WRONGWRONGWRONG").await;
    assert!(a.tagged.contains("NO [AUTHENTICATIONFAILED]"), "{a:?}");
    let a = c.cmd(&format!("LOGIN other@agents.test {key}")).await;
    assert!(a.tagged.contains("NO [AUTHENTICATIONFAILED]"), "{a:?}");
    // AUTHENTICATE PLAIN with SASL-IR.
    let ir = data_encoding::BASE64.encode(format!("\0bot@agents.test\0{key}").as_bytes());
    let a = c.cmd(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert!(a.ok() && a.tagged.contains("IMAP4rev2"), "{a:?}");
    // Logged-in capabilities name what the issue asks for.
    for cap in [
        "IDLE",
        "CONDSTORE",
        "QRESYNC",
        "UIDPLUS",
        "MOVE",
        "SPECIAL-USE",
        "ESEARCH",
        "LITERAL+",
        "QUOTA",
        "APPENDLIMIT=",
        "BINARY",
        "LIST-STATUS",
        "STATUS=SIZE",
    ] {
        assert!(a.tagged.contains(cap), "{cap} missing in {}", a.tagged);
    }
    let audit = s
        .call(
            "GET",
            "/v1/audit?action=imap.login",
            Some(&s.admin_token),
            None,
        )
        .await
        .1;
    assert!(audit.to_string().contains("imap.login"), "{audit}");
}

#[tokio::test]
async fn authenticate_plain_without_initial_response_uses_a_continuation() {
    let s = start().await;
    let (_, key) = bot(&s).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (c, _) = ImapClient::connect(s.imap_addr()).await;
    let mut c = c.starttls(&tls).await;
    c.write(b"a1 AUTHENTICATE PLAIN\r\n").await;
    let cont = c.read_line().await;
    assert!(cont.starts_with('+'), "{cont}");
    let resp = data_encoding::BASE64.encode(format!("\0bot@agents.test\0{key}").as_bytes());
    let a = c.raw("a1", format!("{resp}\r\n").as_bytes()).await;
    assert!(a.ok(), "{a:?}");
}

#[tokio::test]
async fn folders_list_with_special_use_and_status() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("one", "first"))
        .await;
    let mut c = session(&s, &key).await;
    let l = c.cmd("LIST \"\" \"*\"").await;
    assert!(l.ok());
    let all = l.all();
    for (name, attr) in [
        ("INBOX", ""),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Trash", "\\Trash"),
        ("Archive", "\\Archive"),
    ] {
        let line = l
            .untagged
            .iter()
            .find(|x| x.trim_end().ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} in {all}"));
        assert!(line.contains(attr), "{line}");
    }
    let l = c
        .cmd("LIST (SPECIAL-USE) \"\" \"*\" RETURN (STATUS (MESSAGES UNSEEN))")
        .await;
    assert!(l.ok(), "{l:?}");
    assert!(!l.all().contains(") \"/\" INBOX"), "{}", l.all());
    assert_eq!(l.lines("STATUS").len(), 5, "{}", l.all());
    let st = c
        .cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE HIGHESTMODSEQ)")
        .await;
    let line = st.lines("STATUS")[0];
    assert!(
        line.contains("MESSAGES 1") && line.contains("UNSEEN 1") && line.contains("UIDNEXT 2"),
        "{line}"
    );
    let ns = c.cmd("NAMESPACE").await;
    assert!(
        ns.all().contains("* NAMESPACE ((\"\" \"/\")) NIL NIL"),
        "{}",
        ns.all()
    );
    let q = c.cmd("GETQUOTAROOT INBOX").await;
    assert!(q.all().contains("* QUOTA \"\" (STORAGE"), "{}", q.all());
    let cr = c.cmd("CREATE Trash").await;
    assert!(cr.tagged.contains("NO [ALREADYEXISTS]"), "{cr:?}");
    let cr = c.cmd("CREATE a/b").await;
    assert!(cr.tagged.contains("NO [CANNOT]"), "{cr:?}");
    let del = c.cmd("DELETE Sent").await;
    assert!(del.tagged.contains("NO [CANNOT]"), "{del:?}");
    let sel = c.cmd("SELECT Nowhere").await;
    assert!(sel.tagged.contains("NO [NONEXISTENT]"), "{sel:?}");
}

#[tokio::test]
async fn fetch_store_search_copy_move_expunge_and_append() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    for i in 1..=3 {
        s.deliver(
            &id,
            Folder::Inbox,
            &message(&format!("note {i}"), &format!("body {i} Grüße")),
        )
        .await;
    }
    let mut c = session(&s, &key).await;
    let sel = c.cmd("SELECT INBOX").await;
    assert!(sel.ok() && sel.tagged.contains("[READ-WRITE]"), "{sel:?}");
    assert!(sel.all().contains("* 3 EXISTS") && sel.all().contains("[UIDVALIDITY "));
    assert!(sel.all().contains("[UIDNEXT 4]") && sel.all().contains("[HIGHESTMODSEQ "));

    let f = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)").await;
    assert_eq!(f.lines("FETCH").len(), 3, "{}", f.all());
    assert!(f.all().contains("\"note 2\""), "{}", f.all());
    // PEEK leaves \Seen alone; a plain BODY[] sets it and says so.
    let raw = message("note 1", "body 1 Grüße");
    let f = c.cmd("UID FETCH 1 (BODY.PEEK[])").await;
    assert!(
        f.all().contains(&String::from_utf8_lossy(&raw).to_string()),
        "{}",
        f.all()
    );
    let f = c.cmd("FETCH 1 (FLAGS)").await;
    assert!(!f.all().contains("\\Seen"), "{}", f.all());
    let f = c.cmd("FETCH 1 (BODY[TEXT])").await;
    assert!(f.all().contains("FLAGS (\\Seen)"), "{}", f.all());
    let f = c.cmd("FETCH 1 (FLAGS)").await;
    assert!(f.all().contains("\\Seen"), "{}", f.all());
    // Partial fetches.
    let f = c.cmd("FETCH 2 (BODY.PEEK[TEXT]<0.4>)").await;
    assert!(f.all().contains("BODY[TEXT]<0> {4}\r\nbody"), "{}", f.all());

    // STORE, then SEARCH by flag, by text (non-ASCII, as a literal) and ESEARCH.
    let st = c.cmd("STORE 2 +FLAGS (\\Flagged $Work)").await;
    assert!(
        st.all().contains("FLAGS (") && st.all().contains("\\Flagged"),
        "{}",
        st.all()
    );
    let se = c.cmd("SEARCH FLAGGED").await;
    assert!(se.all().contains("* SEARCH 2\r\n"), "{}", se.all());
    let se = c.cmd("UID SEARCH KEYWORD $Work").await;
    assert!(se.all().contains("* SEARCH 2\r\n"), "{}", se.all());
    let word = "grüße";
    c.write(format!("s1 UID SEARCH CHARSET UTF-8 BODY {{{}}}\r\n", word.len()).as_bytes())
        .await;
    assert!(c.read_line().await.starts_with('+'));
    let se = c.raw("s1", format!("{word}\r\n").as_bytes()).await;
    assert!(se.all().contains("* SEARCH 1 2 3\r\n"), "{}", se.all());
    let se = c.cmd("UID SEARCH RETURN (MIN MAX COUNT) ALL").await;
    assert!(se.all().contains("UID MIN 1 MAX 3 COUNT 3"), "{}", se.all());
    let se = c.cmd("SEARCH NOT SUBJECT \"note 1\" OR FLAGGED SEEN").await;
    assert!(se.all().contains("* SEARCH 2\r\n"), "{}", se.all());

    // COPY keeps the original; MOVE keeps flags and expunges; both report COPYUID.
    let cp = c.cmd("UID COPY 1 Archive").await;
    assert!(cp.tagged.contains("[COPYUID "), "{cp:?}");
    let mv = c.cmd("UID MOVE 2 Archive").await;
    assert!(
        mv.all().contains("[COPYUID ") && mv.all().contains("* 2 EXPUNGE"),
        "{}",
        mv.all()
    );
    let ex = c.cmd("EXAMINE Archive").await;
    assert!(
        ex.tagged.contains("[READ-ONLY]") && ex.all().contains("* 2 EXISTS"),
        "{ex:?}"
    );
    let f = c.cmd("FETCH 2 (FLAGS)").await;
    assert!(
        f.all().contains("\\Flagged") && f.all().contains("$Work"),
        "{}",
        f.all()
    );

    // UID EXPUNGE removes only the named \Deleted messages.
    c.cmd("SELECT INBOX").await;
    c.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    let ue = c.cmd("UID EXPUNGE 3").await;
    assert!(
        ue.all().contains("* 2 EXPUNGE") && !ue.all().contains("* 1 EXPUNGE"),
        "{}",
        ue.all()
    );
    let ex = c.cmd("EXPUNGE").await;
    assert!(ex.all().contains("* 1 EXPUNGE"), "{}", ex.all());

    // APPEND then FETCH byte-identical, with APPENDUID.
    let msg = b"From: me@agents.test\r\nSubject: draft \xc3\xa9\r\n\r\nline one\r\nline two\r\n";
    c.write(format!("ap APPEND Drafts (\\Draft) {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    let ap = c.raw("ap", &[msg.as_slice(), b"\r\n"].concat()).await;
    assert!(ap.tagged.contains("[APPENDUID "), "{ap:?}");
    c.cmd("SELECT Drafts").await;
    let f = c.cmd("FETCH 1 (FLAGS BODY.PEEK[])").await;
    assert!(
        f.all().contains(&String::from_utf8_lossy(msg).to_string()),
        "{}",
        f.all()
    );
    assert!(f.all().contains("\\Draft"));
    // The REST API sees the same message.
    let (st, v) = s
        .call("GET", "/v1/messages?folder=Drafts", Some(&key), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"][0]["subject"], "draft é");
}

#[tokio::test]
async fn sent_dates_are_compared_in_the_date_fields_own_zone() {
    // RFC 9051 §6.4.4: SENTON and friends disregard time and timezone. 23:30 -0800 on the
    // 25th is the 26th in UTC, but the message was sent on the 25th.
    let s = start().await;
    let (id, key) = bot(&s).await;
    let raw = b"From: a@remote.test\r\nTo: bot@agents.test\r\nSubject: late\r\n\
Date: Wed, 25 Nov 2026 23:30:00 -0800\r\n\r\nbody\r\n";
    s.deliver(&id, Folder::Inbox, raw).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    for (query, hit) in [
        ("SENTON 25-Nov-2026", true),
        ("SENTON 26-Nov-2026", false),
        ("SENTBEFORE 26-Nov-2026", true),
        ("SENTSINCE 26-Nov-2026", false),
        ("SENTSINCE 25-Nov-2026", true),
    ] {
        let se = c.cmd(&format!("SEARCH {query}")).await;
        let want = if hit {
            "* SEARCH 1\r\n"
        } else {
            "* SEARCH\r\n"
        };
        assert!(se.all().contains(want), "{query}: {}", se.all());
    }
}

#[tokio::test]
async fn bodystructure_of_alternative_with_attachment_and_binary() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    let raw = b"From: a@remote.test\r\nTo: bot@agents.test\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nplain text\r\n--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--inner--\r\n--outer\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--outer--\r\n";
    s.deliver(&id, Folder::Inbox, raw).await;
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    let f = c.cmd("FETCH 1 (BODYSTRUCTURE)").await;
    let all = f.all();
    assert!(all.contains("\"ALTERNATIVE\""), "{all}");
    assert!(all.contains("\"MIXED\""), "{all}");
    assert!(all.contains("\"APPLICATION\" \"OCTET-STREAM\""), "{all}");
    assert!(
        all.contains("\"attachment\"") || all.contains("\"ATTACHMENT\""),
        "{all}"
    );
    let f = c
        .cmd("FETCH 1 (BODY.PEEK[1.2] BINARY.PEEK[2] BINARY.SIZE[2])")
        .await;
    let all = f.all();
    assert!(all.contains("<p>html</p>"), "{all}");
    assert!(all.contains("BINARY.SIZE[2] 5"), "{all}");
    assert!(
        all.contains("BINARY[2] ~{5}\r\n\u{0}\u{1}\u{2}\u{3}\u{4}"),
        "{all}"
    );
}

#[tokio::test]
async fn uids_uidvalidity_flags_and_modseq_survive_a_restart() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    for i in 1..=3 {
        s.deliver(&id, Folder::Inbox, &message(&format!("m{i}"), "x"))
            .await;
    }
    let mut c = session(&s, &key).await;
    c.cmd("SELECT INBOX").await;
    c.cmd("STORE 2 +FLAGS (\\Answered)").await;
    c.cmd("STORE 1 +FLAGS (\\Deleted)").await;
    c.cmd("EXPUNGE").await;
    let before_sel = c.cmd("SELECT INBOX").await;
    let before = c.cmd("FETCH 1:* (UID FLAGS MODSEQ)").await;
    c.cmd("LOGOUT").await;
    let s = s.restart().await;
    let mut c = session(&s, &key).await;
    let after_sel = c.cmd("SELECT INBOX").await;
    let after = c.cmd("FETCH 1:* (UID FLAGS MODSEQ)").await;
    let pick = |a: &legate_tests::imap::Answer, code: &str| {
        a.untagged
            .iter()
            .find(|l| l.contains(code))
            .cloned()
            .unwrap_or_default()
    };
    for code in ["UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "EXISTS"] {
        assert_eq!(pick(&before_sel, code), pick(&after_sel, code), "{code}");
    }
    assert_eq!(before.untagged, after.untagged);
    assert!(
        after.all().contains("UID 2 FLAGS (\\Answered)"),
        "{}",
        after.all()
    );
}

#[tokio::test]
async fn the_agents_own_folders_are_created_renamed_and_deleted() {
    let s = start().await;
    let (id, key) = bot(&s).await;
    s.deliver(&id, Folder::Inbox, &message("keep me", "x"))
        .await;
    let mut c = session(&s, &key).await;
    assert!(c.cmd("CREATE Projects").await.ok());
    let again = c.cmd("CREATE Projects").await;
    assert!(again.tagged.contains("NO [ALREADYEXISTS]"), "{again:?}");
    let l = c.cmd("LIST \"\" *").await;
    assert!(l.all().contains("\"/\" Projects\r\n"), "{}", l.all());
    c.cmd("SELECT INBOX").await;
    let cp = c.cmd("COPY 1 Projects").await;
    assert!(cp.tagged.contains("[COPYUID "), "{cp:?}");
    let miss = c.cmd("COPY 1 Nowhere").await;
    assert!(miss.tagged.contains("[TRYCREATE]"), "{miss:?}");
    let sel = c.cmd("SELECT Projects").await;
    assert!(sel.all().contains("* 1 EXISTS"), "{}", sel.all());
    let validity = |a: &legate_tests::imap::Answer| {
        a.all()
            .split("[UIDVALIDITY ")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .map(str::to_string)
            .unwrap_or_default()
    };
    let first = validity(&sel);
    // REST lists and moves into the folder by its name.
    let (st, v) = s
        .call("GET", "/v1/messages?folder=Projects", Some(&key), None)
        .await;
    assert_eq!(
        (st, v["items"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    c.cmd("UNSELECT").await;
    assert!(c.cmd("RENAME Projects Done").await.ok());
    let l = c.cmd("LIST \"\" *").await;
    assert!(
        !l.all().contains("Projects") && l.all().contains("Done"),
        "{}",
        l.all()
    );
    let sel = c.cmd("SELECT Done").await;
    assert!(sel.all().contains("* 1 EXISTS"), "{}", sel.all());
    c.cmd("UNSELECT").await;
    assert!(c.cmd("DELETE Done").await.ok());
    assert!(c
        .cmd("SELECT Done")
        .await
        .tagged
        .contains("NO [NONEXISTENT]"));
    // The same name again is a new folder: a new UIDVALIDITY, UIDs from 1.
    assert!(c.cmd("CREATE Projects").await.ok());
    let sel = c.cmd("SELECT Projects").await;
    assert!(sel.all().contains("* 0 EXISTS") && sel.all().contains("[UIDNEXT 1]"));
    assert_ne!(validity(&sel), first);
    // The INBOX message was copied, never moved.
    let st = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(st.all().contains("MESSAGES 1"), "{}", st.all());
}

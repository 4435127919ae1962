#!/usr/bin/env python3
"""Python imaplib against legate's IMAP listener over STARTTLS: every command the server
advertises, one printed line per assertion ("ok   - ..." / "FAIL - ..."), read by
suites/50_imap.sh. Commands imaplib has no method for (LITERAL+, ESEARCH options, IDLE on
Python < 3.14, ...) go through `raw`, which writes the bytes and reads to the tagged answer.

Usage: imap_client.py HOST IMAP_PORT SMTP_PORT ADDRESS KEY CA_FILE
"""
import base64
import imaplib
import re
import smtplib
import socket
import ssl
import sys
import time

HOST, PORT, SMTP_PORT, USER, KEY, CA = sys.argv[1:7]
PORT, SMTP_PORT = int(PORT), int(SMTP_PORT)
failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print(f"ok   - imaplib: {name}", flush=True)
    else:
        failures += 1
        extra = f" ({str(detail)[:300]})" if detail != "" else ""
        print(f"FAIL - imaplib: {name}{extra}", flush=True)


def tls_context():
    ctx = ssl.create_default_context(cafile=CA)
    # The dev certificate names the server's hostname (mx.agents.test), not 127.0.0.1.
    ctx.check_hostname = False
    return ctx


def raw(M, payload: bytes):
    """Sends `TAG payload CRLF` and reads to the tagged reply. Returns (tagged, untagged)
    with untagged a list of bytes (literals inlined)."""
    tag = M._new_tag()
    M.send(tag + b" " + payload + b"\r\n")
    return read_tagged(M, tag)


def read_tagged(M, tag):
    untagged, cur = [], b""
    while True:
        line = M.readline()
        if not line:
            raise EOFError("connection closed")
        cur += line
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        if m:
            cur += M.read(int(m.group(1)))
            continue
        if cur.startswith(tag + b" "):
            return cur.rstrip(b"\r\n"), untagged
        untagged.append(cur.rstrip(b"\r\n"))
        cur = b""


def flat(data):
    """imaplib answer data (bytes and (head, literal) tuples) as one bytes string."""
    out = b""
    for d in data:
        if isinstance(d, tuple):
            out += b"".join(d)
        elif d is not None:
            out += d
        out += b"\n"
    return out


def literal_of(data, marker: bytes):
    """The literal that follows `marker` in a FETCH answer."""
    for d in data:
        if isinstance(d, tuple) and marker in d[0]:
            return d[1]
    return None


def uids_of(data):
    """Numbers of a SEARCH answer, without the (MODSEQ n) a CONDSTORE search appends."""
    return sorted(int(x) for x in re.sub(rb"\(MODSEQ \d+\)", b"", data[0] or b"").split())


def connect():
    M = imaplib.IMAP4(HOST, PORT)
    M.starttls(tls_context())
    return M


def login():
    M = connect()
    M.login(USER, KEY)
    return M


def crlf(s: str) -> bytes:
    return s.replace("\r\n", "\n").replace("\n", "\r\n").encode()


ATTACHMENT = bytes(range(256)) * 8
MIXED = crlf(
    f"""From: Ann Sender <ann@remote.test>
To: Bot <{USER}>
Cc: carol@remote.test
Subject: Quarterly report
Date: Tue, 10 Nov 2026 09:30:00 +0000
Message-ID: <mixed-1@remote.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello plain, the pike (щука) swims.
--alt
Content-Type: text/html; charset=utf-8

<p>Hello <b>html</b></p>
--alt--
--mix
Content-Type: application/octet-stream; name="report.bin"
Content-Disposition: attachment; filename="report.bin"
Content-Transfer-Encoding: base64

"""
) + base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n") + b"--mix--\r\n"


def simple(subject, body, frm="ann@remote.test", date="Mon, 23 Nov 2026 10:00:00 +0000", extra=""):
    return crlf(
        f"From: {frm}\nTo: {USER}\nSubject: {subject}\nDate: {date}\n"
        f"Message-ID: <{subject.replace(' ', '.')}@remote.test>\n{extra}\n{body}\n"
    )


def main():
    # --- not authenticated: CAPABILITY, NOOP, STARTTLS, LOGINDISABLED, LOGOUT ----------------
    M = imaplib.IMAP4(HOST, PORT)
    caps = M.capabilities
    check("greeting capabilities offer STARTTLS", "STARTTLS" in caps, caps)
    check("plaintext LOGIN is disabled before STARTTLS", "LOGINDISABLED" in caps, caps)
    typ, _ = M.noop()
    check("NOOP before login is OK", typ == "OK")
    try:
        M.login(USER, KEY)
        check("LOGIN in clear text is refused", False)
    except imaplib.IMAP4.error as e:
        check("LOGIN in clear text is refused with PRIVACYREQUIRED", "PRIVACYREQUIRED" in str(e), e)
    M.starttls(tls_context())
    caps = M.capabilities
    check("STARTTLS: CAPABILITY after TLS offers AUTH=PLAIN, not STARTTLS",
          "AUTH=PLAIN" in caps and "STARTTLS" not in caps, caps)
    typ, data = M.capability()
    check("CAPABILITY command answers", typ == "OK" and b"IMAP4REV1" in data[0].upper(), data)
    typ, _ = M.authenticate("PLAIN", lambda _: f"\0{USER}\0{KEY}".encode())
    check("AUTHENTICATE PLAIN", typ == "OK")
    tagged, un = raw(M, b"CAPABILITY")
    caps = b" ".join(un)
    for cap in [b"IDLE", b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MOVE", b"SPECIAL-USE",
                b"ESEARCH", b"LITERAL+", b"QUOTA", b"BINARY", b"LIST-STATUS", b"STATUS=SIZE",
                b"NAMESPACE", b"UNSELECT", b"ENABLE", b"ID", b"APPENDLIMIT="]:
        check(f"logged-in CAPABILITY has {cap.decode()}", cap in caps, caps)
    typ, data = M.logout()
    check("LOGOUT says BYE", typ == "BYE", (typ, data))

    # Wrong key: NO [AUTHENTICATIONFAILED].
    M = connect()
    try:
        M.login(USER, "lg_WRONGWRONGWRONGWRONG")
        check("LOGIN with a wrong key fails", False)
    except imaplib.IMAP4.error as e:
        check("LOGIN with a wrong key fails with AUTHENTICATIONFAILED", "AUTHENTICATIONFAILED" in str(e), e)
    M.logout()

    # --- authenticated: LOGIN, ENABLE, ID, NAMESPACE, LIST, LSUB, STATUS ----------------------
    M = login()
    check("LOGIN over STARTTLS", M.state == "AUTH")
    typ, data = M.enable("CONDSTORE")
    check("ENABLE CONDSTORE answers ENABLED CONDSTORE",
          typ == "OK" and b"CONDSTORE" in flat(M.untagged_responses.get("ENABLED", [])), M.untagged_responses)
    typ, data = M.xatom("ID", '("name" "imaplib" "version" "3")')
    check("ID answers with the server's ID", typ == "OK" and "ID" in M.untagged_responses, (typ, data))
    typ, data = M.namespace()
    check("NAMESPACE has a personal namespace", typ == "OK" and data[0].startswith(b"(("), data)
    typ, data = M.list()
    names = flat(data)
    for f in [b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"]:
        check(f"LIST shows {f.decode()}", f in names, names)
    tagged, un = raw(M, b'LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT UNSEEN SIZE))')
    body = b"\n".join(un)
    check("LIST RETURN (SPECIAL-USE STATUS): OK", tagged.split()[1] == b"OK", tagged)
    check("LIST RETURN SPECIAL-USE marks \\Sent and \\Trash", b"\\Sent" in body and b"\\Trash" in body, body)
    check("LIST RETURN STATUS gives STATUS lines with SIZE",
          body.count(b"* STATUS") >= 6 and b"SIZE" in body, body)
    tagged, un = raw(M, b'LIST (SPECIAL-USE) "" "*"')
    body = b"\n".join(un)
    check("LIST (SPECIAL-USE) selects only special-use folders",
          tagged.split()[1] == b"OK" and b"INBOX" not in body and b"\\Junk" in body, body)
    typ, data = M.lsub()
    check("LSUB lists the subscribed folders", typ == "OK" and b"INBOX" in flat(data), data)
    typ, data = M.subscribe("Archive")
    check("SUBSCRIBE an existing folder is OK", typ == "OK", data)
    typ, data = M.unsubscribe("Archive")
    check("UNSUBSCRIBE answers", typ in ("OK", "NO"), data)
    # System folders stay; the agent's own are created, renamed and deleted.
    for cmd, args in [("delete", ("Archive",)), ("rename", ("Archive", "Old"))]:
        tagged, _ = raw(M, (cmd.upper() + " " + " ".join(args)).encode())
        check(f"{cmd.upper()} of a system folder is NO [CANNOT]", b"NO [CANNOT]" in tagged, tagged)
    typ, data = M.create("Projects")
    check("CREATE an own folder", typ == "OK", data)
    typ, data = M.rename("Projects", "Done")
    check("RENAME an own folder", typ == "OK", data)
    typ, data = M.list()
    check("LIST shows the renamed folder only", b"Done" in flat(data) and b"Projects" not in flat(data), data)
    typ, data = M.delete("Done")
    check("DELETE an own folder", typ == "OK", data)
    typ, data = M.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ)")
    s = flat(data)
    check("STATUS with SIZE and HIGHESTMODSEQ", typ == "OK" and b"SIZE" in s and b"HIGHESTMODSEQ" in s, s)
    tagged, un = raw(M, b"GETQUOTAROOT INBOX")
    body = b"\n".join(un)
    check("GETQUOTAROOT gives QUOTAROOT and a STORAGE quota",
          tagged.split()[1] == b"OK" and b"QUOTAROOT" in body and b"STORAGE" in body, body)

    # --- APPEND (sync literal, LITERAL+), byte-identical FETCH ---------------------------------
    typ, data = M.append("INBOX", r"(\Seen)", imaplib.Time2Internaldate(time.time()), MIXED)
    check("APPEND multipart message gives APPENDUID", typ == "OK" and b"APPENDUID" in flat(data), data)
    m = re.search(rb"APPENDUID (\d+) (\d+)", flat(data))
    uid_mixed = int(m.group(2)) if m else 0
    msgs = [
        simple("alpha one", "first body with needle", date="Mon, 02 Nov 2026 08:00:00 +0000"),
        simple("beta two", "second body", frm="bob@other.test", date="Fri, 20 Nov 2026 08:00:00 +0000"),
        simple("gamma three", "third body " + "x" * 3000, extra="X-Custom: marker-42\n"),
    ]
    uids = []
    for i, msg in enumerate(msgs):
        lit = b"APPEND INBOX (\\Flagged) \"01-Jan-2026 12:00:00 +0000\" {%d+}\r\n" % len(msg) + msg
        if i == 0:
            lit = b"APPEND INBOX {%d+}\r\n" % len(msg) + msg
        tagged, _ = raw(M, lit)
        m = re.search(rb"APPENDUID (\d+) (\d+)", tagged)
        uids.append(int(m.group(2)) if m else 0)
        check(f"APPEND with LITERAL+ #{i + 1}", tagged.split()[1] == b"OK" and m is not None, tagged)
    uid_a, uid_b, uid_c = uids

    # --- SELECT / EXAMINE ---------------------------------------------------------------------
    typ, data = M.select("INBOX", readonly=True)
    check("EXAMINE INBOX is read-only with 4 messages", typ == "OK" and data == [b"4"], data)
    check("EXAMINE answers READ-ONLY", "READ-ONLY" in M.untagged_responses, M.untagged_responses.keys())
    typ, data = M.store("1", "+FLAGS", r"\Deleted")
    check("STORE in EXAMINE is refused", typ == "NO", data)
    typ, data = M.select("INBOX")
    check("SELECT INBOX", typ == "OK" and data == [b"4"], data)
    for k in ["UIDVALIDITY", "UIDNEXT", "FLAGS", "PERMANENTFLAGS", "HIGHESTMODSEQ"]:
        check(f"SELECT gives {k}", k in M.untagged_responses, list(M.untagged_responses))

    # --- FETCH ---------------------------------------------------------------------------------
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[])")
    check("APPEND then FETCH BODY[] is byte-identical", literal_of(data, b"BODY[]") == MIXED,
          (len(MIXED), len(literal_of(data, b"BODY[]") or b"")))
    typ, data = M.uid("FETCH", str(uid_a), "(BODY.PEEK[])")
    check("LITERAL+ APPEND then FETCH is byte-identical", literal_of(data, b"BODY[]") == msgs[0])
    typ, data = M.uid("FETCH", str(uid_mixed), "(FLAGS UID INTERNALDATE RFC822.SIZE)")
    s = flat(data)
    check("FETCH FLAGS has \\Seen from APPEND", b"\\Seen" in s, s)
    check("FETCH RFC822.SIZE is the message size", f"RFC822.SIZE {len(MIXED)}".encode() in s, s)
    check("FETCH INTERNALDATE", re.search(rb'INTERNALDATE "\d\d-\w{3}-\d{4} ', s) is not None, s)
    check("FETCH UID", f"UID {uid_mixed}".encode() in s, s)
    typ, data = M.uid("FETCH", str(uid_c), "(INTERNALDATE FLAGS)")
    s = flat(data)
    check("APPEND date-time becomes INTERNALDATE", b"01-Jan-2026 12:00:00 +0000" in s, s)
    check("APPEND flags are kept", b"\\Flagged" in s, s)
    typ, data = M.uid("FETCH", str(uid_mixed), "(ENVELOPE)")
    s = flat(data)
    check("ENVELOPE has date, subject, from, cc and message-id",
          b'"Tue, 10 Nov 2026 09:30:00 +0000" "Quarterly report" (("Ann Sender" NIL "ann" "remote.test"))' in s
          and b'(NIL NIL "carol" "remote.test")' in s and b'"<mixed-1@remote.test>"' in s, s)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODYSTRUCTURE)")
    s = flat(data)
    check("BODYSTRUCTURE: mixed(alternative(plain, html), attachment)",
          re.search(rb'BODYSTRUCTURE \(\(\("TEXT" "PLAIN".*\)\("TEXT" "HTML".*\) "ALTERNATIVE".*\)\("APPLICATION" "OCTET-STREAM".*"MIXED"',
                    s, re.I | re.S) is not None, s)
    check("BODYSTRUCTURE names the attachment's filename and encoding",
          b'"report.bin"' in s and b'"BASE64"' in s.upper(), s)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY)")
    check("FETCH BODY (non-extensible structure)", typ == "OK" and b"BODY ((" in flat(data), data)
    head, text = MIXED.split(b"\r\n\r\n", 1)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[HEADER])")
    check("BODY[HEADER] is the header and its blank line", literal_of(data, b"HEADER") == head + b"\r\n\r\n")
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[HEADER.FIELDS (Subject From)])")
    v = literal_of(data, b"HEADER.FIELDS") or b""
    check("BODY[HEADER.FIELDS (Subject From)]",
          v == b"From: Ann Sender <ann@remote.test>\r\nSubject: Quarterly report\r\n\r\n", v)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[HEADER.FIELDS.NOT (Subject From Content-Type)])")
    v = literal_of(data, b"HEADER.FIELDS.NOT") or b""
    check("BODY[HEADER.FIELDS.NOT (...)] leaves out those fields",
          b"Subject:" not in v and b"From:" not in v and b"Message-ID:" in v and v.endswith(b"\r\n\r\n"), v)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[TEXT])")
    check("BODY[TEXT] is the body", literal_of(data, b"TEXT") == text)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[1.2])")
    v = literal_of(data, b"1.2") or b""
    check("BODY[1.2] is the HTML part", v.strip() == b"<p>Hello <b>html</b></p>", v)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[1.1.MIME])")
    v = literal_of(data, b"MIME") or b""
    check("BODY[1.1.MIME] is the part's MIME header",
          v.startswith(b"Content-Type: text/plain; charset=utf-8\r\n") and v.endswith(b"\r\n\r\n"), v)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[2.MIME])")
    v = literal_of(data, b"MIME") or b""
    check("BODY[2.MIME] names the attachment", b"report.bin" in v, v)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[]<0.20>)")
    check("partial BODY[]<0.20>", literal_of(data, b"BODY[]<0>") == MIXED[:20], data)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BODY.PEEK[TEXT]<5.10>)")
    check("partial BODY[TEXT]<5.10>", literal_of(data, b"TEXT]<5>") == text[5:15], data)
    typ, data = M.uid("FETCH", str(uid_mixed), "(BINARY.PEEK[2] BINARY.SIZE[2])")
    s = flat(data)
    check("BINARY[2] is the decoded attachment", literal_of(data, b"BINARY[2]") == ATTACHMENT
          or (b"~{" in s and ATTACHMENT in s), s[:200])
    check("BINARY.SIZE[2] is the decoded size", f"BINARY.SIZE[2] {len(ATTACHMENT)}".encode() in s, s[:200])
    typ, data = M.uid("FETCH", str(uid_mixed), "(MODSEQ)")
    check("FETCH MODSEQ", re.search(rb"MODSEQ \(\d+\)", flat(data)) is not None, data)
    # BODY[] without PEEK sets \Seen.
    typ, data = M.uid("FETCH", str(uid_b), "(FLAGS)")
    check("a new message has no \\Seen", b"\\Seen" not in flat(data), data)
    M.uid("FETCH", str(uid_b), "(BODY[TEXT])")
    typ, data = M.uid("FETCH", str(uid_b), "(FLAGS)")
    check("BODY[] (no PEEK) sets \\Seen", b"\\Seen" in flat(data), data)
    M.untagged_responses.clear()
    typ, data = M.fetch("1:*", "(UID)")
    check("FETCH 1:* by sequence number", typ == "OK" and len(data) == 4, data)
    typ, data = M.fetch("2,4", "(UID)")
    check("FETCH a sequence set", b"2 (UID" in flat(data) and b"4 (UID" in flat(data) and len(data) == 2, data)

    # --- STORE ---------------------------------------------------------------------------------
    typ, data = M.uid("STORE", str(uid_a), "+FLAGS", r"(\Answered $Label1)")
    s = flat(data)
    check("UID STORE +FLAGS answers FLAGS with the keyword", b"\\Answered" in s and b"$Label1" in s, s)
    typ, data = M.uid("STORE", str(uid_a), "-FLAGS", r"(\Answered)")
    check("UID STORE -FLAGS", typ == "OK" and b"\\Answered" not in flat(data), data)
    M.untagged_responses.clear()
    typ, data = M.uid("STORE", str(uid_a), "+FLAGS.SILENT", r"(\Draft)")
    check("STORE .SILENT sends no FLAGS", typ == "OK" and b"FLAGS" not in flat(data), data)
    typ, data = M.uid("FETCH", str(uid_a), "(FLAGS MODSEQ)")
    s = flat(data)
    check("the silent change is stored", b"\\Draft" in s, s)
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", s).group(1))
    tagged, un = raw(M, f"UID STORE {uid_a} (UNCHANGEDSINCE {modseq - 1}) +FLAGS (\\Flagged)".encode())
    check("STORE UNCHANGEDSINCE older than MODSEQ is MODIFIED", b"[MODIFIED" in tagged, tagged)
    tagged, un = raw(M, f"UID STORE {uid_a} (UNCHANGEDSINCE {modseq}) +FLAGS (\\Flagged)".encode())
    check("STORE UNCHANGEDSINCE current MODSEQ applies",
          tagged.split()[1] == b"OK" and b"MODIFIED" not in tagged and b"\\Flagged" in b"".join(un), (tagged, un))

    tagged, un = raw(M, f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})".encode())
    check("UID FETCH (CHANGEDSINCE) returns only the changed message",
          len(un) == 1 and f"UID {uid_a}".encode() in un[0], (tagged, un))

    # --- SEARCH --------------------------------------------------------------------------------
    def search(*crit, uid=True, charset=None):
        if uid:
            typ, data = M.uid("SEARCH", *(["CHARSET", charset] if charset else []), *crit)
        else:
            typ, data = M.search(charset, *crit)
        return typ, uids_of(data)

    everyone = sorted([uid_mixed, uid_a, uid_b, uid_c])
    cases = [
        ("ALL", ("ALL",), everyone),
        ("FLAGGED", ("FLAGGED",), sorted([uid_a, uid_b, uid_c])),
        ("UNFLAGGED", ("UNFLAGGED",), [uid_mixed]),
        ("SEEN", ("SEEN",), sorted([uid_mixed, uid_b])),
        ("UNSEEN", ("UNSEEN",), sorted([uid_a, uid_c])),
        ("DRAFT", ("DRAFT",), [uid_a]),
        ("KEYWORD $Label1", ("KEYWORD", "$Label1"), [uid_a]),
        ("UNKEYWORD $Label1", ("UNKEYWORD", "$Label1"), sorted([uid_mixed, uid_b, uid_c])),
        ("SUBJECT", ("SUBJECT", '"beta"'), [uid_b]),
        ("FROM", ("FROM", "bob@other.test"), [uid_b]),
        ("TO", ("TO", USER), everyone),
        ("CC", ("CC", "carol"), [uid_mixed]),
        ("HEADER X-Custom", ("HEADER", "X-Custom", "marker-42"), [uid_c]),
        ("HEADER Message-ID", ("HEADER", "Message-ID", "mixed-1"), [uid_mixed]),
        ("BODY", ("BODY", "needle"), [uid_a]),
        ("TEXT (header words too)", ("TEXT", "Quarterly"), [uid_mixed]),
        ("LARGER 2500", ("LARGER", "2500"), sorted([uid_mixed, uid_c])),
        ("SMALLER 2500", ("SMALLER", "2500"), sorted([uid_a, uid_b])),
        ("SENTBEFORE", ("SENTBEFORE", "10-Nov-2026"), [uid_a]),
        ("SENTSINCE", ("SENTSINCE", "20-Nov-2026"), sorted([uid_b, uid_c])),
        ("SENTON", ("SENTON", "10-Nov-2026"), [uid_mixed]),
        ("BEFORE (internal date)", ("BEFORE", "02-Jan-2026"), sorted([uid_b, uid_c])),
        ("SINCE (internal date)", ("SINCE", "02-Jan-2026"), sorted([uid_mixed, uid_a])),
        ("ON (internal date)", ("ON", "01-Jan-2026"), sorted([uid_b, uid_c])),
        ("UID set", ("UID", f"{uid_a}:{uid_b}"), sorted([uid_a, uid_b])),
        ("sequence set", ("2,4",), sorted([uid_a, uid_c])),
        ("NOT", ("NOT", "FLAGGED"), [uid_mixed]),
        ("OR", ("OR", "SUBJECT", "alpha", "SUBJECT", "gamma"), sorted([uid_a, uid_c])),
        ("nested NOT/OR", ("NOT", "(OR", "SEEN", "DRAFT)"), [uid_c]),
        ("MODSEQ", ("MODSEQ", str(modseq + 1)), [uid_a]),
        ("YOUNGER", ("YOUNGER", "3600"), sorted([uid_mixed, uid_a])),
    ]
    for name, crit, want in cases:
        typ, got = search(*crit)
        check(f"UID SEARCH {name}", typ == "OK" and got == want, (crit, got, want))
    typ, data = M.uid("SEARCH", "MODSEQ", str(modseq + 1))
    check("a MODSEQ search answers with (MODSEQ n)", re.search(rb"\(MODSEQ \d+\)$", data[0] or b"") is not None, data)
    typ, got = search("FLAGGED", uid=False)
    check("SEARCH (sequence numbers) FLAGGED", got == [2, 3, 4], got)
    # Non-ASCII criteria as a literal (imaplib sends a synchronizing literal).
    M.literal = "щука".encode()
    typ, data = M.uid("SEARCH", "CHARSET", "UTF-8", "BODY")
    got = uids_of(data)
    check("UID SEARCH CHARSET UTF-8 BODY {literal} non-ASCII", typ == "OK" and got == [uid_mixed], (typ, data))
    word = "щука".encode()
    tagged, un = raw(M, b"UID SEARCH CHARSET UTF-8 TEXT {%d+}\r\n" % len(word) + word)
    check("UID SEARCH CHARSET UTF-8 TEXT with LITERAL+", str(uid_mixed).encode() in b"".join(un), (tagged, un))
    tagged, un = raw(M, b"UID SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
    e = b"".join(un)
    lo, hi = min(uid_a, uid_b, uid_c), max(uid_a, uid_b, uid_c)
    check("UID SEARCH RETURN (MIN MAX COUNT ALL) is an ESEARCH",
          e.startswith(b"* ESEARCH (TAG ") and b" UID" in e and f"MIN {lo}".encode() in e
          and f"MAX {hi}".encode() in e and b"COUNT 3" in e and b"ALL " in e, e)
    tagged, un = raw(M, b"SEARCH RETURN (COUNT) ALL")
    check("SEARCH RETURN (COUNT)", b"COUNT 4" in b"".join(un), un)
    tagged, un = raw(M, b"SEARCH RETURN () SUBJECT nothing-matches-this")
    check("ESEARCH with no match", tagged.split()[1] == b"OK" and b"ESEARCH" in b"".join(un), (tagged, un))

    # --- COPY, MOVE, EXPUNGE, UID EXPUNGE, CHECK, CLOSE, UNSELECT -----------------------------
    M.untagged_responses.clear()
    typ, data = M.uid("COPY", str(uid_b), "Archive")
    check("UID COPY gives COPYUID", typ == "OK" and "COPYUID" in M.untagged_responses, M.untagged_responses)
    M.untagged_responses.clear()
    typ, data = M.uid("MOVE", str(uid_a), "Archive")
    check("UID MOVE", typ == "OK", data)
    check("MOVE reports EXPUNGE and COPYUID",
          "EXPUNGE" in M.untagged_responses and "COPYUID" in M.untagged_responses,
          list(M.untagged_responses))
    typ, data = M.status("Archive", "(MESSAGES)")
    check("Archive holds the copy and the moved message", b"MESSAGES 2" in flat(data), data)
    typ, data = M.check()
    check("CHECK", typ == "OK", data)
    typ, data = M.select("INBOX")
    check("INBOX has 3 after the MOVE", data == [b"3"], data)
    M.store("1:*", "+FLAGS", r"\Deleted")
    typ, data = M.uid("EXPUNGE", str(uid_c))
    check("UID EXPUNGE removes only that UID", typ == "OK", data)
    typ, data = M.uid("SEARCH", "ALL")
    check("UID EXPUNGE left the other \\Deleted messages",
          uids_of(data) == sorted([uid_mixed, uid_b]), data)
    M.uid("STORE", str(uid_mixed), "-FLAGS", r"\Deleted")
    M.untagged_responses.clear()
    typ, data = M.expunge()
    check("EXPUNGE removes the rest of \\Deleted", typ == "OK" and len([d for d in data if d]) == 1, data)
    typ, data = M.uid("SEARCH", "ALL")
    check("only the undeleted message is left", data == [str(uid_mixed).encode()], data)
    tagged, _ = raw(M, b"UNSELECT")
    check("UNSELECT", tagged.split()[1] == b"OK", tagged)
    typ, data = M.select("Archive")
    M.uid("SEARCH", "ALL")
    typ, data = M.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    s = flat(data)
    check("MOVE keeps flags (\\Draft $Label1 on the moved message)",
          re.search(rb"FLAGS \([^)]*\\Draft[^)]*\)", s) is not None and b"$Label1" in s, s)
    M.store("1", "+FLAGS", r"\Deleted")
    typ, data = M.close()
    check("CLOSE", typ == "OK", data)
    typ, data = M.status("Archive", "(MESSAGES)")
    check("CLOSE expunged the \\Deleted message", b"MESSAGES 1" in flat(data), data)

    # --- IDLE woken by an SMTP delivery ---------------------------------------------------------
    M.select("INBOX")
    tag = M._new_tag()
    M.send(tag + b" IDLE\r\n")
    cont = M.readline()
    check("IDLE gets a continuation", cont.startswith(b"+"), cont)
    with smtplib.SMTP(HOST, SMTP_PORT, timeout=10) as s:
        s.sendmail("alice@remote.test", [USER], simple("via smtp", "delivered while idling"))
    M.sock.settimeout(10)
    line = b""
    try:
        while not re.match(rb"\* \d+ EXISTS", line):
            line = M.readline()
    except socket.timeout:
        pass
    check("IDLE wakes with EXISTS on an SMTP delivery", re.match(rb"\* \d+ EXISTS", line) is not None, line)
    M.send(b"DONE\r\n")
    tagged, _ = read_tagged(M, tag)
    check("DONE ends IDLE with OK", tagged.split()[1] == b"OK", tagged)
    M.sock.settimeout(None)
    typ, data = M.uid("SEARCH", "SUBJECT", '"via smtp"')
    check("the delivered message is searchable", typ == "OK" and data[0] != b"", data)
    # SENTON compares the Date field's own calendar date: 23:30 -0800 on the 25th is the
    # 26th in UTC, yet it was sent on the 25th.
    late = simple("late evening", "sent late", date="Wed, 25 Nov 2026 23:30:00 -0800")
    M.untagged_responses.clear()
    typ, data = M.append("INBOX", None, None, late)
    check("APPEND into the selected folder answers EXISTS", "EXISTS" in M.untagged_responses,
          list(M.untagged_responses))
    m = re.search(rb"APPENDUID \d+ (\d+)", flat(data))
    uid_late = int(m.group(1)) if m else 0
    typ, got = search("SENTON", "25-Nov-2026")
    check("SENTON uses the Date field's own day (-0800, late evening)", uid_late in got, (uid_late, got))
    typ, got = search("SENTON", "26-Nov-2026")
    check("SENTON is not the day in UTC", uid_late not in got, (uid_late, got))
    typ, data = M.noop()
    check("NOOP when selected", typ == "OK", data)
    typ, data = M.logout()
    check("LOGOUT when selected", typ == "BYE", data)
    return failures


if __name__ == "__main__":
    try:
        sys.exit(1 if main() else 0)
    except Exception as e:  # an unexpected answer aborts the run: one FAIL line says where
        import traceback
        traceback.print_exc()
        print(f"FAIL - imaplib: aborted: {e!r}")
        sys.exit(1)

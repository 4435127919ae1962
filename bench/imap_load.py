#!/usr/bin/env python3
"""Load generator for bench/imap.sh. A minimal IMAP client over raw sockets (no imaplib: it
reads responses in large chunks and skips literals by their length), so that the client costs
far less than the server it measures.

  imap_load.py messages N DIR               write N messages as DIR/NNNNN.eml (the corpus)
  imap_load.py maildir CORPUS MAILDIR       copy the corpus into MAILDIR/new as Maildir files
  imap_load.py smtp CORPUS HOST PORT RCPT   deliver the corpus over SMTP (8 connections)
  imap_load.py fetch HOST PORT USER PASS [headers|bodies]   time FETCH 1:* headers, bodies
  imap_load.py mixed HOST PORT USER PASS CLIENTS SECS   mixed load, prints ops/s
  imap_load.py latency HOST PORT USER PASS  one client: median ms of each mixed-load command
"""
import multiprocessing as mp
import os
import random
import re
import smtplib
import socket
import sys
import threading
import time

WORDS = ("invoice report meeting budget quarterly review deploy status agenda update "
         "customer order shipment release backlog sprint roadmap incident summary").split()
LITERAL = re.compile(rb"\{(\d+)\+?\}$")


def make_message(i: int) -> bytes:
    r = random.Random(i)
    subject = f"{r.choice(WORDS)} {r.choice(WORDS)} #{i}"
    lines = []
    while sum(len(x) + 2 for x in lines) < 3000:
        lines.append(" ".join(r.choice(WORDS) for _ in range(12)))
    day = 1 + i % 28
    head = (f"From: Sender {i % 50} <sender{i % 50}@source.test>\r\n"
            f"To: ops@agents.test\r\nSubject: {subject}\r\n"
            f"Date: Mon, {day:02d} Nov 2026 10:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <bench-{i}@source.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    return head.encode() + "\r\n".join(lines).encode() + b"\r\n"


def corpus(d):
    return [os.path.join(d, f) for f in sorted(os.listdir(d))]


class Client:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.n = 0
        self._line()  # greeting

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def _line(self):
        """One response line, literals included (their bytes are kept)."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            while i < 0:
                self._fill()
                i = self.buf.find(b"\r\n", start)
            m = LITERAL.search(self.buf, max(start, i - 12), i)
            if m:
                end = i + 2 + int(m.group(1))
                while len(self.buf) < end:
                    self._fill()
                start = end
                continue
            line = bytes(self.buf[:i])
            del self.buf[:i + 2]
            return line

    def cmd(self, text: str, keep=False):
        """Runs a command; returns (tagged line, count of untagged lines), or with `keep`
        (tagged line, the untagged lines)."""
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = [] if keep else 0
        while True:
            line = self._line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text[:60]!r}: {line[:200]!r}")
                return line, untagged
            if keep:
                untagged.append(line)
            else:
                untagged += 1

    def login(self, user, pw):
        self.cmd(f'LOGIN "{user}" "{pw}"')


def fetch(host, port, user, pw, only=None):
    """Headers then bodies (`only`: just one of them, so the caller can account the server's
    CPU time to each)."""
    c = Client(host, port)
    c.login(user, pw)
    _, n = c.cmd("SELECT INBOX")
    # Warm-up: both servers build or load their indexes before the timed runs.
    _, total = c.cmd("FETCH 1:* (UID FLAGS)")
    for what, item in (("headers", "BODY.PEEK[HEADER]"), ("bodies", "BODY.PEEK[]")):
        if only and what != only:
            continue
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            _, got = c.cmd(f"FETCH 1:* ({item})")
            runs.append(time.perf_counter() - t)
        runs.sort()
        best = runs[1]  # the median of three
        print(f"{what} {got} {best:.3f} {got / best:.0f}")
    c.cmd("LOGOUT")


def worker(host, port, user, pw, secs, seed, out):
    try:
        out.put(work(host, port, user, pw, secs, seed))
    except Exception as e:  # the parent must not wait for a result that never comes
        print(f"client {seed}: {e!r}", file=sys.stderr)
        out.put((0, {}))


def work(host, port, user, pw, secs, seed):
    r = random.Random(seed)
    c = Client(host, port)
    c.login(user, pw)
    ops = 0
    per = {}

    def timed(name, text, keep=False):
        nonlocal ops
        t = time.perf_counter()
        res = c.cmd(text, keep)
        per[name] = per.get(name, 0.0) + time.perf_counter() - t
        ops += 1
        return res

    end = time.monotonic() + secs
    while time.monotonic() < end:
        _, lines = timed("select", "SELECT INBOX", keep=True)
        exists = next(int(x.split()[1]) for x in lines if x.endswith(b" EXISTS"))
        for _ in range(3):
            seq = r.randint(1, exists)
            timed("fetch", f"FETCH {seq} (UID FLAGS RFC822.SIZE BODY.PEEK[])")
        seq = r.randint(1, exists)
        timed("store", f"STORE {seq} {r.choice('+-')}FLAGS.SILENT (\\Flagged)")
        timed("search", f"UID SEARCH SUBJECT {r.choice(WORDS)} FLAGGED")
        timed("noop", "NOOP")
    c.cmd("LOGOUT")
    return ops, per


def mixed(host, port, user, pw, clients, secs):
    q = mp.Queue()
    procs = [mp.Process(target=worker, args=(host, port, user, pw, secs, i, q)) for i in range(clients)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t
    total = sum(o for o, _ in results)
    per = {}
    for _, d in results:
        for k, v in d.items():
            per[k] = per.get(k, 0.0) + v
    # ops/s over the load window (login and process start excluded by using secs).
    print(f"ops {total} {secs} {total / secs:.0f}")
    print("time-by-command " + " ".join(f"{k}={v:.1f}s" for k, v in sorted(per.items())))
    del wall


# The commands of the mixed load (and two whole-mailbox reads), timed one at a time.
LATENCY = [
    ("SELECT", "SELECT INBOX"),
    ("FETCH 1 body", "FETCH {mid} (UID FLAGS RFC822.SIZE BODY.PEEK[])"),
    ("STORE 1 flag", "STORE {mid} +FLAGS.SILENT (\\Flagged)"),
    ("SEARCH SUBJECT", "UID SEARCH SUBJECT invoice FLAGGED"),
    ("SEARCH UID n:*", "UID SEARCH UID {mid}:*"),
    ("NOOP", "NOOP"),
    ("FETCH 1:* FLAGS", "FETCH 1:* (FLAGS)"),
]


def latency(host, port, user, pw):
    c = Client(host, port)
    c.login(user, pw)
    _, lines = c.cmd("SELECT INBOX", keep=True)
    exists = next(int(x.split()[1]) for x in lines if x.endswith(b" EXISTS"))
    c.cmd("FETCH 1:* (UID FLAGS)")
    for name, text in LATENCY:
        times = []
        for _ in range(11):
            t = time.perf_counter()
            c.cmd(text.format(mid=max(1, exists // 2)))
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(f"{name.replace(' ', '_')} {times[5]:.2f}")
    c.cmd("LOGOUT")


def deliver(files, host, port, rcpt):
    s = smtplib.SMTP(host, port, timeout=60)
    s.ehlo("bench.source.test")
    for f in files:
        with open(f, "rb") as fh:
            s.sendmail("load@source.test", [rcpt], fh.read())
    s.quit()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "messages":
        n, d = int(args[0]), args[1]
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            with open(os.path.join(d, f"{i:05d}.eml"), "wb") as f:
                f.write(make_message(i))
    elif cmd == "maildir":
        files, md = corpus(args[0]), args[1]
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        base = int(time.time()) - len(files)
        for i, f in enumerate(files):
            with open(f, "rb") as fh:
                data = fh.read()
            name = f"{base + i}.M{i}P{os.getpid()}.bench,S={len(data)}"
            with open(os.path.join(md, "new", name), "wb") as out:
                out.write(data)
    elif cmd == "smtp":
        files, host, port, rcpt = corpus(args[0]), args[1], int(args[2]), args[3]
        parts = [files[i::8] for i in range(8)]
        ts = [threading.Thread(target=deliver, args=(p, host, port, rcpt)) for p in parts]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    elif cmd == "fetch":
        fetch(args[0], int(args[1]), args[2], args[3], args[4] if len(args) > 4 else None)
    elif cmd == "latency":
        latency(args[0], int(args[1]), args[2], args[3])
    elif cmd == "mixed":
        mixed(args[0], int(args[1]), args[2], args[3], int(args[4]), float(args[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()

"""Verifies every DKIM-Signature of each message with dkimpy, answering DNS from the records
`legate dkim records --json` prints (what the DNS plan publishes), so no resolver is involved.
Usage: dkim_verify.py RECORDS.json MESSAGE... ; prints one line per signature; exit 0 only when
every message carries an ed25519-sha256 and an rsa-sha256 signature and all of them verify."""
import json
import re
import sys

import dkim

records = json.load(open(sys.argv[1]))
zone = {r["name"].lower().rstrip(".") + ".": r["txt"].encode() for r in records}


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    name = name.lower()
    if not name.endswith("."):
        name += "."
    return zone.get(name)


ok = True
for path in sys.argv[2:]:
    raw = open(path, "rb").read()
    # smtp-sink dumps use bare LF; DKIM is defined over CRLF lines.
    msg = re.sub(rb"\r?\n", b"\r\n", raw)
    # smtp-sink prepends its own X-* trace headers: harmless, they are not signed.
    d = dkim.DKIM(msg)
    sigs = [v for k, v in dkim.rfc822_parse(msg)[0] if k.lower() == b"dkim-signature"]
    algs = set()
    for i, s in enumerate(sigs):
        a = re.search(rb"a=([^;\s]+)", s)
        alg = a.group(1).decode() if a else "?"
        good = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        algs.add(alg)
        print(f"{path}: signature {i} {alg}: {'pass' if good else 'FAIL'}")
        ok &= good
    if not {"ed25519-sha256", "rsa-sha256"} <= algs:
        print(f"{path}: missing a signature algorithm, have {sorted(algs)}")
        ok = False
sys.exit(0 if ok else 1)

#!/usr/bin/env python3
"""Interop for inbound authentication (suite 35): messages signed by dkimpy (ed25519-sha256 and
rsa-sha256) must get dkim=pass from legate, and authheaders (pyspf + dkimpy) must reach the
same spf/dkim/dmarc result words as legate's Authentication-Results on a set of signed,
unsigned, tampered and spoofed messages.

Keys are made here and published through the loopback DNS server's records file; both legate
and the Python side resolve through that server only.

Prints one line per check, "PASS name" or "FAIL name: detail", for the shell suite to count.
Usage: inbound_auth.py --dns-file F --dns-port N --smtp PORT --api URL --key KEY
"""
import argparse
import base64
import json
import os
import re
import smtplib
import time
import urllib.request

import dkim
import dns.resolver
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RCPT = "ops@agents.test"
OUR_ID = "mx.agents.test"


def args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dns-file", required=True)
    ap.add_argument("--dns-port", type=int, required=True)
    ap.add_argument("--smtp", type=int, required=True)
    ap.add_argument("--api", required=True)
    ap.add_argument("--key", required=True)
    return ap.parse_args()


def make_keys():
    seed = os.urandom(32)
    ed_pub = nacl.signing.SigningKey(seed).verify_key.encode()
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rk.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    rsa_pub = rk.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "ed": (base64.b64encode(seed), f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_pub).decode()}"),
        "rsa": (rsa_pem, f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_pub).decode()}"),
    }


def publish(path, keys):
    spf_here = "v=spf1 ip4:127.0.0.1 -all"
    spf_elsewhere = "v=spf1 ip4:192.0.2.1 -all"
    records = {
        "ed._domainkey.signer.test": {"TXT": [keys["ed"][1]]},
        "rsa._domainkey.signer.test": {"TXT": [keys["rsa"][1]]},
        "rsa._domainkey.third.test": {"TXT": [keys["rsa"][1]]},
        "signer.test": {"TXT": [spf_here]},
        "_dmarc.signer.test": {"TXT": ["v=DMARC1; p=none"]},
        "plain.test": {"TXT": [spf_here]},
        "_dmarc.plain.test": {"TXT": ["v=DMARC1; p=none"]},
        "other.test": {"TXT": [spf_here]},
        "third.test": {"TXT": [spf_here]},
        "brand.test": {"TXT": [spf_elsewhere]},
        "_dmarc.brand.test": {"TXT": ["v=DMARC1; p=none"]},
        "victim.test": {"TXT": [spf_elsewhere]},
        "_dmarc.victim.test": {"TXT": ["v=DMARC1; p=none"]},
        "soft.test": {"TXT": ["v=spf1 ip4:192.0.2.1 ~all"]},
        "_dmarc.soft.test": {"TXT": ["v=DMARC1; p=none"]},
        "neutral.test": {"TXT": ["v=spf1 ?all"]},
        "fortress.test": {"TXT": [spf_elsewhere]},
        "_dmarc.fortress.test": {"TXT": ["v=DMARC1; p=reject"]},
        "nospf.test": {"A": ["192.0.2.7"]},
    }
    try:
        with open(path) as f:
            current = json.load(f)
    except (FileNotFoundError, ValueError):
        current = {}
    current.update(records)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(current, f)
    os.replace(tmp, path)


def message(from_addr, subject, body, n):
    return (
        f"From: <{from_addr}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:{n:02d} +0000\r\n"
        f"Message-ID: <interop-{n}-{os.getpid()}@{from_addr.split('@')[1]}>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def sign(msg, keys, which, domain="signer.test"):
    key, _ = keys[which]
    alg = b"ed25519-sha256" if which == "ed" else b"rsa-sha256"
    sig = dkim.sign(
        msg, which.encode(), domain.encode(), key,
        signature_algorithm=alg, include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return sig + msg


def send(port, mail_from, helo, msg):
    """Returns (code, text) of the final reply."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=30) as s:
        try:
            s.sendmail(mail_from, [RCPT], msg)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients[RCPT]
            return code, text.decode(errors="replace")


def api(base, key, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def newest_raw(base, key, message_id):
    """The stored copy of the message whose Message-ID is `message_id`."""
    for _ in range(20):
        items = json.loads(api(base, key, "/v1/messages?limit=20"))["items"]
        for it in items:
            full = json.loads(api(base, key, f"/v1/messages/{it['id']}"))
            hdrs = json.dumps(full.get("headers", "")) + json.dumps(full.get("message_id", ""))
            if message_id in hdrs:
                return api(base, key, f"/v1/messages/{it['id']}/raw")
        time.sleep(0.1)
    return None


def our_words(raw):
    """spf/dkim/dmarc words from legate's Authentication-Results (dkim: all signatures)."""
    text = raw.decode(errors="replace")
    m = re.search(r"^Authentication-Results: " + re.escape(OUR_ID) + r"(.*?)\r\n(?![ \t])", text, re.S | re.M)
    if not m:
        return None
    ar = m.group(1)
    words = {k: re.findall(rf"\b{k}=(\w+)", ar) for k in ("spf", "dkim", "dmarc")}
    algs = re.findall(r"header\.a=([\w-]+)", ar)
    return words, algs


def fix_org_domain():
    """publicsuffix2 (under authheaders) answers "test" as the organizational domain of any
    name under a TLD missing from its list, so every two .test domains look aligned. The PSL
    algorithm (RFC 7489 §3.2) applies the implicit "*" rule there: the org domain is the
    last two labels. Patch only that case; listed suffixes keep publicsuffix2's answer."""
    import authheaders
    import authheaders.dmarc_lookup as lookup

    original = lookup.get_org_domain

    def get_org_domain(domain):
        org = original(domain)
        if "." not in org and domain.count(".") >= 1:
            return ".".join(domain.lower().split(".")[-2:])
        return org

    lookup.get_org_domain = get_org_domain
    authheaders.get_org_domain = get_org_domain


def reference_words(msg, ip, mail_from, helo):
    from authheaders import authenticate_message

    ar = authenticate_message(msg, "reference", ip=ip, mail_from=mail_from, helo=helo,
                              spf=True, dkim=True, dmarc=True)
    words = {k: re.findall(rf"\b{k}=(\w+)", ar) for k in ("spf", "dkim", "dmarc")}
    # authheaders reports a message with no signature at all as dkim=fail (dkimpy's verify()
    # is False); RFC 8601 §2.7.1 calls that "none", which is what legate says.
    if b"dkim-signature:" not in msg.lower():
        words["dkim"] = ["none"]
    return words, ar


def main():
    a = args()
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = a.dns_port
    r.lifetime = 5
    dns.resolver.default_resolver = r  # pyspf, dkimpy and authheaders all resolve through it
    fix_org_domain()

    keys = make_keys()
    publish(a.dns_file, keys)
    time.sleep(0.2)
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"PASS {name}" if ok else f"FAIL {name}: {detail}", flush=True)

    # (b) dkimpy-signed messages, both algorithms, verified by legate
    n = 0
    for which, alg in (("ed", "ed25519-sha256"), ("rsa", "rsa-sha256")):
        n += 1
        msg = sign(message("alice@signer.test", f"dkimpy {alg}", "Signed by dkimpy.", n), keys, which)
        ok_local = dkim.verify(msg)
        check(f"dkimpy verifies its own {alg} signature", ok_local)
        code, text = send(a.smtp, "alice@signer.test", "client.signer.test", msg)
        check(f"dkimpy {alg} message accepted", code == 250, f"{code} {text}")
        raw = newest_raw(a.api, a.key, f"interop-{n}-")
        got = our_words(raw) if raw else None
        check(f"dkimpy {alg} signature gets dkim=pass header.a={alg}",
              got is not None and got[0]["dkim"] == ["pass"] and got[1] == [alg], f"{got}")
    n += 1
    both = sign(sign(message("alice@signer.test", "dkimpy both", "Two signatures.", n), keys, "rsa"), keys, "ed")
    code, text = send(a.smtp, "alice@signer.test", "client.signer.test", both)
    raw = newest_raw(a.api, a.key, f"interop-{n}-") if code == 250 else None
    got = our_words(raw) if raw else None
    check("ed25519 + rsa on one message: two dkim=pass",
          got is not None and got[0]["dkim"] == ["pass", "pass"] and sorted(got[1]) == ["ed25519-sha256", "rsa-sha256"],
          f"{code} {got}")

    # (c) authheaders agrees on spf/dkim/dmarc
    cases = [
        # name, From, MAIL FROM, signing, tamper, expected (spf, dkim, dmarc)
        ("signed ed25519, aligned", "alice@signer.test", "alice@signer.test", ("ed", "signer.test"), False, ("pass", "pass", "pass")),
        ("signed rsa, aligned", "alice@signer.test", "alice@signer.test", ("rsa", "signer.test"), False, ("pass", "pass", "pass")),
        ("unsigned, spf aligned", "bob@plain.test", "bob@plain.test", None, False, ("pass", "none", "pass")),
        ("tampered body, foreign envelope", "alice@signer.test", "bounce@other.test", ("rsa", "signer.test"), True, ("pass", "fail", "fail")),
        ("tampered body, aligned spf", "alice@signer.test", "alice@signer.test", ("ed", "signer.test"), True, ("pass", "fail", "pass")),
        ("spoofed From and envelope", "ceo@victim.test", "ceo@victim.test", None, False, ("fail", "none", "fail")),
        ("spoofed From, own envelope", "ceo@victim.test", "me@plain.test", None, False, ("pass", "none", "fail")),
        ("softfail sender", "x@soft.test", "x@soft.test", None, False, ("softfail", "none", "fail")),
        ("neutral sender", "x@neutral.test", "x@neutral.test", None, False, ("neutral", "none", "none")),
        ("no spf record", "x@nospf.test", "x@nospf.test", None, False, ("none", "none", "none")),
        ("third-party signature", "news@brand.test", "bounce@third.test", ("rsa", "third.test"), False, ("pass", "pass", "fail")),
        ("dmarc p=reject spoof", "ceo@fortress.test", "ceo@fortress.test", None, False, ("fail", "none", "fail")),
    ]
    for name, frm, env, signing, tamper, expected in cases:
        n += 1
        msg = message(frm, name, "Hello from the interop suite.", n)
        if signing:
            msg = sign(msg, keys, signing[0], signing[1])
        if tamper:
            msg = msg.replace(b"Hello from", b"Hullo from")
        helo = "client." + env.split("@")[1]
        ref, ref_ar = reference_words(msg, "127.0.0.1", env, helo)
        ref_t = (ref["spf"][:1], ref["dkim"][:1], ref["dmarc"][:1])
        code, text = send(a.smtp, env, helo, msg)
        if expected[2] == "fail" and frm.endswith("@fortress.test"):
            check(f"{name}: legate refuses 550 5.7.1, authheaders says dmarc=fail",
                  code == 550 and "5.7.1" in text and ref["dmarc"][:1] == ["fail"], f"{code} {text} / {ref_ar}")
            continue
        raw = newest_raw(a.api, a.key, f"interop-{n}-") if code == 250 else None
        got = our_words(raw) if raw else None
        if got is None:
            check(name, False, f"not stored: {code} {text}")
            continue
        ours_t = (got[0]["spf"][:1], got[0]["dkim"][:1], got[0]["dmarc"][:1])
        exp_t = tuple([w] for w in expected)
        check(f"{name}: legate {'/'.join(w[0] for w in ours_t)} == authheaders {'/'.join(w[0] if w else '-' for w in ref_t)}",
              ours_t == ref_t == exp_t, f"legate={ours_t} authheaders={ref_t} expected={exp_t} ({ref_ar})")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

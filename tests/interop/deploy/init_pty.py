"""Drives `legate init` through a pseudo-terminal the way an operator would: answers some
questions, takes defaults on others, corrects a bad answer, and checks the summary.

usage: init_pty.py LEGATE_BIN DATA_DIR HTTP_PORT
"""
import json
import sys

import pexpect

bin_, data, http = sys.argv[1], sys.argv[2], sys.argv[3]
child = pexpect.spawn(bin_, ["init", "--data", data], encoding="utf-8", timeout=60)
child.logfile_read = sys.stdout


def step(prompt, answer):
    child.expect_exact(prompt)
    child.sendline(answer)


step("Agent mail domain (agents get local@domain): ", "not a domain!")
step("is not a valid domain name", "Agents.PTY.Test")
step("This host's name (MX target, EHLO) [mx.agents.pty.test]: ", "")
step(f"Data directory [{data}]: ", "")
step("First admin's email [admin@agents.pty.test]: ", "alice@pty.test")
step("Listen address [0.0.0.0]: ", "127.0.0.1")
step("Ports 25/587/465/143/993/80/443 (0 = off); keep them? [Y/n]: ", "n")
for name, port in [("SMTP (inbound mail)", 0), ("submission (STARTTLS)", 0),
                   ("submissions (implicit TLS)", 0), ("IMAP", 0), ("IMAPS", 0),
                   ("HTTP (API, ACME http-01)", http), ("HTTPS (API, MCP, did:web)", 0)]:
    step(f"{name} port [", str(port))
step("Certificate: self-signed, acme or files [self-signed]: ", "acme")
step("ACME contact email [alice@pty.test]: ", "")
step("ACME directory URL [https://acme-v02.api.letsencrypt.org/directory]: ", "")
step("ACME challenge: http-01 (port 80) or tls-alpn-01 (port 443) [http-01]: ", "tls-alpn-01")
step("Write the configuration into", "y")
child.expect_exact("admin token (shown once): ")
child.expect(r"lg_[A-Z2-7]+")
token = child.after
child.expect_exact("._domainkey.agents.pty.test")
child.expect_exact("v=DKIM1; k=ed25519; p=")
child.expect_exact("legate --config")
child.expect_exact("dns plan")
child.expect(pexpect.EOF)
child.close()
if child.exitstatus != 0:
    sys.exit(f"init exited {child.exitstatus}")
print(json.dumps({"token": token}))

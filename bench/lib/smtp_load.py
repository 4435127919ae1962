"""Load client for bench/smtp_outbound.sh: N messages of about SIZE bytes over SESSIONS parallel
SMTP sessions, each session kept open (STARTTLS + AUTH once, then MAIL/RCPT/DATA per message).
Prints the seconds the submissions took. Usage:
  smtp_load.py HOST PORT N SIZE SESSIONS FROM TO [USER PASSWORD]   (with USER: STARTTLS + AUTH)"""
import smtplib
import ssl
import sys
import threading
import time

host, port, n, size, sessions, sender, rcpt = sys.argv[1:8]
port, n, size, sessions = int(port), int(n), int(size), int(sessions)
user, password = (sys.argv[8], sys.argv[9]) if len(sys.argv) > 9 else (None, None)

line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
body = (line * (size // len(line) + 1))[:size]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
lock = threading.Lock()
next_i = [0]
errors = []


def take():
    with lock:
        i = next_i[0]
        if i >= n:
            return None
        next_i[0] += 1
        return i


def worker():
    s = smtplib.SMTP(host, port, timeout=120)
    s.ehlo("load.test")
    if user:
        s.starttls(context=ctx)
        s.ehlo("load.test")
        s.login(user, password)
    while (i := take()) is not None:
        msg = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: bench {i}\r\n"
               f"Message-ID: <bench{i}.{time.time_ns()}@load.test>\r\n\r\n{body}")
        try:
            s.sendmail(sender, [rcpt], msg.encode())
        except smtplib.SMTPException as e:
            errors.append(repr(e))
    s.quit()


t0 = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"{time.monotonic() - t0:.3f}")
if errors:
    print(f"{len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    sys.exit(1)

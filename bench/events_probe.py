#!/usr/bin/env python3
"""The receiving end of bench/events.sh: a fast webhook endpoint (HTTP/1.1 keep-alive) and,
optionally, an SSE client on /v1/events. Each records, per event, how long after the event's
`created_at` it arrived (ms), one number per line, in --out-webhook / --out-sse."""
import argparse
import datetime
import http.client
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def lag_ms(created_at):
    t = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return (time.time() - t.timestamp()) * 1000.0


def serve_webhook(out, port_file):
    lock = threading.Lock()
    f = open(out, "a", buffering=1)

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            try:
                lag = lag_ms(json.loads(body)["created_at"])
                with lock:
                    f.write(f"{lag:.1f}\n")
            except Exception:
                pass
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    with open(port_file, "w") as p:
        p.write(str(srv.server_address[1]))
    srv.serve_forever()


def follow_sse(base, key, out):
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port)
    c.request("GET", "/v1/events?types=message.received", headers={"Authorization": f"Bearer {key}"})
    r = c.getresponse()
    f = open(out, "a", buffering=1)
    data = ""
    while True:
        line = r.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            try:
                f.write(f"{lag_ms(json.loads(data)['created_at']):.1f}\n")
            except Exception:
                pass
            data = ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-webhook")
    ap.add_argument("--port-file")
    ap.add_argument("--sse-base")
    ap.add_argument("--sse-key")
    ap.add_argument("--out-sse")
    a = ap.parse_args()
    # One process each (events.sh starts two): in one, the SSE reader and the webhook
    # handlers would share Python's GIL and slow each other, timing the probe, not legate.
    if a.port_file:
        serve_webhook(a.out_webhook, a.port_file)
    elif a.sse_base:
        follow_sse(a.sse_base, a.sse_key, a.out_sse)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The SSE client of bench/events.sh (the webhook endpoint is bench/load's webhook-sink): it
follows /v1/events and records, per event, how long after the event's `created_at` it arrived
(ms, one number per line, in --out-sse)."""
import argparse
import datetime
import http.client
import json
import time
import urllib.parse


def lag_ms(created_at):
    t = datetime.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return (time.time() - t.timestamp()) * 1000.0


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
    ap.add_argument("--sse-base", required=True)
    ap.add_argument("--sse-key", required=True)
    ap.add_argument("--out-sse", required=True)
    a = ap.parse_args()
    follow_sse(a.sse_base, a.sse_key, a.out_sse)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A webhook endpoint that verifies every delivery with the `standardwebhooks` package (the
Standard Webhooks reference library), as a real receiver would.

Writes one JSON line per request to --out: {"verified": bool, "type": ..., "error": ...},
answers 204 when the signature verifies and 400 when it does not. Its port goes to
--port-file once it listens."""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with open(args.secret_file) as f:
                secret = f.read().strip()
            rec = {"verified": False}
            try:
                payload = Webhook(secret).verify(body, dict(self.headers.items()))
                rec = {"verified": True, "type": payload.get("type"), "data": payload.get("data")}
                status = 204
            except WebhookVerificationError as e:
                rec["error"] = str(e)
                status = 400
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

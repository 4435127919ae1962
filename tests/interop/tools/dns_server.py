#!/usr/bin/env python3
"""Loopback DNS server for the interop suites and benches (never the internet).

Serves TXT, MX, A and AAAA records from a JSON file, over UDP and TCP on the same port:

    {"sel._domainkey.signer.test": {"TXT": ["v=DKIM1; k=ed25519; p=..."]},
     "signer.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"], "MX": [[10, "mx.signer.test"]],
                     "A": ["127.0.0.1"]}}

The file is re-read when it changes, so a script can add records (DKIM keys it just made)
while the server runs. A name absent from the file is NXDOMAIN; a known name without the asked
type is an empty NOERROR answer; both carry an SOA so resolvers cache them (RFC 2308).
TXT strings longer than 255 bytes are split into several
character-strings, as RFC 1035 requires (an RSA-2048 DKIM key is ~400 bytes).

Usage: dns_server.py --records FILE [--port N] [--port-file F]
"""
import argparse
import json
import os
import sys
import threading
import time

from dnslib import AAAA, MX, QTYPE, RCODE, RR, SOA, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class JsonResolver(BaseResolver):
    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.records = {}
        self.lock = threading.Lock()

    def _load(self):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self.mtime:
            return
        with open(self.path) as f:
            raw = json.load(f)
        self.records = {k.lower().rstrip("."): v for k, v in raw.items()}
        self.mtime = mtime

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        name = str(q.qname).lower().rstrip(".")
        qtype = QTYPE[q.qtype]
        with self.lock:
            self._load()
            entry = self.records.get(name)
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            self._soa(reply, name)
            return reply
        for value in entry.get(qtype, []):
            if qtype == "TXT":
                data = value.encode()
                parts = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
                rdata = TXT(parts)
            elif qtype == "MX":
                rdata = MX(value[1], value[0])
            elif qtype == "A":
                rdata = A(value)
            elif qtype == "AAAA":
                rdata = AAAA(value)
            else:
                continue
            reply.add_answer(RR(q.qname, q.qtype, rdata=rdata, ttl=60))
        if not reply.rr:
            self._soa(reply, name)
        return reply

    @staticmethod
    def _soa(reply, name):
        """An SOA in the authority section of a negative answer, as real servers send
        (RFC 2308), so resolvers cache NXDOMAIN/NODATA for its minimum TTL (60 s)."""
        apex = name.rsplit(".", 1)[-1] + "."
        soa = SOA("ns." + apex, "hostmaster." + apex, (1, 3600, 600, 86400, 60))
        reply.add_auth(RR(apex, QTYPE.SOA, rdata=soa, ttl=60))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args()
    resolver = JsonResolver(args.records)
    logger = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    udp = DNSServer(resolver, address="127.0.0.1", port=args.port, logger=logger)
    port = udp.server.server_address[1]
    tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=logger)
    udp.start_thread()
    tcp.start_thread()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"dns_server listening on 127.0.0.1:{port} (udp+tcp)", file=sys.stderr, flush=True)
    try:
        while udp.isAlive() and tcp.isAlive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

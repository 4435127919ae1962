#!/usr/bin/env python3
"""A minimal SMTP sink that counts what it accepted: one line per accepted message (its
Subject) appended to --log. It holds each DATA for --hold seconds before answering, and
counts a message only if the client is still connected when the 250 is due, so a client
killed mid-delivery never gets (or causes) an acceptance."""
import argparse, re, select, socket, socketserver, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--hold", type=float, default=0.0)
args = ap.parse_args()
lock = threading.Lock()


def alive(sock):
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


class H(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.send("220 sink.test ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("latin-1").strip().upper()
            if cmd.startswith(("EHLO", "HELO")):
                self.send("250-sink.test\r\n250 8BITMIME")
            elif cmd.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                self.send("250 ok")
            elif cmd == "DATA":
                self.send("354 go")
                body = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    body.append(l)
                if not l:
                    return
                time.sleep(args.hold)
                if not alive(self.connection):
                    return
                text = b"".join(body).decode("latin-1")
                m = re.search(r"^Subject: (.*)$", text, re.M)
                with lock, open(args.log, "a") as f:
                    f.write((m.group(1).strip() if m else "?") + "\n")
                self.send("250 2.0.0 accepted")
            elif cmd == "QUIT":
                self.send("221 bye")
                return
            else:
                self.send("500 what")


class S(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = S(("127.0.0.1", 0), H)
open(args.port_file, "w").write(str(srv.server_address[1]))
srv.serve_forever()

#!/usr/bin/env bash
# Crash test: a load client (Python smtplib, 8 sessions, unique Message-IDs) sends mail to
# legate while the server is killed with SIGKILL five times and restarted on the same data
# directory. The client records every Message-ID it got a 250 for; afterwards every one of
# them must be stored (listed through the API). Prints acked, stored and `lost=N` (goal 0).
# Messages stored but never acknowledged (in flight at the kill) are allowed: the sender will
# retry them, which is the at-least-once contract of SMTP. Then `legate store verify` checks
# that no record lacks its body (orphan body files are allowed and swept). Release build.
# Usage: bench/crash_inbound.sh [kills=5] [sessions=8]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
KILLS=${1:-5}; SESSIONS=${2:-8}
command -v jq >/dev/null && command -v curl >/dev/null && python3 -c 'import dnslib' 2>/dev/null \
  || bash tests/interop/setup.sh
# LEGATE_BIN: a release binary already built (skips the build).
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"
WORK=$(mktemp -d)
PIDS=(); LPID=""
cleanup() {
  touch "$WORK/stop"
  for p in "${PIDS[@]:-}" "$LPID"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

start_dns load.test
HTTP=$(free_port); SMTP=$(free_port)
cat > "$WORK/legate.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$WORK/data"
[listen]
http = "127.0.0.1:$HTTP"
smtp = "127.0.0.1:$SMTP"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
CFG
BASE="http://127.0.0.1:$HTTP"
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
start() {
  LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$WORK/legate.toml" serve >> "$WORK/legate.log" 2>&1 &
  LPID=$!
  for _ in $(seq 1 200); do curl -sf "$BASE/healthz" >/dev/null && return 0; sleep 0.05; done
  echo "legate did not come back; see $WORK/legate.log" >&2; exit 1
}
start
KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)

cat > "$WORK/load.py" <<'PY'
"""Sends until WORK/stop exists; appends each Message-ID acknowledged with 250 to WORK/acked."""
import os, smtplib, sys, threading, time
port, work, sessions = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
stop = os.path.join(work, "stop")
lock = threading.Lock()
acked = open(os.path.join(work, "acked"), "a", buffering=1)
stats = {"sent": 0, "acked": 0, "errors": 0}
body = ("Crash test payload line.\r\n" * 160)

def worker(w):
    seq = 0
    while not os.path.exists(stop):
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.load.test", timeout=15) as s:
                while not os.path.exists(stop):
                    seq += 1
                    mid = f"<crash-{w}-{seq}-{os.getpid()}@load.test>"
                    msg = (f"From: <load@load.test>\r\nTo: <ops@agents.test>\r\nSubject: crash {w}/{seq}\r\n"
                           f"Message-ID: {mid}\r\n\r\n{body}")
                    with lock:
                        stats["sent"] += 1
                    s.sendmail("load@load.test", ["ops@agents.test"], msg)  # raises unless 250
                    with lock:
                        acked.write(mid + "\n")
                        stats["acked"] += 1
        except (OSError, smtplib.SMTPException):
            with lock:
                stats["errors"] += 1
            time.sleep(0.05)

threads = [threading.Thread(target=worker, args=(w,)) for w in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"sent={stats['sent']} acked={stats['acked']} connection_errors={stats['errors']}")
PY
python3 "$WORK/load.py" "$SMTP" "$WORK" "$SESSIONS" > "$WORK/load.out" 2>&1 & CLIENT=$!
PIDS+=("$CLIENT")
for i in $(seq 1 "$KILLS"); do
  sleep "$(python3 -c 'import random; print(round(random.uniform(1.5, 3.5), 2))')"
  before=$(wc -l < "$WORK/acked" 2>/dev/null || echo 0)
  kill -9 "$LPID"; wait "$LPID" 2>/dev/null || true
  echo "kill $i: SIGKILL after $before acknowledged messages"
  start
done
sleep 2
touch "$WORK/stop"; wait "$CLIENT" || true
cat "$WORK/load.out"

LOST_RC=0
python3 - "$BASE" "$KEY" "$WORK/acked" <<'PY' || LOST_RC=$?
import json, sys, urllib.parse, urllib.request
base, key, acked_path = sys.argv[1:]
stored, cursor = [], None
while True:
    q = {"limit": "500", **({"cursor": cursor} if cursor else {})}
    req = urllib.request.Request(f"{base}/v1/messages?{urllib.parse.urlencode(q)}",
                                 headers={"Authorization": f"Bearer {key}"})
    page = json.load(urllib.request.urlopen(req, timeout=30))
    stored += [m.get("message_id") or "" for m in page["items"]]
    cursor = page.get("next_cursor")
    if not cursor:
        break
norm = lambda m: m.strip().strip("<>")
have = {norm(m) for m in stored}
acked = [norm(l) for l in open(acked_path) if l.strip()]
lost = [m for m in acked if m not in have]
extra = len(have - set(acked))
print(f"acked={len(acked)} stored={len(stored)} duplicates={len(stored) - len(have)} "
      f"stored_not_acked={extra} lost={len(lost)}")
for m in lost[:10]:
    print("  lost:", m)
sys.exit(1 if lost else 0)
PY

# No record without its body: one more SIGKILL, then `store verify` offline. Orphan blob files
# (a kill between the body's write and its commit) are allowed; the sweep removes them.
kill -9 "$LPID"; wait "$LPID" 2>/dev/null || true; LPID=""
"$BIN" --config "$WORK/legate.toml" store verify > "$WORK/verify.json" || true
jq -c '{records, blobs, missing: (.missing|length), bad_counts: (.bad_counts|length),
        orphans: (.orphans|length)}' "$WORK/verify.json"
MISSING=$(jq '(.missing|length) + (.bad_counts|length)' "$WORK/verify.json")
SWEEP_RC=0
"$BIN" --config "$WORK/legate.toml" store verify --sweep --grace-secs 0 > "$WORK/verify2.json" \
  || SWEEP_RC=$?
echo "records_without_body=$MISSING swept=$(jq .swept "$WORK/verify2.json") clean_after_sweep=$([ $SWEEP_RC = 0 ] && echo yes || echo no)"
[ "$LOST_RC" = 0 ] && [ "$MISSING" = 0 ] && [ "$SWEEP_RC" = 0 ]

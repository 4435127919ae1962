#!/usr/bin/env bash
# Console page render times for an agent with many messages (issue 21: under 50 ms server-side
# at 100,000 messages; listing is O(page)). Fills one agent's INBOX over SMTP (8 Python
# smtplib sessions), signs in to the console, then times each page 20 times with curl
# (time to first byte on loopback, i.e. the server's render time) and prints the median and
# the maximum per page. Release build.
# Usage: bench/console.sh [messages=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-100000}
# LEGATE_BIN: a binary already built (skips the build).
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"
WORK=$(mktemp -d)
PIDS=(); PID=""
cleanup() { for p in "${PIDS[@]:-}" "$PID"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
# SPF of the sender's domain answered on loopback (a dead resolver would stall every message).
start_dns remote.test
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
timeout_secs = 1
[limits]
auth_failures_per_minute = 0
CFG
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$WORK/legate.toml" serve >"$WORK/out" 2>"$WORK/err" &
PID=$!
BASE="http://127.0.0.1:$HTTP"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
AGENT=$(curl -sf -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"bulk","scopes":["mail:read"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

start=$(date +%s)
python3 - "$SMTP" "$N" <<'PY'
import smtplib, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
def run(k):
    s = smtplib.SMTP("127.0.0.1", port)
    for i in range(k, n, 8):
        s.sendmail("sender@remote.test", ["bulk@agents.test"],
                   f"From: sender@remote.test\r\nTo: bulk@agents.test\r\nSubject: message {i}\r\n"
                   f"Message-ID: <m{i}@remote.test>\r\n\r\nYour code is {100000 + i}.\r\n")
    s.quit()
ts = [threading.Thread(target=run, args=(k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
echo "filled $N messages in $(( $(date +%s) - start )) s"

# Sign in: first sign-in with the admin token sets the password.
JAR="$WORK/jar"
csrf() { sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1; }
T=$(curl -s -c "$JAR" -b "$JAR" "$BASE/console/login/first" | csrf)
curl -s -o /dev/null -c "$JAR" -b "$JAR" "$BASE/console/login/first" \
  --data-urlencode "csrf=$T" --data-urlencode "token=$TOKEN" \
  --data-urlencode "password=bench console password" --data-urlencode "password2=bench console password"
MSG=$(curl -s -b "$JAR" "$BASE/console/mail?agent=$AGENT" | sed -n "s|.*href=\"/console/mail/$AGENT/\([^\"]*\)\".*|\1|p" | head -1)
NEXT=$(curl -s -b "$JAR" "$BASE/console/mail?agent=$AGENT" | sed -n 's|.*&amp;cursor=\([^"]*\)".*|\1|p' | head -1)

[ "$(curl -s -o /dev/null -b "$JAR" -w '%{http_code}' "$BASE/console/mail/$AGENT/$MSG")" = 200 ] \
  || { echo "console sign-in failed" >&2; exit 1; }
THREAD=$(curl -s -b "$JAR" "$BASE/console/mail/$AGENT/$MSG" | sed -n "s|.*href=\"/console/mail/$AGENT/thread/\([^\"]*\)\".*|\1|p" | head -1)
# A webhook, so the webhooks pages list something (its deliveries fail: nothing listens).
HOOK=$(curl -sf -XPOST "$BASE/v1/webhooks" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"url":"https://hooks.remote.test/bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
printf '%-36s %10s %10s\n' page median_ms max_ms
for page in "/console/" "/console/agents" "/console/mail?agent=$AGENT" \
            "/console/mail?agent=$AGENT&folder=INBOX" "/console/mail?agent=$AGENT&folder=&q=&cursor=$NEXT" \
            "/console/mail/$AGENT/$MSG" "/console/mail/$AGENT/thread/$THREAD" "/console/agents/$AGENT" \
            "/console/audit" "/console/audit?actor=$AGENT" "/console/audit?agent=$AGENT" \
            "/console/webhooks" "/console/webhooks/$HOOK" "/console/queue" "/console/vault?agent=$AGENT" \
            "/console/dns" "/console/settings"; do
  times=$(for _ in $(seq 1 20); do curl -s -o /dev/null -b "$JAR" -w '%{time_starttransfer}\n' "$BASE$page"; done | sort -n)
  med=$(echo "$times" | sed -n '10p'); max=$(echo "$times" | tail -1)
  label=$(echo "$page" | sed "s/$AGENT/AGENT/g; s/$MSG/MSG/g; s/$THREAD/THREAD/g; s/$HOOK/HOOK/g" | cut -c1-36)
  printf '%-36s %10.1f %10.1f\n' "$label" "$(echo "$med * 1000" | bc -l)" "$(echo "$max * 1000" | bc -l)"
done

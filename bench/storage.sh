#!/usr/bin/env bash
# Benchmark (issue 23): storage shape at two mailbox sizes. Delivers SMALL and then LARGE
# messages of SIZE bytes (postfix's smtp-source over SMTP; 1% carry the word "needle" in the
# subject) to one agent, and prints:
#   - disk used by the data directory / raw bytes delivered, RSS right after delivery and after
#     READ_SECS of reads;
#   - median and p99 (ms) of: list newest 50, list unread, list from=, a complete q= search
#     that matches nothing and one that matches 1%, get one message; and the server's CPU
#     per operation (from /proc, 10 ms ticks, so rough for the fast ones).
# Side by side: the same messages delivered over LMTP into a Maildir under Debian's dovecot
# (its disk use, and `doveadm search` time for the same two searches).
# Release build, everything on loopback. Runs as root (dovecot).
# Usage: bench/storage.sh [small=1000] [large=100000] [size=4096] [read_secs=60]
# LEGATE_BIN: a release binary already built (skips the build). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SMALL=${1:-1000}; LARGE=${2:-100000}; SIZE=${3:-4096}; READ_SECS=${4:-60}
need=""
for c in smtp-source dovecot doveadm jq curl python3; do command -v "$c" >/dev/null || need=1; done
[ -x /usr/lib/dovecot/lmtp ] || need=1
[ -z "$need" ] || bash tests/interop/setup.sh
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"

WORK=$(mktemp -d); chmod 755 "$WORK"
DV="$WORK/dovecot"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$DV/dovecot.conf" ] && doveadm -c "$DV/dovecot.conf" stop >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
du_bytes() { du -sb "$1" | cut -f1; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Waits (up to a minute) until the server is idle: after a burst of deliveries the search
# index merges and sled's segment cleaning run for a while, and timing reads meanwhile
# measures them too.
settle() {
  local a b
  for _ in $(seq 1 60); do
    a=$(cpu_ticks "$1"); sleep 1; b=$(cpu_ticks "$1")
    [ $(( b - a )) -lt 10 ] && return 0
  done
}

# Delivers N messages to host:port (1% with "needle" in the subject). $3: -L for LMTP.
deliver() {
  local hp=$1 n=$2 lmtp=${3:-} needles plain
  needles=$(( n / 100 )); plain=$(( n - needles ))
  smtp-source $lmtp -s 20 -m "$plain" -l "$SIZE" -d -M source.test -f load@source.test \
    -t ops@agents.test -S "weekly report" "$hp" > "$WORK/source.log" 2>&1
  [ "$needles" -gt 0 ] && smtp-source $lmtp -s 4 -m "$needles" -l "$SIZE" -d -M source.test \
    -f load@source.test -t ops@agents.test -S "needle report" "$hp" >> "$WORK/source.log" 2>&1
  return 0
}

# --- legate --------------------------------------------------------------------------------
start_dns source.test
HTTP=$(free_port); SMTP=$(free_port)
cat > "$WORK/legate.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$WORK/legate"
min_free_mb = 0
[listen]
http = "127.0.0.1:$HTTP"
smtp = "127.0.0.1:$SMTP"
submission = ""
imap = ""
[smtp]
mailbox_quota_bytes = 0
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
CFG
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$WORK/legate.toml" serve > "$WORK/legate.log" 2>&1 & LPID=$!
PIDS+=("$LPID")
BASE="http://127.0.0.1:$HTTP"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)

# --- dovecot (LMTP into a Maildir) ----------------------------------------------------------
LMTP=$(free_port)
dovecot_lmtp_conf "$DV" "$LMTP"
dovecot -c "$DV/dovecot.conf"

# Times the read operations against legate; prints one line per operation.
measure() {
  python3 - "$BASE" "$KEY" "$LPID" <<'PY'
import http.client, json, os, sys, time, statistics
base, key, pid = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = base.replace("http://", "").split(":")
c = http.client.HTTPConnection(host, int(port), timeout=60)
h = {"Authorization": "Bearer " + key}
def get(path):
    c.request("GET", path, headers=h)
    r = c.getresponse(); body = r.read()
    if r.status >= 300: raise SystemExit(f"{path}: {r.status} {body[:200]!r}")
    return json.loads(body) if body else None
first = get("/v1/messages?limit=1")["items"][0]["id"]
def search(q):
    # a complete search: follow the cursor to the end
    n, cur = 0, None
    while True:
        p = get(f"/v1/messages?limit=50&q={q}" + (f"&cursor={cur}" if cur else ""))
        n += len(p["items"]); cur = p.get("next_cursor")
        if not cur: return n
def cpu():
    # the server's CPU seconds (user + system): timings on a shared machine are noisy, the
    # CPU an operation costs much less so
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
ops = [
    ("list newest 50", lambda: get("/v1/messages?limit=50")),
    ("list unread", lambda: get("/v1/messages?limit=50&unread=true")),
    ("list from=", lambda: get("/v1/messages?limit=50&from=source.test")),
    ("q= no match", lambda: search("zzyzxnomatch")),
    ("q= 1% match", lambda: search("needle")),
    ("get one", lambda: get(f"/v1/messages/{first}")),
]
for name, f in ops:
    times = []
    runs = 10 if name.startswith("q=") else 50
    c0 = cpu()
    for _ in range(runs):
        t = time.perf_counter(); f(); times.append((time.perf_counter() - t) * 1000)
    c1 = cpu()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"  {name:<16} median {statistics.median(times):8.2f} ms   p99 {p99:8.2f} ms"
          f"   server CPU/op {(c1 - c0) * 1000 / runs:6.2f} ms")
print(f"  (q=needle found {search('needle')} messages)")
PY
}

# Reads for READ_SECS seconds (list, get, search in a loop).
read_for() {
  local until=$(( $(date +%s) + READ_SECS ))
  while [ "$(date +%s)" -lt "$until" ]; do
    curl -s -o /dev/null "$BASE/v1/messages?limit=50" -H "Authorization: Bearer $KEY"
    curl -s -o /dev/null "$BASE/v1/messages?limit=50&q=needle" -H "Authorization: Bearer $KEY"
  done
}

delivered=0
for target in "$SMALL" "$LARGE"; do
  more=$(( target - delivered ))
  [ "$more" -gt 0 ] || continue
  t0=$(date +%s.%N)
  deliver "127.0.0.1:$SMTP" "$more"
  t1=$(date +%s.%N)
  deliver "127.0.0.1:$LMTP" "$more" -L
  delivered=$target
  settle "$LPID"
  raw=$(( delivered * SIZE ))
  ldisk=$(du_bytes "$WORK/legate"); ddisk=$(du_bytes "$DV/mail")
  echo "== $delivered messages of $SIZE bytes (legate took $(echo "$t1 - $t0" | bc -l | cut -c1-6) s)"
  echo "  legate disk  $(( ldisk / 1048576 )) MB = $(echo "scale=2; $ldisk / $raw" | bc -l)x raw; RSS after delivery $(rss_mb "$LPID") MB"
  echo "    of which db/ $(( $(du_bytes "$WORK/legate/db") / 1048576 )) MB, blobs/ $(( $(du_bytes "$WORK/legate/blobs") / 1048576 )) MB; in 4 KiB blocks $(( $(du -sk "$WORK/legate" | cut -f1) / 1024 )) MB (dovecot $(( $(du -sk "$DV/mail" | cut -f1) / 1024 )) MB)"
  echo "  dovecot disk $(( ddisk / 1048576 )) MB = $(echo "scale=2; $ddisk / $raw" | bc -l)x raw (Maildir)"
  measure
  read_for
  echo "  legate RSS after ${READ_SECS}s of reads $(rss_mb "$LPID") MB"
  for q in zzyzxnomatch needle; do
    t0=$(date +%s.%N)
    n=$(doveadm -c "$DV/dovecot.conf" search -u ops mailbox INBOX text "$q" 2>/dev/null | wc -l)
    t1=$(date +%s.%N)
    echo "  doveadm search text $q: $n found in $(echo "($t1 - $t0) * 1000" | bc -l | cut -c1-7) ms (first run, no FTS plugin)"
  done
done

#!/usr/bin/env bash
# Benchmark: postfix's smtp-source (20 sessions, 4 KB messages, 5,000 messages) against, in the
# same run and all on loopback:
#   1. smtp-sink           - reads and discards: the no-storage ceiling;
#   2. legate              - SPF/DKIM/DMARC, parse, extract, store durably before each 250;
#   3. postfix -> dovecot  - a private postfix instance relaying over LMTP to a private
#                            dovecot (static passdb/userdb, Maildir). Timed twice: until
#                            smtp-source is done (queued) and until every message is in the
#                            Maildir (delivered), the figure comparable to legate's 250.
# The three run in alternating rounds (sink, legate, postfix; repeated) so a neighbour's load
# on a shared machine hits all of them alike; the median round of each is reported.
# Prints msg/s for each and the ratios. Release build. Runs as root (postfix and dovecot
# masters); their instances use their own config, queue and state directories under a temp dir.
# Usage: bench/smtp_inbound.sh [messages=5000] [sessions=20] [size=4096] [rounds=3]
# (PERF_OUT=file records a perf profile of legate; KEEP_WORK=1 keeps logs.)
# BACKEND=postgres stores in a throwaway PostgreSQL cluster (tests/interop/lib/pg.sh, fsync
# on) instead of sled; with NODES=2 two legate processes share that database and the load is
# split between them (half the sessions and messages each, at once). With postgres the nodes
# log their database use (legate::store::pg at debug) and the round trips, transactions and
# retries per stored message are printed at the end.
BACKEND=${BACKEND:-sled}; NODES=${NODES:-1}
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-5000}; S=${2:-20}; SIZE=${3:-4096}; ROUNDS=${4:-3}
need=""
for c in smtp-source smtp-sink postfix dovecot doveadm jq curl; do command -v "$c" >/dev/null || need=1; done
[ -x /usr/lib/dovecot/lmtp ] || need=1
[ -z "$need" ] || bash tests/interop/setup.sh
# LEGATE_BIN: a release binary already built (skips the build).
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"

WORK=$(mktemp -d); chmod 755 "$WORK"   # dovecot delivers as nobody under $WORK
PF="$WORK/postfix"; DV="$WORK/dovecot"
PIDS=()
# shellcheck source=tests/interop/lib/pg.sh
source tests/interop/lib/pg.sh
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  pg_stop
  postfix -c "$PF" stop >/dev/null 2>&1 || true
  [ -f "$DV/dovecot.conf" ] && doveadm -c "$DV/dovecot.conf" stop >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
now() { date +%s.%N; }
# Runs smtp-source against host:port; prints the elapsed seconds.
load() {
  local t0 t1
  t0=$(now)
  smtp-source -s "$S" -m "$N" -l "$SIZE" -d -M source.test -f load@source.test -t ops@agents.test "$1" \
    > "$WORK/source-$2.log" 2>&1 || { echo "smtp-source against $2 failed:" >&2; tail -5 "$WORK/source-$2.log" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
rate() { echo "scale=0; $N / $1" | bc -l; }
# legate: one node takes the whole load; two nodes take half each, at once.
load_legate() {
  [ "$NODES" -gt 1 ] || { load "127.0.0.1:$SMTP" "$1"; return; }
  local t0 t1 p1 p2
  t0=$(now)
  smtp-source -s $((S / 2)) -m $((N / 2)) -l "$SIZE" -d -M source.test -f load@source.test -t ops@agents.test \
    "127.0.0.1:$SMTP" > "$WORK/source-$1-a.log" 2>&1 & p1=$!
  smtp-source -s $((S - S / 2)) -m $((N - N / 2)) -l "$SIZE" -d -M source.test -f load@source.test -t ops@agents.test \
    "127.0.0.1:$SMTP2" > "$WORK/source-$1-b.log" 2>&1 & p2=$!
  wait "$p1" && wait "$p2" || { echo "smtp-source against legate failed" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

# --- 1. smtp-sink --------------------------------------------------------------------------
SINK=$(free_port)
smtp-sink -u nobody "127.0.0.1:$SINK" 256 > "$WORK/sink.log" 2>&1 & PIDS+=("$!")
sleep 0.3

# --- 2. legate -----------------------------------------------------------------------------
start_dns source.test
STORAGE=""; LOGLEVEL=warn
# One root key for every node: the vault lives in the shared database (a node with a dev key
# of its own refuses to open it).
head -c 32 /dev/urandom > "$WORK/master.key"; chmod 600 "$WORK/master.key"
if [ "$BACKEND" = postgres ]; then
  LOGLEVEL="warn,legate::store::pg=debug"
  pg_start >/dev/null
  PGURL=$(pg_createdb legate_bench)
  (umask 077; printf '%s\n' "$PGURL" > "$WORK/pg.url")
  STORAGE="backend = \"postgres\"
url_file = \"$WORK/pg.url\"
sslmode = \"disable\"
pool_size = 16"
fi
legate_conf() { # NAME HTTP SMTP
  cat > "$WORK/$1.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$WORK/$1"
$STORAGE
[listen]
http = "127.0.0.1:$2"
smtp = "127.0.0.1:$3"
submission = ""
imap = ""
[vault]
master_key_file = "$WORK/master.key"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "$LOGLEVEL"
format = "json"
CFG
}
HTTP=$(free_port); SMTP=$(free_port)
legate_conf legate "$HTTP" "$SMTP"
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$WORK/legate.toml" serve > "$WORK/legate.log" 2>&1 & LPID=$!
PIDS+=("$LPID")
BASE="http://127.0.0.1:$HTTP"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
if [ "$NODES" -gt 1 ]; then
  [ "$BACKEND" = postgres ] || { echo "NODES=2 needs BACKEND=postgres" >&2; exit 2; }
  HTTP2=$(free_port); SMTP2=$(free_port)
  legate_conf legate2 "$HTTP2" "$SMTP2"
  "$BIN" --config "$WORK/legate2.toml" serve > "$WORK/legate2.log" 2>&1 & PIDS+=("$!")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP2/healthz" >/dev/null && break; sleep 0.1; done
fi
KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)
# --- 3. postfix -> LMTP -> dovecot ---------------------------------------------------------
LMTP=$(free_port); PFPORT=$(free_port)
dovecot_lmtp_conf "$DV" "$LMTP"
dovecot -c "$DV/dovecot.conf"
mkdir -p "$PF/queue" "$PF/data"; chown postfix "$PF/data"
cat > "$PF/main.cf" <<CFG
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = agents.test
relay_recipient_maps =
relay_transport = lmtp:inet:127.0.0.1:$LMTP
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
smtputf8_enable = no
biff = no
CFG
cat > "$PF/master.cf" <<CFG
127.0.0.1:$PFPORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
smtp      unix  - - n - - smtp
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CFG
postfix -c "$PF" start >/dev/null 2>&1 || { echo "postfix failed to start; see $PF/maillog" >&2; exit 1; }
sleep 1
delivered() {
  local d="$DV/mail/ops/Maildir/new"
  if [ -d "$d" ]; then find "$d" -maxdepth 1 -type f | wc -l; else echo 0; fi
}

# --- rounds --------------------------------------------------------------------------------
PERF_PID=""
if [ -n "${PERF_OUT:-}" ]; then perf record -F 999 -g -p "$LPID" -o "$PERF_OUT" &>/dev/null & PERF_PID=$!; fi
: > "$WORK/rounds"
for r in $(seq 1 "$ROUNDS"); do
  t_sink=$(load "127.0.0.1:$SINK" "sink-$r")
  t_legate=$(load_legate "legate-$r")
  before=$(delivered); t0=$(now)
  t_accept=$(load "127.0.0.1:$PFPORT" "postfix-$r")
  for _ in $(seq 1 3000); do [ "$(delivered)" -ge $((before + N)) ] && break; sleep 0.1; done
  t_deliver=$(echo "$(now) - $t0" | bc -l)
  echo "$(rate "$t_sink") $(rate "$t_legate") $(rate "$t_accept") $(rate "$t_deliver")" >> "$WORK/rounds"
  echo "round $r: sink $(rate "$t_sink")  legate $(rate "$t_legate")  postfix queued $(rate "$t_accept")  postfix+dovecot delivered $(rate "$t_deliver") msg/s"
done
[ -z "$PERF_PID" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
DELIVERED=$(delivered)
STORED=0; CURSOR=""
while :; do
  PAGE=$(curl -s -G "$BASE/v1/messages" -H "Authorization: Bearer $KEY" --data-urlencode limit=500 \
    ${CURSOR:+--data-urlencode "cursor=$CURSOR"})
  STORED=$((STORED + $(echo "$PAGE" | jq '.items | length')))
  CURSOR=$(echo "$PAGE" | jq -r '.next_cursor // empty')
  [ -n "$CURSOR" ] || break
done
TOTAL=$((N * ROUNDS))
median() { awk -v c="$1" '{print $c}' "$WORK/rounds" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
R_SINK=$(median 1); R_LEGATE=$(median 2); R_PFA=$(median 3); R_PFD=$(median 4)
echo "messages=$N per round x $ROUNDS rounds, sessions=$S size=${SIZE}B cores=$(nproc) (loopback; median round)"
printf '%-44s %8s msg/s\n' "smtp-sink (no storage, ceiling)" "$R_SINK"
printf '%-44s %8s msg/s   stored %s/%s\n' "legate $BACKEND x$NODES (verified + stored before 250)" "$R_LEGATE" "$STORED" "$TOTAL"
printf '%-44s %8s msg/s\n' "postfix queued (smtp-source done)" "$R_PFA"
printf '%-44s %8s msg/s   in Maildir %s/%s\n' "postfix -> LMTP -> dovecot (delivered)" "$R_PFD" "$DELIVERED" "$TOTAL"
if [ "$BACKEND" = postgres ]; then
  sleep 6 # the nodes log their database use every 5 s
  # CPU over the whole run (start-up, the listing and the search merger included): the
  # nodes', and the database's (the postmaster with its live and reaped backends).
  PGMASTER=$(head -1 "$PG_DIR/data/postmaster.pid")
  python3 - "$STORED" "$PGMASTER" "${PIDS[@]}" "$WORK"/legate*.log <<'PY'
import json, os, sys
def stat(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
tick = os.sysconf("SC_CLK_TCK")
stored, master = int(sys.argv[1]), int(sys.argv[2])
pids = [a for a in sys.argv[3:] if a.isdigit()]
logs = [a for a in sys.argv[3:] if not a.isdigit()]
node_cpu = 0
for p in pids:
    try:
        if open(f"/proc/{p}/comm").read().startswith("legate"):
            node_cpu += stat(p)[1]
    except OSError:
        pass
_, own, reaped = stat(master)
pg_cpu = own + reaped
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        ppid, t, _ = stat(p)
    except OSError:
        continue
    pg_cpu += t if ppid == master else 0
n = max(stored, 1)
print(f"CPU per stored message (whole run): legate {1000 * node_cpu / tick / n:.2f} ms, "
      f"PostgreSQL {1000 * pg_cpu / tick / n:.2f} ms")
tot = [0, 0, 0]
for path in logs:
    last = None
    for line in open(path, errors="replace"):
        if "database use" in line:
            try:
                last = json.loads(line).get("fields", {})
            except ValueError:
                pass
    if last:
        for i, k in enumerate(("round_trips", "transactions", "retries")):
            tot[i] += int(last.get(k, 0))
n = max(stored, 1)
print(f"database, per stored message (start-up and the final listing included): "
      f"{tot[0] / n:.1f} round trips, {tot[1] / n:.2f} transactions, {tot[2] / n:.2f} retries")
PY
fi
python3 - "$R_LEGATE" "$R_PFD" "$R_PFA" "$R_SINK" <<'PY'
import sys
legate, pfd, pfa, sink = map(float, sys.argv[1:])
print(f"ratio legate / postfix+dovecot delivered: {legate / pfd:.2f}x  (goal >= 4x)")
print(f"ratio legate / postfix queued only:       {legate / pfa:.2f}x")
print(f"ratio legate / smtp-sink ceiling:         {legate / sink * 100:.0f}%")
PY

#!/usr/bin/env bash
# Benchmark: N messages of SIZE bytes submitted to legate over submission (STARTTLS + AUTH PLAIN,
# SESSIONS parallel sessions from bench/load's smtp-load, a compiled client like smtp-source,
# each session reused for many messages), queued, DKIM-signed twice (ed25519 + rsa) and
# delivered by a static route to smtp-sink; measured from
# the first submission until smtp-sink has counted all N. In the same run, a private loopback
# postfix relays the same load (smtp-source, plain SMTP, same sessions, connections reused) to
# the same smtp-sink, unsigned. Also the same load through the REST send API from wrk (a C
# client, as smtp-source is). Prints msg/s of each, the ratios, and legate's CPU time per
# message (steadier than msg/s on a shared machine), postfix's likewise, and the mean time per
# message of each stage of legate's send path (legate_send_stage_seconds in /metrics, wall
# clock: under load it includes waiting for a CPU). Release build.
# With LEGATE_PERF=1, legate is also profiled (perf record) through both loads and its CPU is
# split by stage (bench/send_stages.py); PERF_OUT=FILE keeps the profile for perf report.
# POLICY=unlimited runs the same load with `send_policy.danger_unchecked` (no send policy,
# suppression list or circuit breaker checked or counted); the default (POLICY=on) checks
# all of them on every send with caps far above N: compare the two for what the checks cost.
# Usage: bench/smtp_outbound.sh [messages=5000] [size=4096] [sessions=16]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-5000}; SIZE=${2:-4096}; SESS=${3:-16}
export POLICY=${POLICY:-on}
case $POLICY in
  on) UNCHECKED=false ;;
  unlimited) UNCHECKED=true ;;
  *) echo "POLICY must be on or unlimited" >&2; exit 2 ;;
esac
command -v smtp-sink >/dev/null && command -v swaks >/dev/null || bash tests/interop/setup.sh
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
cargo build --release --locked -p legate-bench >/dev/null 2>&1
BIN=${LEGATE_BIN:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/legate"}
LOAD="${CARGO_TARGET_DIR:-$ROOT/target}/release/smtp-load"
# shellcheck source=/dev/null
source tests/interop/lib/postfix.sh
WORK=$(mktemp -d); chmod 755 "$WORK"
PID=""; SINK_PID=""; PERF_PID=""
trap 'pf_stop "$WORK/pf"; kill $PERF_PID $PID $SINK_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port); SMTP=$(port); SUB=$(port); SINK=$(port); PF=$(port); DEAD=$(port)
now() { date +%s.%N; }

# One smtp-sink for both runs; -c prints a running "mesg=N" counter.
smtp-sink -c -u postfix 127.0.0.1:"$SINK" 256 > "$WORK/sink.out" 2>&1 & SINK_PID=$!
sunk() { local c; c=$(tr '\r' '\n' < "$WORK/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2 || true); echo "${c:-0}"; }
wait_sunk() {  # wait_sunk TARGET: until smtp-sink has counted TARGET messages (or 600 s pass)
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(sunk)" -lt "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout: smtp-sink has $(sunk) of $1" >&2; return 1; }
    sleep 0.05
  done
}

cat > "$WORK/c.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$WORK/data"
[listen]
http = "127.0.0.1:$HTTP"
smtp = "127.0.0.1:$SMTP"
submission = "127.0.0.1:$SUB"
imap = ""
[dns]
nameservers = ["127.0.0.1:$DEAD"]
timeout_secs = 1
[log]
level = "warn"
[send_policy]
# The run sends N messages from one agent within minutes: caps far above N (the checks and
# counter updates still run on every send).
max_per_hour = ${LEGATE_SEND_MAX_PER_HOUR:-1000000000}
max_per_day = ${LEGATE_SEND_MAX_PER_DAY:-1000000000}
max_recipients_per_day = ${LEGATE_SEND_MAX_RCPTS_PER_DAY:-1000000000}
danger_unchecked = $UNCHECKED
[outbound]
max_per_domain = ${LEGATE_MAX_PER_DOMAIN:-16}
max_concurrent = 64
[[outbound.route]]
domain = "bench.test"
next_hop = "127.0.0.1:$SINK"
require_tls = false
CFG
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN $BIN --config "$WORK/c.toml" serve >"$WORK/legate.out" 2>&1 & PID=$!
BASE="http://127.0.0.1:$HTTP"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"bench","scopes":["mail:send"]}' | jq -r .api_key.key)

# Warm-up (also proves the path works): one message end to end.
"$LOAD" 127.0.0.1 "$SUB" 1 "$SIZE" 1 bench@agents.test sink@bench.test bench@agents.test "$KEY" >/dev/null
wait_sunk 1
BASE0=$(sunk)

if [ "${LEGATE_PERF:-}" = 1 ]; then
  perf record -q --call-graph dwarf,16384 -F 199 -p "$PID" -o "$WORK/perf.data" >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 0.5
fi
T0=$(now)
LSUB=$("$LOAD" 127.0.0.1 "$SUB" "$N" "$SIZE" "$SESS" bench@agents.test sink@bench.test bench@agents.test "$KEY")
wait_sunk $((BASE0 + N))
T1=$(now)

# The same load through the REST send API from wrk (a C client, like smtp-source), so the
# client's own cost (Python, TLS) weighs on legate no more than on postfix.
cat > "$WORK/send.lua" <<LUA
local body = '{"to":["sink@bench.test"],"subject":"bench","text":"' .. string.rep("x", $SIZE - 150) .. '"}'
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
local threads = {}
function setup(thread) table.insert(threads, thread) end
local seen = 0
function response(status, headers, body)
  seen = seen + 1
  if seen >= quota then wrk.thread:stop() end
end
function init(args) quota = tonumber(args[1]) end
function done(summary, latency, requests)
  io.write(string.format("accepted=%d\n", summary.requests - summary.errors.status))
end
LUA
BASE2=$(sunk)
R0=$(now)
# wrk keeps its connections busy until stopped; the clock stops when the sink has N more.
wrk -t2 -c"$SESS" -d120s -s "$WORK/send.lua" "$BASE/v1/messages/send" -- $((N / 2)) \
  > "$WORK/wrk.out" 2>&1 & WRK=$!
wait_sunk $((BASE2 + N))
R2=$(now)
kill -INT $WRK 2>/dev/null || true; wait $WRK 2>/dev/null || true
R1=$R2; ACCEPTED=$N
# legate's own CPU (all threads, user + system) over everything it did: both loads and warm-up.
LCPU=$(python3 -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$PID")
curl -s "$BASE/metrics" -H "Authorization: Bearer $TOKEN" > "$WORK/metrics.txt" || true
if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi
kill -TERM $PID; wait $PID 2>/dev/null || true; PID=""

pf_start "$WORK/pf" "$PF" "bench.test=smtp:[127.0.0.1]:$SINK" || { echo "postfix did not start" >&2; exit 1; }
swaks --server 127.0.0.1:"$PF" --from a@pf.test --to warm@bench.test >/dev/null 2>&1
wait_sunk $((BASE0 + N + 1))
BASE1=$(sunk)
T2=$(now)
S0=$(now)
smtp-source -d -s "$SESS" -m "$N" -l "$SIZE" -f src@pf.test -t sink@bench.test 127.0.0.1:"$PF"
S1=$(now)
wait_sunk $((BASE1 + N))
T3=$(now)
# postfix's CPU: its master and the master's children (alive, or reaped into its cutime).
PFCPU=$(python3 - "$WORK/pf/spool/pid/master.pid" <<'PY'
import os, sys
def stat(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
master = int(open(sys.argv[1]).read().split()[0])
total = stat(master)[1]
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        ppid, t = stat(p)
    except OSError:
        continue
    total += t if ppid == master else 0
print(total / os.sysconf("SC_CLK_TCK"))
PY
)

python3 - "$N" "$SIZE" "$SESS" "$T0" "$T1" "$LSUB" "$T2" "$T3" "$S0" "$S1" "$(nproc)" \
  "$ACCEPTED" "$R0" "$R1" "$R2" "$LCPU" "$PFCPU" "$WORK/metrics.txt" <<'PY'
import sys
n, size, sess = map(int, sys.argv[1:4])
t0, t1, lsub, t2, t3, s0, s1 = map(float, sys.argv[4:11])
cores = sys.argv[11]
acc = int(sys.argv[12]); r0, r1, r2 = map(float, sys.argv[13:16])
lg, pf = n / (t1 - t0), n / (t3 - t2)
print(f"messages={n} size={size}B sessions={sess} cores={cores} policy={__import__('os').environ.get('POLICY', 'on')}")
print(f"legate  (submission STARTTLS+AUTH, dual DKIM, queue -> smtp-sink): {lg:8.1f} msg/s  "
      f"({t1 - t0:.2f} s; submissions done after {lsub:.2f} s)")
print(f"postfix (smtp-source plain SMTP, relay unsigned -> smtp-sink):    {pf:8.1f} msg/s  "
      f"({t3 - t2:.2f} s; submissions done after {s1 - s0:.2f} s)")
api = acc / (r2 - r0)
print(f"legate  (REST send from wrk, dual DKIM, queue -> smtp-sink):      {api:8.1f} msg/s  "
      f"({acc} messages delivered in {r2 - r0:.2f} s)")
print(f"ratio legate/postfix: submission {lg / pf:.2f}x, REST {api / pf:.2f}x  (goal >= 1.5x)")
cpu = float(sys.argv[16])
print(f"legate CPU: {cpu:.2f} s for {2 * n + 1} messages = {1000 * cpu / (2 * n + 1):.2f} ms per message "
      f"(accept, sign, store, deliver; the machine's load moves this less than msg/s)")
pfcpu = float(sys.argv[17])
print(f"postfix CPU: {pfcpu:.2f} s for {n} messages = {1000 * pfcpu / n:.2f} ms per message (unsigned relay)")
import re
sums, counts = {}, {}
for line in open(sys.argv[18], errors="replace"):
    m = re.match(r'legate_send_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
    if m:
        (sums if m.group(1) == "sum" else counts)[m.group(2)] = float(m.group(3))
if counts:
    print("legate send stages, mean wall time per message (legate_send_stage_seconds):")
    print("  " + ", ".join(f"{k} {1e6 * sums[k] / counts[k]:.0f} us" for k in counts if counts[k]))
PY
if [ -f "$WORK/perf.data" ]; then
  [ -z "${PERF_OUT:-}" ] || cp "$WORK/perf.data" "$PERF_OUT"
  perf script -i "$WORK/perf.data" -F comm,ip,sym --no-inline 2>/dev/null \
    | python3 bench/send_stages.py $((2 * N)) "$LCPU"
fi

#!/usr/bin/env bash
# Benchmark (issue 18): inbound mail at full speed (postfix's smtp-source, 20 sessions, 4 KB
# messages) into one agent, without and then with one webhook endpoint (a fast loopback
# receiver, bench/load's compiled webhook-sink) and one SSE client on /v1/events (the compiled
# sse-probe). Prints the inbound msg/s of both runs and what the webhook costs, and the p50/p99 latency from an event's creation (the delivery's commit)
# to its arrival at the webhook and at the SSE client. Goals: webhooks cost at most 15% of
# inbound throughput; p99 under 250 ms at that load. Also legate's CPU time per message in
# both runs (the hooked run's includes every dispatch), which moves less than msg/s when
# other work shares the machine. Release build; all on loopback.
# Usage: bench/events.sh [messages=5000] [sessions=20] [size=4096]   (KEEP_WORK=1 keeps logs)
# ROUNDS (3): pairs of runs, without and with, alternating; the figures are their medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-5000}; S=${2:-20}; SIZE=${3:-4096}; ROUNDS=${ROUNDS:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
for c in smtp-source jq curl bc python3; do command -v "$c" >/dev/null || bash tests/interop/setup.sh; done
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"
cargo build --release --locked -p legate-bench >/dev/null 2>&1
SINK="${CARGO_TARGET_DIR:-$ROOT/target}/release/webhook-sink"
PROBE="${CARGO_TARGET_DIR:-$ROOT/target}/release/sse-probe"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
now() { date +%s.%N; }
start_dns source.test

# Starts a fresh legate in $WORK/$1; sets BASE, SMTP, LPID, TOKEN, KEY.
start() {
  local dir="$WORK/$1" http; mkdir -p "$dir"
  http=$(free_port); SMTP=$(free_port)
  cat > "$dir/legate.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$http"
smtp = "127.0.0.1:$SMTP"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
[webhooks]
danger_allow_http = true
allow_private = ["127.0.0.1/32"]
CFG
  TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
  LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$dir/legate.toml" serve > "$dir/legate.log" 2>&1 & LPID=$!
  PIDS+=("$LPID")
  BASE="http://127.0.0.1:$http"
  for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)
}

# Sends N messages; prints the elapsed seconds.
load() {
  local t0 t1
  t0=$(now)
  smtp-source -s "$S" -m "$N" -l "$SIZE" -d -M source.test -f load@source.test -t ops@agents.test \
    "127.0.0.1:$SMTP" > "$WORK/source-$1.log" 2>&1 || { echo "smtp-source failed:" >&2; tail -5 "$WORK/source-$1.log" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

# legate's CPU seconds so far (user + system), steadier than msg/s on a shared machine.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$LPID/stat"; }

# p50 and p99 of the numbers in a file (one per line).
pct() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR==0) {print "n/a n/a"; exit} i=int(NR*0.5); if(i<1)i=1; j=int(NR*0.99); if(j<1)j=1; printf "%.0f %.0f\n", a[i], a[j]}'; }

# --- ROUNDS pairs of runs, alternating, each on a fresh data directory --------------------
# Two cores carry legate, smtp-source and both clients, so a single pair of runs moves by
# several points with whatever else the machine does; the medians over the rounds are the
# figures, and each round's own cost is printed too.
RP=(); RH=(); UP=(); UH=()
: > "$WORK/webhook.lat"; : > "$WORK/sse.lat"
for r in $(seq 1 "$ROUNDS"); do
  start "plain$r"
  t=$(load "plain$r")
  kill -0 "$LPID" || { echo "legate stopped during the load" >&2; exit 1; }
  RP+=("$(echo "scale=0; $N / $t" | bc -l)")
  UP+=("$(echo "scale=3; 1000 * $(cpu) / $N" | bc -l)")
  kill "$LPID"; wait "$LPID" 2>/dev/null || true

  start "hooked$r"
  : > "$WORK/wh$r.lat"; : > "$WORK/sse$r.lat"; rm -f "$WORK/probe$r.port"
  "$SINK" "$WORK/wh$r.lat" "$WORK/probe$r.port" > "$WORK/probe$r.log" 2>&1 & SINK_PID=$!; PIDS+=("$SINK_PID")
  "$PROBE" "$BASE" "$KEY" "$WORK/sse$r.lat" > "$WORK/probe-sse$r.log" 2>&1 & PROBE_PID=$!; PIDS+=("$PROBE_PID")
  for _ in $(seq 1 100); do [ -s "$WORK/probe$r.port" ] && break; sleep 0.1; done
  [ -s "$WORK/probe$r.port" ] || { echo "the webhook receiver did not start" >&2; exit 1; }
  curl -sf -XPOST "$BASE/v1/webhooks" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$(cat "$WORK/probe$r.port")/hook\",\"event_types\":[\"message.received\"]}" > /dev/null
  sleep 0.5
  t=$(load "hooked$r")
  for _ in $(seq 1 600); do
    [ "$(wc -l < "$WORK/wh$r.lat")" -ge "$N" ] && [ "$(wc -l < "$WORK/sse$r.lat")" -ge "$N" ] && break
    sleep 0.1
  done
  # Every event has reached both clients: the dispatch work is all in this figure.
  kill -0 "$LPID" || { echo "legate stopped during the load" >&2; exit 1; }
  RH+=("$(echo "scale=0; $N / $t" | bc -l)")
  UH+=("$(echo "scale=3; 1000 * $(cpu) / $N" | bc -l)")
  kill "$LPID" "$SINK_PID" "$PROBE_PID" 2>/dev/null || true; wait "$LPID" 2>/dev/null || true
  PIDS=("${PIDS[@]:0:1}")  # the DNS server stays; the killed ones must not be killed again
  cat "$WORK/wh$r.lat" >> "$WORK/webhook.lat"; cat "$WORK/sse$r.lat" >> "$WORK/sse.lat"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
R_PLAIN=$(median "${RP[@]}"); R_HOOK=$(median "${RH[@]}")
U_PLAIN=$(median "${UP[@]}"); U_HOOK=$(median "${UH[@]}")
COST_OF_MEDIANS=$(echo "scale=1; 100 * ($R_PLAIN - $R_HOOK) / $R_PLAIN" | bc -l)
C_COST=$(echo "scale=1; 100 * ($U_HOOK - $U_PLAIN) / $U_HOOK" | bc -l)
ROUND_COSTS=""; COSTS=()
for i in "${!RP[@]}"; do
  COSTS+=("$(echo "scale=1; 100 * (${RP[$i]} - ${RH[$i]}) / ${RP[$i]}" | bc -l)")
  ROUND_COSTS+="${COSTS[$i]}% "
done
# The figure: the median of the rounds' own costs (each pair ran back to back).
COST=$(median "${COSTS[@]}")
read -r WP50 WP99 < <(pct "$WORK/webhook.lat")
read -r SP50 SP99 < <(pct "$WORK/sse.lat")
echo "events benchmark: $N messages, $S sessions, $SIZE bytes, $ROUNDS rounds (medians)"
printf "  inbound without webhook   %6s msg/s\n" "$R_PLAIN"
printf "  inbound with webhook+SSE  %6s msg/s   (cost %s%%, goal <= 15%%)\n" "$R_HOOK" "$COST"
printf "  each round, msg/s without / with: %s / %s  (costs: %s; cost of the medians %s%%)\n" \
  "${RP[*]}" "${RH[*]}" "$ROUND_COSTS" "$COST_OF_MEDIANS"
printf "  legate CPU per message    %6s ms without, %s ms with (the webhook's share of the CPU: %s%%)\n" \
  "$U_PLAIN" "$U_HOOK" "$C_COST"
printf "  webhook latency  p50 %5s ms  p99 %5s ms  (%s of %s events; goal p99 < 250 ms)\n" \
  "$WP50" "$WP99" "$(wc -l < "$WORK/webhook.lat")" "$((N * ROUNDS))"
printf "  SSE latency      p50 %5s ms  p99 %5s ms  (%s of %s events)\n" \
  "$SP50" "$SP99" "$(wc -l < "$WORK/sse.lat")" "$((N * ROUNDS))"

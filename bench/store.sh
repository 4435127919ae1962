#!/usr/bin/env bash
# Benchmark (issue 20): the store backends side by side, for the cost model in
# docs/scaling.md. For each backend in BACKENDS (default "sled postgres"):
#   - delivers SMALL messages of SIZE bytes to one agent (smtp-source, 20 sessions), then
#     times `GET /v1/messages?limit=50` (median and p99 of REQUESTS requests, keep-alive);
#   - delivers up to LARGE and times the same list again: the ratio should stay near 1
#     (listing reads one page, whatever the mailbox size);
#   - postgres only: what one inbound message, one outbound message (API send to a local
#     sink) and one API read cost the database, from pg_stat_statements and the WAL:
#     statements, transactions, rows, WAL bytes, and the database's bytes per message.
# PostgreSQL is a throwaway cluster (tests/interop/lib/pg.sh, fsync on) with
# pg_stat_statements. Release build, everything on loopback. Runs as root (the cluster runs
# as nobody).
# Usage: bench/store.sh [small=1000] [large=100000] [size=4096] [requests=200]
# LEGATE_BIN: a release binary already built (skips the build). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SMALL=${1:-1000}; LARGE=${2:-100000}; SIZE=${3:-4096}; REQUESTS=${4:-200}
BACKENDS=${BACKENDS:-sled postgres}
need=""
for c in smtp-source jq curl python3 psql; do command -v "$c" >/dev/null || need=1; done
[ -z "$need" ] || bash tests/interop/setup.sh
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"

WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
# shellcheck source=tests/interop/lib/pg.sh
source tests/interop/lib/pg.sh
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  pg_stop
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh
start_dns source.test
SINK_LOG="$WORK/sink.log"
python3 tests/interop/tools/counting_sink.py --port-file "$WORK/sink.port" --log "$SINK_LOG" \
  > /dev/null 2>&1 & PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$WORK/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$WORK/sink.port"); touch "$SINK_LOG"
if [[ " $BACKENDS " == *" postgres "* ]]; then
  PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" pg_start
fi

deliver() { # PORT COUNT
  local left=$2 n
  while [ "$left" -gt 0 ]; do
    n=$(( left > 20000 ? 20000 : left ))
    smtp-source -s 20 -m "$n" -l "$SIZE" -d -M source.test -f load@source.test -t ops@agents.test \
      "127.0.0.1:$1" > "$WORK/source.log" 2>&1 || { tail -5 "$WORK/source.log" >&2; exit 1; }
    left=$(( left - n ))
  done
}

# Prints "median p99" in ms of REQUESTS list requests.
list_latency() { # BASE KEY
  python3 - "$1" "$2" "$REQUESTS" <<'PY'
import http.client, statistics, sys, time, urllib.parse
base, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(base)
c = http.client.HTTPConnection(u.hostname, u.port)
h = {"Authorization": f"Bearer {key}"}
times = []
for i in range(n + 10):
    t = time.perf_counter()
    c.request("GET", "/v1/messages?limit=50", headers=h)
    r = c.getresponse(); body = r.read()
    assert r.status == 200, (r.status, body[:200])
    if i >= 10:  # the first few warm the caches
        times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"{statistics.median(times):.2f} {times[int(len(times) * 0.99) - 1]:.2f}")
PY
}

psql_q() { PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U legate -d "$1" -tAq -c "$2"; }
# "statements transactions rows wal_bytes" since the last stats_reset.
pg_cost() { # DB
  local wal stm
  wal=$(psql_q "$1" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$PG_LSN')")
  stm=$(psql_q "$1" "SELECT coalesce(sum(calls),0), coalesce(sum(calls) FILTER (WHERE query ILIKE 'commit%'),0), coalesce(sum(rows),0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$1') AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_current_wal_lsn%'")
  echo "${stm//|/ } $wal"
}
stats_reset() { # DB
  psql_q "$1" "SELECT pg_stat_statements_reset()" > /dev/null
  PG_LSN=$(psql_q "$1" "SELECT pg_current_wal_lsn()")
}
per() { echo "scale=1; $1 / $2" | bc -l; }

: > "$WORK/results"
for backend in $BACKENDS; do
  HTTP=$(free_port); SMTP=$(free_port); DATA="$WORK/$backend"
  storage="path = \"$DATA\""
  if [ "$backend" = postgres ]; then
    url=$(pg_createdb legate_bench)
    (umask 077; printf '%s\n' "$url" > "$WORK/url")
    psql_q legate_bench "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" > /dev/null
    storage="$storage
backend = \"postgres\"
url_file = \"$WORK/url\"
sslmode = \"disable\"
pool_size = 16"
  fi
  cat > "$WORK/$backend.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
$storage
[listen]
http = "127.0.0.1:$HTTP"
smtp = "127.0.0.1:$SMTP"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[log]
level = "warn"
[outbound]
[[outbound.route]]
domain = "sink.test"
next_hop = "127.0.0.1:$SINK"
require_tls = false
CFG
  TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
  LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN "$BIN" --config "$WORK/$backend.toml" serve > "$WORK/$backend.log" 2>&1 &
  LPID=$!; PIDS+=("$LPID")
  BASE="http://127.0.0.1:$HTTP"
  for _ in $(seq 1 200); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
  KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"local":"ops","scopes":["mail:read","mail:send"]}' | jq -r .api_key.key)
  [ "$backend" = postgres ] && stats_reset legate_bench
  t0=$(date +%s.%N); deliver "$SMTP" "$SMALL"; t1=$(date +%s.%N)
  echo "$backend: $SMALL inbound in $(echo "$t1 - $t0" | bc -l | cut -c1-6) s"
  if [ "$backend" = postgres ]; then
    read -r st tx rows wal <<< "$(pg_cost legate_bench)"
    dbsize=$(psql_q legate_bench "SELECT pg_database_size('legate_bench')")
    echo "postgres inbound, per message: $(per "$st" "$SMALL") statements, $(per "$tx" "$SMALL") commits, $(per "$rows" "$SMALL") rows, $(per "$wal" "$SMALL") WAL bytes; database $(per "$dbsize" "$SMALL") bytes/message so far" | tee -a "$WORK/results"
  else
    echo "sled inbound: data directory $(per "$(du -sb "$DATA" | cut -f1)" "$SMALL") bytes/message so far" | tee -a "$WORK/results"
  fi
  read -r m1 p1 <<< "$(list_latency "$BASE" "$KEY")"
  if [ "$backend" = postgres ]; then
    stats_reset legate_bench
    list_latency "$BASE" "$KEY" > /dev/null
    read -r st tx rows wal <<< "$(pg_cost legate_bench)"
    n=$((REQUESTS + 10))
    echo "postgres API read (list 50), per request: $(per "$st" "$n") statements, $(per "$rows" "$n") rows" | tee -a "$WORK/results"
    # Outbound: API sends to the local sink, until the sink has them all.
    OUT=200; before=$(wc -l < "$SINK_LOG")
    stats_reset legate_bench
    for i in $(seq 1 $OUT); do
      curl -s -o /dev/null -XPOST "$BASE/v1/messages/send" -H "Authorization: Bearer $KEY" \
        -H 'content-type: application/json' -d "{\"to\":[\"x@sink.test\"],\"subject\":\"out $i\",\"text\":\"hello $i\"}"
    done
    for _ in $(seq 1 600); do [ "$(wc -l < "$SINK_LOG")" -ge $((before + OUT)) ] && break; sleep 0.1; done
    sleep 2
    read -r st tx rows wal <<< "$(pg_cost legate_bench)"
    echo "postgres outbound (API send, delivered), per message: $(per "$st" "$OUT") statements, $(per "$tx" "$OUT") commits, $(per "$rows" "$OUT") rows, $(per "$wal" "$OUT") WAL bytes" | tee -a "$WORK/results"
  fi
  t0=$(date +%s.%N); deliver "$SMTP" $((LARGE - SMALL)); t1=$(date +%s.%N)
  echo "$backend: $((LARGE - SMALL)) more inbound in $(echo "$t1 - $t0" | bc -l | cut -c1-6) s"
  read -r m2 p2 <<< "$(list_latency "$BASE" "$KEY")"
  size=$([ "$backend" = postgres ] && psql_q legate_bench "SELECT pg_database_size('legate_bench')" || du -sb "$DATA" | cut -f1)
  printf '%-9s list 50 of %7d: median %7.2f ms p99 %7.2f ms | of %7d: median %7.2f ms p99 %7.2f ms | ratio %.2f | %s bytes/message at %d\n' \
    "$backend" "$SMALL" "$m1" "$p1" "$LARGE" "$m2" "$p2" "$(echo "$m2 / $m1" | bc -l)" "$(per "$size" "$LARGE")" "$LARGE" \
    | tee -a "$WORK/results"
  kill -TERM "$LPID"; wait "$LPID" 2>/dev/null || true
done
echo "--- summary (SIZE=${SIZE}B, cores=$(nproc), loopback)"
cat "$WORK/results"

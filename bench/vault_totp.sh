#!/usr/bin/env bash
# Benchmark: wrk against POST /v1/vault/{name}/totp (auth + scope check + audit write + two
# key unwraps + payload decrypt + HMAC) and, in the same run, against GET /healthz on the same
# server. Prints req/s of both, their ratio and p99 latencies. Release build.
# Usage: bench/vault_totp.sh [duration_s=10] [connections=64] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}; CONN=${2:-64}; THREADS=${3:-2}
command -v wrk >/dev/null || bash tests/interop/setup.sh
# LEGATE_BIN: a release binary already built (skips the build). Honours CARGO_TARGET_DIR.
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-target}/release/legate}"
WORK=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[storage]\npath = "%s/data"\n[listen]\nhttp = "127.0.0.1:%s"\nsmtp = ""\nsubmission = ""\nimap = ""\n[log]\nlevel = "warn"\n' "$WORK" "$PORT" > "$WORK/c.toml"
TOKEN="lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"
LEGATE_BOOTSTRAP_ADMIN_TOKEN=$TOKEN $BIN --config "$WORK/c.toml" serve >/dev/null 2>&1 & PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
KEY=$(curl -s -XPOST "$BASE/v1/agents" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"local":"bench","scopes":["vault:read","vault:write"]}' | jq -r .api_key.key)
curl -s -XPUT "$BASE/v1/vault/site" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  -d '{"kind":"login","username":"u","password":"p","totp":"otpauth://totp/x?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}' >/dev/null
cat > "$WORK/totp.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
run() { wrk -t"$THREADS" -c"$CONN" -d"${DUR}s" --latency "$@" 2>&1; }
TRIV=$(run "$BASE/healthz")
PERF_PID=""
if [ -n "${PERF_OUT:-}" ]; then perf record -F 999 -g -p $PID -o "$PERF_OUT" -- sleep "$DUR" &>/dev/null & PERF_PID=$!; fi
TOTP=$(run -s "$WORK/totp.lua" "$BASE/v1/vault/site/totp")
[ -z "$PERF_PID" ] || wait "$PERF_PID"
rps() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
p99() { echo "$1" | awk '$1=="99%" {print $2}'; }
errs() { echo "$1" | awk '/Non-2xx/ {print $5}'; }
R1=$(rps "$TRIV"); R2=$(rps "$TOTP")
echo "connections=$CONN threads=$THREADS duration=${DUR}s cores=$(nproc)"
printf '%-28s %12s req/s   p99 %s\n' "GET /healthz (trivial)" "$R1" "$(p99 "$TRIV")"
printf '%-28s %12s req/s   p99 %s  non-2xx: %s\n' "POST /v1/vault/site/totp" "$R2" "$(p99 "$TOTP")" "$(errs "$TOTP" || true)"
python3 -c "print(f'ratio totp/trivial: {float(\"$R2\")/float(\"$R1\")*100:.1f}%  (goal >= 50%, p99 < 5 ms)')"

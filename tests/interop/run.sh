#!/usr/bin/env bash
# Interop suite: builds the release binary and drives it with third-party tools over
# loopback. Prints "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

bash tests/interop/setup.sh
cargo build --release --locked -p legate
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/legate"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ "${FAIL:-0}" -gt 0 ] || [ -n "${KEEP_WORK:-}" ]; then
    echo "interop: logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

PASS=0; FAIL=0
ok()   { PASS=$((PASS+1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL+1)); echo "FAIL - $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -sf "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# Each suite file defines functions named suite_*; they share the helpers above.
for f in tests/interop/suites/*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done
for s in $(declare -F | awk '{print $3}' | grep '^suite_' | sort); do
  echo "# $s"
  "$s" || bad "$s aborted"
done

echo "interop: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]

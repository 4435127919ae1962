#!/usr/bin/env bash
# Interop suite: builds the release binary and drives it with third-party tools over
# loopback. Prints "N passed, N failed" and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SUITES=("$@")

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
new_token() { echo "lg_$(head -c 32 /dev/urandom | base32 | tr -d '=\n')"; }

# start_legate CONFIG [--token T|new] [--log PREFIX] [--wait URL]: the one way suites start the
# server. Runs `$BIN --config CONFIG serve` in the background and records its pid in PIDS (the
# cleanup kills it) and LEGATE_PID.
#   --token  bootstrap admin token (LEGATE_BOOTSTRAP_ADMIN_TOKEN); "new" makes one. It is left
#            in LEGATE_TOKEN.
#   --log    stdout and stderr are appended to PREFIXout and PREFIXerr (default: CONFIG's
#            directory, i.e. <dir>/out and <dir>/err).
#   --wait   then waits for URL/healthz; returns 1 if it never answers.
# Not for $(...): the command substitution would wait for the server's output to close.
start_legate() {
  local config=$1 log token="" url=""; shift
  log="$(dirname "$config")/"
  while [ $# -gt 0 ]; do
    case $1 in
      --token) token=$2; shift 2 ;;
      --log) log=$2; shift 2 ;;
      --wait) url=$2; shift 2 ;;
      *) echo "start_legate: unknown option $1" >&2; return 2 ;;
    esac
  done
  [ "$token" = new ] && token=$(new_token)
  LEGATE_TOKEN=$token
  if [ -n "$token" ]; then
    LEGATE_BOOTSTRAP_ADMIN_TOKEN=$token "$BIN" --config "$config" serve >> "${log}out" 2>> "${log}err" &
  else
    "$BIN" --config "$config" serve >> "${log}out" 2>> "${log}err" &
  fi
  LEGATE_PID=$!; PIDS+=("$LEGATE_PID")
  [ -z "$url" ] || wait_http "$url"
}

# Each suite file defines functions named suite_*; they share the helpers above.
for f in tests/interop/suites/*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done
# Arguments, if any, pick suites: `run.sh 40_outbound 75_reports` runs the suites whose name
# contains one of them (all of them without arguments).
wanted() {
  [ "${#SUITES[@]}" -eq 0 ] && return 0
  local w; for w in "${SUITES[@]}"; do [[ $1 == *"$w"* ]] && return 0; done
  return 1
}
for s in $(declare -F | awk '{print $3}' | grep '^suite_' | sort); do
  wanted "$s" || continue
  echo "# $s"
  t0=$SECONDS
  "$s" || bad "$s aborted"
  echo "# $s: $((SECONDS - t0)) s"
done

echo "interop: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]

#!/usr/bin/env bash
# Benchmark (issue 17 item 7): what an operator pays before any mail arrives. Prints
#   - the release binary's size (and how much of it is the symbol table kept for `perf`);
#   - start-up time: from exec to the first 200 on /healthz, on an empty data directory (so it
#     includes making the master key, the first admin, the DKIM keys and a self-signed
#     certificate), every listener on loopback; median of RUNS fresh starts;
#   - idle RSS: VmRSS of each of those servers SETTLE_SECS after /healthz answered; median.
# Goals: binary < 40 MB, start-up < 0.5 s, idle RSS < 40 MB.
# Usage: bench/footprint.sh [runs=5] [settle_secs=2]
# LEGATE_BIN: a release binary already built (skips the build). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-5}; SETTLE_SECS=${2:-2}
for c in curl python3; do command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 1; }; done
[ -n "${LEGATE_BIN:-}" ] || cargo build --release --locked -p legate >/dev/null 2>&1
BIN="${LEGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/legate}"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
source bench/lib.sh

now_ns() { date +%s%N; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# Writes a config for a fresh data directory DIR with every listener on a free loopback port.
write_config() {
  local dir=$1
  cat > "$dir/legate.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$(free_port)"
https = "127.0.0.1:$(free_port)"
http_mode = "full"
smtp = "127.0.0.1:$(free_port)"
submission = "127.0.0.1:$(free_port)"
submissions = "127.0.0.1:$(free_port)"
imap = "127.0.0.1:$(free_port)"
imaps = "127.0.0.1:$(free_port)"
[log]
level = "warn"
CFG
}

STARTS=(); RSS=()
for i in $(seq 1 "$RUNS"); do
  dir="$WORK/run$i"; mkdir -p "$dir"
  write_config "$dir"
  url="http://$(awk -F'"' '/^http = / {print $2}' "$dir/legate.toml")/healthz"
  t0=$(now_ns)
  "$BIN" --config "$dir/legate.toml" serve > "$dir/legate.log" 2>&1 & pid=$!
  PIDS+=("$pid")
  up=""
  # Poll every 5 ms for up to 10 s; a server that exits is a failure, not a slow start.
  for _ in $(seq 1 2000); do
    if curl -sf -o /dev/null --max-time 1 "$url"; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
  done
  t1=$(now_ns)
  if [ -z "$up" ]; then echo "run $i: /healthz never answered 200; log:" >&2; cat "$dir/legate.log" >&2; exit 1; fi
  STARTS+=("$(( (t1 - t0) / 1000000 ))")
  sleep "$SETTLE_SECS"
  RSS+=("$(rss_kb "$pid")")
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

size=$(stat -c %s "$BIN")
symtab=$(python3 - "$BIN" <<'PY'
import struct, sys
# Bytes of .symtab + .strtab + any .debug_* sections (ELF64 little-endian section headers).
data = open(sys.argv[1], "rb").read()
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
def sh(i): return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
names_off = sh(shstrndx)[4]
def name(off): return data[names_off + off:data.index(b"\0", names_off + off)].decode()
sym = dbg = 0
for i in range(shnum):
    s = sh(i); n = name(s[0])
    if n in (".symtab", ".strtab"): sym += s[5]
    elif n.startswith(".debug_"): dbg += s[5]
print(sym, dbg)
PY
)
read -r sym_bytes dbg_bytes <<< "$symtab"
start_ms=$(printf '%s\n' "${STARTS[@]}" | median)
rss_mb=$(printf '%s\n' "${RSS[@]}" | median | awk '{printf "%.1f", $1/1024}')
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }
echo "binary: $BIN"
printf '%-34s %10s MB   (goal < 40; symbol table %s MB, DWARF %s MB)\n' "binary size" "$(mb "$size")" "$(mb "$sym_bytes")" "$(mb "$dbg_bytes")"
printf '%-34s %10s ms   (goal < 500; runs: %s)\n' "start-up to /healthz 200 (median)" "$start_ms" "${STARTS[*]}"
printf '%-34s %10s MB   (goal < 40; runs: %s kB)\n' "idle RSS after start (median)" "$rss_mb" "${RSS[*]}"

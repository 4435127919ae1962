#!/usr/bin/env bash
# Fuzzing (issue 15): runs one target of the stable, coverage-free driver in bench/fuzz/ for
# MINUTES in a release build, then prints iterations, iterations/s and crashes. Crashing
# inputs are written to $FUZZ_CRASHES (default fuzz-crashes/); copy one into
# bench/fuzz/seeds/TARGET/ once fixed, so every CI run replays it.
# Usage: bench/fuzz.sh TARGET|all|list [MINUTES=10] [SEED]
#   targets: smtp_proto mime mailauth smtp_session rest mcp   (all: each for MINUTES in turn)
# Honours CARGO_TARGET_DIR; exits 1 when anything crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:?usage: bench/fuzz.sh TARGET|all|list [MINUTES] [SEED]}
MINUTES=${2:-10}
SEED=${3:-$(date +%s)}
cargo build --release --locked -p legate-fuzz >&2
BIN="${CARGO_TARGET_DIR:-target}/release/legate-fuzz"
if [ "$TARGET" = list ]; then exec "$BIN" list; fi
echo "fuzzing $TARGET for $MINUTES min, seed $SEED" >&2
exec "$BIN" "$TARGET" --minutes "$MINUTES" --seed "$SEED" --crashes "${FUZZ_CRASHES:-fuzz-crashes}"

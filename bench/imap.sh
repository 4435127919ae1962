#!/usr/bin/env bash
# Benchmark (issue 16): legate's IMAP server against Debian's dovecot-imapd, same messages.
# N messages (default 5,000, ~3 KiB text/plain each) are delivered to legate over SMTP and
# written as the same bytes into the Maildir of a private dovecot (passwd-file user, loopback,
# its own port). For each server it prints:
#   (a) FETCH 1:* (BODY.PEEK[HEADER]) and then FETCH 1:* (BODY.PEEK[]), messages/s (median of
#       three runs after a warm-up FETCH 1:* (UID FLAGS) so both have their indexes in place;
#       bench/load's compiled imap-fetch client);
#   (b) a mixed load: CLIENTS (20) processes for SECS (30) s, each looping SELECT, 3 FETCH
#       BODY.PEEK[], STORE a flag, UID SEARCH SUBJECT+FLAGGED, NOOP; total ops/s, and the
#       client-side seconds spent per command (where the time goes);
#   (c) one client alone: the median latency of each command of the mixed load;
# each with the CPU seconds the server used (on a shared machine more stable than ops/s);
# then the ratios legate/dovecot and legate's RSS (VmRSS): its peak while the clients are
# logged in (sampled every 0.5 s) and at the end. Both servers in clear text on loopback (legate with
# imap.danger_allow_plaintext_login) so that neither pays for TLS.
# Release build. Runs as root (dovecot). The load generator is bench/imap_load.py.
# Usage: bench/imap.sh [messages=5000] [clients=20] [secs=30]
# LEGATE_BIN: a release binary already built (skips the build). Honours CARGO_TARGET_DIR.
# IMAP_EXTRA: lines added to legate's [imap] section (e.g. "fetch_batch_messages = 512").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-5000}; CLIENTS=${2:-20}; SECS=${3:-30}
need=""
for c in dovecot doveadm jq curl python3 bc; do command -v "$c" >/dev/null || need=1; done
[ -x /usr/lib/dovecot/imap ] || need=1
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
LOAD="python3 bench/imap_load.py"
# Phase (a) reads 5,000 literals as fast as a server sends them: a compiled client, as
# smtp-source is for SMTP (the Python one was slower than either server at it).
cargo build --release --locked -p legate-bench >/dev/null 2>&1
FETCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/imap-fetch"
PASS_DV="bench-$(head -c 12 /dev/urandom | base32 | tr -d '=\n')"

echo "== corpus: $N messages"
$LOAD messages "$N" "$WORK/corpus"

# --- legate ----------------------------------------------------------------------------------
start_dns source.test
HTTP=$(free_port); SMTP=$(free_port); IMAP_L=$(free_port)
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
imap = "127.0.0.1:$IMAP_L"
[smtp]
mailbox_quota_bytes = 0
[imap]
danger_allow_plaintext_login = true
max_connections_per_agent = $((CLIENTS + 10))
max_connections_per_ip = $((CLIENTS + 10))
${IMAP_EXTRA:-}
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
  -d '{"local":"ops","scopes":["mail:read","mail:manage"]}' | jq -r .api_key.key)
t0=$(date +%s.%N)
$LOAD smtp "$WORK/corpus" 127.0.0.1 "$SMTP" ops@agents.test
t1=$(date +%s.%N)
echo "legate: $N messages delivered over SMTP in $(echo "$t1 - $t0" | bc -l | cut -c1-6) s"

# --- dovecot (IMAP on a Maildir, passwd-file user) ------------------------------------------
IMAP_D=$(free_port)
mkdir -p "$DV/run" "$DV/state" "$DV/mail/ops"
echo "ops:{PLAIN}$PASS_DV::::::" > "$DV/passwd"
$LOAD maildir "$WORK/corpus" "$DV/mail/ops/Maildir"
chown -R nobody:nogroup "$DV/mail"
cat > "$DV/dovecot.conf" <<CFG
protocols = imap
listen = 127.0.0.1
base_dir = $DV/run
state_dir = $DV/state
log_path = $DV/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
mail_max_userip_connections = $((CLIENTS + 10))
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $DV/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$DV/mail/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_D
  }
  inet_listener imaps {
    port = 0
  }
}
CFG
dovecot -c "$DV/dovecot.conf"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$IMAP_D") 2>/dev/null && break; sleep 0.1; done

# After a burst of deliveries sled cleans its log segments in the background for a while
# (rewriting pages, compressing them): work of the deliveries, not of IMAP. The reads are
# measured once legate is idle (under 2% of a core over a second), as dovecot is.
for _ in $(seq 1 120); do
  a=$(sed 's/.*) //' "/proc/$LPID/stat" | awk '{print $12 + $13}'); sleep 1
  b=$(sed 's/.*) //' "/proc/$LPID/stat" | awk '{print $12 + $13}')
  [ $((b - a)) -le $(($(getconf CLK_TCK) / 50)) ] && break
done
echo "legate: idle $(echo "$(date +%s.%N) - $t1" | bc -l | cut -c1-5) s after the deliveries (dovecot set up meanwhile)"
# What the deliveries left (store cache, indexes): the base the IMAP sessions add to.
IDLE_RSS=$(rss_mb "$LPID")

# CPU seconds a server has used so far: the process and its live descendants, with the time
# of the children it reaped (dovecot runs one imap process per login, reaped by its master).
# On a shared machine ops/s depend on what else runs; CPU seconds per phase much less.
TCK=$(getconf CLK_TCK)
cpu_ticks() {
  local p t=0 kids
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  for p in "$1" $kids; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "$t"
}
cpu_of() { if [ "$1" = legate ]; then cpu_ticks "$LPID"; else cpu_ticks "$(cat "$DV/run/master.pid")"; fi; }
cpu_since() { echo "scale=2; ($(cpu_of "$1") - $2) / $TCK" | bc -l; }

# --- (a) fetch all headers, then all bodies --------------------------------------------------
declare -A F C
for srv in legate dovecot; do
  if [ "$srv" = legate ]; then port=$IMAP_L; user=ops@agents.test; pw=$KEY
  else port=$IMAP_D; user=ops; pw=$PASS_DV; fi
  for only in headers bodies; do
    c0=$(cpu_of "$srv")
    out=$("$FETCH" 127.0.0.1 "$port" "$user" "$pw" "$only")
    sleep 0.3 # dovecot's master reaps the imap process after LOGOUT
    C[$srv.$only]=$(cpu_since "$srv" "$c0")
    read -r what got secs rate <<< "$out"
    [ "$got" -eq "$N" ] || echo "  warning: $srv $what fetched $got of $N"
    F[$srv.$what]=$rate
    printf "  %-8s FETCH 1:* %-8s %6d msgs in %6.3f s = %7d msg/s; server CPU %5.2f s (login, warm-up, 3 runs)\n" \
      "$srv" "$what" "$got" "$secs" "$rate" "${C[$srv.$only]}"
  done
done

# --- (b) mixed load --------------------------------------------------------------------------
peak=0
sample_rss() { while kill -0 "$LPID" 2>/dev/null; do r=$(rss_mb "$LPID"); echo "$r"; sleep 0.5; done; }
for srv in legate dovecot; do
  if [ "$srv" = legate ]; then port=$IMAP_L; user=ops@agents.test; pw=$KEY
  else port=$IMAP_D; user=ops; pw=$PASS_DV; fi
  if [ "$srv" = legate ]; then sample_rss > "$WORK/rss.samples" & SPID=$!; fi
  c0=$(cpu_of "$srv")
  out=$($LOAD mixed 127.0.0.1 "$port" "$user" "$pw" "$CLIENTS" "$SECS")
  sleep 0.3
  C[$srv.mixed]=$(cpu_since "$srv" "$c0")
  if [ "$srv" = legate ]; then
    kill "$SPID" 2>/dev/null || true
    peak=$(sort -n "$WORK/rss.samples" | tail -1)
    END_RSS=$(rss_mb "$LPID")
  fi
  F[$srv.mixed]=$(echo "$out" | awk '/^ops/ {print $4}')
  echo "  $srv mixed load, $CLIENTS clients for ${SECS}s: $(echo "$out" | awk '/^ops/ {print $2}') ops = ${F[$srv.mixed]} ops/s"
  echo "    server CPU ${C[$srv.mixed]} s; client-side seconds by command: $(echo "$out" | sed -n 's/^time-by-command //p')"
done
# --- (c) one client: latency of each command ---------------------------------------------------
$LOAD latency 127.0.0.1 "$IMAP_L" ops@agents.test "$KEY" > "$WORK/lat.legate"
$LOAD latency 127.0.0.1 "$IMAP_D" ops "$PASS_DV" > "$WORK/lat.dovecot"
echo "  one client, median ms per command:      legate    dovecot"
paste -d" " "$WORK/lat.legate" "$WORK/lat.dovecot" | while read -r name l _ d; do
  printf "    %-20s %16s %10s\n" "${name//_/ }" "$l" "$d"
done
ratio() { echo "scale=2; ${F[legate.$1]} / ${F[dovecot.$1]}" | bc -l; }
echo "== legate / dovecot (goal >= 1.5)"
echo "  fetch headers  $(ratio headers)x"
echo "  fetch bodies   $(ratio bodies)x"
echo "  mixed load     $(ratio mixed)x"
# Work per unit: CPU seconds per 1,000 messages fetched / per 1,000 mixed-load operations.
per_k() { echo "scale=3; ${C[$1.$2]} * 1000 / $3" | bc -l; }
echo "== server CPU per unit (less is better; a fetch phase is 3 FETCH 1:* of $N, plus login and warm-up)"
for w in headers bodies; do
  echo "  $w: legate $(per_k legate "$w" $((3 * N))) s, dovecot $(per_k dovecot "$w" $((3 * N))) s per 1000 msgs"
done
echo "  mixed: legate $(per_k legate mixed "$(echo "${F[legate.mixed]} * $SECS" | bc)") s," \
  "dovecot $(per_k dovecot mixed "$(echo "${F[dovecot.mixed]} * $SECS" | bc)") s per 1000 ops"
echo "== legate RSS: peak $peak MB with $CLIENTS clients (goal < 100 MB), $END_RSS MB at the end," \
  "$IDLE_RSS MB idle after the deliveries, before any IMAP session"

# The PostgreSQL store backend against a real PostgreSQL (a throwaway cluster started
# unprivileged by lib/pg.sh): the store conformance suite on it; two legate nodes serving
# one domain from one database (mail delivered through either node is read through the
# other; concurrent deliveries to one agent through both get unique, gap-free UIDs and
# distinct MODSEQs); a REST and an MCP `wait`, IMAP IDLE and an SSE stream on node B wake
# within moments for mail delivered through node A; a DKIM rotation on node A is what node
# B signs with at once; /readyz; `legate store migrate`; `legate store copy` from PostgreSQL to
# sled and back, verified, with a node serving the copy.

# shellcheck source=/dev/null
source tests/interop/lib/pg.sh

_pg_config() { # DIR HTTP SMTP IMAP URL_FILE [SINK_PORT]
  local route=""
  [ -z "${6:-}" ] || route="lease_secs = 4
scan_interval_secs = 1
[[outbound.route]]
domain = \"sink.test\"
next_hop = \"127.0.0.1:$6\"
require_tls = false"
  cat > "$1/config.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$1/data"
backend = "postgres"
url_file = "$5"
sslmode = "disable"
pool_size = 8
[listen]
http = "127.0.0.1:$2"
smtp = "127.0.0.1:$3"
submission = ""
imap = "127.0.0.1:$4"
[vault]
master_key_file = "$WORK/pg/master.key"
[dns]
nameservers = ["127.0.0.1:9"]
timeout_secs = 1
[log]
level = "warn"
[outbound]
$route
CFG
}

_pg_count() { # BASE KEY: the agent's INBOX size through the list API
  local base=$1 key=$2 n=0 cursor="" page
  while :; do
    page=$(curl -s -G "$base/v1/messages" -H "Authorization: Bearer $key" --data-urlencode "limit=500" \
      ${cursor:+--data-urlencode "cursor=$cursor"})
    n=$((n + $(echo "$page" | jq '.items | length')))
    cursor=$(echo "$page" | jq -r '.next_cursor // empty')
    [ -n "$cursor" ] || break
  done
  echo "$n"
}

# IMAP check of one INBOX: prints "N uids_ok modseqs_distinct".
_pg_imap_uids() { # PORT USER KEY
  python3 - "$@" <<'PY'
import imaplib, re, ssl, sys
port, user, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
M = imaplib.IMAP4("127.0.0.1", port)
M.starttls(ssl_context=ssl._create_unverified_context())  # the nodes' self-signed dev certificates
M.login(user, key)
M._simple_command("ENABLE", "CONDSTORE")
M.select("INBOX", readonly=True)
typ, data = M.uid("SEARCH", "ALL")
uids = [int(u) for u in data[0].split()]
typ, data = M.fetch("1:*", "(UID MODSEQ)")
mods = [int(m.group(1)) for d in data if isinstance(d, bytes) for m in [re.search(rb"MODSEQ \((\d+)\)", d)] if m]
ok = sorted(uids) == list(range(1, len(uids) + 1))
print(len(uids), "yes" if ok else "no", "yes" if len(set(mods)) == len(mods) == len(uids) else "no")
M.logout()
PY
}

suite_95_postgres() {
  local dir="$WORK/pg"; mkdir -p "$dir"
  pg_start || { bad "throwaway PostgreSQL starts"; return; }
  ok "throwaway PostgreSQL starts (unprivileged, 127.0.0.1:$PG_PORT)"
  head -c 32 /dev/urandom > "$dir/master.key"; chmod 600 "$dir/master.key"

  # (1) the store conformance suite, on this server. `--workspace --lib`, not `-p legate`:
  # the workspace's feature set is the one `cargo test --workspace` built, so CI reuses that
  # build here (with `-p legate` reqwest's features differ and legate compiled twice more).
  LEGATE_TEST_PG_URL=$PG_URL timeout 900 cargo test --locked --workspace --lib store:: -- --nocapture \
    > "$dir/conformance.log" 2>&1
  check "store conformance suite passes on PostgreSQL" test $? -eq 0
  check "the PostgreSQL conformance tests ran (none skipped)" \
    sh -c "grep -q 'postgres_backend::.* ok' '$dir/conformance.log' && ! grep -q 'skipped: LEGATE_TEST_PG_URL' '$dir/conformance.log'"

  # (1b) a connection's OAuth refresh takes turns across the nodes sharing the database: the
  # end-to-end test holds the turn as another node would, here on PostgreSQL.
  LEGATE_TEST_PG_URL=$PG_URL timeout 600 cargo test --locked --workspace --test identity \
    -- connections_provider::a_refresh_waits_while_another_node_refreshes > "$dir/refresh.log" 2>&1
  check "a connection's refresh waits for another node's turn (PostgreSQL)" \
    sh -c "grep -q 'a_refresh_waits_while_another_node_refreshes ... ok' '$dir/refresh.log'"

  # (2) two nodes on one database
  local url; url=$(pg_createdb legate_nodes) || { bad "database created"; pg_stop; return; }
  (umask 077; printf '%s\n' "$url" > "$dir/url")
  local a="$dir/a" b="$dir/b"; mkdir -p "$a" "$b"
  local ha sa ia hb sb ib
  ha=$(free_port); sa=$(free_port); ia=$(free_port); hb=$(free_port); sb=$(free_port); ib=$(free_port)
  _pg_config "$a" "$ha" "$sa" "$ia" "$dir/url"
  _pg_config "$b" "$hb" "$sb" "$ib" "$dir/url"
  "$BIN" --config "$a/config.toml" store migrate > "$dir/migrate.json" 2> "$dir/migrate.err"
  check "legate store migrate applies the database schema" \
    test "$(jq -r '"\(.backend) \(.database_schema)"' "$dir/migrate.json" 2>/dev/null)" = "postgres 2"
  local token; token=$(new_token)
  start_legate "$a/config.toml" --token "$token" --wait "http://127.0.0.1:$ha" || { bad "node A starts on PostgreSQL"; pg_stop; return; }
  local pid_a=$LEGATE_PID
  start_legate "$b/config.toml" --token "$token" --wait "http://127.0.0.1:$hb" || { bad "node B starts on PostgreSQL"; pg_stop; return; }
  local pid_b=$LEGATE_PID
  ok "two nodes start on one database"
  local A="http://127.0.0.1:$ha" B="http://127.0.0.1:$hb"
  check "/readyz reports the database" \
    test "$(curl -s "$A/readyz" | jq -r '"\(.status) \(.database.backend) \(.database.reachable)"')" = "ready postgres true"
  local key; key=$(curl -s -XPOST "$A/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read","mail:send"]}' | jq -r .api_key.key)
  check "an agent made on node A" test -n "$key" -a "$key" != null
  check "node B sees the agent made on node A" \
    test "$(curl -s "$B/v1/whoami" -H "Authorization: Bearer $key" | jq -r .address)" = "ops@agents.test"

  swaks --server "127.0.0.1:$sa" --from peer@example.net --to ops@agents.test \
    --header "Subject: via A" --body "delivered through node A" > "$dir/swaks_a.log" 2>&1
  check "swaks delivers through node A" test $? -eq 0
  python3 - "$sb" > "$dir/smtplib_b.log" 2>&1 <<'PY'
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage(); m["From"] = "peer@example.net"; m["To"] = "ops@agents.test"
m["Subject"] = "via B"; m.set_content("delivered through node B")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s: s.send_message(m)
PY
  check "smtplib delivers through node B" test $? -eq 0
  local subj_b subj_a
  subj_b=$(curl -s "$B/v1/messages?limit=10" -H "Authorization: Bearer $key" | jq -r '[.items[].subject] | sort | join(",")')
  subj_a=$(curl -s "$A/v1/messages?limit=10" -H "Authorization: Bearer $key" | jq -r '[.items[].subject] | sort | join(",")')
  check "node B lists the mail delivered through node A (and its own)" test "$subj_b" = "via A,via B"
  check "node A lists the mail delivered through node B (and its own)" test "$subj_a" = "via A,via B"

  # revocation on node A holds on node B at the next request (no auth cache across nodes)
  local tmp tid tkey
  tmp=$(curl -s -XPOST "$A/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"temp","scopes":["mail:read","vault:read","vault:write"]}')
  tid=$(echo "$tmp" | jq -r .id); tkey=$(echo "$tmp" | jq -r .api_key.key)
  curl -s -o /dev/null -XPUT "$B/v1/vault/site" -H "Authorization: Bearer $tkey" -H 'content-type: application/json' \
    -d '{"kind":"login","username":"u","password":"p1"}'
  check "node B serves the second agent (its key now warm there)" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$B/v1/whoami" -H "Authorization: Bearer $tkey")" = 200
  curl -s -o /dev/null -XPUT "$A/v1/vault/site" -H "Authorization: Bearer $tkey" -H 'content-type: application/json' \
    -d '{"kind":"login","username":"u","password":"p2"}'
  check "a credential changed on node A reads changed on node B" \
    test "$(curl -s "$B/v1/vault/site" -H "Authorization: Bearer $tkey" | jq -r '.password // .secret.password // empty')" = p2
  check "revoking on node A" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -XDELETE "$A/v1/agents/$tid" -H "Authorization: Bearer $token")" -lt 300
  check "node B refuses the revoked agent's key at the next request" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$B/v1/whoami" -H "Authorization: Bearer $tkey")" = 401

  # (3) both nodes deliver to the same agent at once
  timeout 300 smtp-source -s 10 -m 150 -l 2048 -d -f load@source.test -t ops@agents.test "127.0.0.1:$sa" > "$dir/src_a.log" 2>&1 &
  local s1=$!
  timeout 300 smtp-source -s 10 -m 150 -l 2048 -d -f load@source.test -t ops@agents.test "127.0.0.1:$sb" > "$dir/src_b.log" 2>&1 &
  local s2=$!
  wait "$s1"; local r1=$?; wait "$s2"; local r2=$?
  check "concurrent deliveries through both nodes finish" test "$r1" -eq 0 -a "$r2" -eq 0
  check "all 302 messages are stored once" test "$(_pg_count "$B" "$key")" -eq 302
  local uids; uids=$(_pg_imap_uids "$ia" ops@agents.test "$key" 2> "$dir/imap.err")
  check "IMAP on node A: 302 UIDs, 1..302 without gaps or duplicates, distinct MODSEQs" test "$uids" = "302 yes yes"
  uids=$(_pg_imap_uids "$ib" ops@agents.test "$key" 2>> "$dir/imap.err")
  check "IMAP on node B sees the same mailbox" test "$uids" = "302 yes yes"
  # (2b) wake-ups across nodes, and DKIM keys rotated on A used by B
  _pg_wakeups "$dir" "$A" "$B" "$sa" "$ib" "$token"
  _pg_dkim_shared "$dir" "$a/config.toml" "$B" "$token"
  check "no panic in the nodes' logs" sh -c "! grep -q panicked '$a/err' '$b/err'"
  kill -TERM "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true

  # (4) store copy: PostgreSQL -> sled -> a new PostgreSQL database, each verified
  "$BIN" --config "$a/config.toml" store copy --from "@$dir/url" --to "$dir/copy-sled" > "$dir/copy1.json" 2> "$dir/copy1.err"
  check "store copy PostgreSQL -> sled is verified (counts, blobs, audit chain)" \
    test "$(jq -r '"\(.verified) \(.audit_verified) \(.to_backend)"' "$dir/copy1.json" 2>/dev/null)" = "true true sled"
  local url2; url2=$(pg_createdb legate_copy) || bad "second database created"
  (umask 077; printf '%s\n' "$url2" > "$dir/url2")
  "$BIN" --config "$a/config.toml" store copy --from "$dir/copy-sled" --to "@$dir/url2" > "$dir/copy2.json" 2> "$dir/copy2.err"
  check "store copy sled -> PostgreSQL is verified" \
    test "$(jq -r '"\(.verified) \(.audit_verified) \(.to_backend)"' "$dir/copy2.json" 2>/dev/null)" = "true true postgres"
  check "the round trip kept every entry" \
    test "$(jq -c .trees "$dir/copy1.json")" = "$(jq -c .trees "$dir/copy2.json")"
  check "store copy refuses a target that is not empty" \
    sh -c "! '$BIN' --config '$a/config.toml' store copy --from '$dir/copy-sled' --to '@$dir/url2' > /dev/null 2>&1"
  local c="$dir/c"; mkdir -p "$c"; local hc sc ic
  hc=$(free_port); sc=$(free_port); ic=$(free_port)
  _pg_config "$c" "$hc" "$sc" "$ic" "$dir/url2"
  start_legate "$c/config.toml" --wait "http://127.0.0.1:$hc" || bad "a node starts on the copied database"
  local pid_c=$LEGATE_PID
  check "a node on the copied database serves all 302 messages" \
    test "$(_pg_count "http://127.0.0.1:$hc" "$key")" -eq 302
  kill -TERM "$pid_c"; wait "$pid_c" 2>/dev/null || true

  # (5) queue leases: two nodes with short leases and 1 s rescans deliver to a sink that holds
  # each DATA for 1.5 s; node A is killed with -9 mid-delivery. Every message reaches the
  # sink exactly once: node B never attempts what A holds, and takes A's over after expiry.
  _pg_queue_leases "$dir" "$url2" "$key"
  pg_stop
}

_pg_queue_leases() { # DIR URL KEY
  local dir=$1 key=$3 q="$1/q"; mkdir -p "$q/a" "$q/b"
  (umask 077; printf '%s\n' "$2" > "$q/url")
  python3 tests/interop/tools/counting_sink.py --port-file "$q/sink.port" --log "$q/sink.log" --hold 1.5 \
    > /dev/null 2> "$q/sink.err" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do [ -s "$q/sink.port" ] && break; sleep 0.1; done
  local sink; sink=$(cat "$q/sink.port"); touch "$q/sink.log"
  local ha sa ia hb sb ib
  ha=$(free_port); sa=$(free_port); ia=$(free_port); hb=$(free_port); sb=$(free_port); ib=$(free_port)
  _pg_config "$q/a" "$ha" "$sa" "$ia" "$q/url" "$sink"
  _pg_config "$q/b" "$hb" "$sb" "$ib" "$q/url" "$sink"
  start_legate "$q/a/config.toml" --wait "http://127.0.0.1:$ha" || { bad "queue node A starts"; return; }
  local pid_a=$LEGATE_PID
  start_legate "$q/b/config.toml" --wait "http://127.0.0.1:$hb" || { bad "queue node B starts"; return; }
  local pid_b=$LEGATE_PID
  local i n=12 sent=0
  for i in $(seq 1 $n); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "http://127.0.0.1:$ha/v1/messages/send" \
      -H "Authorization: Bearer $key" -H 'content-type: application/json' \
      -d "{\"to\":[\"x@sink.test\"],\"subject\":\"lease $i\",\"text\":\"hello $i\"}")" = 202 ] && sent=$((sent+1))
  done
  check "$n messages queued through node A" test "$sent" -eq "$n"
  sleep 2.5
  kill -9 "$pid_a"; wait "$pid_a" 2>/dev/null || true
  local before; before=$(wc -l < "$q/sink.log")
  for _ in $(seq 1 120); do [ "$(wc -l < "$q/sink.log")" -ge "$n" ] && break; sleep 0.5; done
  sleep 3
  check "node A delivered some and was killed mid-delivery (the sink had $before of $n)" \
    test "$before" -gt 0 -a "$before" -lt "$n"
  check "node B delivered the rest after the leases expired: each message exactly once at the sink" \
    test "$(sort "$q/sink.log" | uniq | wc -l) $(wc -l < "$q/sink.log")" = "$n $n"
  kill -TERM "$pid_b"; wait "$pid_b" 2>/dev/null || true
}

_pg_now() { date +%s%N; }
_pg_ms() { echo $(( ($(_pg_now) - $1) / 1000000 )); } # START_NS: milliseconds since
# Milliseconds until PID exits (at most 10 s). Measured from when the SMTP delivery got its 250
# (the delivery's own DNS lookups, which time out here, are not the wake-up's latency).
_pg_exit_ms() { # PID
  local t0; t0=$(_pg_now)
  for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  _pg_ms "$t0"; wait "$1" 2>/dev/null || true
}

# Long-polls and live sessions on node B wake for mail delivered through node A (signals over
# LISTEN/NOTIFY), well before their 30 s timeouts and the 5 s SSE rescan.
_pg_wakeups() { # DIR A B SMTP_A IMAP_B TOKEN
  local dir=$1 A=$2 B=$3 sa=$4 ib=$5 token=$6 w="$1/wake"; mkdir -p "$w"
  local key; key=$(curl -s -XPOST "$A/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"waker","scopes":["mail:read","mail:send"]}' | jq -r .api_key.key)
  check "an agent for the wake-up checks" test -n "$key" -a "$key" != null
  _pg_send_a() { swaks --server "127.0.0.1:$sa" --from peer@example.net --to waker@agents.test \
      --header "Subject: $1" --body "wake" > "$w/swaks-$1.log" 2>&1; }

  # REST wait on B
  curl -s -m 40 "$B/v1/messages/wait?timeout=30&subject=rest-wake" -H "Authorization: Bearer $key" > "$w/rest.json" &
  local cpid=$! t0 ms
  sleep 1; _pg_send_a rest-wake; ms=$(_pg_exit_ms "$cpid")
  check "REST wait on node B returns the mail delivered through node A within 3 s of its 250 (${ms} ms)" \
    test "$(jq -r .subject "$w/rest.json" 2>/dev/null)" = rest-wake -a "$ms" -lt 3000

  # MCP mail_wait_for_message on B (stateless Streamable HTTP: one POST)
  curl -s -m 40 -XPOST "$B/mcp" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mail_wait_for_message","arguments":{"subject":"mcp-wake","timeout":30}}}' \
    > "$w/mcp.json" &
  cpid=$!
  sleep 1; _pg_send_a mcp-wake; ms=$(_pg_exit_ms "$cpid")
  check "MCP mail_wait_for_message on node B wakes for mail through node A within 3 s of its 250 (${ms} ms)" \
    sh -c "grep -q 'mcp-wake' '$w/mcp.json' && test $ms -lt 3000"

  # SSE on B
  curl -s -N -m 15 "$B/v1/events?types=message.received" -H "Authorization: Bearer $key" > "$w/sse.txt" &
  cpid=$!
  sleep 1; _pg_send_a sse-wake; t0=$(_pg_now)
  local seen=""
  for _ in $(seq 1 100); do grep -q sse-wake "$w/sse.txt" 2>/dev/null && { seen=$(_pg_ms "$t0"); break; }; sleep 0.05; done
  kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
  check "SSE on node B streams message.received for mail through node A within 3 s of its 250 (${seen:-none} ms)" \
    test -n "$seen" -a "${seen:-9999}" -lt 3000

  # IMAP IDLE on B (python imaplib)
  python3 - "$ib" waker@agents.test "$key" "$w/idle.ready" > "$w/idle.out" 2> "$w/idle.err" <<'PY' &
import imaplib, socket, ssl, sys, time
port, user, key, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
M = imaplib.IMAP4("127.0.0.1", port)
M.starttls(ssl_context=ssl._create_unverified_context())
M.login(user, key)
typ, data = M.select("INBOX")
before = int(data[0])
tag = M._new_tag().decode()
M.send(f"{tag} IDLE\r\n".encode())
assert M.readline().startswith(b"+")
M.sock.settimeout(30)
open(ready, "w").write("ready")
start = time.monotonic()
while True:
    line = M.readline()
    if not line:
        print("closed"); break
    if line.startswith(b"* ") and line.rstrip().endswith(b"EXISTS") and int(line.split()[1]) > before:
        print("exists", int((time.monotonic() - start) * 1000)); break
M.send(b"DONE\r\n")
M.readline()
M.logout()
PY
  cpid=$!
  for _ in $(seq 1 100); do [ -s "$w/idle.ready" ] && break; sleep 0.1; done
  _pg_send_a idle-wake; ms=$(_pg_exit_ms "$cpid")
  check "IMAP IDLE on node B sees EXISTS for mail through node A within 3 s of its 250 (${ms} ms)" \
    sh -c "grep -q '^exists' '$w/idle.out' && test $ms -lt 3000"
}

# DKIM: node B signs with its cached keys; `legate dkim rotate` on node A; node B's next
# message is signed with the new selectors (not after the signer cache's 60 s).
_pg_dkim_shared() { # DIR CONFIG_A B TOKEN
  local dir=$1 cfg_a=$2 B=$3 token=$4 d="$1/dkim"; mkdir -p "$d"
  local key; key=$(curl -s -XPOST "$B/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"signer","scopes":["mail:read","mail:send"]}' | jq -r .api_key.key)
  _pg_sent_selectors() { # SUBJECT: the s= of the DKIM-Signatures on B's Sent copy
    local id="" i
    for i in $(seq 1 50); do
      id=$(curl -s "$B/v1/messages?folder=sent&limit=20" -H "Authorization: Bearer $key" \
        | jq -r --arg s "$1" '[.items[] | select(.subject == $s)][0].id // empty')
      [ -n "$id" ] && break; sleep 0.2
    done
    curl -s "$B/v1/messages/$id/raw" -H "Authorization: Bearer $key" | python3 -c '
import email, re, sys
m = email.message_from_binary_file(sys.stdin.buffer)
sels = sorted(re.search(r"(?:^|;)\s*s=([^;\s]+)", re.sub(r"\s+", " ", h)).group(1) for h in m.get_all("DKIM-Signature") or [])
print(" ".join(sels))'
  }
  _pg_send_b() { curl -s -o /dev/null -w '%{http_code}' -XPOST "$B/v1/messages/send" -H "Authorization: Bearer $key" \
      -H 'content-type: application/json' -d "{\"to\":[\"someone@example.net\"],\"subject\":\"$1\",\"text\":\"hi\"}"; }
  check "node B sends (before the rotation)" test "$(_pg_send_b dkim-before)" = 202
  local before; before=$(_pg_sent_selectors dkim-before)
  "$BIN" --config "$cfg_a" dkim rotate > "$d/rotate.out" 2> "$d/rotate.err"
  check "legate dkim rotate on node A" test $? -eq 0
  local active; active=$("$BIN" --config "$cfg_a" dkim records --json 2> "$d/records.err" \
    | jq -r '[.[] | select(.active) | .selector] | sort | join(" ")')
  check "node B sends (right after the rotation)" test "$(_pg_send_b dkim-after)" = 202
  local after; after=$(_pg_sent_selectors dkim-after)
  check "node B signed with the old selectors before ($before)" test -n "$before"
  check "node B signs with the selectors node A rotated to ($after = $active)" \
    test -n "$after" -a "$after" != "$before" -a "$after" = "$active"
}

# Inbound MTA against third-party peers: postfix's smtp-source delivers 1,000 messages (all
# must be stored); messages signed by dkimpy (ed25519 and rsa) pass our DKIM check; and
# authheaders (pyspf + dkimpy) reaches our spf/dkim/dmarc results on signed, unsigned,
# tampered and spoofed mail. All DNS is a loopback dnslib server (tools/dns_server.py).

# Counts an agent's messages through the list API, following next_cursor.
_inbound_count() {
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

# Starts tools/dns_server.py on a records file (its port lands in "$1.port"). Not run inside
# $(...): the command substitution would wait for the server's inherited stdout to close.
_inbound_dns() {
  local records=$1
  [ -f "$records" ] || echo '{}' > "$records"
  python3 tests/interop/tools/dns_server.py --records "$records" --port-file "$records.port" \
    > /dev/null 2> "$records.err" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do [ -s "$records.port" ] && break; sleep 0.1; done
}

suite_35_inbound() {
  local dir="$WORK/inbound"; mkdir -p "$dir"
  local http smtp dns
  http=$(free_port); smtp=$(free_port)
  _inbound_dns "$dir/dns.json"; dns=$(cat "$dir/dns.json.port" 2>/dev/null || true)
  check "loopback DNS server starts" test -n "$dns"
  cat > "$dir/config.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$http"
smtp = "127.0.0.1:$smtp"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$dns"]
timeout_secs = 2
[log]
level = "warn"
CFG
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "inbound server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local key; key=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)

  # (a) smtp-source: 20 parallel sessions, 1,000 messages of 4 KB, every one stored
  echo '{"source.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}' > "$dir/dns.json.new" && mv "$dir/dns.json.new" "$dir/dns.json"
  timeout 300 smtp-source -s 20 -m 1000 -l 4096 -d -M source.test -f load@source.test -t ops@agents.test \
      "127.0.0.1:$smtp" > "$dir/smtp-source.log" 2>&1
  check "smtp-source finishes without an error" test $? -eq 0
  check "all 1,000 smtp-source messages are stored" test "$(_inbound_count "$base" "$key")" -eq 1000

  # (b) + (c) dkimpy signatures and authheaders agreement
  local line
  while IFS= read -r line; do
    case "$line" in
      PASS\ *) ok "${line#PASS }" ;;
      FAIL\ *) bad "${line#FAIL }" ;;
    esac
  done < <(python3 tests/interop/tools/inbound_auth.py --dns-file "$dir/dns.json" --dns-port "$dns" \
             --smtp "$smtp" --api "$base" --key "$key" 2> "$dir/auth.err" || true)
  check "inbound auth checks ran" test ! -s "$dir/auth.err"
  check "no panic in the server log" sh -c "! grep -q panicked '$dir/err'"
  kill -TERM "$pid"; wait "$pid" || true
}

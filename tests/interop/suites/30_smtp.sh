# Inbound SMTP: swaks delivers over STARTTLS (and in clear text), with PIPELINING and BDAT;
# the messages are readable over the API. DNS goes to a closed loopback port (no internet).
suite_30_smtp() {
  local dir="$WORK/smtp"; mkdir -p "$dir"
  local http smtp dead
  http=$(free_port); smtp=$(free_port); dead=$(free_port)
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
nameservers = ["127.0.0.1:$dead"]
timeout_secs = 1
CFG
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "smtp server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local key; key=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)
  swaks --to ops@agents.test --from alice@example.test --server "127.0.0.1:$smtp" --helo client.example.test \
        --tls --header "Subject: over starttls" --body "Your code is 123456" > "$dir/swaks-tls.log" 2>&1
  check "swaks STARTTLS delivery gets 250" grep -q "250 2.0.0 OK" "$dir/swaks-tls.log"
  check "swaks saw STARTTLS advertised" grep -q "STARTTLS" "$dir/swaks-tls.log"
  swaks --to ops+news@agents.test --from alice@example.test --server "127.0.0.1:$smtp" --helo client.example.test \
        --pipeline --header "Subject: pipelined" > "$dir/swaks-pipe.log" 2>&1
  check "swaks PIPELINING delivery gets 250" grep -q "250 2.0.0" "$dir/swaks-pipe.log"
  swaks --to nobody@agents.test --from alice@example.test --server "127.0.0.1:$smtp" > "$dir/swaks-unknown.log" 2>&1 || true
  check "unknown recipient is 550 5.1.1" grep -q "550 5.1.1" "$dir/swaks-unknown.log"
  swaks --to someone@elsewhere.test --from alice@example.test --server "127.0.0.1:$smtp" > "$dir/swaks-relay.log" 2>&1 || true
  check "relay attempt is 554 5.7.1" grep -q "554 5.7.1" "$dir/swaks-relay.log"
  local list; list=$(curl -s "$base/v1/messages" -H "Authorization: Bearer $key")
  check "both messages are stored" test "$(echo "$list" | jq '.items | length')" -eq 2
  check "the +tag became a label" test "$(echo "$list" | jq -r '[.items[] | select(.subject=="pipelined") | .labels[]] | index("news")')" != "null"
  local id; id=$(echo "$list" | jq -r '.items[] | select(.subject=="over starttls") | .id')
  check "Received records ESMTPS" sh -c "curl -s '$base/v1/messages/$id/raw' -H 'Authorization: Bearer $key' | grep -q 'with ESMTPS'"
  kill -TERM "$pid"; local rc=0; wait "$pid" || rc=$?
  check "SIGTERM with an SMTP listener exits 0" test "$rc" -eq 0
}

# Outbound: swaks submits with STARTTLS + AUTH PLAIN; dkimpy verifies both DKIM signatures with
# the records `legate dkim records --json` prints; a private loopback postfix receives our mail
# (relaying it to smtp-sink) and relays its own mail to us. DNS goes to a closed port.
# shellcheck source=/dev/null
source tests/interop/lib/postfix.sh

suite_40_outbound() {
  local dir="$WORK/outbound"; mkdir -p "$dir"
  chmod 755 "$WORK" "$dir"   # postfix and smtp-sink drop to the postfix user
  local http smtp sub dead pfport sink
  http=$(free_port); smtp=$(free_port); sub=$(free_port); dead=$(free_port)
  pfport=$(free_port); sink=$(free_port)
  cat > "$dir/config.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$http"
smtp = "127.0.0.1:$smtp"
submission = "127.0.0.1:$sub"
imap = ""
[dns]
nameservers = ["127.0.0.1:$dead"]
timeout_secs = 1
[outbound]
retry_secs = [1]
scan_interval_secs = 1
[[outbound.route]]
domain = "pf.test"
next_hop = "127.0.0.1:$pfport"
require_tls = false
CFG
  # The keys are made when the data directory is first opened: the records exist before serve.
  "$BIN" --config "$dir/config.toml" dkim records --json > "$dir/dkim.json" 2> "$dir/dkim.err"
  check "dkim records lists an ed25519 and an rsa selector" \
    test "$(jq -r '[.[].algorithm] | sort | join(",")' "$dir/dkim.json" 2>/dev/null)" = "ed25519,rsa"

  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "outbound server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  mkagent() {
    curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d "{\"local\":\"$1\",\"scopes\":[\"mail:read\",\"mail:send\"]}" | jq -r .api_key.key
  }
  local akey bkey; akey=$(mkagent alice); bkey=$(mkagent bob)
  inbox_has() {  # inbox_has KEY SUBJECT: waits up to 10 s for a message with that subject
    for _ in $(seq 1 100); do
      curl -s "$base/v1/messages" -H "Authorization: Bearer $1" \
        | jq -e --arg s "$2" '[.items[] | select(.subject==$s)] | length > 0' >/dev/null && return 0
      sleep 0.1
    done; return 1
  }

  # a. submission: STARTTLS, AUTH PLAIN with the agent address and its API key.
  swaks --server "127.0.0.1:$sub" --tls --auth PLAIN --auth-user alice@agents.test --auth-password "$akey" \
        --from alice@agents.test --to bob@agents.test --header "Subject: via submission" \
        --body "hello bob" > "$dir/swaks-sub.log" 2>&1
  check "swaks STARTTLS + AUTH PLAIN submission gets 250" grep -q "^<~  250 2.0.0" "$dir/swaks-sub.log"
  check "AUTH PLAIN accepted with 235" grep -q "^<~  *235" "$dir/swaks-sub.log"
  check "bob reads the submitted message over the API" inbox_has "$bkey" "via submission"
  swaks --server "127.0.0.1:$sub" --tls --auth PLAIN --auth-user alice@agents.test --auth-password "lg_wrong$akey" \
        --from alice@agents.test --to bob@agents.test > "$dir/swaks-badkey.log" 2>&1 || true
  check "a wrong key is refused with 535" grep -q "^<~\* *535" "$dir/swaks-badkey.log"

  # b/c. legate -> postfix (static route) -> smtp-sink, then dkimpy on what arrived and on Sent.
  mkdir -p "$dir/sink"; chmod 777 "$dir/sink"
  smtp-sink -u postfix -d "$dir/sink/m." 127.0.0.1:"$sink" 64 > "$dir/sink.out" 2>&1 &
  PIDS+=("$!")
  if ! pf_start "$dir/pf" "$pfport" "pf.test=smtp:[127.0.0.1]:$sink, agents.test=smtp:[127.0.0.1]:$smtp"; then
    bad "private postfix starts"; cat "$dir/pf/start.log" >&2; kill -TERM "$pid"; return
  fi
  # run.sh's exit trap kills PIDS: the private master goes with it if we stop early.
  PIDS+=("$(tr -d ' ' < "$dir/pf/spool/pid/master.pid")")
  local resp id
  resp=$(curl -s -XPOST "$base/v1/messages/send" -H "Authorization: Bearer $akey" -H 'content-type: application/json' \
    -d '{"to":["someone@pf.test"],"subject":"to postfix","text":"Signed twice.\nSecond line.\n"}')
  id=$(echo "$resp" | jq -r .id)
  check "send to a remote domain answers an id" test -n "$id" -a "$id" != null
  local got=""
  for _ in $(seq 1 150); do
    got=$(grep -l "^Subject: to postfix" "$dir"/sink/m.* 2>/dev/null | head -1) && [ -n "$got" ] && break
    sleep 0.1
  done
  check "postfix accepted our mail and relayed it to smtp-sink" test -n "$got"
  check "the relayed copy carries two DKIM-Signature headers" \
    test "$(grep -ci '^DKIM-Signature:' "${got:-/dev/null}")" -eq 2
  check "the delivery status says delivered" sh -c "curl -s '$base/v1/messages/$id' -H 'Authorization: Bearer $akey' \
    | jq -e '.delivery[0].status == \"delivered\"' >/dev/null"
  curl -s "$base/v1/messages/$id/raw" -H "Authorization: Bearer $akey" > "$dir/sent.eml"
  check "dkimpy verifies both signatures of the Sent copy" \
    python3 tests/interop/lib/dkim_verify.py "$dir/dkim.json" "$dir/sent.eml"
  check "dkimpy verifies both signatures after the postfix hop" \
    python3 tests/interop/lib/dkim_verify.py "$dir/dkim.json" "${got:-/dev/null}"

  # postfix relays its own mail to us (transport agents.test -> our SMTP port).
  swaks --server "127.0.0.1:$pfport" --from carol@pf.test --to bob@agents.test \
        --header "Subject: from postfix" --body "relayed by postfix" > "$dir/swaks-pf.log" 2>&1
  check "postfix queues mail for agents.test" grep -q "^<-  *250 .*queued" "$dir/swaks-pf.log"
  check "bob reads the mail postfix relayed" inbox_has "$bkey" "from postfix"
  check "postfix logged status=sent to legate" sh -c "sleep 0.5; grep -q 'to=<bob@agents.test>.*status=sent' '$dir/pf/maillog'"

  pf_stop "$dir/pf"
  kill -TERM "$pid"; local rc=0; wait "$pid" || rc=$?
  check "SIGTERM with submission and a queue exits 0" test "$rc" -eq 0
}

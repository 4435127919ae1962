# Accountable sending with real peers (issue 24): a first-contact send is held, an admin
# approves it over REST and the private loopback postfix relays it to smtp-sink, where dkimpy
# verifies both signatures; reject and expiry. postfix accepts mail for nouser@pf.test, then
# bounces it (error transport, 5.1.1) to our VERP address through legate's MX: the recipient
# is bounced and suppressed, the next send refused (422). An ARF report shaped like large
# providers' feedback loops, relayed by postfix to abuse@, marks a recipient complained and
# trips the breaker. Malformed, forged and foreign reports link nothing and are kept.
# postfix, smtp-sink, swaks and dkimpy come from setup.d/40_outbound.sh.
# shellcheck source=/dev/null
source tests/interop/lib/postfix.sh

suite_41_accountable() {
  local dir="$WORK/accountable"; mkdir -p "$dir"
  chmod 755 "$WORK" "$dir"
  local http smtp dead pfport sink
  http=$(free_port); smtp=$(free_port); dead=$(free_port); pfport=$(free_port); sink=$(free_port)
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
[send_policy]
first_contact = "hold"
approval_ttl_secs = 4
[outbound]
retry_secs = [1]
scan_interval_secs = 1
[[outbound.route]]
domain = "pf.test"
next_hop = "127.0.0.1:$pfport"
require_tls = false
CFG
  "$BIN" --config "$dir/config.toml" dkim records --json > "$dir/dkim.json" 2> "$dir/dkim.err"
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "accountable server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  api() {  # api METHOD PATH KEY [JSON]
    if [ -n "${4:-}" ]; then
      curl -s -X"$1" "$base$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' -d "$4"
    else
      curl -s -X"$1" "$base$2" -H "Authorization: Bearer $3"
    fi
  }
  mkagent() {
    api POST /v1/agents "$token" "{\"local\":\"$1\",\"scopes\":[\"mail:read\",\"mail:send\"]}" \
      | tee "$dir/agent-$1.json" | jq -r .api_key.key
  }
  send() {  # send KEY TO SUBJECT -> the answer
    api POST /v1/messages/send "$1" "{\"to\":[\"$2\"],\"subject\":\"$3\",\"text\":\"Hello.\\n\"}"
  }
  sunk() {  # sunk SUBJECT: waits up to 15 s for smtp-sink to have it; prints its file
    local f
    for _ in $(seq 1 150); do
      f=$(grep -l "^Subject: $1\$" "$dir"/sink/m.* 2>/dev/null | head -1) && [ -n "$f" ] && { echo "$f"; return 0; }
      sleep 0.1
    done; return 1
  }
  status_is() {  # status_is KEY ID STATUS: waits up to 15 s for recipient 0 to reach STATUS
    for _ in $(seq 1 150); do
      api GET "/v1/messages/$2" "$1" | jq -e --arg s "$3" '.delivery[0].status == $s' >/dev/null && return 0
      sleep 0.1
    done; return 1
  }
  local akey bkey cid
  akey=$(mkagent alice); bkey=$(mkagent bob); cid=$(jq -r .id "$dir/agent-bob.json")

  mkdir -p "$dir/sink"; chmod 777 "$dir/sink"
  smtp-sink -u postfix -d "$dir/sink/m." 127.0.0.1:"$sink" 64 > "$dir/sink.out" 2>&1 &
  PIDS+=("$!")
  if ! pf_start "$dir/pf" "$pfport" \
    "{ nouser@pf.test = nouser: }, pf.test=smtp:[127.0.0.1]:$sink, agents.test=smtp:[127.0.0.1]:$smtp"; then
    bad "private postfix starts"; cat "$dir/pf/start.log" >&2; kill -TERM "$pid"; return
  fi
  PIDS+=("$(tr -d ' ' < "$dir/pf/spool/pid/master.pid")")

  # a. Approval end to end.
  local r id got
  r=$(send "$akey" first@pf.test "held then approved"); id=$(echo "$r" | jq -r .id)
  check "a first-contact send answers held" test "$(echo "$r" | jq -r .status)" = held
  check "the admin sees it pending" sh -c "curl -s '$base/v1/approvals' -H 'Authorization: Bearer $token' \
    | jq -e --arg id '$id' '[.items[] | select(.id == \$id and .status == \"pending\")] | length == 1' >/dev/null"
  check "nothing reached postfix while held" sh -c "! grep -ls '^Subject: held then approved' '$dir'/sink/m.* 2>/dev/null"
  r=$(api POST "/v1/approvals/$id/approve" "$token" '{"note":"ok"}')
  check "the admin approves over REST" test "$(echo "$r" | jq -r .status)" = approved
  got=$(sunk "held then approved" || true)
  check "postfix relayed the approved message to smtp-sink" test -n "$got"
  check "dkimpy verifies both signatures of the approved message after postfix" \
    python3 tests/interop/lib/dkim_verify.py "$dir/dkim.json" "${got:-/dev/null}"
  check "the approved recipient is delivered" status_is "$akey" "$id" delivered
  check "the send's audit entry names the approving human" sh -c "curl -s '$base/v1/audit?action=mail.send' \
    -H 'Authorization: Bearer $token' | jq -e --arg id '$id' \
    '[.items[] | select(.target == \$id) | .chain[] | select(startswith(\"approved-by:\"))] | length == 1' >/dev/null"
  r=$(send "$akey" second@pf.test "held then rejected"); id=$(echo "$r" | jq -r .id)
  r=$(api POST "/v1/approvals/$id/reject" "$token" '{"note":"no"}')
  check "the admin rejects over REST" test "$(echo "$r" | jq -r .status)" = rejected
  check "the agent sees its message rejected" sh -c "curl -s '$base/v1/messages/$id' -H 'Authorization: Bearer $akey' \
    | jq -e '.approval.status == \"rejected\"' >/dev/null"
  r=$(send "$akey" third@pf.test "held then expired"); local eid; eid=$(echo "$r" | jq -r .id)
  local expired=1
  for _ in $(seq 1 100); do
    api GET "/v1/messages/$eid" "$akey" | jq -e '.approval.status == "expired"' >/dev/null && { expired=0; break; }
    sleep 0.1
  done
  check "an unapproved send expires" test "$expired" -eq 0
  sleep 1
  check "neither the rejected nor the expired message reached postfix" \
    sh -c "! grep -lsE '^Subject: held then (rejected|expired)' '$dir'/sink/m.* 2>/dev/null"

  # b. A bounce from postfix, through legate's MX.
  api PUT "/v1/agents/$cid/send-policy" "$token" '{"first_contact":"allow"}' > /dev/null
  r=$(send "$bkey" nouser@pf.test "to nobody"); id=$(echo "$r" | jq -r .id)
  check "postfix's DSN marks the recipient bounced" status_is "$bkey" "$id" bounced
  check "postfix accepted, then bounced and sent its DSN to legate" sh -c "grep -q 'to=<nouser@pf.test>.*dsn=5.1.1, status=bounced' '$dir/pf/maillog' \
    && grep -q 'to=<bob+b\..*@agents.test>, relay=127.0.0.1.*status=sent' '$dir/pf/maillog'"
  check "the address is suppressed" sh -c "curl -s '$base/v1/suppressions' -H 'Authorization: Bearer $token' \
    | jq -e '[.items[] | select(.address == \"nouser@pf.test\")] | length == 1' >/dev/null"
  check "the bounce is kept under the message, not in the INBOX" sh -c "curl -s '$base/v1/messages/$id' \
    -H 'Authorization: Bearer $bkey' | jq -e '.feedback | length >= 1' >/dev/null && \
    curl -s '$base/v1/messages' -H 'Authorization: Bearer $bkey' | jq -e '[.items[] | select(.folder == \"INBOX\")] | length == 0' >/dev/null"
  local code
  code=$(curl -s -o "$dir/suppressed.json" -w '%{http_code}' -XPOST "$base/v1/messages/send" \
    -H "Authorization: Bearer $bkey" -H 'content-type: application/json' \
    -d '{"to":["nouser@pf.test"],"subject":"again","text":"x"}')
  check "the next send to it is refused with 422 suppressed" \
    sh -c "[ '$code' = 422 ] && jq -e '.error.code == \"suppressed\"' '$dir/suppressed.json' >/dev/null"

  # ARF through postfix to abuse@, as a provider's feedback loop sends it.
  r=$(send "$bkey" reader@pf.test "to a reader"); id=$(echo "$r" | jq -r .id)
  check "the reader's copy is delivered" status_is "$bkey" "$id" delivered
  local verp mid
  got=$(sunk "to a reader" || true)
  verp=$(sed -n 's/^Return-Path: <\(.*\)>.*/\1/p' "${got:-/dev/null}" | head -1)
  [ -n "$verp" ] || verp=$(grep -o 'bob+b\.[^>@]*@agents.test' "${got:-/dev/null}" | head -1)
  mid=$(api GET "/v1/messages/$id" "$bkey" | jq -r .message_id | tr -d '<>')
  check "the delivered copy's reverse-path is a VERP bounce address" sh -c "echo '$verp' | grep -q '^bob+b\.'"
  printf '%s\r\n' "From: Mail Feedback Loop <fbl@pf.test>" "To: abuse@agents.test" \
    "Subject: complaint about message from 127.0.0.1" "MIME-Version: 1.0" \
    "Content-Type: multipart/report; report-type=feedback-report; boundary=\"fbl_1\"" "" \
    "--fbl_1" "Content-Type: text/plain; charset=\"US-ASCII\"" "" \
    "This is an email abuse report for an email message received from IP 127.0.0.1." "" \
    "--fbl_1" "Content-Type: message/feedback-report" "" \
    "Feedback-Type: abuse" "User-Agent: PF-FBL/1.0" "Version: 1" \
    "Original-Mail-From: <$verp>" "Original-Rcpt-To: <reader@pf.test>" \
    "Arrival-Date: $(date -R)" "Reported-Domain: agents.test" "Source-IP: 127.0.0.1" "" \
    "--fbl_1" "Content-Type: text/rfc822-headers" "" \
    "Return-Path: <$verp>" "From: bob@agents.test" "To: reader@pf.test" "Message-ID: <$mid>" \
    "Subject: to a reader" "" "--fbl_1--" > "$dir/arf.eml"
  swaks --server "127.0.0.1:$pfport" --from fbl@pf.test --to abuse@agents.test \
    --data "$dir/arf.eml" > "$dir/swaks-arf.log" 2>&1
  check "the ARF report marks the recipient complained" status_is "$bkey" "$id" complained
  check "the complaint trips the breaker: the next send is refused 403 sending_paused" sh -c "sleep 0.5; \
    curl -s -XPOST '$base/v1/messages/send' -H 'Authorization: Bearer $bkey' -H 'content-type: application/json' \
    -d '{\"to\":[\"other@pf.test\"],\"subject\":\"x\",\"text\":\"x\"}' | jq -e '.error.code == \"sending_paused\"' >/dev/null"
  api POST "/v1/agents/$cid/resume" "$token" > /dev/null

  # c. Bad input: nothing linked wrongly, nothing lost.
  r=$(send "$bkey" keep@pf.test "stays delivered"); id=$(echo "$r" | jq -r .id)
  status_is "$bkey" "$id" delivered || true
  got=$(sunk "stays delivered" || true)
  verp=$(sed -n 's/^Return-Path: <\(.*\)>.*/\1/p' "${got:-/dev/null}" | head -1)
  [ -n "$verp" ] || verp=$(grep -o 'bob+b\.[^>@]*@agents.test' "${got:-/dev/null}" | head -1)
  local vlocal="${verp%@*}"
  local forged="${vlocal%.*}.aaaaaaaaaaaaaaaa@agents.test"
  swaks --server "127.0.0.1:$smtp" --from '<>' --to "$forged" > "$dir/swaks-forged.log" 2>&1 || true
  check "a bounce to a forged token is refused at RCPT" grep -q '^<\*\* *550' "$dir/swaks-forged.log"
  swaks --server "127.0.0.1:$smtp" --from '' --to "$verp" --header "Subject: not a report" \
    --body "garbage, no report" > "$dir/swaks-malformed.log" 2>&1 || true
  check "a malformed report is accepted (kept)" grep -q '^<-  *250' "$dir/swaks-malformed.log"
  api POST /v1/orgs "$token" '{"name":"Other","domain":"other.test"}' > /dev/null
  local foreign="${verp%@*}@other.test"
  printf '%s\r\n' "From: MAILER-DAEMON@pf.test" "To: $foreign" "Subject: Undelivered Mail" "MIME-Version: 1.0" \
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"" "" \
    "--B" "Content-Type: message/delivery-status" "" "Reporting-MTA: dns; pf.test" "" \
    "Final-Recipient: rfc822; keep@pf.test" "Action: failed" "Status: 5.1.1" "" "--B--" > "$dir/foreign.eml"
  swaks --server "127.0.0.1:$smtp" --from '' --to "$foreign" --data "$dir/foreign.eml" > "$dir/swaks-foreign.log" 2>&1 || true
  check "another org's DSN is accepted (kept)" grep -q '^<-  *250' "$dir/swaks-foreign.log"
  check "the bad reports are kept unlinked for an admin" sh -c "sleep 0.5; curl -s '$base/v1/feedback?linked=false' \
    -H 'Authorization: Bearer $token' | jq -e '.items | length >= 2' >/dev/null"
  check "the message stays delivered and its address unsuppressed" sh -c "curl -s '$base/v1/messages/$id' \
    -H 'Authorization: Bearer $bkey' | jq -e '.delivery[0].status == \"delivered\"' >/dev/null && \
    curl -s '$base/v1/suppressions' -H 'Authorization: Bearer $token' \
    | jq -e '[.items[] | select(.address == \"keep@pf.test\")] | length == 0' >/dev/null"

  # Reputation over the CLI (the running server's admin socket) reflects it all.
  "$BIN" --config "$dir/config.toml" agent reputation bob@agents.test > "$dir/rep.txt" 2>&1
  check "legate agent reputation prints the score and the bounce and complaint" \
    sh -c "grep -q 'score [0-9]*/100' '$dir/rep.txt' && grep -q '1 bounced, 1 complained' '$dir/rep.txt'"

  pf_stop "$dir/pf"
  kill -TERM "$pid"; wait "$pid" || true
}

# Webhooks against the Standard Webhooks reference library: a receiver built on the
# `standardwebhooks` PyPI package verifies the signature of a real `message.received`
# delivery (made by an SMTP delivery) and of a test event after a secret rotation.

suite_90_webhooks() {
  local dir="$WORK/webhooks"; mkdir -p "$dir"
  local http smtp
  http=$(free_port); smtp=$(free_port)
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
nameservers = ["127.0.0.1:9"]
timeout_secs = 1
[log]
level = "warn"
[webhooks]
danger_allow_http = true
allow_private = ["127.0.0.1/32"]
retry_initial_ms = 200
CFG
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "webhooks server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local key; key=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read"]}' | jq -r .api_key.key)

  : > "$dir/hits.jsonl"; : > "$dir/secret"
  python3 tests/interop/tools/webhook_receiver.py --secret-file "$dir/secret" --out "$dir/hits.jsonl" \
    --port-file "$dir/recv.port" > /dev/null 2> "$dir/recv.err" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do [ -s "$dir/recv.port" ] && break; sleep 0.1; done
  local port; port=$(cat "$dir/recv.port" 2>/dev/null || true)
  check "the standardwebhooks receiver starts" test -n "$port"

  local wh; wh=$(curl -s -XPOST "$base/v1/webhooks" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
      -d "{\"url\":\"http://127.0.0.1:$port/hook\",\"event_types\":[\"message.received\"]}")
  local id; id=$(echo "$wh" | jq -r .id)
  echo "$wh" | jq -r .secret > "$dir/secret"
  check "the webhook is created with a whsec_ secret" grep -q '^whsec_' "$dir/secret"

  python3 - "$smtp" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("alice@sender.test", ["ops@agents.test"],
           "From: alice@sender.test\r\nTo: ops@agents.test\r\nSubject: Code\r\n\r\nYour code is 482913.\r\n")
s.quit()
PY
  check "SMTP accepts the message" test $? -eq 0
  for _ in $(seq 1 50); do [ -s "$dir/hits.jsonl" ] && break; sleep 0.1; done
  check "standardwebhooks verifies the message.received delivery" \
    sh -c "head -1 '$dir/hits.jsonl' | jq -e '.verified and .type == \"message.received\" and .data.codes[0].code == \"482913\"' >/dev/null"

  # After a rotation both secrets sign; the library accepts the new one.
  curl -s -XPOST "$base/v1/webhooks/$id/rotate" -H "Authorization: Bearer $key" | jq -r .secret > "$dir/secret"
  local t; t=$(curl -s -XPOST "$base/v1/webhooks/$id/test" -H "Authorization: Bearer $key")
  check "the test event after a rotation is answered 2xx" sh -c "echo '$t' | jq -e .ok >/dev/null"
  check "standardwebhooks verifies it with the new secret" \
    sh -c "tail -1 '$dir/hits.jsonl' | jq -e '.verified and .type == \"webhook.test\"' >/dev/null"
  check "the receiver raised nothing" test ! -s "$dir/recv.err"
  check "no panic in the server log" sh -c "! grep -q panicked '$dir/err'"
  kill -TERM "$pid"; wait "$pid" || true
}

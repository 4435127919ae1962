# Foundation: the release binary starts with no config, serves the API, stops cleanly.
suite_00_foundation() {
  local dir="$WORK/foundation"; mkdir -p "$dir"
  local http; http=$(free_port)
  cat > "$dir/config.toml" <<CFG
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$http"
smtp = ""
submission = ""
imap = ""
CFG
  # 1. no config at all: embedded defaults in ./data of the working directory
  ( cd "$dir" && exec "$BIN" serve > nocfg.out 2> nocfg.err ) &
  local pid=$!; PIDS+=("$pid")
  if wait_http "http://127.0.0.1:8080"; then
    for _ in $(seq 1 50); do grep -q 'admin token.*lg_' "$dir/nocfg.out" && break; sleep 0.1; done
    check "no-config serve prints an admin token" grep -q 'admin token.*lg_' "$dir/nocfg.out"
    check "no-config serve keeps data in ./data" test -d "$dir/data/db"
    kill -TERM "$pid"; local rc=0; wait "$pid" || rc=$?
    check "SIGTERM exits 0 (no config)" test "$rc" -eq 0
  else
    bad "no-config serve answers on 127.0.0.1:8080 (port busy?)"; kill "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir/data"

  # 2. with a config and a bootstrap token: curl tour
  local base="http://127.0.0.1:$http"
  check "server answers /healthz" start_legate "$dir/config.toml" --token new --wait "$base"
  local token=$LEGATE_TOKEN; pid=$LEGATE_PID
  local created; created=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" \
      -H 'content-type: application/json' -d '{"local":"ops","scopes":["mail:read","vault:read"]}')
  local key; key=$(echo "$created" | jq -r .api_key.key)
  check "curl creates an agent" test "$(echo "$created" | jq -r .address)" = "ops@localhost"
  check "whoami with the agent key" test "$(curl -s "$base/v1/whoami" -H "Authorization: Bearer $key" | jq -r .address)" = "ops@localhost"
  check "missing key is 401 JSON" test "$(curl -s "$base/v1/whoami" | jq -r .error.code)" = "missing_credentials"
  check "admin reads the audit" test "$(curl -s "$base/v1/audit" -H "Authorization: Bearer $token" | jq '.items | length')" -ge 2
  kill -TERM "$pid"; local rc=0; wait "$pid" || rc=$?
  check "SIGTERM exits 0" test "$rc" -eq 0
  check "audit verify passes on the chain" "$BIN" --config "$dir/config.toml" audit verify
}

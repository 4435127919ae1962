# OAuth 2.1 for MCP clients with the official MCP Python SDK (tests/interop/mcp_oauth_client.py):
# its OAuthClientProvider registers, is sent to the console's consent page (completed over
# HTTP as a signed-in human would), exchanges the code with PKCE, lists and calls tools, and
# refreshes; the console disconnects it; PKCE missing or wrong is refused; agent A's token
# cannot read agent B's vault.
suite_96_oauth_mcp() {
  local dir="$WORK/oauth-mcp"; mkdir -p "$dir"
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
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "oauth server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local line
  while IFS= read -r line; do
    case $line in
      "ok - "*) ok "oauth: ${line#ok - }" ;;
      "FAIL - "*) bad "oauth: ${line#FAIL - }" ;;
      *) echo "    $line" ;;
    esac
  done < <(python3 "$ROOT/tests/interop/mcp_oauth_client.py" "$base" "$token" 2>&1 || true)
  kill -TERM "$pid"; wait "$pid" || true
}

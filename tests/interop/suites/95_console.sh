# The operator console in a real browser (tests/interop/console_browser.js): sign-in with the
# admin token, TOTP, an agent and its key, a mail over SMTP read with the code highlighted, a
# key revoked, the DNS check, the audit chain, sign-out; CSRF-less posts and a cookie on
# another host refused; axe-core on every page. Screenshots go to docs/screenshots/.
suite_95_console() {
  local dir="$WORK/console"; mkdir -p "$dir"
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
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "console server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  mkdir -p "$ROOT/docs/screenshots"
  local line
  while IFS= read -r line; do
    case $line in
      "ok   - "*) ok "console: ${line#ok   - }" ;;
      "FAIL - "*) bad "console: ${line#FAIL - }" ;;
      *) echo "    $line" ;;
    esac
  done < <(node "$ROOT/tests/interop/console_browser.js" "$base" "$token" "$smtp" "$ROOT/docs/screenshots" 2>&1 || true)
  kill -TERM "$pid"; wait "$pid" || true
}

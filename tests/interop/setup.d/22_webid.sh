# Identity on the web (issue 25): PyPI's http-message-signatures (RFC 9421) and Cloudflare's
# npm web-bot-auth verify our request signatures; a2a-sdk's AgentCard model parses our agent
# cards and verifies their JWS, as does joserfc independently.
need_py http_message_signatures http-message-signatures
need_py requests requests
need_py a2a a2a-sdk
need_py joserfc joserfc
need_py jwt pyjwt
need_cmd node nodejs
need_cmd npm npm

WEBBOTAUTH_DIR=${WEBBOTAUTH_DIR:-/opt/legate-interop/web-bot-auth}

# Idempotent; a failed npm install is not fatal: the suite skips web-bot-auth with a note.
after_install_webid() {
  local dir=$WEBBOTAUTH_DIR
  [ -f "$dir/node_modules/web-bot-auth/package.json" ] && return 0
  mkdir -p "$dir"
  (cd "$dir" &&
   { [ -f package.json ] || echo '{"name":"legate-interop-web-bot-auth","private":true}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error web-bot-auth@0.1.3 >/dev/null) ||
    echo "setup: could not install web-bot-auth with npm; the webid suite will skip it" >&2
}

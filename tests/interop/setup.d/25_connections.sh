# Connected accounts (issue 25 §1-2): npm's oidc-provider (OpenID Certified) runs on loopback
# as the third-party service legate's OAuth client connects to. Pinned; installed under a
# cache directory like the other npm peers.
need_cmd node nodejs
need_cmd npm npm
need_cmd jq jq
need_cmd curl curl

OIDC_PROVIDER_DIR=${OIDC_PROVIDER_DIR:-/opt/legate-interop/oidc-provider}

# Idempotent; a failed npm install is not fatal: the suite reports the missing peer.
after_install_connections() {
  local dir=$OIDC_PROVIDER_DIR
  [ -f "$dir/node_modules/oidc-provider/package.json" ] && return 0
  mkdir -p "$dir"
  (cd "$dir" &&
   { [ -f package.json ] || echo '{"name":"legate-interop-oidc-provider","private":true}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error oidc-provider@9.13.3 >/dev/null) ||
    echo "setup: could not install oidc-provider with npm; the connections suite will fail" >&2
}

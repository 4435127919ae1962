# OAuth for MCP clients: the official MCP Python SDK's OAuthClientProvider, the same `mcp`
# package 60_mcp installs (named here too so this suite stands on its own, once in the list).
[[ " ${PIP[*]:-} " == *" mcp "* ]] || need_py mcp mcp

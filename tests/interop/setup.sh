#!/usr/bin/env bash
# Installs the third-party peers the interop suite drives. Idempotent; CI machines start bare.
set -euo pipefail

need_apt=()
for cmd_pkg in curl:curl swaks:swaks oathtool:oathtool jq:jq wrk:wrk; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Identity: PyJWT and cryptography verify our tokens and signatures from the published keys.
python3 -c 'import jwt, cryptography' >/dev/null 2>&1 || PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q pyjwt cryptography

#!/usr/bin/env bash
# Installs the third-party peers the interop suite drives. Idempotent; CI machines start bare.
# Each suite lists what it needs in setup.d/<suite>.sh with `need_cmd COMMAND DEBIAN_PACKAGE`
# and `need_py MODULE PYPI_PACKAGE`; work that must follow the installs goes in a function
# named `after_install_*`.
set -euo pipefail
cd "$(dirname "$0")"

APT=(); PIP=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || APT+=("$2"); }
need_py() { python3 -c "import $1" >/dev/null 2>&1 || PIP+=("$2"); }

for f in setup.d/*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#APT[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
fi
if [ ${#PIP[@]} -gt 0 ]; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q "${PIP[@]}"
fi
for fn in $(declare -F | awk '{print $3}' | grep '^after_install_' | sort); do
  "$fn"
done

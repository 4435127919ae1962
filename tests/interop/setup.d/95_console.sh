# Console: Debian's chromium driven by playwright-core, with axe-core for accessibility, both
# installed privately with npm (no browser download: playwright-core uses /usr/bin/chromium).
need_cmd chromium chromium
need_cmd node nodejs
need_cmd npm npm

CONSOLE_NODE_DIR=${CONSOLE_NODE_DIR:-/opt/legate-interop/console}

after_install_console() {
  local dir=$CONSOLE_NODE_DIR
  [ -f "$dir/node_modules/playwright-core/package.json" ] && [ -f "$dir/node_modules/axe-core/axe.min.js" ] && return 0
  mkdir -p "$dir"
  (cd "$dir" &&
   { [ -f package.json ] || echo '{"name":"legate-interop-console","private":true}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error playwright-core@1 axe-core@4 >/dev/null) ||
    echo "setup: could not install playwright-core/axe-core with npm; the console suite will fail" >&2
}

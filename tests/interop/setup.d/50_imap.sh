# IMAP: mbsync (isync) syncs to a Maildir, neomutt is driven through tmux, swaks and postfix's
# smtp-source deliver; Python's own imaplib needs nothing. Node's imapflow is installed
# privately with npm (the suite skips it with a note when it could not be installed).
# bench/imap.sh also runs a private dovecot IMAP server.
need_cmd mbsync isync
need_cmd neomutt neomutt
need_cmd tmux tmux
need_cmd swaks swaks
need_cmd smtp-source postfix
need_cmd bc bc
need_cmd node nodejs
need_cmd npm npm
need_cmd doveadm dovecot-core
need_cmd /usr/lib/dovecot/imap dovecot-imapd

IMAPFLOW_DIR=${IMAPFLOW_DIR:-/opt/legate-interop/imapflow}

# Idempotent; a failed npm install (no registry access) is not fatal: the suite skips imapflow.
after_install_imap() {
  local dir=$IMAPFLOW_DIR
  # dovecot-imapd's install may start the system dovecot on 143/993: stop it, as 35_inbound
  # does for dovecot-core (the benches run their own private instance).
  if [[ " ${APT[*]:-} " == *" dovecot-imapd "* ]] && command -v systemctl >/dev/null 2>&1 &&
     systemctl is-active --quiet dovecot 2>/dev/null; then
    $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
  fi
  [ -f "$dir/node_modules/imapflow/package.json" ] && return 0
  mkdir -p "$dir"
  (cd "$dir" &&
   { [ -f package.json ] || echo '{"name":"legate-interop-imapflow","private":true}' > package.json; } &&
   npm install --no-audit --no-fund --loglevel=error imapflow@2 >/dev/null) ||
    echo "setup: could not install imapflow with npm; the IMAP suite will skip it" >&2
}

# Postfix's smtp-source / smtp-sink load the inbound MTA (postfix itself is never started:
# the package's own service start is refused in containers, and nothing here enables it).
need_cmd smtp-source postfix
# A loopback DNS server (dnslib) answers for the signing domains; dkimpy (with PyNaCl for
# ed25519) signs, authheaders + pyspf (over dnspython) give the reference verdicts.
need_py dnslib dnslib
need_py dkim dkimpy
need_py nacl pynacl
need_py authheaders authheaders
need_py spf pyspf
need_py dns dnspython
# bench/smtp_inbound.sh compares with postfix relaying over LMTP to a private dovecot instance.
need_cmd doveadm dovecot-core
need_cmd /usr/lib/dovecot/lmtp dovecot-lmtpd

# Only the tools are wanted: if this run installed postfix or dovecot and the package started
# the system service (it binds 25, 143, 993), stop and disable it so nothing conflicts with
# legate or the benches' private instances. Services that were there before are left alone.
after_install_35_inbound() {
  local pkg svc
  for pkg in postfix dovecot-core; do
    [[ " ${APT[*]:-} " == *" $pkg "* ]] || continue
    svc=${pkg%-core}
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif [ "$svc" = postfix ]; then
      $SUDO postfix stop >/dev/null 2>&1 || true
    fi
  done
}

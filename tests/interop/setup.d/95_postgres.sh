# The PostgreSQL backend (issue 20): a throwaway cluster from Debian's postgresql package,
# started unprivileged by lib/pg.sh (initdb + pg_ctl; the package's own service is not used).
ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || APT+=(postgresql)
need_cmd swaks swaks

# Installing the package may start its system cluster on 5432; nothing here uses it.
after_install_95_postgres() {
  [[ " ${APT[*]:-} " == *" postgresql "* ]] || return 0
  if command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet postgresql 2> /dev/null; then
    $SUDO systemctl disable --now postgresql > /dev/null 2>&1 || true
  fi
}

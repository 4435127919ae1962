# Shared by the benchmark scripts (sourced, not run). Expects WORK (a temp dir) and PIDS (an
# array of processes the caller's cleanup kills) to exist.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts the loopback DNS server with SPF for DOMAIN authorising 127.0.0.1; sets DNS_PORT.
start_dns() {
  echo "{\"$1\": {\"TXT\": [\"v=spf1 ip4:127.0.0.1 -all\"]}}" > "$WORK/dns.json"
  python3 tests/interop/tools/dns_server.py --records "$WORK/dns.json" --port-file "$WORK/dns.port" \
    > /dev/null 2>&1 & PIDS+=("$!")
  for _ in $(seq 1 100); do [ -s "$WORK/dns.port" ] && break; sleep 0.1; done
  DNS_PORT=$(cat "$WORK/dns.port")
}

# Writes DIR/dovecot.conf for a private dovecot that takes LMTP on 127.0.0.1:PORT into
# Maildirs under DIR/mail (static passdb/userdb, everything as nobody), and makes its dirs.
dovecot_lmtp_conf() {
  local dv=$1 port=$2
  mkdir -p "$dv/run" "$dv/state" "$dv/mail"; chown nobody:nogroup "$dv/mail"
  cat > "$dv/dovecot.conf" <<CFG
protocols = lmtp
listen = 127.0.0.1
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
ssl = no
mail_location = maildir:~/Maildir
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dv/mail/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $port
  }
}
CFG
}

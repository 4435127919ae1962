# ACME state shared through the PostgreSQL store (issue 20): two legate nodes on one database
# and pebble, the ACME test CA, whose HTTP-01 validation always connects to node B.
#  1. Both nodes start without a certificate: exactly one order is placed for the pair, and
#     both serve the same certificate (SHA-256 fingerprints through openssl s_client).
#  2. Node B alone, restarted: serves the stored certificate at once. Node A, restarted with a
#     renewal window wider than the lifetime, renews once: A places the order and pebble
#     validates against node B, which answers from the store; B (check interval one hour, so
#     only the `cert` signal can make it look) serves A's new certificate within seconds.

# shellcheck source=/dev/null
source tests/interop/lib/pg.sh

# "issuer|sha256 fingerprint" of the certificate served at $1 (host:port) for SNI $2.
_pga_cert() {
  echo | timeout 10 openssl s_client -connect "$1" -servername "$2" 2>/dev/null \
    | openssl x509 -noout -issuer -fingerprint -sha256 2>/dev/null | tr '\n' '|'
}

# Waits up to $2 seconds until $1 serves a Pebble certificate other than $3; prints it.
_pga_wait() {
  local c
  for _ in $(seq 1 "$2"); do
    c=$(_pga_cert "$1" mx.agents.test)
    if echo "$c" | grep -q Pebble && [ "$c" != "${3:-}" ]; then echo "$c"; return 0; fi
    sleep 1
  done
  return 1
}

_pga_config() { # DIR HTTP HTTPS RENEW_BEFORE_DAYS CHECK_INTERVAL_SECS (uses dir, acme)
  mkdir -p "$1"
  cat > "$1/config.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$1/data"
backend = "postgres"
url_file = "$dir/url"
sslmode = "disable"
pool_size = 4
[listen]
http = "127.0.0.1:$2"
https = "127.0.0.1:$3"
smtp = ""
submission = ""
imap = ""
[vault]
master_key_file = "$dir/master.key"
[dns]
nameservers = ["127.0.0.1:9"]
timeout_secs = 1
[log]
level = "info"
[acme]
directory = "https://127.0.0.1:$acme/dir"
email = "ops@agents.test"
challenge = "http-01"
ca_file = "$dir/ca.pem"
renew_before_days = $4
check_interval_secs = $5
CFG
}

_pga_orders() { # LOG...: how many orders these logs placed
  cat "$@" 2>/dev/null | grep -c 'acme: ordering a certificate' || true
}

suite_95_postgres_acme() {
  local dir="$WORK/pga"; mkdir -p "$dir"
  pg_start || { bad "throwaway PostgreSQL starts"; return; }
  local url; url=$(pg_createdb legate_acme) || { bad "database created"; pg_stop; return; }
  (umask 077; printf '%s\n' "$url" > "$dir/url")
  head -c 32 /dev/urandom > "$dir/master.key"; chmod 600 "$dir/master.key"

  # pebble's own HTTPS certificate, from a throwaway CA that legate is told to trust.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -days 2 -subj /CN=legate-interop-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/pebble.key" \
    -out "$dir/pebble.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
  openssl x509 -req -in "$dir/pebble.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/pebble.pem" -days 2 -extfile "$dir/ext" 2>/dev/null

  local a_http a_https b_http b_https acme mgmt dns dnsmgmt
  a_http=$(free_port); a_https=$(free_port); b_http=$(free_port); b_https=$(free_port)
  acme=$(free_port); mgmt=$(free_port); dns=$(free_port); dnsmgmt=$(free_port)
  # Every name resolves to 127.0.0.1 and HTTP-01 goes to node B's HTTP port, whichever node
  # ordered. PEBBLE_AUTHZREUSE=0: every order is validated again (no reused authorization).
  pebble-challtestsrv -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" -tlsalpn01 "" \
    -management "127.0.0.1:$dnsmgmt" -defaultIPv4 127.0.0.1 -defaultIPv6 "" > "$dir/dns.log" 2>&1 &
  PIDS+=("$!")
  cat > "$dir/pebble.json" <<CFG
{"pebble": {"listenAddress": "127.0.0.1:$acme", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$dir/pebble.pem", "privateKey": "$dir/pebble.key",
  "httpPort": $b_http, "tlsPort": $b_https, "ocspResponderURL": "",
  "externalAccountBindingRequired": false}}
CFG
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 pebble -config "$dir/pebble.json" \
    -dnsserver "127.0.0.1:$dns" > "$dir/pebble.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 50); do curl -sk "https://127.0.0.1:$acme/dir" >/dev/null && break; sleep 0.2; done
  check "pebble serves its directory" curl -sf --cacert "$dir/ca.pem" "https://127.0.0.1:$acme/dir" -o /dev/null

  # (1) both nodes start with nothing: one order for the pair.
  _pga_config "$dir/a" "$a_http" "$a_https" 30 2
  _pga_config "$dir/b" "$b_http" "$b_https" 30 2
  start_legate "$dir/a/config.toml" --log "$dir/a1."
  local pid_a=$LEGATE_PID
  start_legate "$dir/b/config.toml" --log "$dir/b1."
  local pid_b=$LEGATE_PID
  local ca cb
  ca=$(_pga_wait "127.0.0.1:$a_https" 90) || bad "node A serves a pebble certificate (see $dir/a1.err, $dir/pebble.log)"
  cb=$(_pga_wait "127.0.0.1:$b_https" 30) || bad "node B serves a pebble certificate (see $dir/b1.err)"
  sleep 3 # a second order, if any, would be under way by now
  check "both nodes serve the same certificate (same SHA-256 fingerprint)" \
    test -n "$ca" -a "$ca" = "$cb" -a "$(_pga_cert "127.0.0.1:$b_https" mx.agents.test)" = "$ca"
  check "exactly one order was placed for the pair" \
    test "$(_pga_orders "$dir/a1.err" "$dir/a1.out" "$dir/b1.err" "$dir/b1.out")" -eq 1
  check "pebble issued exactly one certificate" \
    test "$(grep -c 'Issued certificate serial' "$dir/pebble.log")" -eq 1
  check "no ACME key or account on either node's disk" \
    sh -c "! ls '$dir/a/data/acme/key.pem' '$dir/b/data/acme/key.pem' '$dir/a/data/acme/account.json' '$dir/b/data/acme/account.json' 2>/dev/null | grep -q ."
  kill -TERM "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true

  # (2) node B, check interval one hour: the stored certificate at once, no order.
  _pga_config "$dir/b" "$b_http" "$b_https" 30 3600
  start_legate "$dir/b/config.toml" --log "$dir/b2." --wait "http://127.0.0.1:$b_http"
  pid_b=$LEGATE_PID
  check "a restarted node serves the stored certificate at once" \
    test "$(_pga_cert "127.0.0.1:$b_https" mx.agents.test)" = "$ca"
  # Node A renews once; pebble validates against node B.
  _pga_config "$dir/a" "$a_http" "$a_https" 100000 3600
  start_legate "$dir/a/config.toml" --log "$dir/a2."
  pid_a=$LEGATE_PID
  local ca2 cb2
  if ca2=$(_pga_wait "127.0.0.1:$a_https" 90 "$ca"); then
    ok "node A renews, pebble validating HTTP-01 against node B (the answer read from the store)"
  else
    bad "node A renews, pebble validating HTTP-01 against node B (see $dir/a2.err, $dir/b2.err, $dir/pebble.log)"
  fi
  check "node A placed that order, node B none" \
    test "$(_pga_orders "$dir/a2.err" "$dir/a2.out") $(_pga_orders "$dir/b2.err" "$dir/b2.out")" = "1 0"
  if cb2=$(_pga_wait "127.0.0.1:$b_https" 15 "$ca") && [ "$cb2" = "$ca2" ]; then
    ok "node B serves node A's new certificate (woken by the cert signal, not its hourly check)"
  else
    bad "node B serves node A's new certificate (B: ${cb2:-none}, A: ${ca2:-none})"
  fi
  check "no panic in the nodes' logs" sh -c "! cat '$dir'/a*.err '$dir'/b*.err | grep -q panicked"
  kill -TERM "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true
  pg_stop
}

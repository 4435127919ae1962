# Deploy: `legate init` with flags and on a pty, ACME certificates from pebble (HTTP-01 and
# TLS-ALPN-01, real validation through a loopback DNS mock, renewal without restart), the
# systemd unit's hardening, and the Helm chart rendered by Helm and checked against schemas.
DEPLOY_DIR=tests/interop/deploy

# Prints "issuer|serial" of the certificate served at $1 (host:port), SNI $2, STARTTLS $3.
served_cert() {
  local st=(); [ -n "${3:-}" ] && st=(-starttls "$3")
  echo | timeout 10 openssl s_client -connect "$1" -servername "$2" "${st[@]}" 2>/dev/null \
    | openssl x509 -noout -issuer -serial 2>/dev/null | tr '\n' '|'
}

# Waits up to $3 seconds until the cert at $1 (SNI $2) has an issuer matching "Pebble" and a
# serial other than $4; prints it.
wait_pebble_cert() {
  local c
  for _ in $(seq 1 "$3"); do
    c=$(served_cert "$1" "$2")
    if echo "$c" | grep -q Pebble && [ "$c" != "${4:-}" ]; then echo "$c"; return 0; fi
    sleep 1
  done
  return 1
}

suite_80_deploy_init() {
  local dir="$WORK/deploy-init"; mkdir -p "$dir"
  local http; http=$(free_port)
  local out
  out=$("$BIN" init --json --domain Init.Test --data "$dir/ni" --bind 127.0.0.1 \
        --smtp-port 0 --submission-port 0 --submissions-port 0 --imap-port 0 --imaps-port 0 \
        --http-port "$http" --https-port 0 < /dev/null 2> "$dir/ni.err")
  check "init --json prints an admin token" grep -q '^lg_' <<<"$(jq -er '.admin_token' <<<"$out")"
  check "init --json lists both DKIM records" test "$(jq '[.dkim[] | select(.value | startswith("v=DKIM1"))] | length' <<<"$out")" -eq 2
  check "init --json carries the DNS plan" grep -q '_domainkey' <<<"$(jq -er .dns_plan <<<"$out")"
  check "init made a self-signed certificate" test -s "$dir/ni/tls-cert.pem"
  check "init master key is 0600" test "$(stat -c %a "$dir/ni/master.key")" = 600
  local again=0; "$BIN" init --domain init.test --data "$dir/ni" < /dev/null > "$dir/again.log" 2>&1 || again=$?
  check "init refuses to overwrite without --force" sh -c "[ $again -ne 0 ] && grep -q -- --force '$dir/again.log'"
  check "the initialised directory serves" \
    start_legate "$dir/ni/config.toml" --log "$dir/serve." --wait "http://127.0.0.1:$http"
  local pid=$LEGATE_PID
  local token; token=$(echo "$out" | jq -r .admin_token)
  check "the printed admin token works" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/v1/agents" -H "Authorization: Bearer $token")" = 200
  kill -TERM "$pid"; wait "$pid" || true

  # Interactive, on a pseudo-terminal.
  local http2; http2=$(free_port)
  if python3 "$DEPLOY_DIR/init_pty.py" "$BIN" "$dir/pty" "$http2" > "$dir/pty.log" 2>&1; then
    ok "interactive init on a pty"
  else
    bad "interactive init on a pty (see $dir/pty.log)"
  fi
  check "pty answers reached the config (acme, tls-alpn-01)" grep -q 'challenge = "tls-alpn-01"' "$dir/pty/config.toml"
  check "pty answers reached the config (ports)" grep -q "http = \"127.0.0.1:$http2\"" "$dir/pty/config.toml"
}

suite_80_deploy_acme() {
  local dir="$WORK/deploy-acme"; mkdir -p "$dir"
  # pebble's own HTTPS certificate, from a throwaway CA that legate is told to trust.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -days 2 -subj /CN=legate-interop-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/pebble.key" \
    -out "$dir/pebble.csr" -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
  openssl x509 -req -in "$dir/pebble.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/pebble.pem" -days 2 -extfile "$dir/ext" 2>/dev/null

  local a_http a_https a_smtp b_http b_https acme mgmt dns dnsmgmt
  a_http=$(free_port); a_https=$(free_port); a_smtp=$(free_port)
  b_http=$(free_port); b_https=$(free_port)
  acme=$(free_port); mgmt=$(free_port); dns=$(free_port); dnsmgmt=$(free_port)
  # Every name resolves to 127.0.0.1, so pebble really connects to legate to validate:
  # HTTP-01 to instance A's HTTP port, TLS-ALPN-01 to instance B's HTTPS port.
  pebble-challtestsrv -dns01 "127.0.0.1:$dns" -http01 "" -https01 "" -tlsalpn01 "" \
    -management "127.0.0.1:$dnsmgmt" -defaultIPv4 127.0.0.1 -defaultIPv6 "" > "$dir/dns.log" 2>&1 &
  PIDS+=("$!")
  cat > "$dir/pebble.json" <<CFG
{"pebble": {"listenAddress": "127.0.0.1:$acme", "managementListenAddress": "127.0.0.1:$mgmt",
  "certificate": "$dir/pebble.pem", "privateKey": "$dir/pebble.key",
  "httpPort": $a_http, "tlsPort": $b_https, "ocspResponderURL": "",
  "externalAccountBindingRequired": false}}
CFG
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$dir/pebble.json" \
    -dnsserver "127.0.0.1:$dns" > "$dir/pebble.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 50); do curl -sk "https://127.0.0.1:$acme/dir" >/dev/null && break; sleep 0.2; done
  check "pebble serves its directory" curl -sf --cacert "$dir/ca.pem" "https://127.0.0.1:$acme/dir" -o /dev/null

  acme_config() { # name http https smtp challenge renew_before_days
    cat <<CFG
[server]
domain = "$1.test"
hostname = "mx.$1.test"
[storage]
path = "$dir/$1"
[listen]
http = "127.0.0.1:$2"
https = "127.0.0.1:$3"
smtp = "$4"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$dns"]
timeout_secs = 1
[acme]
directory = "https://127.0.0.1:$acme/dir"
email = "ops@$1.test"
challenge = "$5"
ca_file = "$dir/ca.pem"
renew_before_days = $6
check_interval_secs = 2
CFG
  }
  acme_config a "$a_http" "$a_https" "127.0.0.1:$a_smtp" http-01 30 > "$dir/a.toml"
  acme_config b "$b_http" "$b_https" "" tls-alpn-01 100000 > "$dir/b.toml"

  # A: HTTP-01.
  start_legate "$dir/a.toml" --log "$dir/a."
  local apid=$LEGATE_PID
  local first
  if first=$(wait_pebble_cert "127.0.0.1:$a_https" mx.a.test 60); then
    ok "HTTP-01: pebble-issued certificate on HTTPS"
  else
    bad "HTTP-01: pebble-issued certificate on HTTPS (see $dir/a.err, $dir/pebble.log)"
  fi
  check "HTTP-01: the same certificate on SMTP STARTTLS" test "$(served_cert "127.0.0.1:$a_smtp" mx.a.test smtp)" = "$first"
  check "HTTP-01: the certificate names both names" sh -c "echo | openssl s_client -connect 127.0.0.1:$a_https -servername a.test 2>/dev/null | openssl x509 -noout -ext subjectAltName | grep -q 'DNS:a.test'"
  check "ACME key and account are sealed in the store, not on disk" \
    test ! -e "$dir/a/acme/key.pem" -a ! -e "$dir/a/acme/account.json"
  check "the public copy of the chain is mode 0600" test "$(stat -c %a "$dir/a/acme/cert.pem")" = 600
  kill -TERM "$apid"; wait "$apid" || true
  start_legate "$dir/a.toml" --log "$dir/a2." --wait "http://127.0.0.1:$a_http" >/dev/null
  apid=$LEGATE_PID
  check "restart serves the stored certificate at once" test "$(served_cert "127.0.0.1:$a_https" mx.a.test)" = "$first"
  kill -TERM "$apid"; wait "$apid" || true

  # B: TLS-ALPN-01, with a renewal window wider than the lifetime: renews every check.
  start_legate "$dir/b.toml" --log "$dir/b."
  local bpid=$LEGATE_PID
  local b1 b2
  if b1=$(wait_pebble_cert "127.0.0.1:$b_https" mx.b.test 60); then
    ok "TLS-ALPN-01: pebble-issued certificate on HTTPS"
  else
    bad "TLS-ALPN-01: pebble-issued certificate on HTTPS (see $dir/b.err, $dir/pebble.log)"
  fi
  if b2=$(wait_pebble_cert "127.0.0.1:$b_https" mx.b.test 60 "$b1"); then
    ok "renewal: a new certificate is served without a restart"
  else
    bad "renewal: a new certificate is served without a restart"
  fi
  check "renewal: same process throughout" kill -0 "$bpid"
  check "HTTPS serves the API" test "$(curl -s --cacert "$dir/ca.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$b_https/healthz" -k)" = 200
  kill -TERM "$bpid"; local rc=0; wait "$bpid" || rc=$?
  check "SIGTERM with ACME running exits 0" test "$rc" -eq 0
}

suite_80_deploy_systemd() {
  local dir="$WORK/deploy-systemd"; mkdir -p "$dir"
  # verify needs ExecStart's binary to exist: point the unit at the one under test.
  sed "s#/usr/local/bin/legate#$BIN#" deploy/systemd/legate.service > "$dir/legate.service"
  systemd-analyze verify "$dir/legate.service" > "$dir/verify.log" 2>&1
  local rc=$?
  check "systemd-analyze verify is clean" sh -c "[ $rc -eq 0 ] && ! grep -q . '$dir/verify.log'"
  systemd-analyze security --offline=true "$dir/legate.service" > "$dir/security.log" 2>&1 || true
  local level; level=$(grep -o 'Overall exposure level for legate.service: [0-9.]*' "$dir/security.log" | awk '{print $NF}')
  echo "     exposure: ${level:-?}"
  check "systemd-analyze security exposure <= 2.0" awk -v l="${level:-99}" 'BEGIN { exit !(l <= 2.0) }'
  check "security --threshold=20 passes" sh -c "systemd-analyze security --offline=true --threshold=20 '$dir/legate.service' > /dev/null 2>&1"
}

suite_80_deploy_helm() {
  local dir="$WORK/deploy-helm"; mkdir -p "$dir"
  if python3 "$DEPLOY_DIR/helm_render.py" deploy/helm/legate "$dir" > "$dir/render.log" 2>&1; then
    ok "helm lint --strict and render (Helm v4 engine)"
  else
    bad "helm lint and render (see $dir/render.log)"; return
  fi
  for f in default acme files postgres; do
    check "chart ($f values) validates against Kubernetes schemas" kubernetes-validate --strict --quiet "$dir/$f.yaml"
  done
  check "chart renders one StatefulSet replica with a PVC template" python3 -c "
import yaml,sys
docs=[d for d in yaml.safe_load_all(open('$dir/default.yaml')) if d]
ss=[d for d in docs if d['kind']=='StatefulSet'][0]
c=ss['spec']['template']['spec']['containers'][0]
assert ss['spec']['replicas']==1 and ss['spec']['volumeClaimTemplates']
assert c['securityContext']['readOnlyRootFilesystem'] and ss['spec']['template']['spec']['securityContext']['runAsNonRoot']
assert c['livenessProbe']['httpGet']['path']=='/healthz' and c['readinessProbe']['httpGet']['path']=='/readyz'
ports=sorted(p['port'] for d in docs if d['kind']=='Service' and d['spec'].get('type')=='LoadBalancer' for p in d['spec']['ports'])
assert ports==[25,80,143,443,465,587,993], ports
"
  check "chart with storage.backend=postgres renders a Deployment of 3 replicas reading the URL from a Secret" python3 -c "
import yaml
docs=[d for d in yaml.safe_load_all(open('$dir/postgres.yaml')) if d]
assert not [d for d in docs if d['kind']=='StatefulSet']
dep=[d for d in docs if d['kind']=='Deployment'][0]
assert dep['spec']['replicas']==3
pod=dep['spec']['template']['spec']
vols={v['name']: v for v in pod['volumes']}
srcs=[s['secret'] for s in vols['db']['projected']['sources']]
assert srcs[0]['name']=='legate-db' and srcs[0]['items'][0]['path']=='url', srcs
assert 'emptyDir' in vols['data']
mounts={m['name']: m['mountPath'] for m in pod['containers'][0]['volumeMounts']}
assert mounts['db']=='/etc/legate/db', mounts
toml=[d for d in docs if d['kind']=='ConfigMap'][0]['data']['config.toml']
assert 'backend = \"postgres\"' in toml and 'url_file = \"/etc/legate/db/url\"' in toml, toml
"
  check "ServiceMonitor only when enabled" sh -c "grep -q 'kind: ServiceMonitor' '$dir/acme.yaml' && ! grep -q 'kind: ServiceMonitor' '$dir/default.yaml'"
  # The rendered config.toml is one legate accepts (postgres: checked above, it needs a database).
  for f in default acme files; do
    python3 -c "
import yaml
docs=[d for d in yaml.safe_load_all(open('$dir/$f.yaml')) if d]
print([d for d in docs if d['kind']=='ConfigMap'][0]['data']['config.toml'])
" | sed "s#\"/data\"#\"$dir/data-$f\"#" > "$dir/$f.toml"
    check "legate loads the chart's config.toml ($f)" env LEGATE_MASTER_KEY="$(head -c 32 /dev/urandom | base64)" \
      "$BIN" --config "$dir/$f.toml" audit verify
  done
}

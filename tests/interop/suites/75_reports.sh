# Reports: a day of received mail makes a DMARC aggregate report that validates against the
# RFC 7489 XSD (xmlschema), and the TLS-RPT report validates against the RFC 8460 schema
# (jsonschema); both printed by `legate reports generate` through the admin socket. Reports
# sent to legate (Google/Microsoft shapes, bombs) are covered by `cargo test --test reports`.
suite_75_reports() {
  local dir="$WORK/reports"; mkdir -p "$dir"
  local http smtp dns
  http=$(free_port); smtp=$(free_port)
  echo '{"sender.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}, "_dmarc.sender.test": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:agg@sender.test"]}}' > "$dir/dns.json"
  _inbound_dns "$dir/dns.json"; dns=$(cat "$dir/dns.json.port" 2>/dev/null || true)
  check "loopback DNS server starts" test -n "$dns"
  cat > "$dir/config.toml" <<CFG
[server]
domain = "agents.test"
hostname = "mx.agents.test"
[storage]
path = "$dir/data"
[listen]
http = "127.0.0.1:$http"
smtp = "127.0.0.1:$smtp"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:$dns"]
timeout_secs = 2
[dmarc]
send_reports = true
[log]
level = "warn"
CFG
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "reports server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"ops","scopes":["mail:read"]}' > /dev/null
  python3 - "$smtp" > "$dir/send.log" 2>&1 <<'PY'
import smtplib, sys
for i in range(3):
    with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as s:
        s.sendmail("news@sender.test", ["ops@agents.test"],
                   f"From: news@sender.test\r\nTo: ops@agents.test\r\nSubject: n{i}\r\nMessage-ID: <n{i}@sender.test>\r\n\r\nhello\r\n")
PY
  check "three messages from sender.test are delivered" test $? -eq 0
  local day; day=$(date -u +%F)
  "$BIN" --config "$dir/config.toml" reports generate dmarc sender.test "$day" > "$dir/dmarc.xml" 2> "$dir/gen.err"
  check "the DMARC report names sender.test's three messages" grep -q '<count>3</count>' "$dir/dmarc.xml"
  check "the generated DMARC report validates against the RFC 7489 XSD" \
    python3 tests/interop/tools/validate_report.py dmarc "$dir/dmarc.xml"
  "$BIN" --config "$dir/config.toml" reports generate tls sender.test "$day" > "$dir/tls.json" 2>> "$dir/gen.err"
  check "the generated TLS-RPT report validates against the RFC 8460 schema" \
    python3 tests/interop/tools/validate_report.py tls "$dir/tls.json"
  check "no panic in the server log" sh -c "! grep -q panicked '$dir/err'"
  kill -TERM "$pid"; wait "$pid" || true
}

# Container image (issue 17 item 5): deploy/container/build.sh makes the OCI image from the
# release binary with no registry; the image runs under runc as the Helm chart runs it (user
# 10001, read-only root filesystem, no capabilities, data on a mounted /data) and passes the
# HTTP and SMTP smoke checks; the chart's default image is the one it builds.

suite_85_container() {
  local dir="$WORK/container"; mkdir -p "$dir"
  if [ "$(id -u)" -ne 0 ]; then
    echo "# container suite needs root to run a container; skipped"
    return 0
  fi
  local out; out=$(LEGATE_BIN="$BIN" bash deploy/container/build.sh "$dir/oci" 2>"$dir/build.err")
  check "build.sh makes an OCI layout" test -f "$dir/oci/index.json"
  local ref=${out##*$'\n'}
  python3 - "$dir/oci" "${ref##*:}" > "$dir/config.json" <<'PY'
import json, sys
layout, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(f"{layout}/index.json"))
m = [d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
blob = lambda d: json.load(open(f"{layout}/blobs/{d['digest'].replace(':', '/')}"))
print(json.dumps(blob(blob(m)["config"])))
PY
  check "image runs as uid 10001" python3 -c "import json,sys; c=json.load(open('$dir/config.json'))['config']; sys.exit(c['User']!='10001:10001')"
  check "image entrypoint is legate, data volume /data" python3 -c "
import json,sys; c=json.load(open('$dir/config.json'))['config']
sys.exit(not (c['Entrypoint']==['/usr/local/bin/legate'] and '/data' in c['Volumes'] and c['WorkingDir']=='/data'))"
  local size; size=$(du -sm "$dir/oci" | cut -f1)
  check "image is small (${size} MB)" test "$size" -lt 80

  # Run it the way the chart does, on host networking so the loopback dev ports are reachable.
  local http smtp; http=$(free_port); smtp=$(free_port)
  mkdir -p "$dir/data"
  cat > "$dir/data/config.toml" <<TOML
[server]
domain = "ct.test"
hostname = "mx.ct.test"
[storage]
path = "/data"
[listen]
http = "127.0.0.1:$http"
smtp = "127.0.0.1:$smtp"
submission = ""
imap = ""
[dns]
nameservers = ["127.0.0.1:9"]
TOML
  chown -R 10001:10001 "$dir/data"
  umoci unpack --image "$ref" "$dir/bundle" >/dev/null
  python3 deploy/container/run-bundle.py "$dir/bundle" "$dir/data" --host-net -- --config /data/config.toml serve
  local rt=runc; command -v runc >/dev/null || rt=crun
  local id="legate-interop-$$"
  LEGATE_BOOTSTRAP_ADMIN_TOKEN="" "$rt" run --bundle "$dir/bundle" "$id" > "$dir/out" 2> "$dir/err" &
  local pid=$!; PIDS+=("$pid")
  check "container serves /healthz" wait_http "http://127.0.0.1:$http"
  check "container answers SMTP EHLO" python3 -c "
import smtplib; s=smtplib.SMTP('127.0.0.1', $smtp, timeout=5); c=s.ehlo()[0]; s.quit(); exit(c!=250)"
  local cpid; cpid=$("$rt" state "$id" | python3 -c 'import json,sys;print(json.load(sys.stdin)["pid"])')
  check "root filesystem is read-only" python3 -c "
import sys
rows=[l.split() for l in open('/proc/$cpid/mountinfo')]
sys.exit(not any(r[4]=='/' and r[5].split(',')[0]=='ro' for r in rows))"
  check "the process runs as uid 10001" grep -q "^Uid:[[:space:]]*10001" "/proc/$cpid/status"
  check "the process holds no capabilities" grep -q "^CapEff:[[:space:]]*0000000000000000" "/proc/$cpid/status"
  check "the store lands in the mounted /data" test -d "$dir/data/db" -a -f "$dir/data/tls-cert.pem"
  "$rt" kill "$id" TERM 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  check "container stops cleanly on SIGTERM" grep -q "legate stopped" "$dir/err"
  "$rt" delete -f "$id" >/dev/null 2>&1 || true
  check "the chart's default image is localhost/legate" grep -q "repository: localhost/legate" deploy/helm/legate/values.yaml
}

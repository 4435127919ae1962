# A private postfix instance on loopback, for the interop suite and the benchmarks.
# It never touches the system instance: its own config dir (copied from /etc/postfix), its own
# queue and data directories, its own master.cf listener, started and stopped with -c.
# pf_start DIR PORT TRANSPORT_MAP  -> runs postfix with config in DIR/etc, smtpd on 127.0.0.1:PORT.
#   TRANSPORT_MAP is an inline: map body, e.g. "pf.test=smtp:[127.0.0.1]:2526".
#   The transport `nouser:` accepts a recipient and then bounces it as a mailbox host does for
#   an unknown user (a DSN with 5.1.1 to the envelope sender), e.g. "{ nouser@pf.test = nouser: }".
#   (`error:` cannot do this: smtpd already refuses such a recipient at RCPT time.)
# pf_stop DIR                      -> stops it (safe to call twice).
pf_start() {
  local dir=$1 port=$2 transport=$3
  mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
  chmod 755 "$dir" "$dir/etc"
  chown postfix "$dir/data"
  cp /etc/postfix/main.cf /etc/postfix/master.cf "$dir/etc/"
  [ -f /etc/postfix/dynamicmaps.cf ] && cp /etc/postfix/dynamicmaps.cf "$dir/etc/"
  # The master.cf smtpd listener moves from :25 to our port; nothing runs chrooted.
  sed -i -E "s/^smtp([[:space:]]+)inet/127.0.0.1:$port\1inet/" "$dir/etc/master.cf"
  postconf -c "$dir/etc" -F '*/*/chroot = n'
  # pipe(8) maps exit 67 (EX_NOUSER) to a bounce with status 5.1.1 "user unknown".
  postconf -c "$dir/etc" -M 'nouser/unix=nouser unix - n n - - pipe flags=q user=nobody argv=/bin/sh -c { exit 67 }'
  postconf -c "$dir/etc" -e \
    "queue_directory = $dir/spool" \
    "data_directory = $dir/data" \
    "maillog_file_prefixes = $dir" \
    "maillog_file = $dir/maillog" \
    "inet_interfaces = 127.0.0.1" \
    "inet_protocols = ipv4" \
    "myhostname = pf.test" \
    "mydomain = pf.test" \
    "myorigin = pf.test" \
    "mydestination =" \
    "relay_domains = pf.test" \
    "mynetworks = 127.0.0.0/8" \
    "alias_maps =" "alias_database =" \
    "relayhost =" \
    "transport_maps = inline:{ $transport }" \
    "smtpd_tls_security_level = none" \
    "smtp_tls_security_level = may" \
    "smtp_tls_session_cache_database =" \
    "smtp_host_lookup = native" \
    "smtp_dns_support_level = disabled" \
    "smtpd_peername_lookup = no" \
    "default_destination_concurrency_limit = 20" \
    "multi_instance_enable = no"
  postfix -c "$dir/etc" check >"$dir/check.log" 2>&1 || true
  postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 || return 1
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
pf_stop() {
  local dir=$1
  [ -f "$dir/etc/main.cf" ] && postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
}

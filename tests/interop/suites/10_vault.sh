# Vault: our TOTP codes equal oathtool's for several secrets, algorithms, digit counts, times.
suite_10_vault() {
  local dir="$WORK/vault"; mkdir -p "$dir"
  local http; http=$(free_port)
  printf '[storage]\npath = "%s/data"\n[listen]\nhttp = "127.0.0.1:%s"\nsmtp = ""\nsubmission = ""\nimap = ""\n' "$dir" "$http" > "$dir/config.toml"
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "vault server starts"; return; }
  local token=$LEGATE_TOKEN pid=$LEGATE_PID
  local key; key=$(curl -s -XPOST "$base/v1/agents" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"local":"otp","scopes":["vault:read","vault:write"]}' | jq -r .api_key.key)
  local i=0
  for secret in JBSWY3DPEHPK3PXP GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ; do
    for alg in SHA1 SHA256 SHA512; do
      for digits in 6 8; do
        for period in 30 60; do
          i=$((i+1))
          local name="c$i"
          curl -s -XPUT "$base/v1/vault/$name" -H "Authorization: Bearer $key" -H 'content-type: application/json' \
            -d "{\"kind\":\"totp\",\"totp\":\"otpauth://totp/x?secret=$secret&algorithm=$alg&digits=$digits&period=$period\"}" >/dev/null
          local ok_all=1
          for t in 59 1111111109 1234567890 2000000000 $(date +%s); do
            local ours theirs
            ours=$(curl -s -XPOST "$base/v1/vault/$name/totp" -H "Authorization: Bearer $key" -H 'content-type: application/json' -d "{\"at\": $t}" | jq -r .code)
            local mode=totp; [ "$alg" != SHA1 ] && mode="totp=$(echo "$alg" | tr 'A-Z' 'a-z')"
            theirs=$(oathtool --"$mode" -b --digits="$digits" --time-step-size="${period}s" --now="@$t" "$secret")
            if [ "$ours" != "$theirs" ]; then ok_all=0; echo "  mismatch $alg/$digits/$period t=$t: ours=$ours oathtool=$theirs"; fi
          done
          check "oathtool agrees: $secret $alg digits=$digits period=$period" test "$ok_all" -eq 1
        done
      done
    done
  done
  # current time, no "at": same code as oathtool now (retry once across a step boundary)
  local ours now theirs
  for _ in 1 2; do
    ours=$(curl -s -XPOST "$base/v1/vault/c1/totp" -H "Authorization: Bearer $key")
    now=$(echo "$ours" | jq -r .at)
    theirs=$(oathtool --totp -b --digits=6 --now="@$now" JBSWY3DPEHPK3PXP)
    [ "$(echo "$ours" | jq -r .code)" = "$theirs" ] && break
  done
  check "oathtool agrees at the server's current time" test "$(echo "$ours" | jq -r .code)" = "$theirs"
  kill -TERM "$pid"; wait "$pid" || true
}

# Connected accounts and bundles (issue 25 §1-2) against npm's oidc-provider on loopback:
# discovery, a scripted human consent (curl following the flow with a cookie jar), the code
# exchange with PKCE, access tokens for the agent, a refresh at expiry with the rotated
# refresh token kept (and only one refresh for concurrent requests), invalid_grant marking
# the connection needs_consent, revocation reaching the provider (RFC 7009), two humans'
# connections on one agent audited under each human's chain, and the agent's revocation
# ending both. The refresh tokens never appear in any response, log, audit entry or data file.

suite_25_connections() {
  local dir="$WORK/connections"; mkdir -p "$dir"
  local opdir=${OIDC_PROVIDER_DIR:-/opt/legate-interop/oidc-provider}
  if [ ! -f "$opdir/node_modules/oidc-provider/package.json" ]; then
    bad "oidc-provider is installed (tests/interop/setup.d/25_connections.sh)"; return
  fi
  cp tests/interop/tools/oidc_provider.mjs "$opdir/oidc_provider.mjs"
  local http op; http=$(free_port); op=$(free_port)
  local base="http://127.0.0.1:$http" issuer="http://127.0.0.1:$op"
  : > "$dir/op.log"
  node "$opdir/oidc_provider.mjs" "$op" "$base/connections/callback" "$dir/op.log" > "$dir/op.out" 2>&1 &
  local op_pid=$!; PIDS+=("$op_pid")
  for _ in $(seq 1 100); do grep -q LISTENING "$dir/op.log" && break; sleep 0.1; done
  printf '[storage]\npath = "%s/data"\n[server]\ndomain = "localhost"\npublic_url = "%s"\n[listen]\nhttp = "127.0.0.1:%s"\nsmtp = ""\nsubmission = ""\nimap = ""\n[connections]\ndanger_allow_private = true\nrefresh_skew_secs = 2\n' \
    "$dir" "$base" "$http" > "$dir/config.toml"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "connections server starts"; return; }
  local admin=$LEGATE_TOKEN
  _c_api() { curl -s -X "$1" "$base$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' ${4:+-d "$4"}; }
  # consent JAR URL: the human's browser, scripted; prints the callback's JSON
  _c_consent() { curl -s -L -c "$1" -b "$1" --max-redirs 10 "$2"; }

  local agent key agent_id bob
  agent=$(_c_api POST /v1/agents "$admin" '{"local":"ops","scopes":["vault:read","vault:write","mail:read"]}')
  key=$(echo "$agent" | jq -r .api_key.key); agent_id=$(echo "$agent" | jq -r .id)
  # bob is an owner: the adder's answer holds no token, only "invited"; the invite is mailed
  # to bob (here an address of ours, a mailbox the suite reads) and bob redeems it; the
  # postmaster that sent it keeps no copy
  local added pm code bobmail
  bobmail=$(_c_api POST /v1/agents "$admin" '{"local":"bob","scopes":["mail:read"]}' | jq -r .api_key.key)
  added=$(_c_api POST "/v1/agents/$agent_id/owners" "$admin" '{"email":"bob@localhost","name":"Bob"}')
  check "an owner is added with an invite and no token in the answer" \
    bash -c "[ \"\$(echo '$added' | jq -r .invited)\" = true ] && ! echo '$added' | grep -q 'lgi\?_'"
  for _ in $(seq 1 100); do
    code=$(for id in $(_c_api GET "/v1/messages?folder=INBOX" "$bobmail" | jq -r '.items[].id'); do
      _c_api GET "/v1/messages/$id" "$bobmail" | jq -r .text; done | grep -o 'lgi_[A-Z2-7]*' | head -1)
    [ -n "$code" ] && break; sleep 0.1
  done
  pm=$(_c_api POST /v1/agents/postmaster@localhost/keys "$admin" '{"name":"read","scopes":["mail:read"]}' | jq -r .key)
  check "the postmaster keeps no copy of the invite" \
    bash -c "! { for id in \$(curl -s '$base/v1/messages?limit=100' -H 'Authorization: Bearer $pm' | jq -r '.items[].id'); do curl -s '$base/v1/messages/'\$id -H 'Authorization: Bearer $pm'; done; } | grep -q 'lgi_'"
  bob=$(curl -s -X POST "$base/v1/invites/redeem" -H 'content-type: application/json' -d "{\"code\":\"$code\"}" | jq -r .key)
  check "bob redeems the mailed invite for his own owner key" test "${bob:0:3}" = lg_
  check "... once" test "$(curl -s -X POST "$base/v1/invites/redeem" -H 'content-type: application/json' -d "{\"code\":\"$code\"}" | jq -r .error.code)" = invalid_credentials

  # 1. the admin connects "github" (discovery from the issuer)
  local c1 url1 cid1
  c1=$(_c_api POST "/v1/agents/$agent_id/connections" "$admin" \
    "{\"name\":\"github\",\"issuer\":\"$issuer\",\"client_id\":\"legate-one\",\"client_secret\":\"legate-one-secret-0123456789\",\"scopes\":[\"openid\",\"offline_access\"]}")
  url1=$(echo "$c1" | jq -r .authorization_url); cid1=$(echo "$c1" | jq -r .id)
  check "discovery found the provider's endpoints (revocation too)" \
    test "$(echo "$c1" | jq -r .revocation_endpoint)" = "$issuer/token/revocation"
  check "the authorization URL asks for PKCE S256 at the discovered endpoint" \
    bash -c "[[ '$url1' == $issuer/auth?* && '$url1' == *code_challenge_method=S256* && '$url1' == *state=* ]]"
  local cb1; cb1=$(_c_consent "$dir/jar-admin" "$url1")
  check "the human's consent lands on the callback and the connection is active" \
    test "$(echo "$cb1" | jq -r .status)" = active
  check "the code was exchanged at the provider's token endpoint" grep -q "^POST /token 200" "$dir/op.log"
  check "oidc-provider advertises RFC 9207 iss, so its callback carried a matching iss (checked)" \
    test "$(curl -s "$issuer/.well-known/openid-configuration" | jq -r .authorization_response_iss_parameter_supported)" = true
  local state_x url_x; url_x=$(_c_api POST "/v1/agents/$agent_id/connections" "$admin" \
    "{\"name\":\"forged\",\"issuer\":\"$issuer\",\"client_id\":\"legate-one\",\"client_secret\":\"legate-one-secret-0123456789\",\"scopes\":[\"openid\"]}" | jq -r .authorization_url)
  state_x=$(echo "$url_x" | sed 's/.*[?&]state=\([^&]*\).*/\1/')
  check "a forged callback with the right state and another issuer's iss is refused" \
    test "$(curl -s "$base/connections/callback?state=$state_x&code=x&iss=http%3A%2F%2Fevil.test" | jq -r .error.code)" = invalid_issuer

  # 2. bob (an owner, not an admin) connects "linear" with the other client
  local c2 url2 cid2
  c2=$(_c_api POST "/v1/agents/$agent_id/connections" "$bob" \
    "{\"name\":\"linear\",\"issuer\":\"$issuer\",\"client_id\":\"legate-two\",\"client_secret\":\"legate-two-secret-0123456789\",\"scopes\":[\"openid\",\"offline_access\"]}")
  url2=$(echo "$c2" | jq -r .authorization_url); cid2=$(echo "$c2" | jq -r .id)
  check "bob's grant lands too" test "$(_c_consent "$dir/jar-bob" "$url2" | jq -r .status)" = active
  local list; list=$(_c_api GET "/v1/agents/$agent_id/connections" "$bob")
  check "the bundle lists both connections with their granting humans and scopes" \
    test "$(echo "$list" | jq -r '[.items[] | select(.name != "forged") | "\(.name)=\(.granted_by.email):\(.status):\(.scopes|join(" "))"] | sort | join(",")')" = \
    "github=admin@localhost:active:openid offline_access,linear=bob@localhost:active:openid offline_access"
  local state1; state1=$(echo "$url1" | sed 's/.*[?&]state=\([^&]*\).*/\1/')
  check "a replayed callback state is refused" \
    test "$(curl -s "$base/connections/callback?state=$state1&code=y" | jq -r .error.code)" = invalid_state

  # 3. the agent's access tokens; the refresh tokens stay inside
  local t1 t2
  t1=$(_c_api POST /v1/vault/github/token "$key"); t2=$(_c_api POST /v1/vault/linear/token "$key")
  check "the agent gets an access token (Bearer, expires_in) for github" \
    bash -c "[ \"\$(echo '$t1' | jq -r '.token_type')\" = Bearer ] && [ \"\$(echo '$t1' | jq -r '.expires_in')\" -le 5 ] && [ -n \"\$(echo '$t1' | jq -r '.access_token // empty')\" ]"
  check "... and for linear" test -n "$(echo "$t2" | jq -r '.access_token // empty')"
  check "no refresh token in the answer" test "$(echo "$t1" | jq -r 'has("refresh_token")')" = false
  check "the access token works at the provider (userinfo)" \
    test "$(curl -s "$issuer/me" -H "Authorization: Bearer $(echo "$t1" | jq -r .access_token)" | jq -r .sub)" = user-1

  # 4. refresh at expiry, rotation kept; concurrent requests refresh once
  sleep 4
  local t3; t3=$(_c_api POST /v1/vault/github/token "$key")
  check "an expiring access token is refreshed" \
    bash -c "[ \"\$(echo '$t3' | jq -r .access_token)\" != \"\$(echo '$t1' | jq -r .access_token)\" ]"
  sleep 4
  local i pids=() before_burst; before_burst=$(grep -c "^POST /token 200" "$dir/op.log")
  for i in 1 2 3 4 5; do _c_api POST /v1/vault/github/token "$key" > "$dir/par$i.json" & pids+=($!); done
  wait "${pids[@]}"
  local distinct; distinct=$(cat "$dir"/par*.json | jq -r .access_token | sort -u | grep -cv null)
  check "five concurrent requests after expiry get one new token" test "$distinct" = 1
  check "... from one refresh at the provider (serialised per connection)" \
    test "$(( $(grep -c "^POST /token 200" "$dir/op.log") - before_burst ))" = 1
  local audit; audit=$(_c_api GET "/v1/audit?action=connection.token&limit=100" "$admin")
  check "every refresh used the rotated refresh token kept from the one before (at least two, all rotated)" \
    test "$(echo "$audit" | jq -r '[.items[] | select(.target=="github" and .detail.refreshed==true)] | if length >= 2 and all(.detail.rotated==true) then "yes" else length end')" = yes
  check "audit of github uses names the admin who granted it" \
    test "$(echo "$audit" | jq -r '[.items[] | select(.target=="github") | .chain[0]] | unique | join(",")')" = "human:admin@localhost"
  check "audit of linear uses names bob (human:bob > org > agent)" \
    test "$(echo "$audit" | jq -r '[.items[] | select(.target=="linear") | .chain | join(" > ")] | unique | join(",")')" = \
    "human:bob@localhost > $(echo "$agent" | jq -r '.chain[1:] | join(" > ")')"

  # 5. the user revokes the app at the provider: invalid_grant -> needs_consent, bob told
  curl -s -X POST "$issuer/test/kill?client=legate-two" > /dev/null
  sleep 4
  local nc; nc=$(_c_api POST /v1/vault/linear/token "$key")
  check "invalid_grant: the token request answers needs_consent" test "$(echo "$nc" | jq -r .error.code)" = needs_consent
  check "the connection is marked needs_consent" \
    test "$(_c_api GET "/v1/agents/$agent_id/connections" "$admin" | jq -r ".items[] | select(.id==\"$cid2\") | .status")" = needs_consent
  # bob@localhost is a mailbox of ours here: the notice to him is delivered there
  local told=""
  for _ in $(seq 1 100); do
    told=$(for id in $(_c_api GET "/v1/messages?folder=INBOX" "$bobmail" | jq -r '.items[].id'); do
      _c_api GET "/v1/messages/$id" "$bobmail" | jq -r .subject; done | grep 'Connection linear of .* needs your consent again' || true)
    [ -n "$told" ] && break; sleep 0.1
  done
  check "the granting human is sent a notice" test -n "$told"

  # 6. a connection revoked by bob reaches the provider; then the agent goes with the rest
  local revoked_before; revoked_before=$(grep -c "^POST /token/revocation 200" "$dir/op.log" || true)
  local c4 url4 cid4
  c4=$(_c_api POST "/v1/agents/$agent_id/connections" "$bob" \
    "{\"name\":\"notion\",\"issuer\":\"$issuer\",\"client_id\":\"legate-two\",\"client_secret\":\"legate-two-secret-0123456789\",\"scopes\":[\"openid\",\"offline_access\"]}")
  url4=$(echo "$c4" | jq -r .authorization_url); cid4=$(echo "$c4" | jq -r .id)
  _c_consent "$dir/jar-bob" "$url4" > /dev/null
  local del; del=$(_c_api DELETE "/v1/agents/$agent_id/connections/$cid4" "$bob")
  check "revoking one connection: revoked at the provider (RFC 7009)" \
    bash -c "[ \"\$(echo '$del' | jq -r .provider_revoked)\" = true ] && [ \$(grep -c '^POST /token/revocation 200' '$dir/op.log') -gt $revoked_before ]"
  check "its tokens are gone from the agent's vault" \
    test "$(_c_api POST /v1/vault/notion/token "$key" | jq -r .error.code)" = connection_not_active
  revoked_before=$(grep -c "^POST /token/revocation 200" "$dir/op.log" || true)
  local events_before; events_before=$(grep -c "^EVENT grant.revoked" "$dir/op.log" || true)
  _c_api DELETE "/v1/agents/$agent_id" "$bob" > /dev/null
  local after; after=$(_c_api GET "/v1/agents/$agent_id/connections" "$admin")
  check "revoking the agent (by an owner) revokes its live connections at the provider" \
    test "$(echo "$after" | jq -r "[.items[] | select(.id==\"$cid1\" or .id==\"$cid2\") | .status] | join(\",\")")" = "revoked,revoked"
  check "... the provider saw the revocation of github's grant" \
    test "$(echo "$after" | jq -r ".items[] | select(.id==\"$cid1\") | .provider_revoked")" = true
  check "... and its grant is gone at the provider" \
    test "$(grep -c "^EVENT grant.revoked" "$dir/op.log")" -gt "$events_before"
  check "the agent can no longer ask for tokens" test "$(_c_api POST /v1/vault/github/token "$key" | jq -r .error.code)" = agent_revoked

  # 7. the refresh tokens the provider issued appear nowhere in legate's files
  kill -TERM "$LEGATE_PID"; wait "$LEGATE_PID" || true
  local leaked=0 rt
  for rt in $(sed -n 's/^RT //p' "$dir/op.log"); do
    if grep -rqF "$rt" "$dir/data" "$dir/out" "$dir/err" "$dir"/par*.json 2>/dev/null; then leaked=$((leaked+1)); fi
    if echo "$audit" | grep -qF "$rt"; then leaked=$((leaked+1)); fi
  done
  check "the provider issued refresh tokens ($(grep -c '^RT ' "$dir/op.log"))" test "$(grep -c '^RT ' "$dir/op.log")" -ge 4
  check "no refresh token in legate's data, logs, audit or answers" test "$leaked" = 0
  kill "$op_pid" 2>/dev/null || true
}

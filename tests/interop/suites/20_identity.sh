# Identity: third-party libraries check our did:web documents, identity tokens and signatures
# using only what we publish (did.json, jwks.json): PyJWT and Python `cryptography`.
# Also the CLI (`agent rotate-key`, `agent revoke`) on the data directory between restarts.

# Checks in Python; each prints "PASS name" or "FAIL name: why" (turned into ok/bad).
_identity_py() {
  cat <<'PY'
import base64, json, sys, urllib.error, urllib.request
import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

def b58decode(s):
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw

def did_to_url(did):
    # did:web method spec: ':' -> '/', %3A -> ':', no path -> /.well-known; http for loopback
    parts = did[len("did:web:"):].split(":")
    host = parts[0].replace("%3A", ":")
    path = "/".join(parts[1:]) if len(parts) > 1 else ".well-known"
    return f"http://{host}/{path}/did.json"

def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)

def check(name, cond, why=""):
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else f": {why}"))

def multikey_of(doc, kid):
    vm = next(m for m in doc["verificationMethod"] if m["id"] == kid)
    assert vm["type"] == "Multikey", vm
    raw = b58decode(vm["publicKeyMultibase"][1:])
    assert raw[:2] == b"\xed\x01" and len(raw) == 34, raw
    return Ed25519PublicKey.from_public_bytes(raw[2:])

def didweb(base, admin):
    req = urllib.request.Request(base + "/v1/agents?limit=1000", headers={"Authorization": "Bearer " + admin})
    agents = json.load(urllib.request.urlopen(req, timeout=5))["items"]
    for a in agents:
        did, url = a["did"], did_to_url(a["did"])
        status, doc = fetch(url)
        if a["status"] == "revoked":
            check(f"revoked {a['address']}: {url} is 410 deactivated",
                  status == 410 and doc["didDocumentMetadata"]["deactivated"] is True, (status, doc))
            continue
        ok = (status == 200 and doc["id"] == did
              and doc["controller"] == did.split(":agents:")[0]
              and any(s["serviceEndpoint"] == "mailto:" + a["address"] for s in doc["service"])
              and all(m["id"].startswith(did + "#") for m in doc["verificationMethod"])
              and doc["verificationMethod"][0]["publicKeyMultibase"].startswith("z6Mk"))
        check(f"did:web rules: {url} has id {did}", ok, (status, doc))
    domain = agents[0]["did"].split(":agents:")[0]
    status, doc = fetch(did_to_url(domain))
    check("the domain DID document is at /.well-known/did.json", status == 200 and doc["id"] == domain, doc)

def token_did(token, aud, label):
    kid = jwt.get_unverified_header(token)["kid"]
    did = kid.split("#")[0]
    _, doc = fetch(did_to_url(did))
    claims = jwt.decode(token, multikey_of(doc, kid), algorithms=["EdDSA"], audience=aud)
    check(f"PyJWT verifies the {label} token with the did.json Multikey",
          claims["sub"] == did and claims["iss"] == did and "act" in claims, claims)
    # JsonWebKey2020 consumers: the -jwk method's publicKeyJwk, selected by its kid member
    jwk = next(m["publicKeyJwk"] for m in doc["verificationMethod"]
               if m["type"] == "JsonWebKey2020" and m["publicKeyJwk"]["kid"] == kid)
    jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience=aud)
    check(f"PyJWT verifies the {label} token with the did.json publicKeyJwk", True)
    try:
        jwt.decode(token, multikey_of(doc, kid), algorithms=["EdDSA"], audience="https://other.example")
        check(f"PyJWT rejects the {label} token for another audience", False, "accepted")
    except jwt.InvalidAudienceError:
        check(f"PyJWT rejects the {label} token for another audience", True)

def token_jwks(token, aud, label):
    kid = jwt.get_unverified_header(token)["kid"]
    local = kid.split("#")[0].split(":agents:")[1]
    host = kid.split(":")[2].replace("%3A", ":")
    client = jwt.PyJWKClient(f"http://{host}/agents/{local}/jwks.json", cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience=aud)
    check(f"PyJWT verifies the {label} token with the jwks.json key ({kid.split('#')[1]})",
          claims["aud"] == aud, claims)

def signature(did, kid, data_b64, sig_b64):
    _, doc = fetch(did_to_url(did))
    pk = multikey_of(doc, kid)
    data, sig = base64.b64decode(data_b64), base64.b64decode(sig_b64)
    pk.verify(sig, data)
    check("cryptography verifies a sign output with the did.json key", True)
    try:
        pk.verify(sig, data + b"!")
        check("cryptography rejects the signature over other data", False, "accepted")
    except InvalidSignature:
        check("cryptography rejects the signature over other data", True)

try:
    {"didweb": didweb, "token_did": token_did, "token_jwks": token_jwks,
     "signature": signature}[sys.argv[1]](*sys.argv[2:])
except Exception as e:  # a crash is a failure of the check that was running
    check(f"{sys.argv[1]} ran", False, repr(e))
PY
}

identity_check() {
  local line out
  out=$(python3 "$WORK/identity/check.py" "$@" 2>&1) || true
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) ok "${line#PASS }" ;;
      "FAIL "*) bad "${line#FAIL }" ;;
      "") ;;
      *) echo "  $line" ;;
    esac
  done <<< "$out"
}

suite_20_identity() {
  local dir="$WORK/identity"; mkdir -p "$dir"
  _identity_py > "$dir/check.py"
  local http; http=$(free_port)
  printf '[storage]\npath = "%s/data"\n[listen]\nhttp = "127.0.0.1:%s"\nsmtp = ""\nsubmission = ""\nimap = ""\n' "$dir" "$http" > "$dir/config.toml"
  local token; token=$(new_token)
  local base="http://127.0.0.1:$http" pid
  _id_start() {
    local rc=0
    start_legate "$dir/config.toml" --token "$token" --wait "$base" || rc=$?
    pid=$LEGATE_PID
    return "$rc"
  }
  _id_stop() { kill -TERM "$pid"; wait "$pid" || true; }
  _id_cli() { "$BIN" --config "$dir/config.toml" "$@" >> "$dir/cli.out"; }
  _id_api() { # method path key [json]
    curl -s -X "$1" "$base$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' ${4:+-d "$4"}
  }
  _id_start || { bad "identity server starts"; return; }

  local ops key ops_did
  ops=$(_id_api POST /v1/agents "$token" '{"local":"ops","scopes":["mail:read","identity:sign","identity:verify"]}')
  key=$(echo "$ops" | jq -r .api_key.key); ops_did=$(echo "$ops" | jq -r .did)
  check "the agent's DID is did:web:localhost%3A$http:agents:ops" test "$ops_did" = "did:web:localhost%3A$http:agents:ops"
  local spare_key checker
  spare_key=$(_id_api POST /v1/agents "$token" '{"local":"spare","scopes":["identity:sign"]}' | jq -r .api_key.key)
  checker=$(_id_api POST /v1/agents "$token" '{"local":"checker","scopes":["identity:verify"]}' | jq -r .api_key.key)
  local sub; sub=$(_id_api POST "/v1/agents/$(echo "$ops" | jq -r .id)/subagents" "$key" '{"local":"ops-helper","scopes":["identity:sign"]}')
  check "the parent creates a sub-agent with a 4-link chain" test "$(echo "$sub" | jq '.chain | length')" = 4
  local sub_key; sub_key=$(echo "$sub" | jq -r .api_key.key)

  identity_check didweb "$base" "$token"

  local aud="https://svc.example" t1 t_sub t_spare
  t1=$(_id_api POST /v1/identity/token "$key" "{\"audience\":\"$aud\",\"ttl_seconds\":600}" | jq -r .token)
  t_sub=$(_id_api POST /v1/identity/token "$sub_key" "{\"audience\":\"$aud\"}" | jq -r .token)
  t_spare=$(_id_api POST /v1/identity/token "$spare_key" "{\"audience\":\"$aud\"}" | jq -r .token)
  identity_check token_did "$t1" "$aud" agent
  identity_check token_jwks "$t1" "$aud" agent
  identity_check token_did "$t_sub" "$aud" sub-agent
  local signed; signed=$(_id_api POST /v1/identity/sign "$key" '{"data_b64":"aGVsbG8gd29ybGQ="}')
  identity_check signature "$ops_did" "$(echo "$signed" | jq -r .kid)" aGVsbG8gd29ybGQ= "$(echo "$signed" | jq -r .signature_b64)"
  check "our verify accepts the token" test "$(_id_api POST /v1/identity/verify "$checker" "{\"token\":\"$t1\",\"audience\":\"$aud\"}" | jq -r .reason)" = ok

  # offline CLI between restarts: rotate ops's key, revoke spare
  _id_stop
  check "legate agent rotate-key" _id_cli agent rotate-key ops@localhost --overlap-secs 3600
  check "rotate-key prints the new key's DID URL" grep -q "agents:ops#key-2" "$dir/cli.out"
  check "legate agent revoke" _id_cli agent revoke spare@localhost
  _id_start || { bad "identity server restarts"; return; }
  check "jwks.json publishes old and new keys during the overlap" \
    test "$(curl -s "$base/agents/ops/jwks.json" | jq '.keys | length')" = 2
  local t2; t2=$(_id_api POST /v1/identity/token "$key" "{\"audience\":\"$aud\"}" | jq -r .token)
  identity_check token_jwks "$t1" "$aud" "pre-rotation"
  identity_check token_jwks "$t2" "$aud" "post-rotation"
  identity_check token_did "$t2" "$aud" "post-rotation"
  check "the CLI-revoked agent's token: our verify says revoked" \
    test "$(_id_api POST /v1/identity/verify "$checker" "{\"token\":\"$t_spare\"}" | jq -r .reason)" = revoked

  # revocation through the API: token, signature, DID document, key, sub-agent
  check "admin DELETE revokes" test "$(_id_api DELETE "/v1/agents/$(echo "$ops" | jq -r .id)" "$token" | jq '.revoked | length')" = 2
  check "a revoked agent's token: our verify says revoked" \
    test "$(_id_api POST /v1/identity/verify "$checker" "{\"token\":\"$t1\"}" | jq -r .reason)" = revoked
  check "a revoked sub-agent's token: our verify says revoked" \
    test "$(_id_api POST /v1/identity/verify "$checker" "{\"token\":\"$t_sub\"}" | jq -r .reason)" = revoked
  check "a revoked agent's signature: our verify says revoked" \
    test "$(_id_api POST /v1/identity/verify "$checker" "{\"did\":\"$ops_did\",\"data_b64\":\"aGVsbG8gd29ybGQ=\",\"signature_b64\":\"$(echo "$signed" | jq -r .signature_b64)\"}" | jq -r .reason)" = revoked
  check "a revoked agent's API key is refused" test "$(_id_api GET /v1/whoami "$key" | jq -r .error.code)" = agent_revoked
  identity_check didweb "$base" "$token"
  check "every identity operation is audited" test "$(_id_api GET '/v1/audit?limit=500' "$token" \
    | jq '[.items[].action | select(. == "identity.sign" or . == "identity.token" or . == "identity.verify" or . == "agent.rotate_key" or . == "agent.revoke")] | length')" -ge 14
  _id_stop
}

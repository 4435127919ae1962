# Identity on the web (issue 25 §3, §4): RFC 9421 request signatures (Web Bot Auth) checked by
# PyPI's http-message-signatures and Cloudflare's web-bot-auth against the key directory we
# serve; A2A agent cards parsed by a2a-sdk's model and their JWS verified by a2a-sdk and by
# joserfc; the operator-signed reputation JWT checked by PyJWT; tampering, expiry and
# revocation fail.

_webid_py() {
  cat <<'PY'
import base64, json, sys, time, urllib.error, urllib.request
import requests
import http_message_signatures as hms
from http_message_signatures import algorithms
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def check(name, cond, why=""):
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else f": {why}"))

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.load(e)

def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def thumbprint(jwk):
    # RFC 7638, computed here
    import hashlib
    canon = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()

def verifier(directory):
    class R(hms.HTTPSignatureKeyResolver):
        def resolve_public_key(self, key_id):
            k = next(k for k in directory["keys"] if thumbprint(k) == key_id)
            return Ed25519PublicKey.from_public_bytes(b64u(k["x"]))
    return hms.HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=R())

def request(signed, url, extra=None):
    h = {"Accept": "text/html", **signed["headers"], **(extra or {})}
    return requests.Request("GET", url, headers=h).prepare()

def httpsig(base, signed_file, url, label):
    signed = json.load(open(signed_file))
    local = signed["headers"]["Signature-Agent"].split("/agents/")[1].split("/")[0]
    status, headers, directory = get(f"{base}/agents/{local}/.well-known/http-message-signatures-directory")
    check(f"{label}: the directory is served as application/http-message-signatures-directory+json",
          status == 200 and headers.get("content-type") == "application/http-message-signatures-directory+json", (status, headers))
    check(f"{label}: the directory lists the keyid (RFC 7638 thumbprint)",
          any(thumbprint(k) == signed["keyid"] for k in directory["keys"]), directory)
    v = verifier(directory)
    try:
        res = v.verify(request(signed, url), expect_tag="web-bot-auth")
        check(f"{label}: http-message-signatures verifies the signature", res[0].label == "sig1")
    except Exception as e:
        check(f"{label}: http-message-signatures verifies the signature", False, repr(e))
    for what, extra, u in [("a tampered Signature-Agent", {"Signature-Agent": 'sig1="https://evil.example/"'}, url),
                           ("another authority", None, url.replace("shop.example", "evil.example"))]:
        try:
            v.verify(request(signed, u, extra))
            check(f"{label}: http-message-signatures rejects {what}", False, "accepted")
        except hms.InvalidSignature:
            check(f"{label}: http-message-signatures rejects {what}", True)

def expired(base, signed_file, url):
    signed = json.load(open(signed_file))
    local = signed["headers"]["Signature-Agent"].split("/agents/")[1].split("/")[0]
    _, _, directory = get(f"{base}/agents/{local}/.well-known/http-message-signatures-directory")
    # the library tolerates 5 s of clock skew past `expires`
    time.sleep(max(0, signed["expires"] - time.time()) + 6.5)
    try:
        verifier(directory).verify(request(signed, url), expect_tag="web-bot-auth")
        check("http-message-signatures rejects an expired signature", False, "accepted")
    except hms.InvalidSignature as e:
        check("http-message-signatures rejects an expired signature", "expire" in str(e).lower(), repr(e))

def revoked(base, local, keyid):
    status, _, d = get(f"{base}/agents/{local}/.well-known/http-message-signatures-directory")
    check("a revoked agent's directory answers 410 with no keys", status == 410 and d["keys"] == [], (status, d))
    _, _, org = get(f"{base}/.well-known/http-message-signatures-directory")
    check("the org directory no longer lists the revoked agent's key",
          all(thumbprint(k) != keyid for k in org["keys"]), org)

def card(base, local):
    from google.protobuf.json_format import ParseDict
    from a2a.types import AgentCard
    from a2a.utils.signing import create_signature_verifier, InvalidSignaturesError
    from jwt import PyJWK
    from joserfc import jws
    from joserfc.jwk import OKPKey
    from joserfc.util import urlsafe_b64encode
    from a2a.utils._jcs import canonicalize
    status, _, raw = get(f"{base}/agents/{local}/.well-known/agent-card.json")
    parsed = ParseDict(raw, AgentCard())  # raises on any field the A2A model does not know
    check("a2a-sdk's AgentCard model parses the card",
          parsed.name and parsed.supported_interfaces[0].url.startswith("mailto:"), raw)
    did = raw["capabilities"]["extensions"][0]["params"]["did"]
    host = did.split(":")[2].replace("%3A", ":")
    _, _, doc = get(f"http://{host}/" + "/".join(did.split(":")[3:]) + "/did.json")
    svc = [s for s in doc["service"] if s["type"] == "AgentCard"]
    check("the DID document lists the card as an AgentCard service",
          svc and svc[0]["serviceEndpoint"].endswith(f"/agents/{local}/.well-known/agent-card.json"), doc)
    _, _, jwks = get(f"{base}/agents/{local}/jwks.json")
    keys = lambda kid, jku: PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    try:
        create_signature_verifier(keys, ["EdDSA"])(parsed)
        check("a2a-sdk verifies the card signature", True)
    except Exception as e:
        check("a2a-sdk verifies the card signature", False, repr(e))
    unsigned = dict(raw); sig = unsigned.pop("signatures")[0]
    token = sig["protected"] + "." + urlsafe_b64encode(canonicalize(unsigned).encode()).decode() + "." + sig["signature"]
    key = OKPKey.import_key(next(k for k in jwks["keys"]))
    try:
        obj = jws.deserialize_compact(token, key, algorithms=["EdDSA"])
        check("joserfc verifies the card JWS (detached, JCS payload)", obj.headers()["kid"].startswith(did + "#"))
    except Exception as e:
        check("joserfc verifies the card JWS (detached, JCS payload)", False, repr(e))
    parsed.name = "someone else"
    try:
        create_signature_verifier(keys, ["EdDSA"])(parsed)
        check("a2a-sdk rejects a changed card", False, "accepted")
    except InvalidSignaturesError:
        check("a2a-sdk rejects a changed card", True)

def card_revoked(base, local):
    status, _, raw = get(f"{base}/agents/{local}/.well-known/agent-card.json")
    check("a revoked agent's card is 410 and says revoked",
          status == 410 and raw["capabilities"]["extensions"][0]["params"]["status"] == "revoked"
          and "signatures" not in raw, (status, raw))

def reputation(base, local):
    import jwt
    with urllib.request.urlopen(f"{base}/agents/{local}/reputation.jwt", timeout=5) as r:
        token = r.read().decode()
    _, _, ddoc = get(f"{base}/.well-known/did.json")
    client = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer=ddoc["id"])
    check("PyJWT verifies the reputation JWT with /.well-known/jwks.json (iss = the domain DID)",
          0 <= claims["score"] <= 100 and claims["sub"].endswith(":agents:" + local), claims)
    check("the domain DID document publishes the same key",
          any(m["id"] == jwt.get_unverified_header(token)["kid"] for m in ddoc["verificationMethod"]), ddoc)
    h, p, sig = token.split(".")
    body = json.loads(b64u(p)); body["score"] = 100
    forged = h + "." + base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode() + "." + sig
    try:
        jwt.decode(forged, key.key, algorithms=["EdDSA"], issuer=ddoc["id"])
        check("PyJWT rejects a reputation JWT with a changed score", False, "accepted")
    except jwt.InvalidSignatureError:
        check("PyJWT rejects a reputation JWT with a changed score", True)
    try:
        jwt.decode(token, key.key, algorithms=["EdDSA"], issuer=ddoc["id"],
                   options={"verify_iat": False, "verify_nbf": False}, leeway=-3601)
        check("PyJWT rejects an expired reputation JWT", False, "accepted")
    except jwt.ExpiredSignatureError:
        check("PyJWT rejects an expired reputation JWT", True)

import warnings; warnings.simplefilter("ignore")
try:
    {"httpsig": httpsig, "expired": expired, "revoked": revoked, "card": card,
     "card_revoked": card_revoked, "reputation": reputation}[sys.argv[1]](*sys.argv[2:])
except Exception as e:
    check(f"{sys.argv[1]} ran", False, repr(e))
PY
}

_webid_node() {
  cat <<'JS'
import { verify } from "web-bot-auth";
import { verifierFromJWK } from "web-bot-auth/crypto";
import { readFileSync } from "node:fs";
const [signedFile, dirFile, url, label] = process.argv.slice(2);
const signed = JSON.parse(readFileSync(signedFile));
const dir = JSON.parse(readFileSync(dirFile));
const key = async (data, sig, params) => {
  const jwk = dir.keys.find((k) => k.kid === params.keyid);
  if (!jwk) throw new Error("no key " + params.keyid);
  return (await verifierFromJWK(jwk))(data, sig, params);
};
const req = (extra) => new Request(url, { headers: { Accept: "text/html", ...signed.headers, ...extra } });
const say = (ok, name, why) => console.log((ok ? "PASS " : "FAIL ") + name + (ok ? "" : ": " + why));
try { await verify(req({}), key); say(true, `${label}: web-bot-auth verifies the signature`); }
catch (e) { say(false, `${label}: web-bot-auth verifies the signature`, e); }
try { await verify(req({ "Signature-Agent": '"https://evil.example/"' }), key); say(false, `${label}: web-bot-auth rejects a tampered Signature-Agent`, "accepted"); }
catch (e) { say(true, `${label}: web-bot-auth rejects a tampered Signature-Agent`); }
JS
}

webid_check() { # interpreter script args...
  local line out
  out=$("$@" 2>&1) || true
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) ok "${line#PASS }" ;;
      "FAIL "*) bad "${line#FAIL }" ;;
      "") ;;
      *) echo "  $line" ;;
    esac
  done <<< "$out"
}

suite_22_webid() {
  local dir="$WORK/webid"; mkdir -p "$dir"
  _webid_py > "$dir/check.py"
  local http; http=$(free_port)
  printf '[storage]\npath = "%s/data"\n[server]\ndomain = "localhost"\n[listen]\nhttp = "127.0.0.1:%s"\nsmtp = ""\nsubmission = ""\nimap = ""\n' "$dir" "$http" > "$dir/config.toml"
  local base="http://127.0.0.1:$http"
  start_legate "$dir/config.toml" --token new --wait "$base" || { bad "webid server starts"; return; }
  local token=$LEGATE_TOKEN
  _w_api() { curl -s -X "$1" "$base$2" -H "Authorization: Bearer $3" -H 'content-type: application/json' ${4:+-d "$4"}; }
  local bot key bot_id
  bot=$(_w_api POST /v1/agents "$token" '{"local":"crawler","scopes":["identity:sign","identity:verify"]}')
  key=$(echo "$bot" | jq -r .api_key.key); bot_id=$(echo "$bot" | jq -r .id)
  local url="https://shop.example/products?page=2"
  _w_api POST /v1/identity/http-signature "$key" "{\"method\":\"GET\",\"url\":\"$url\",\"headers\":{\"Accept\":\"text/html\"}}" > "$dir/default.json"
  _w_api POST /v1/identity/http-signature "$key" "{\"method\":\"GET\",\"url\":\"$url\",\"components\":[\"@authority\",\"signature-agent\"]}" > "$dir/whole.json"
  _w_api POST /v1/identity/http-signature "$key" "{\"method\":\"GET\",\"url\":\"$url\",\"expires_in\":1}" > "$dir/short.json"
  check "POST /v1/identity/http-signature returns the three headers" \
    test "$(jq -r '.headers | keys | join(",")' "$dir/default.json")" = "Signature,Signature-Agent,Signature-Input"
  check "a CR/LF in a header value is a 400 with a JSON error" \
    test "$(_w_api POST /v1/identity/http-signature "$key" '{"method":"GET","url":"https://a.example/","headers":{"X":"a\r\nB: c"}}' | jq -r .error.code)" = bad_request
  curl -s "$base/agents/crawler/.well-known/http-message-signatures-directory" > "$dir/directory.json"

  webid_check python3 "$dir/check.py" httpsig "$base" "$dir/default.json" "$url" "dictionary-member Signature-Agent (current draft)"
  webid_check python3 "$dir/check.py" httpsig "$base" "$dir/whole.json" "$url" "whole Signature-Agent field"
  # web-bot-auth 0.1.3 (the npm release) predates the dictionary form and reads the whole
  # Signature-Agent field even for "signature-agent";key="sig1", so it checks the whole-field
  # signature; the current Cloudflare source follows RFC 9421 §2.1.2 like our default.
  local wba=${WEBBOTAUTH_DIR:-/opt/legate-interop/web-bot-auth}
  if [ -f "$wba/node_modules/web-bot-auth/package.json" ]; then
    _webid_node > "$wba/check.mjs"
    webid_check node "$wba/check.mjs" "$dir/whole.json" "$dir/directory.json" "$url" "whole Signature-Agent field"
  else
    echo "  (web-bot-auth is not installed: skipped)"
  fi
  webid_check python3 "$dir/check.py" expired "$base" "$dir/short.json" "$url"
  check "our verify route says expired too" test "$(_w_api POST /v1/identity/http-signature/verify "$key" \
    "$(jq -c --arg u "$url" '{method:"GET",url:$u,headers:.headers}' "$dir/short.json")" | jq -r .reason)" = expired

  webid_check python3 "$dir/check.py" card "$base" crawler
  webid_check python3 "$dir/check.py" reputation "$base" crawler

  _w_api DELETE "/v1/agents/$bot_id" "$token" > /dev/null
  webid_check python3 "$dir/check.py" revoked "$base" crawler "$(jq -r .keyid "$dir/default.json")"
  webid_check python3 "$dir/check.py" card_revoked "$base" crawler
  local checker; checker=$(_w_api POST /v1/agents "$token" '{"local":"site","scopes":["identity:verify"]}' | jq -r .api_key.key)
  check "a revoked agent's request signature: our verify route says revoked" test "$(_w_api POST /v1/identity/http-signature/verify "$checker" \
    "$(jq -c --arg u "$url" '{method:"GET",url:$u,headers:(.headers + {"Accept":"text/html"})}' "$dir/default.json")" | jq -r .reason)" = revoked
  kill -TERM "$LEGATE_PID"; wait "$LEGATE_PID" || true
}

#!/usr/bin/env python3
"""OAuth 2.1 for MCP clients, driven by the official MCP Python SDK (`mcp` >= 2.3).

Usage: mcp_oauth_client.py BASE_URL ADMIN_TOKEN

The SDK's `OAuthClientProvider` meets /mcp's 401, discovers the metadata (RFC 9728, RFC
8414), registers (RFC 7591) and sends its authorization URL to our redirect handler, which
plays the human: it signs in to the console over HTTP (first sign-in with the admin token),
opens the consent page the URL leads to, picks agent A and a subset of its scopes, and
hands the code the console redirects with back to the SDK. The SDK exchanges it (PKCE
S256), lists tools and calls them; then a refresh (forced by expiring the token locally)
rotates the pair; the old refresh token is refused; the agent page's "disconnect" (a
console form, CSRF token and all) ends the client's access. By hand: an authorization
without PKCE is sent back with an error, a code with a wrong or missing verifier is refused,
and a token for agent A cannot read agent B's vault.

Prints one "ok - ..." or "FAIL - ..." line per check; exits 1 on any failure.
"""

import asyncio
import base64
import hashlib
import html.parser
import secrets
import sys
import time
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:9/callback"  # never reached: the handler reads the Location
PASSWORD = "interop console password"
FAILED = 0


def check(name, cond, detail=""):
    global FAILED
    if cond:
        print(f"ok - {name}")
    else:
        FAILED += 1
        print(f"FAIL - {name} {str(detail)[:400]}")


class Forms(html.parser.HTMLParser):
    """The forms of a page: action, hidden inputs, checkbox names/values, select options."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "hidden": {}, "boxes": [], "options": {}})
        elif not self.forms:
            return
        elif tag == "input" and a.get("type") == "hidden":
            self.forms[-1]["hidden"][a.get("name")] = a.get("value", "")
        elif tag == "input" and a.get("type") == "checkbox":
            self.forms[-1]["boxes"].append((a.get("name"), a.get("value"), "checked" in a))
        elif tag == "select":
            self.select = a.get("name")
            self.forms[-1]["options"][self.select] = []
        elif tag == "option" and self.select:
            self.forms[-1]["options"][self.select].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self.select = None


def forms(page):
    p = Forms()
    p.feed(page)
    return p.forms


class Memory:
    """TokenStorage in memory (the SDK's protocol)."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Human:
    """A person at the console, over HTTP with a cookie jar (the console's own forms)."""

    def __init__(self, base, admin_token):
        self.base = base
        self.http = httpx2.AsyncClient(base_url=base, follow_redirects=False, timeout=30)
        self.admin_token = admin_token

    async def sign_in(self):
        page = (await self.http.get("/console/login/first")).text
        csrf = forms(page)[0]["hidden"]["csrf"]
        r = await self.http.post("/console/login/first", data={
            "csrf": csrf, "token": self.admin_token, "password": PASSWORD, "password2": PASSWORD})
        check("console: first sign-in with the admin token", r.status_code in (302, 303), r.status_code)

    async def consent_page(self, url):
        """GET `url`, following redirects that stay on this server; the consent form."""
        for _ in range(5):
            r = await self.http.get(url)
            if r.status_code in (301, 302, 303, 307) and r.headers["location"].startswith(("/", self.base)):
                url = urljoin(self.base, r.headers["location"])
                continue
            return r
        raise RuntimeError("redirect loop")

    async def consent(self, url, agent_id, scopes, decision="allow"):
        """Opens the consent page at `url`, allows `agent_id` with `scopes`; the Location."""
        r = await self.consent_page(url)
        if r.status_code != 200:
            return r.headers.get("location") or f"status {r.status_code}"
        form = next(f for f in forms(r.text) if f["action"] == "/console/oauth/authorize")
        if agent_id not in form["options"].get("agent", []):
            raise RuntimeError(f"agent {agent_id} is not offered: {form['options']}")
        data = list(form["hidden"].items()) + [("agent", agent_id), ("decision", decision)]
        data += [("scopes", s) for s in scopes]
        # Repeated names (one "scopes" per box): form-encoded by hand, httpx wants a dict.
        r = await self.http.post("/console/oauth/authorize", content=urlencode(data),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        return r.headers.get("location", f"status {r.status_code}")

    async def csrf_of(self, path):
        return forms((await self.http.get(path)).text)[0]["hidden"]["csrf"]


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def rest(http, method, path, key, **kw):
    r = await http.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)
    return r


async def mcp_raw(base, token):
    """An `initialize` request to /mcp with a bearer token: the HTTP status and challenge."""
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}
    async with httpx2.AsyncClient(timeout=30) as h:
        r = await h.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
                         headers={**({"Authorization": f"Bearer {token}"} if token else {}),
                                  "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"})
        return r.status_code, r.headers.get("www-authenticate", "")


async def run(base, admin):
    api = httpx2.AsyncClient(base_url=base, timeout=30)
    agents = {}
    for local, scopes in (("oauth-a", ["mail:read", "vault:read", "vault:write", "identity:verify"]),
                          ("oauth-b", ["vault:read", "vault:write"])):
        r = await rest(api, "POST", "/v1/agents", admin, json={"local": local, "scopes": scopes})
        agents[local] = r.json()
    a_id, b_id = agents["oauth-a"]["id"], agents["oauth-b"]["id"]
    b_key = agents["oauth-b"]["api_key"]["key"]
    r = await rest(api, "PUT", "/v1/vault/b-only", b_key,
                   json={"kind": "login", "username": "b", "password": "b-secret-password"})
    check("agent B stores a credential of its own", r.status_code in (200, 201), r.text)

    # /mcp without credentials: the challenge the SDK follows.
    status, challenge = await mcp_raw(base, "")
    check("/mcp answers 401 with WWW-Authenticate resource_metadata", status == 401 and "resource_metadata=" in challenge,
          (status, challenge))

    human = Human(base, admin)
    await human.sign_in()

    # ---- the SDK's own flow -------------------------------------------------------------
    granted = ["mail:read", "vault:read"]
    pending = asyncio.get_running_loop().create_future()
    seen_urls = []

    async def redirect_handler(url):
        seen_urls.append(url)
        loc = await human.consent(url, a_id, granted)
        q = parse_qs(urlparse(loc).query)
        if "code" not in q:
            pending.set_exception(RuntimeError(f"no code in {loc}"))
        else:
            pending.set_result(AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0],
                                                       iss=q.get("iss", [None])[0]))

    async def callback_handler():
        return await pending

    store = Memory()
    provider = OAuthClientProvider(
        server_url=f"{base}/mcp",
        client_metadata=OAuthClientMetadata(client_name="interop SDK client", redirect_uris=[REDIRECT],
                                            grant_types=["authorization_code", "refresh_token"],
                                            response_types=["code"], token_endpoint_auth_method="none"),
        storage=store, redirect_handler=redirect_handler, callback_handler=callback_handler)
    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="legacy") as client:
        check("SDK registered a client (RFC 7591)", store.client is not None and store.client.client_id.startswith("oc"),
              store.client)
        check("SDK was sent to the consent page with PKCE S256",
              seen_urls and "code_challenge_method=S256" in seen_urls[0], seen_urls)
        check("SDK exchanged the code for tokens", store.tokens is not None and store.tokens.refresh_token, store.tokens)
        check("the token carries only the granted scopes",
              store.tokens is not None and sorted((store.tokens.scope or "").split()) == sorted(granted), store.tokens)
        tools = {t.name for t in (await client.list_tools()).tools}
        check("tools/list over OAuth", "identity_whoami" in tools and "vault_list" in tools, sorted(tools))
        check("tools outside the grant are not listed", "mail_send" not in tools and "vault_store" not in tools,
              sorted(tools))
        who = (await client.call_tool("identity_whoami", {})).structured_content
        check("identity_whoami is agent A", who.get("id") == a_id or who.get("address") == "oauth-a@agents.test", who)

        # A token for agent A cannot read agent B.
        vl = (await client.call_tool("vault_list", {})).structured_content
        check("agent A's token does not list agent B's vault",
              not any(i.get("name") == "b-only" for i in vl.get("items", [])), vl)
        got = await client.call_tool("vault_get", {"name": "b-only"})
        check("agent A's token cannot read agent B's credential",
              got.is_error and "b-secret-password" not in str(got.content), got.content)

        # A refresh, forced by expiring the access token locally: a new pair, rotated.
        first = store.tokens
        provider.context.token_expiry_time = time.time() - 1
        who2 = (await client.call_tool("identity_whoami", {})).structured_content
        check("a refresh rotates both tokens and the call goes on",
              store.tokens.access_token != first.access_token and store.tokens.refresh_token != first.refresh_token
              and who2.get("id", who2.get("address")) is not None, who2)
        status, _ = await mcp_raw(base, store.tokens.access_token)
        check("the refreshed access token works", status == 200, status)
        client_id = store.client.client_id
        live = store.tokens

    # The console lists the connection on agent A's page, and disconnects it there.
    page = (await human.http.get(f"/console/agents/{a_id}")).text
    check("the agent page lists the connected client", "interop SDK client" in page)
    csrf = await human.csrf_of(f"/console/agents/{a_id}")
    r = await human.http.post(f"/console/agents/{a_id}/oauth/{client_id}/revoke", data={"csrf": csrf})
    check("the console disconnects the client", r.status_code in (302, 303), r.status_code)
    status, _ = await mcp_raw(base, live.access_token)
    check("a revoked client's access token is refused (401)", status == 401, status)
    r = await api.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": live.refresh_token,
                                             "client_id": client_id})
    check("a revoked client's refresh token is refused", r.status_code == 400 and r.json().get("error") == "invalid_grant",
          r.text)
    r = await human.http.post(f"/console/agents/{a_id}/oauth/{client_id}/revoke", data={})
    check("a console form without its CSRF token is refused (signed in)", r.status_code == 403, r.status_code)

    # ---- PKCE by hand -------------------------------------------------------------------
    reg = (await api.post("/oauth/register", json={"client_name": "pkce probe", "redirect_uris": [REDIRECT]})).json()
    cid = reg["client_id"]
    base_q = {"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT, "state": "s1",
              "resource": f"{base}/mcp"}
    loc = await human.consent(f"{base}/oauth/authorize?{urlencode(base_q)}", a_id, ["vault:read"])
    q = parse_qs(urlparse(loc).query)
    check("an authorization without PKCE is sent back with invalid_request",
          q.get("error") == ["invalid_request"] and q.get("state") == ["s1"], loc)
    loc = await human.consent(f"{base}/oauth/authorize?{urlencode({**base_q, 'code_challenge': pkce()[1], 'code_challenge_method': 'plain'})}",
                              a_id, ["vault:read"])
    check("code_challenge_method=plain is refused", "error=invalid_request" in loc, loc)

    verifier, challenge = pkce()
    loc = await human.consent(
        f"{base}/oauth/authorize?{urlencode({**base_q, 'code_challenge': challenge, 'code_challenge_method': 'S256'})}",
        a_id, ["vault:read"])
    code = parse_qs(urlparse(loc).query).get("code", [""])[0]
    check("consent with PKCE S256 gives a code", code.startswith("lgc_"), loc)

    def exchange(v):
        d = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": cid}
        if v is not None:
            d["code_verifier"] = v
        return api.post("/oauth/token", data=d)

    r = await exchange(None)
    check("a code without code_verifier is refused", r.status_code == 400 and r.json().get("error") == "invalid_request",
          r.text)
    r = await exchange(pkce()[0])
    check("a code with a wrong code_verifier is refused",
          r.status_code == 400 and r.json().get("error") == "invalid_grant", r.text)
    r = await exchange(verifier)
    check("the right code_verifier still gets the tokens", r.status_code == 200 and "access_token" in r.json(), r.text)
    if r.status_code == 200:
        t = r.json()
        status, _ = await mcp_raw(base, t["access_token"])
        check("that access token works on /mcp", status == 200, status)
        r = await api.post("/oauth/revoke", data={"token": t["refresh_token"], "client_id": cid})
        check("RFC 7009 revocation answers 200", r.status_code == 200, r.status_code)
        status, _ = await mcp_raw(base, t["access_token"])
        check("after revocation the access token is refused", status == 401, status)

    # A token is for one agent: agent B's key never reaches A's vault either way round.
    r = await rest(api, "GET", "/v1/vault", b_key)
    check("agent B still sees its own credential", any(i["name"] == "b-only" for i in r.json().get("items", [])), r.text)
    await api.aclose()
    await human.http.aclose()


def main():
    base, admin = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(run(base, admin))
    except Exception as e:  # noqa: BLE001 - any failure is a failed check, with its cause
        import traceback
        traceback.print_exc()
        check("the OAuth flow ran to the end", False, repr(e))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()

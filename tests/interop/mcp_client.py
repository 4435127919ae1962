#!/usr/bin/env python3
"""Drives legate's /mcp with the official MCP Python SDK (`mcp` >= 2.3).

Usage: mcp_client.py URL API_KEY SMTP_PORT AGENT_ADDRESS MODE
MODE is "legacy" (the initialize handshake, protocol 2025-x) or "auto" (the SDK default:
probes `server/discover` and negotiates 2026-07-28 when the server offers it).

A real flow: list tools; a mail with a code is delivered over SMTP (swaks) and awaited with
mail_wait_for_message; a credential with a TOTP seed is stored and its code compared with
oathtool; sign / token / verify; audit_list. Send-to-self runs when mail_send is listed.
Prints one "ok - ..." or "FAIL - ..." line per check; exits 1 on any failure.
"""

import asyncio
import base64
import subprocess
import sys
import time

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

SEED = "JBSWY3DPEHPK3PXP"
FAILED = 0


def check(name, cond, detail=""):
    global FAILED
    if cond:
        print(f"ok - {name}")
    else:
        FAILED += 1
        print(f"FAIL - {name} {detail}")


async def call(client, name, args=None):
    r = await client.call_tool(name, args or {})
    if r.is_error:
        raise RuntimeError(f"{name}: {r.content}")
    return r.structured_content, r


async def run(url, key, smtp_port, address, mode):
    tag = f"[{mode}]"
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=120))
    transport = streamable_http_client(url, http_client=http)
    async with http, Client(transport, mode=mode) as client:
        print(f"# {tag} negotiated protocol {client.protocol_version}")
        if mode == "legacy":
            check(f"{tag} server identifies itself", client.server_info is not None and client.server_info.name == "legate",
                  client.server_info)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        check(f"{tag} tools/list has the 15 tools", len(tools) >= 15, sorted(tools))
        check(f"{tag} tools carry annotations", tools["vault_totp"].annotations.read_only_hint is True)

        who, _ = await call(client, "identity_whoami")
        check(f"{tag} identity_whoami names the agent", who.get("address") == address, who)

        # A verification email arrives over real SMTP while we wait for it.
        subject = f"Verify {mode} {time.time_ns()}"
        since = str(int(time.time()) - 1)

        async def deliver():
            await asyncio.sleep(1)
            subprocess.run(
                ["swaks", "--to", address, "--from", "noreply@shop.test", "--server", f"127.0.0.1:{smtp_port}",
                 "--header", f"Subject: {subject}", "--body", "Your verification code is 739204. It expires soon."],
                check=True, capture_output=True)

        waiter = asyncio.create_task(call(client, "mail_wait_for_message", {"subject": subject, "since": since, "timeout": 30}))
        await deliver()
        msg, raw = await waiter
        check(f"{tag} mail_wait_for_message returns the mail", msg.get("subject") == subject, msg)
        codes = [c.get("code") for c in msg.get("codes", [])]
        check(f"{tag} the code is extracted", "739204" in codes, codes)
        check(f"{tag} mail content is flagged untrusted", (raw.meta or {}).get("untrusted_content") is True, raw.meta)

        listed, _ = await call(client, "mail_list_messages", {"q": subject})
        check(f"{tag} mail_list_messages finds it", len(listed["items"]) == 1, listed)
        got, _ = await call(client, "mail_get_message", {"id": msg["id"]})
        check(f"{tag} mail_get_message reads it", got["id"] == msg["id"])
        upd, _ = await call(client, "mail_update_message", {"id": msg["id"], "unread": False, "labels": {"add": ["otp"]}})
        check(f"{tag} mail_update_message marks it read", upd["unread"] is False and "otp" in upd["labels"], upd)

        name = f"shop-{mode}"
        meta, _ = await call(client, "vault_store", {"name": name, "kind": "login", "username": "ops",
                                                    "password": "hunter2", "totp": {"secret": SEED}})
        check(f"{tag} vault_store keeps the credential", meta.get("has_totp") is True, meta)
        cred, _ = await call(client, "vault_get", {"name": name})
        check(f"{tag} vault_get returns the password, never the seed",
              cred.get("password") == "hunter2" and SEED not in str(cred), cred)
        vl, _ = await call(client, "vault_list")
        check(f"{tag} vault_list lists it", any(i["name"] == name for i in vl["items"]), vl)
        for _ in range(3):
            code, _ = await call(client, "vault_totp", {"name": name})
            ref = subprocess.run(["oathtool", "--totp", "-b", f"--now=@{code['at']}", SEED],
                                 capture_output=True, text=True, check=True).stdout.strip()
            if code["seconds_remaining"] > 0:
                break
        check(f"{tag} vault_totp agrees with oathtool", code["code"] == ref, (code, ref))

        data = base64.b64encode(b"hello from " + mode.encode()).decode()
        sig, _ = await call(client, "identity_sign", {"data_b64": data})
        ver, _ = await call(client, "identity_verify", {"did": sig["did"], "data_b64": data,
                                                        "signature_b64": sig["signature_b64"], "kid": sig["kid"]})
        check(f"{tag} identity_sign then identity_verify", ver.get("valid") is True, ver)
        tok, _ = await call(client, "identity_token", {"audience": "https://shop.test"})
        tv, _ = await call(client, "identity_verify", {"token": tok["token"], "audience": "https://shop.test"})
        check(f"{tag} identity_token verifies", tv.get("valid") is True, tv)

        if "mail_send" in tools:
            sent, _ = await call(client, "mail_send", {"to": [address], "subject": f"self {mode}", "text": "code 111222"})
            back, _ = await call(client, "mail_wait_for_message", {"subject": f"self {mode}", "since": since, "timeout": 30})
            check(f"{tag} mail_send to self arrives", back.get("subject") == f"self {mode}", (sent, back))
        else:
            print(f"# {tag} mail_send not offered by this server; send-to-self skipped")

        deleted, _ = await call(client, "vault_delete", {"name": name})
        check(f"{tag} vault_delete", deleted.get("deleted") is True, deleted)
        gone, _ = await call(client, "mail_delete_message", {"id": msg["id"]})
        check(f"{tag} mail_delete_message trashes it", gone.get("deleted") == "trashed", gone)

        trail, _ = await call(client, "audit_list", {"limit": 100})
        actions = {e["action"] for e in trail["items"]}
        check(f"{tag} audit_list shows what the tools did",
              {"vault.totp", "identity.sign", "mail.wait"} <= actions, sorted(actions))

        bad = await client.call_tool("vault_totp", {"name": "does-not-exist"})
        check(f"{tag} a failing tool is an isError result", bad.is_error is True, bad)

        # New mail as a resource: on 2026-07-28 the SDK's listen() stream is told when mail
        # arrives (subscriptions/listen); the resource reads back the newest INBOX mail.
        if client.protocol_version == "2026-07-28":
            uri = "legate://mail/INBOX"
            res = await client.list_resources()
            check(f"{tag} the INBOX is a resource", any(str(r.uri) == uri for r in res.resources), res)
            subject = f"Watched {time.time_ns()}"
            async with client.listen(resource_subscriptions=[uri]) as sub:
                check(f"{tag} listen is acknowledged for the INBOX", uri in (sub.honored.resource_subscriptions or []),
                      sub.honored)
                await asyncio.to_thread(
                    subprocess.run,
                    ["swaks", "--to", address, "--from", "news@shop.test", "--server", f"127.0.0.1:{smtp_port}",
                     "--header", f"Subject: {subject}", "--body", "hello"],
                    check=True, capture_output=True)
                event = None
                with anyio.move_on_after(20):
                    async for ev in sub:
                        event = ev
                        break
                check(f"{tag} a resource-updated event arrives for new mail",
                      event is not None and str(getattr(event, "uri", "")) == uri, event)
            read = await client.read_resource(uri)
            text = read.contents[0].text if read.contents else ""
            check(f"{tag} the resource holds the new mail", subject in text, text[:200])


def main():
    url, key, smtp_port, address, mode = sys.argv[1:6]
    asyncio.run(run(url, key, smtp_port, address, mode))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()

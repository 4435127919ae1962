#!/usr/bin/env node
// Drives the operator console in Debian's chromium through playwright-core, as an operator
// would: first sign-in with the admin token, TOTP enrolment and a two-factor sign-in, an
// agent created (its key copied from the page), a mail sent to it over SMTP and read with
// the code highlighted, a key revoked, the DNS check, the audit chain verified, sign-out.
// It checks that a form post without its token is refused and that the session cookie does
// not work on another host, runs axe-core on every page (no serious or critical
// violations), and writes a screenshot of each page. Also: the TOTP QR code, a thread view,
// an attachment served only as a download, the audit log filtered by actor, and the
// webhooks page (a webhook disabled and re-enabled there).
//
// Usage: console_browser.js BASE_URL ADMIN_TOKEN SMTP_PORT SCREENSHOT_DIR
"use strict";
const path = require("path");
const net = require("net");
const crypto = require("crypto");
const modules = process.env.CONSOLE_NODE_MODULES || "/opt/legate-interop/console/node_modules";
const { chromium } = require(path.join(modules, "playwright-core"));
const axeSource = require("fs").readFileSync(path.join(modules, "axe-core", "axe.min.js"), "utf8");

const [base, adminToken, smtpPort, shots] = process.argv.slice(2);
const PASSWORD = "interop console password 1";
let failures = 0;
function ok(name) { console.log(`ok   - ${name}`); }
function bad(name, why) { failures++; console.log(`FAIL - ${name}${why ? ": " + why : ""}`); }
function check(name, cond, why) { cond ? ok(name) : bad(name, why); }

// RFC 6238 with SHA-1, 6 digits, 30 s: what an authenticator app computes from the seed.
function totp(seedB32, t) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of seedB32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const h = crypto.createHmac("sha1", key).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1000000).padStart(6, "0");
}

function smtpSend(port, from, to, body) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), "127.0.0.1");
    const steps = [`EHLO browser.test`, `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, `DATA`, body + "\r\n.", `QUIT`];
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString();
      if (!/\r\n$/.test(buf)) return;
      const lines = buf.trim().split("\r\n");
      const last = lines[lines.length - 1];
      if (/^\d{3}-/.test(last)) return;
      buf = "";
      if (/^[45]/.test(last)) { s.destroy(); return reject(new Error(last)); }
      const next = steps.shift();
      if (next === undefined) { s.end(); return resolve(); }
      s.write(next + "\r\n");
    });
    s.on("error", reject);
  });
}

async function axeCheck(page, name) {
  await page.evaluate(axeSource);
  const r = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(`axe: ${name} has no serious or critical violations`, serious.length === 0,
    serious.map((v) => `${v.id} (${v.nodes.length}): ${v.help}`).join("; "));
}

async function visit(page, url, name) {
  const resp = await page.goto(base + url);
  check(`${name} loads`, resp && resp.status() === 200, resp && String(resp.status()));
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  await axeCheck(page, name);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();

  // First sign-in: the admin token sets the password.
  await page.goto(base + "/console/login");
  await page.screenshot({ path: path.join(shots, "login.png") });
  await axeCheck(page, "login");
  await page.click("text=Sign in the first time with an admin token");
  await page.fill("#token", adminToken);
  await page.fill("#password", PASSWORD);
  await page.fill("#password2", PASSWORD);
  await page.click("button[type=submit]");
  check("first sign-in with the admin token lands on the overview", page.url() === base + "/console/", page.url() + " " + ((await page.textContent("main").catch(() => "")) || "").slice(0, 300));

  // TOTP enrolment, then sign out and sign in with password + code.
  await page.goto(base + "/console/settings");
  await page.click("text=Set up two-factor sign-in");
  const seed = (await page.textContent("#totp-seed")).trim();
  const qr = await page.evaluate(() => {
    const img = document.querySelector("p.qr img");
    return img ? { w: img.naturalWidth, src: img.getAttribute("src").slice(0, 26), alt: img.alt } : null;
  });
  check("TOTP set-up shows a QR code (server-rendered SVG)", qr && qr.w > 0 && qr.src === "data:image/svg+xml;base64," && qr.alt.length > 0,
    JSON.stringify(qr));
  await axeCheck(page, "totp-setup");
  await page.screenshot({ path: path.join(shots, "totp-setup.png") });
  const now = Math.floor(Date.now() / 1000);
  await page.fill("#code", totp(seed, now));
  await page.click("text=Turn on");
  check("TOTP enrolment is confirmed by a code", (await page.content()).includes("Two-factor sign-in is on"));
  await page.click("text=Sign out");
  await page.fill("#email", "admin@agents.test");
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  check("the password leads to the code form", page.url().endsWith("/console/login/totp"), page.url());
  await axeCheck(page, "login-totp");
  await page.fill("#code", totp(seed, now + 30));
  await page.click("button[type=submit]");
  check("password + TOTP signs in", page.url() === base + "/console/", page.url());

  // An agent, its key copied with the copy button.
  await visit(page, "/console/agents/new", "agent-new");
  await page.fill("#local", "browser");
  await page.fill("#name", "Browser test agent");
  await page.click("text=Create agent");
  const key = (await page.textContent("#new-key")).trim();
  check("the new agent's key is shown once", key.startsWith("lg_"), key);
  await page.screenshot({ path: path.join(shots, "agent-created.png") });
  await page.click("button.copy[data-copy=new-key]");
  const copied = await page.evaluate(() => navigator.clipboard.readText()).catch(() => "");
  check("the copy button copies the key", copied === key, copied);
  const who = await (await fetch(base + "/v1/whoami", { headers: { authorization: `Bearer ${key}` } })).json();
  check("the key works on the REST API", who.address === "browser@agents.test", JSON.stringify(who));

  // Mail over SMTP, read in the console with the code highlighted.
  await smtpSend(smtpPort, "shop@remote.test", "browser@agents.test",
    "From: Shop <shop@remote.test>\r\nTo: browser@agents.test\r\nSubject: Your sign-in code\r\n" +
    "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Your verification code is <b>739204</b>.</p><script>document.title='pwned'</script>");
  await visit(page, `/console/mail?agent=${who.id}`, "mail");
  await page.click("text=Your sign-in code");
  const code = await page.textContent("mark.code").catch(() => "");
  check("the message shows the code highlighted", code === "739204", code);
  check("sender HTML is not rendered", !(await page.title()).includes("pwned"));
  await page.screenshot({ path: path.join(shots, "message.png"), fullPage: true });
  await axeCheck(page, "message");

  // A thread of two messages, the first with an attachment: the thread view, and the
  // attachment served only as a download.
  const boundary = "b-legate-1";
  await smtpSend(smtpPort, "shop@remote.test", "browser@agents.test",
    "From: Shop <shop@remote.test>\r\nTo: browser@agents.test\r\nSubject: Order 1042\r\n" +
    "Message-ID: <order1042@remote.test>\r\nMIME-Version: 1.0\r\n" +
    `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\nContent-Type: text/plain\r\n\r\nYour order is confirmed; the invoice is attached.\r\n` +
    `--${boundary}\r\nContent-Type: text/html; name="invoice.html"\r\nContent-Disposition: attachment; filename="invoice.html"\r\n\r\n` +
    `<script>alert(1)</script><p>Invoice</p>\r\n--${boundary}--`);
  await smtpSend(smtpPort, "shop@remote.test", "browser@agents.test",
    "From: Shop <shop@remote.test>\r\nTo: browser@agents.test\r\nSubject: Re: Order 1042\r\n" +
    "Message-ID: <order1042-shipped@remote.test>\r\nIn-Reply-To: <order1042@remote.test>\r\n" +
    "References: <order1042@remote.test>\r\n\r\nYour order has shipped.");
  await page.goto(`${base}/console/mail?agent=${who.id}`);
  await page.click("text=Order 1042 >> nth=-1");
  const dl = await page.getAttribute("a[download]", "href").catch(() => null);
  check("the message lists its attachment as a download link", !!dl, dl);
  if (dl) {
    const a = await page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, cd: r.headers.get("content-disposition"), ct: r.headers.get("content-type"),
        nosniff: r.headers.get("x-content-type-options"), csp: r.headers.get("content-security-policy"), body: await r.text() };
    }, dl);
    check("an attachment is served as a download, never inline",
      a.status === 200 && /^attachment; filename="invoice.html"$/.test(a.cd || "") && a.ct === "application/octet-stream" &&
      a.nosniff === "nosniff" && /^sandbox/.test(a.csp || "") && a.body.includes("<p>Invoice</p>"), JSON.stringify(a));
  }
  await page.click("text=Show the thread");
  check("the thread view opens", page.url().includes("/thread/"), page.url());
  const inThread = await page.$$eval("ol.thread > li", (l) => l.length).catch(() => 0);
  check("the thread view shows both messages", inThread === 2, String(inThread));
  await page.screenshot({ path: path.join(shots, "thread.png"), fullPage: true });
  await axeCheck(page, "thread");

  // The audit log filtered by actor: only the signed-in human's entries.
  await page.goto(`${base}/console/audit?actor=${encodeURIComponent("human:admin@agents.test")}`);
  const actors = await page.$$eval("tbody tr td:nth-child(3) code", (c) => c.map((x) => x.textContent));
  check("the audit log filters by actor (the human's email names its id)",
    actors.length > 0 && actors[0].startsWith("human:hu_") && actors.every((a) => a === actors[0]),
    JSON.stringify(actors.slice(0, 5)));
  await axeCheck(page, "audit-by-actor");

  // Webhooks: one made over REST, shown, disabled and re-enabled in the console.
  const hook = await (await fetch(base + "/v1/webhooks", {
    method: "POST", headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ url: "https://hooks.remote.test/legate", event_types: ["message.received"] }),
  })).json();
  check("a webhook is created over REST", typeof hook.id === "string", JSON.stringify(hook));
  await visit(page, "/console/webhooks", "webhooks");
  await page.click("text=https://hooks.remote.test/legate");
  page.once("dialog", (d) => d.accept());
  await page.click("button:has-text('Disable')");
  check("the console disables the webhook", (await page.content()).includes("The webhook is disabled"));
  let state = await (await fetch(`${base}/v1/webhooks/${hook.id}`, { headers: { authorization: `Bearer ${adminToken}` } })).json();
  check("REST sees it disabled", state.enabled === false, JSON.stringify(state));
  await page.click("button:has-text('Re-enable')");
  state = await (await fetch(`${base}/v1/webhooks/${hook.id}`, { headers: { authorization: `Bearer ${adminToken}` } })).json();
  check("the console re-enables the webhook", state.enabled === true, JSON.stringify(state));
  await page.screenshot({ path: path.join(shots, "webhook.png"), fullPage: true });
  await axeCheck(page, "webhook");

  // The agent page, then revoke the key.
  await visit(page, `/console/agents/${who.id}`, "agent");
  page.once("dialog", (d) => d.accept());
  await page.click(`button[aria-label="Revoke key ${who.key_id}"]`);
  const after = await fetch(base + "/v1/whoami", { headers: { authorization: `Bearer ${key}` } });
  check("a key revoked in the console is refused", after.status === 401, String(after.status));

  await visit(page, "/console/", "overview");
  await visit(page, "/console/agents", "agents");
  await visit(page, "/console/dns", "dns");
  await page.click("text=Check live records");
  check("the DNS check runs and reports per record", (await page.content()).includes("DNS check for"));
  await page.screenshot({ path: path.join(shots, "dns-check.png"), fullPage: true });
  await axeCheck(page, "dns-check");
  await visit(page, "/console/queue", "queue");
  await visit(page, `/console/vault?agent=${who.id}`, "vault");
  await visit(page, "/console/audit", "audit");
  await page.click("text=Verify chain");
  check("the audit chain verifies", (await page.content()).includes("The chain is intact"));
  await page.screenshot({ path: path.join(shots, "audit-verify.png") });
  await visit(page, "/console/settings", "settings");

  // A form post without its token is refused (same origin, session cookie sent).
  const forged = await page.evaluate(async () => {
    const r = await fetch("/console/agents", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "local=forged" });
    return r.status;
  });
  check("a form post without the CSRF token is refused", forged === 403, String(forged));

  // The session cookie does not work on another host name for the same server.
  const cookies = await context.cookies();
  const other = base.replace("127.0.0.1", "localhost");
  const ctx2 = await browser.newContext();
  await ctx2.addCookies(cookies.map((c) => ({ name: c.name, value: c.value, url: other + "/console/" })));
  const p2 = await ctx2.newPage();
  await p2.goto(other + "/console/");
  check("a session cookie from another host is refused", p2.url().endsWith("/console/login"), p2.url());
  await ctx2.close();

  await page.click("text=Sign out");
  check("sign-out ends the session", page.url().endsWith("/console/login"), page.url());
  const back = await page.goto(base + "/console/agents");
  check("after sign-out the console asks to sign in", page.url().endsWith("/console/login"), page.url());

  await browser.close();
  process.exit(failures ? 1 : 0);
})().catch((e) => { console.log(`FAIL - browser run: ${e.stack || e}`); process.exit(1); });

// Node's imapflow against legate over STARTTLS: login, list, fetch, flag. One printed line per
// assertion ("ok   - ..." / "FAIL - ..."), read by suites/50_imap.sh.
// Usage: NODE_PATH=<dir>/node_modules node imapflow_client.js HOST PORT ADDRESS KEY CA_FILE
"use strict";
const fs = require("fs");
const { ImapFlow } = require("imapflow");

const [host, port, user, pass, ca] = process.argv.slice(2);
let failures = 0;
function check(name, cond, detail) {
  if (cond) {
    console.log(`ok   - imapflow: ${name}`);
  } else {
    failures++;
    console.log(`FAIL - imapflow: ${name}${detail === undefined ? "" : ` (${JSON.stringify(detail)})`}`);
  }
}

async function main() {
  const client = new ImapFlow({
    host,
    port: Number(port),
    secure: false,
    doSTARTTLS: true,
    auth: { user, pass },
    // The dev certificate names mx.agents.test; trust exactly it, without the host name check.
    tls: { ca: [fs.readFileSync(ca)], checkServerIdentity: () => undefined },
    logger: false,
  });
  await client.connect();
  check("login over STARTTLS", client.usable && client.authenticated !== false);
  const list = await client.list();
  check("LIST shows INBOX and Trash", list.some((m) => m.path === "INBOX") && list.some((m) => m.specialUse === "\\Trash"),
    list.map((m) => [m.path, m.specialUse]));
  const lock = await client.getMailboxLock("INBOX");
  try {
    check("INBOX holds the message", client.mailbox.exists >= 1, client.mailbox.exists);
    const msg = await client.fetchOne("*", { envelope: true, source: true, flags: true, bodyStructure: true, uid: true });
    check("fetch: envelope subject", msg.envelope && msg.envelope.subject === "Hello from neomutt test", msg.envelope);
    check("fetch: source holds the body", msg.source && msg.source.toString().includes("marmalade"));
    check("fetch: bodyStructure is text/plain", msg.bodyStructure && msg.bodyStructure.type === "text/plain",
      msg.bodyStructure);
    await client.messageFlagsAdd({ uid: msg.uid }, ["\\Flagged"], { uid: true });
    const again = await client.fetchOne(String(msg.uid), { flags: true }, { uid: true });
    check("flag: \\Flagged is stored", again.flags.has("\\Flagged"), [...again.flags]);
    await client.messageFlagsRemove({ uid: msg.uid }, ["\\Flagged"], { uid: true });
    const third = await client.fetchOne(String(msg.uid), { flags: true }, { uid: true });
    check("unflag: \\Flagged is removed", !third.flags.has("\\Flagged"), [...third.flags]);
    const found = await client.search({ subject: "neomutt" }, { uid: true });
    check("search by subject", Array.isArray(found) && found.includes(msg.uid), found);
    const st = await client.status("INBOX", { messages: true, unseen: true, uidNext: true });
    check("STATUS", st.messages >= 1 && st.uidNext > msg.uid, st);
  } finally {
    lock.release();
  }
  await client.logout();
  check("logout", true);
}

main().then(
  () => process.exit(failures ? 1 : 0),
  (e) => {
    console.log(`FAIL - imapflow: aborted: ${e && (e.responseText || e.message || e)}`);
    process.exit(1);
  },
);

// A loopback OAuth 2.0 / OpenID Connect provider for the connections suite (issue 25): npm's
// oidc-provider with short-lived access tokens, rotated refresh tokens, PKCE required and the
// RFC 7009 revocation endpoint. Consent is scripted: /interaction/<uid> logs the account in
// and grants what the client asked for, so an HTTP client following redirects with a cookie
// jar plays the human. Run from the directory where oidc-provider is installed:
//   node oidc_provider.mjs PORT REDIRECT_URI LOG_FILE
// Every request is logged to LOG_FILE ("METHOD PATH STATUS"), as are grant revocations
// ("EVENT grant.revoked") and each refresh token issued ("RT <value>"), so the suite can
// check what reached the provider and grep legate's files for the refresh tokens.
// POST /test/kill?client=ID destroys every refresh token issued to that client so far (its
// next refresh is refused with invalid_grant, as when a user revokes the app at the provider).
import Provider from "oidc-provider";
import http from "node:http";
import { appendFileSync } from "node:fs";

const [port, redirect, logFile] = process.argv.slice(2);
const log = (line) => appendFileSync(logFile, line + "\n");
const issued = new Map(); // refresh token -> client id

const clients = ["legate-one", "legate-two"].map((id) => ({
  client_id: id,
  client_secret: `${id}-secret-0123456789`,
  redirect_uris: [redirect],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
}));

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false }, revocation: { enabled: true } },
  ttl: { AccessToken: 5, AuthorizationCode: 60, RefreshToken: 3600, Grant: 3600, Interaction: 600, Session: 600 },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["interop-cookie-key-0123456789"] },
});
// Loopback over plain http: the cookies cannot be Secure.
provider.proxy = false;

provider.on("grant.revoked", (ctx, grantId) => log(`EVENT grant.revoked ${grantId}`));
provider.on("refresh_token.saved", (token) => { issued.set(token.jti, token.clientId); log(`RT ${token.jti}`); });
provider.on("server_error", (ctx, err) => log(`ERROR ${err}`));

provider.use(async (ctx, next) => {
  await next();
  log(`${ctx.method} ${ctx.path} ${ctx.status}`);
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  try {
    if (req.url.startsWith("/interaction/")) {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === "login") {
        await provider.interactionFinished(req, res, { login: { accountId: "user-1" } }, { mergeWithLastSubmission: false });
        return;
      }
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const d = details.prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(" "));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(" "));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (req.method === "POST" && req.url.startsWith("/test/kill?client=")) {
      const client = new URL(req.url, "http://x").searchParams.get("client");
      for (const [jti, owner] of issued) {
        if (owner !== client) continue;
        const t = await provider.RefreshToken.find(jti);
        if (t) await t.destroy();
      }
      log(`KILLED refresh tokens of ${client}`);
      res.writeHead(204).end();
      return;
    }
    callback(req, res);
  } catch (e) {
    log(`ERROR ${e}`);
    res.writeHead(500, { "content-type": "text/plain" }).end(String(e));
  }
});
server.listen(Number(port), "127.0.0.1", () => log(`LISTENING ${port}`));

// npm oauth2-mock-server (exact pin in package.json; needs Node 22), shaped as
// Google or as Microsoft Entra ID, for the built-in authorization server's
// upstream connectors. It approves every /authorize at once (no login page)
// and does not check redirect URIs or client secrets; the ID token's claims
// are set here to the provider's documented shape.
//
// Usage: node22 oauth2_mock_idp.mjs <port> <google|entra>
//   Issuer http://127.0.0.1:<port>; prints `READY <issuer>` once listening, and
//   `AUTHORIZE <json of the query>` for every authorization request.
// Env: MOCK_CLIENT_ID (the ID token's aud, default mcp-gateway-upstream),
//   MOCK_EMAIL, MOCK_EMAIL_VERIFIED (google, default 1), MOCK_HD (google: the
//   Workspace domain; unset: a consumer account), MOCK_EDOV (entra: xms_edov,
//   the email domain owner verified it, default 0), MOCK_TID, MOCK_OID,
//   MOCK_LOG_FILE (AUTHORIZE lines are also appended there).
import * as fs from "node:fs";

import { OAuth2Server } from "oauth2-mock-server";

const [portArg, shape] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || !["google", "entra"].includes(shape)) {
  process.stderr.write("usage: node oauth2_mock_idp.mjs <port> <google|entra>\n");
  process.exit(64);
}
const env = process.env;
const clientId = env.MOCK_CLIENT_ID || "mcp-gateway-upstream";

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

server.service.on("beforeAuthorizeRedirect", (_redirect, req) => {
  const line = `AUTHORIZE ${JSON.stringify(req.query)}\n`;
  process.stdout.write(line);
  if (env.MOCK_LOG_FILE) fs.appendFileSync(env.MOCK_LOG_FILE, line);
});

server.service.on("beforeTokenSigning", (token) => {
  // Every token gets the shape (the gateway reads only the ID token).
  token.payload.aud = clientId;
  token.payload.azp = clientId;
  if (shape === "google") {
    token.payload.sub = "108518834734516532217";
    token.payload.email = env.MOCK_EMAIL || "alice@example.com";
    token.payload.email_verified = (env.MOCK_EMAIL_VERIFIED || "1") === "1";
    if (env.MOCK_HD) token.payload.hd = env.MOCK_HD;
  } else {
    const tid = env.MOCK_TID || "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const oid = env.MOCK_OID || "00000000-0000-0000-66f3-3332eca7ea81";
    // Entra: `sub` is pairwise per application; `tid` + `oid` name the person.
    token.payload.sub = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";
    token.payload.tid = tid;
    token.payload.oid = oid;
    token.payload.email = env.MOCK_EMAIL || "bob@contoso.com";
    if ((env.MOCK_EDOV || "0") === "1") token.payload.xms_edov = true;
    token.payload.ver = "2.0";
  }
});

await server.start(port, "127.0.0.1");
server.issuer.url = `http://127.0.0.1:${port}`;
process.stdout.write(`READY ${server.issuer.url}\n`);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, async () => {
    await server.stop();
    process.exit(0);
  });
}

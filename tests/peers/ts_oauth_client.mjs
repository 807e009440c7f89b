// Real MCP client doing the whole MCP authorization dance with the official
// TypeScript SDK (`OAuthClientProvider` + `StreamableHTTPClientTransport`), no human:
// 401 -> protected resource metadata at the gateway -> authorization server metadata
// -> dynamic client registration (public client) -> authorization code + PKCE with
// `resource` -> token -> retry. A 403 insufficient_scope is handled by the SDK's
// transport (1.32: it re-runs auth() with the challenge's `scope`), which ends in
// another authorization redirect; this script then finishes it and retries the call.
//
// Usage: node ts_oauth_client.mjs <mcp-url> call <tool> <json-args> [then-call <tool2> <json-args2>]
// Output, one line each:
//   RESULT1 <json of result.content>   (TOOL_ERROR1 <json> if isError) | ERROR1 <message>
//   RESULT2 <json> | TOOL_ERROR2 <json> | ERROR2 <message>   (only with then-call)
//   SCOPE <scope of the last token response>
//   AUTH_COUNT <number of authorization redirects performed>
// `HTTP <status>: ` prefixes an error message when the SDK error carries a status.
// Exit 0 when every call succeeded, 3 if a tool returned isError, 2 on an error, 64 usage.
//
// The authorization "browser" (oauth_redirects.mjs) fetches the authorization URL with
// redirect: 'manual', keeps the AS's cookies, follows redirects within the AS until one
// goes to our redirect_uri, and takes `code` from it; nothing listens on redirect_uri.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { CookieJar, followAuthorization } from "./oauth_redirects.mjs";

function usage() {
  process.stderr.write("usage: node ts_oauth_client.mjs <mcp-url> call <tool> <json-args> [then-call <tool2> <json-args2>]\n");
  process.exit(64);
}

const [url, cmd, tool1, json1, then, tool2, json2] = process.argv.slice(2);
if (!url || cmd !== "call" || !tool1) usage();
if (then !== undefined && (then !== "then-call" || !tool2)) usage();

function parseJsonArg(s) {
  if (s === undefined || s === "") return {};
  try {
    return JSON.parse(s);
  } catch (e) {
    process.stderr.write(`invalid JSON argument: ${e.message}\n`);
    process.exit(64);
  }
}
const args1 = parseJsonArg(json1);
const args2 = then ? parseJsonArg(json2) : undefined;

const oneLine = (s) => String(s).replace(/\s+/g, " ").trim();
function describe(err) {
  let msg = err && err.message ? err.message : String(err);
  const ctor = err && err.constructor ? err.constructor.name : "";
  if (ctor === "StreamableHTTPError" && typeof err.code === "number" && err.code > 0) {
    msg = `HTTP ${err.code}: ${msg}`;
  } else if (ctor === "UnauthorizedError") {
    msg = `HTTP 401: ${msg}`;
  }
  return oneLine(msg);
}

const REDIRECT_URL = "http://127.0.0.1:9/oauth/callback"; // never contacted

// OAUTH_CIMD_CERT + OAUTH_CIMD_KEY (PEM files): identify by a Client ID Metadata
// Document instead of registering. This script serves the document itself over
// https on 127.0.0.1 and uses its URL as client_id.
let clientMetadataUrl;
if (process.env.OAUTH_CIMD_CERT && process.env.OAUTH_CIMD_KEY) {
  const https = await import("node:https");
  const fs = await import("node:fs");
  const server = https.createServer(
    { cert: fs.readFileSync(process.env.OAUTH_CIMD_CERT), key: fs.readFileSync(process.env.OAUTH_CIMD_KEY) },
    (req, res) => {
      if (req.url !== "/client-metadata.json") {
        res.statusCode = 404;
        res.end();
        return;
      }
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        client_id: clientMetadataUrl,
        client_name: "gateway-e2e-cimd-client",
        redirect_uris: [REDIRECT_URL],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
      }));
      process.stderr.write("served the client metadata document\n");
    },
  );
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.unref();
  clientMetadataUrl = `https://127.0.0.1:${server.address().port}/client-metadata.json`;
}

/** In-memory OAuthClientProvider that "redirects" by following the AS's redirects itself. */
class AutoOAuthProvider {
  authCount = 0;
  pendingCode = undefined;
  lastScope = undefined;
  #jar = new CookieJar(); // the "browser" session at the AS, kept across authorizations
  #clientInformation;
  #tokens;
  #codeVerifier;
  #discoveryState;

  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadataUrl() {
    return clientMetadataUrl;
  }
  get clientMetadata() {
    return {
      client_name: "gateway-e2e-ts-oauth-client",
      redirect_uris: [REDIRECT_URL],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.#clientInformation;
  }
  saveClientInformation(info) {
    this.#clientInformation = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens) {
    this.#tokens = tokens;
    this.lastScope = tokens.scope;
  }
  saveCodeVerifier(v) {
    this.#codeVerifier = v;
  }
  codeVerifier() {
    if (!this.#codeVerifier) throw new Error("No code verifier saved");
    return this.#codeVerifier;
  }
  saveDiscoveryState(s) {
    this.#discoveryState = s;
  }
  discoveryState() {
    return this.#discoveryState;
  }
  invalidateCredentials(scope) {
    if (scope === "all" || scope === "client") this.#clientInformation = undefined;
    if (scope === "all" || scope === "tokens") this.#tokens = undefined;
    if (scope === "all" || scope === "verifier") this.#codeVerifier = undefined;
    if (scope === "all" || scope === "discovery") this.#discoveryState = undefined;
  }
  async redirectToAuthorization(authorizationUrl) {
    this.authCount++;
    process.stderr.write(`authorize: ${authorizationUrl.searchParams.get("scope")} resource=${authorizationUrl.searchParams.get("resource")}\n`);
    // OAUTH_CONSENT=allow|deny: press that button on a consent page (the
    // gateway's built-in authorization server); unset: expect none.
    const consent = process.env.OAUTH_CONSENT || undefined;
    const { code } = await followAuthorization(authorizationUrl, REDIRECT_URL, { jar: this.#jar, consent });
    this.pendingCode = code;
  }
  takeCode() {
    const c = this.pendingCode;
    this.pendingCode = undefined;
    return c;
  }
}

const provider = new AutoOAuthProvider();
let client;
let transport;

// The SDK ends an authorization it started by throwing UnauthorizedError after
// redirectToAuthorization(); the code is then exchanged with transport.finishAuth().
async function withAuth(fn, rounds = 3) {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof UnauthorizedError) || provider.pendingCode === undefined || i >= rounds) throw err;
      await transport.finishAuth(provider.takeCode());
    }
  }
}

async function connect() {
  // As in the SDK's simpleOAuthClient: after finishing auth, reconnect on a new transport.
  for (let i = 0; ; i++) {
    transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    transport.onerror = () => {};
    client = new Client({ name: "gateway-e2e-ts-oauth-client", version: "1.0.0" });
    try {
      await client.connect(transport);
      return;
    } catch (err) {
      if (!(err instanceof UnauthorizedError) || provider.pendingCode === undefined || i >= 2) throw err;
      await transport.finishAuth(provider.takeCode());
      await client.close().catch(() => {});
    }
  }
}

let exit = 0;
function report(n, fn) {
  return fn().then(
    (r) => {
      const tag = r.isError === true ? `TOOL_ERROR${n}` : `RESULT${n}`;
      if (r.isError === true && exit === 0) exit = 3;
      process.stdout.write(`${tag} ${JSON.stringify(r.content)}\n`);
      return true;
    },
    (err) => {
      process.stdout.write(`ERROR${n} ${describe(err)}\n`);
      exit = 2;
      return false;
    },
  );
}

const ok = await report(1, async () => {
  await connect();
  return withAuth(() => client.callTool({ name: tool1, arguments: args1 }));
});
if (ok && then) {
  await report(2, () => withAuth(() => client.callTool({ name: tool2, arguments: args2 })));
}
process.stdout.write(`SCOPE ${provider.lastScope ?? ""}\n`);
process.stdout.write(`AUTH_COUNT ${provider.authCount}\n`);
try {
  await client?.close();
} catch {
  // ignore
}
process.exit(exit);

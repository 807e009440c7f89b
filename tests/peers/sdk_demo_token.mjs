// Gets an (opaque) access token from the TS SDK's demo authorization server
// (sdk_demo_as.mjs) without a human: dynamic registration (public client,
// token_endpoint_auth_method none) -> /authorize with PKCE S256 + resource (the demo
// auto-approves: 302 straight to redirect_uri with ?code; followed by
// oauth_redirects.mjs) -> /token (authorization_code + code_verifier + resource).
//
// Usage: node sdk_demo_token.mjs <issuer> <resource> <scope>
//   Prints the access token alone on stdout, exit 0; `ERROR <what>` on stderr, exit 2.
//   Stderr also gets `client_id <id>` and `token_response <json>`.
import * as crypto from "node:crypto";

import { followAuthorization } from "./oauth_redirects.mjs";

const [issuer, resource, scope] = process.argv.slice(2);
if (!issuer || !resource || scope === undefined) {
  process.stderr.write("usage: node sdk_demo_token.mjs <issuer> <resource> <scope>\n");
  process.exit(64);
}
const REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"; // never contacted

function fail(msg) {
  process.stderr.write(`ERROR ${msg}\n`);
  process.exit(2);
}

async function json(res, what) {
  const text = await res.text();
  if (!res.ok) fail(`${what}: HTTP ${res.status} ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    fail(`${what}: not JSON: ${text.slice(0, 200)}`);
  }
}

try {
  // RFC 8414 metadata (path-less issuer; tolerate the trailing slash the SDK emits).
  const base = issuer.replace(/\/+$/, "");
  const meta = await json(await fetch(`${base}/.well-known/oauth-authorization-server`), "metadata");

  const reg = await json(
    await fetch(meta.registration_endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        client_name: "sdk_demo_token",
        redirect_uris: [REDIRECT_URI],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
        scope,
      }),
    }),
    "registration",
  );
  process.stderr.write(`client_id ${reg.client_id}\n`);

  const verifier = crypto.randomBytes(32).toString("base64url");
  const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
  const state = crypto.randomBytes(8).toString("hex");
  const auth = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: "code",
    client_id: reg.client_id,
    redirect_uri: REDIRECT_URI,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
    resource,
  })) auth.searchParams.set(k, v);
  if (scope) auth.searchParams.set("scope", scope);
  const { code, state: gotState } = await followAuthorization(auth.href, REDIRECT_URI);
  if (gotState !== state) fail(`state mismatch: ${gotState}`);

  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code,
    code_verifier: verifier,
    redirect_uri: REDIRECT_URI,
    client_id: reg.client_id,
    resource,
  });
  const tok = await json(
    await fetch(meta.token_endpoint, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body }),
    "token",
  );
  process.stderr.write(`token_response ${JSON.stringify(tok)}\n`);
  if (!tok.access_token) fail(`no access_token: ${JSON.stringify(tok)}`);
  process.stdout.write(`${tok.access_token}\n`);
} catch (e) {
  fail(e && e.message ? e.message : String(e));
}

// Self-test of oidc_provider.mjs on its own (no gateway, no MCP server).
//
// Usage: node oidc_selftest.mjs <issuer> <resource-url> [admin-flag-file]
//   With admin-flag-file (the AS's OIDC_ADMIN_FLAG_FILE), the file is removed, an
//   authorization asking for mcp:admin must come back without it, the file is
//   created, and the same client must then get it. The file is removed at the end.
// Prints what it sees (discovery, JWKS, token headers and claims, introspection
// answers) and `SELFTEST OK` on success; exits 1 with `SELFTEST FAIL <why>` otherwise.
import * as crypto from "node:crypto";
import * as fs from "node:fs";

import { CookieJar, followAuthorization } from "./oauth_redirects.mjs";

const [issuer, resource, flagFile] = process.argv.slice(2);
if (!issuer || !resource) {
  process.stderr.write("usage: node oidc_selftest.mjs <issuer> <resource-url> [admin-flag-file]\n");
  process.exit(64);
}

function check(cond, why) {
  if (!cond) {
    process.stdout.write(`SELFTEST FAIL ${why}\n`);
    process.exit(1);
  }
}
const show = (label, v) => process.stdout.write(`${label} ${typeof v === "string" ? v : JSON.stringify(v)}\n`);
const b64json = (s) => JSON.parse(Buffer.from(s, "base64url").toString());
const decodeJwt = (t) => {
  const [h, p] = t.split(".");
  return { header: b64json(h), payload: b64json(p) };
};
const isJwt = (t) => t.split(".").length === 3;
const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

async function json(res) {
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

// Discovery: RFC 8414 and OIDC.
const as = await json(await fetch(`${issuer}/.well-known/oauth-authorization-server`));
const oidc = await json(await fetch(`${issuer}/.well-known/openid-configuration`));
check(as.status === 200 && as.body.issuer === issuer, `RFC 8414 metadata: ${as.status}`);
check(oidc.status === 200 && oidc.body.issuer === issuer, `OIDC discovery: ${oidc.status}`);
const md = as.body;
show("METADATA", {
  issuer: md.issuer,
  jwks_uri: md.jwks_uri,
  token_endpoint: md.token_endpoint,
  authorization_endpoint: md.authorization_endpoint,
  registration_endpoint: md.registration_endpoint,
  introspection_endpoint: md.introspection_endpoint,
  scopes_supported: md.scopes_supported,
  code_challenge_methods_supported: md.code_challenge_methods_supported,
});
const jwks = await json(await fetch(md.jwks_uri));
check(jwks.status === 200 && jwks.body.keys.length >= 1, "jwks");
show("JWKS", jwks.body.keys.map((k) => ({ kty: k.kty, alg: k.alg, kid: k.kid, crv: k.crv })));

async function token(auth, params) {
  return json(
    await fetch(md.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...(auth ? { authorization: auth } : {}) },
      body: new URLSearchParams(params),
    }),
  );
}
async function introspect(t) {
  return json(
    await fetch(md.introspection_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic("gateway", "gateway-secret") },
      body: new URLSearchParams({ token: t }),
    }),
  );
}

// client_credentials, both clients, with and without resource.
for (const [id, secret, wantJwt] of [
  ["cc-jwt", "cc-jwt-secret", true],
  ["cc-opaque", "cc-opaque-secret", false],
]) {
  for (const withResource of [true, false]) {
    const params = { grant_type: "client_credentials", scope: "mcp:tools weather:read" };
    if (withResource) params.resource = resource;
    const r = await token(basic(id, secret), params);
    check(r.status === 200, `${id} cc (resource=${withResource}): ${r.status} ${JSON.stringify(r.body)}`);
    const at = r.body.access_token;
    const jwt = isJwt(at);
    show(`CC ${id} resource=${withResource}`, { format: jwt ? "jwt" : "opaque", scope: r.body.scope, expires_in: r.body.expires_in });
    check(jwt === (wantJwt && withResource), `${id} resource=${withResource}: format ${jwt ? "jwt" : "opaque"}`);
    if (jwt) {
      const { header, payload } = decodeJwt(at);
      show("  JWT header", header);
      show("  JWT payload", payload);
      check(payload.aud === resource && payload.iss === issuer && payload.scope === "mcp:tools weather:read", "jwt claims");
      check(jwks.body.keys.some((k) => k.kid === header.kid), "jwt kid in jwks");
    }
    const i = await introspect(at);
    show("  INTROSPECT", `${i.status} ${JSON.stringify(i.body)}`);
    if (jwt) {
      check(i.status === 400 && i.body.error === "unsupported_token_type", "jwt introspection refused");
    } else {
      check(i.status === 200 && i.body.active === true && i.body.scope === "mcp:tools weather:read", "opaque introspection");
      check(withResource ? i.body.aud === resource : i.body.aud === undefined, "opaque introspection aud");
    }
  }
}

// Dynamic registration of a public client, then authorization code + PKCE.
const redirectUri = "http://127.0.0.1:9/callback";
const reg = await json(
  await fetch(md.registration_endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: "selftest",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "mcp:tools",
    }),
  }),
);
check(reg.status === 201, `registration: ${reg.status} ${JSON.stringify(reg.body)}`);
show("REGISTERED", { client_id: reg.body.client_id, token_endpoint_auth_method: reg.body.token_endpoint_auth_method, scope: reg.body.scope });
const clientId = reg.body.client_id;
const jar = new CookieJar();

async function authorize(scope, { withResource = true, pkce = true } = {}) {
  const verifier = crypto.randomBytes(32).toString("base64url");
  const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
  const u = new URL(md.authorization_endpoint);
  u.searchParams.set("response_type", "code");
  u.searchParams.set("client_id", clientId);
  u.searchParams.set("redirect_uri", redirectUri);
  u.searchParams.set("scope", scope);
  u.searchParams.set("state", "st");
  if (pkce) {
    u.searchParams.set("code_challenge", challenge);
    u.searchParams.set("code_challenge_method", "S256");
  }
  if (withResource) u.searchParams.set("resource", resource);
  const { code, state, iss, hops } = await followAuthorization(u, redirectUri, { jar });
  check(state === "st" && iss === issuer, `state/iss: ${state} ${iss}`);
  const params = { grant_type: "authorization_code", code, redirect_uri: redirectUri, code_verifier: verifier, client_id: clientId };
  if (withResource) params.resource = resource;
  const r = await token(undefined, params);
  check(r.status === 200, `code exchange: ${r.status} ${JSON.stringify(r.body)}`);
  return { hops, ...r.body };
}

// PKCE is required for this public client.
try {
  await authorize("mcp:tools", { pkce: false });
  check(false, "authorization without PKCE succeeded");
} catch (e) {
  show("NO_PKCE", e.message);
  check(e.oauthError === "invalid_request", "no-PKCE error");
}

if (flagFile) fs.rmSync(flagFile, { force: true });
const t1 = await authorize("mcp:tools mcp:admin");
const c1 = decodeJwt(t1.access_token);
show("CODE_FLOW hops", t1.hops);
show("CODE_FLOW token_response", { token_type: t1.token_type, scope: t1.scope, expires_in: t1.expires_in, refresh_token: !!t1.refresh_token, id_token: !!t1.id_token });
show("CODE_FLOW JWT header", c1.header);
show("CODE_FLOW JWT payload", c1.payload);
check(c1.payload.aud === resource && c1.payload.sub === "test-user" && c1.payload.client_id === clientId, "code flow claims");
if (flagFile) {
  check(c1.payload.scope === "mcp:tools", `admin must be withheld: ${c1.payload.scope}`);
  fs.writeFileSync(flagFile, "");
  const t2 = await authorize("mcp:tools mcp:admin");
  const c2 = decodeJwt(t2.access_token);
  show("CODE_FLOW with admin flag: scope", c2.payload.scope);
  check(c2.payload.scope.split(" ").sort().join(" ") === "mcp:admin mcp:tools", `admin must be granted: ${c2.payload.scope}`);
  fs.rmSync(flagFile, { force: true });
}

// No resource: opaque token, introspectable, with sub.
const t3 = await authorize("mcp:tools", { withResource: false });
check(!isJwt(t3.access_token), "code flow without resource: opaque");
const i3 = await introspect(t3.access_token);
show("CODE_FLOW no resource INTROSPECT", `${i3.status} ${JSON.stringify(i3.body)}`);
check(i3.body.active === true && i3.body.sub === "test-user", "opaque code-flow introspection");

process.stdout.write("SELFTEST OK\n");

// client_credentials token request against an authorization server (e.g. oidc_provider.mjs).
//
// Usage: node get_token.mjs <issuer> <client_id> <secret> <scope> [resource]
//   The token endpoint comes from <issuer>/.well-known/oauth-authorization-server
//   (falling back to /.well-known/openid-configuration); the client authenticates
//   with client_secret_basic. `scope` may be '' (omitted).
// Success: the access token alone on stdout, exit 0.
// Failure: `ERROR <status> <body>` on stderr, exit 2. Usage errors exit 64.
const [issuer, clientId, secret, scope, resource] = process.argv.slice(2);
if (!issuer || !clientId || secret === undefined || scope === undefined) {
  process.stderr.write("usage: node get_token.mjs <issuer> <client_id> <secret> <scope> [resource]\n");
  process.exit(64);
}

function fail(msg) {
  process.stderr.write(`ERROR ${String(msg).replace(/\s+/g, " ").trim()}\n`);
  process.exit(2);
}

async function metadata() {
  const base = issuer.replace(/\/$/, "");
  for (const wk of ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]) {
    const res = await fetch(base + wk);
    if (res.ok) return res.json();
  }
  fail(`no authorization server metadata at ${issuer}`);
}

try {
  const { token_endpoint: tokenEndpoint } = await metadata();
  const body = new URLSearchParams({ grant_type: "client_credentials" });
  if (scope) body.set("scope", scope);
  if (resource) body.set("resource", resource);
  // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString("base64");
  const res = await fetch(tokenEndpoint, {
    method: "POST",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  const text = await res.text();
  if (!res.ok) fail(`${res.status} ${text}`);
  const json = JSON.parse(text);
  if (!json.access_token) fail(`${res.status} no access_token: ${text}`);
  process.stdout.write(`${json.access_token}\n`);
} catch (e) {
  fail(e.message);
}

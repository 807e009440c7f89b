// Real OAuth 2.1 / OIDC authorization server for the Rust e2e tests: panva's
// oidc-provider (exact pin in package.json), configured for MCP.
//
// Usage: node oidc_provider.mjs <port> <resource-url>[,<resource-url>...]
//   Issuer http://127.0.0.1:<port>; prints `READY <issuer>` on stdout once listening.
//   Binds 127.0.0.1 only. Everything is in memory; keys are generated at start.
//
// * Resource Indicators (RFC 8707): a `resource` that is one of the URLs given on the
//   command line gets an access token with `aud` = that URL and `scope` limited to
//   mcp:tools mcp:admin weather:read. Format: JWT (RFC 9068, typ at+jwt, signed
//   with OIDC_AT_ALG, default ES256), except for client `cc-opaque` or when
//   OIDC_AT_FORMAT=opaque. Any other `resource` is `invalid_target`.
// * No `resource`: opaque access token without `aud`.
// * Introspection (RFC 7662) at /token/introspection: client `gateway` may introspect
//   any token, other clients only their own. oidc-provider refuses to introspect
//   JWT access tokens (400 unsupported_token_type); only opaque ones can be introspected.
// * Revocation (RFC 7009) at /token/revocation (a client revokes its own tokens).
// * Pre-registered clients: gateway/gateway-secret (client_secret_basic, introspection),
//   cc-jwt/cc-jwt-secret and cc-opaque/cc-opaque-secret (client_credentials).
// * Open dynamic client registration at /reg. The `scope` a client registers with is
//   dropped (so step-up to a scope it did not register is possible), unless
//   OIDC_DCR_KEEP_SCOPE=1 (oidc-provider's own behaviour: the registered scope is a ceiling).
// * Authorization code + PKCE (required for public clients, S256). No human: the
//   interaction URL /interaction/<uid> logs in the fixed user `test-user` and grants
//   the requested scopes, except mcp:admin, which is granted only if OIDC_GRANT_ADMIN=1
//   or the file named by OIDC_ADMIN_FLAG_FILE exists (checked at every authorization),
//   and rejected otherwise (the token then simply lacks it). Every authorization
//   request asks for consent afresh (no remembered grant), so flipping the flag takes
//   effect at the next authorization.
// Env: OIDC_AT_TTL (seconds, default 3600), OIDC_AT_ALG (ES256|RS256), OIDC_AT_FORMAT
//   (jwt|opaque, for resource-bound tokens), OIDC_GRANT_ADMIN, OIDC_ADMIN_FLAG_FILE,
//   OIDC_DCR_KEEP_SCOPE, OIDC_DEBUG=1 (log events to stderr).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";

import Provider, { errors } from "oidc-provider";

const [portArg, resourcesArg] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !resourcesArg) {
  process.stderr.write("usage: node oidc_provider.mjs <port> <resource-url>[,<resource-url>...]\n");
  process.exit(64);
}
const resources = new Set(resourcesArg.split(",").map((s) => s.trim()).filter(Boolean));
const issuer = `http://127.0.0.1:${port}`;

const MCP_SCOPES = ["mcp:tools", "mcp:admin", "weather:read"];
const ADMIN = "mcp:admin";
const TEST_USER = "test-user";
const atTtl = Number(process.env.OIDC_AT_TTL || 3600);
const atAlg = process.env.OIDC_AT_ALG || "ES256";
const atFormat = process.env.OIDC_AT_FORMAT || "jwt";
if (!["ES256", "RS256"].includes(atAlg)) throw new Error("OIDC_AT_ALG must be ES256 or RS256");
if (!["jwt", "opaque"].includes(atFormat)) throw new Error("OIDC_AT_FORMAT must be jwt or opaque");

function adminAllowed() {
  if (process.env.OIDC_GRANT_ADMIN === "1") return true;
  const f = process.env.OIDC_ADMIN_FLAG_FILE;
  return !!f && fs.existsSync(f);
}

function jwk(type, opts, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, opts);
  const key = privateKey.export({ format: "jwk" });
  return { ...key, alg, use: "sig", kid: `${alg.toLowerCase()}-${crypto.randomBytes(6).toString("hex")}` };
}

const configuration = {
  jwks: {
    // RS256 first: oidc-provider's default for ID tokens.
    keys: [jwk("rsa", { modulusLength: 2048 }, "RS256"), jwk("ec", { namedCurve: "P-256" }, "ES256")],
  },
  cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
  // mcp:* are also "static" scopes: dynamic registration only accepts a `scope` made of
  // these, and a token without a resource keeps them.
  scopes: ["openid", "offline_access", "email", "groups", ...MCP_SCOPES],
  clients: [
    // OIDC_UPSTREAM_REDIRECT: the gateway's built-in authorization server signs
    // people in here as this confidential client.
    ...(process.env.OIDC_UPSTREAM_REDIRECT
      ? [{
          client_id: "mcp-gateway-upstream",
          client_secret: "upstream-secret",
          token_endpoint_auth_method: "client_secret_basic",
          grant_types: ["authorization_code", "refresh_token"],
          response_types: ["code"],
          redirect_uris: [process.env.OIDC_UPSTREAM_REDIRECT],
        }]
      : []),
    {
      client_id: "gateway",
      client_secret: "gateway-secret",
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: "cc-jwt",
      client_secret: "cc-jwt-secret",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      scope: MCP_SCOPES.join(" "),
    },
    {
      client_id: "cc-opaque",
      client_secret: "cc-opaque-secret",
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      scope: MCP_SCOPES.join(" "),
    },
  ],
  // The user's email and groups (OIDC_USER_EMAIL, OIDC_USER_GROUPS_FILE: one
  // comma-separated line, read at every sign-in so a test can change them).
  findAccount(ctx, sub) {
    const groupsFile = process.env.OIDC_USER_GROUPS_FILE;
    const groups = groupsFile && fs.existsSync(groupsFile)
      ? fs.readFileSync(groupsFile, "utf8").split(",").map((g) => g.trim()).filter(Boolean)
      : [];
    return {
      accountId: sub,
      claims: () => ({
        sub,
        email: process.env.OIDC_USER_EMAIL || "test-user@example.com",
        email_verified: process.env.OIDC_USER_EMAIL_VERIFIED !== "0",
        groups,
      }),
    };
  },
  claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
  // Scope claims in the ID token itself: the gateway's built-in authorization
  // server reads the person from the ID token only.
  conformIdTokenClaims: false,
  // Only the grant this very authorization produced; never one remembered from an
  // earlier authorization, so every authorization re-evaluates the admin flag.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId;
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  pkce: { required: (ctx, client) => client.clientAuthMethod === "none" },
  ttl: { AccessToken: atTtl, ClientCredentials: atTtl },
  extraClientMetadata: {
    properties: ["x_test_unused"],
    validator(ctx, key, value, metadata) {
      if (ctx?.oidc?.route === "registration" && process.env.OIDC_DCR_KEEP_SCOPE !== "1") {
        delete metadata.scope;
      }
    },
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) =>
        client.clientId === "gateway" || token.clientId === client.clientId,
    },
    revocation: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      // Tokens from the code/refresh grants go to the resource the client asked for.
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => {
        if (!resources.has(resourceIndicator)) throw new errors.InvalidTarget();
        const opaque = atFormat === "opaque" || client?.clientId === "cc-opaque";
        return {
          scope: MCP_SCOPES.join(" "),
          audience: resourceIndicator,
          accessTokenTTL: atTtl,
          accessTokenFormat: opaque ? "opaque" : "jwt",
          ...(opaque ? {} : { jwt: { sign: { alg: atAlg } } }),
        };
      },
    },
  },
};

const provider = new Provider(issuer, configuration);
// OIDC_DEBUG=1: print the errors oidc-provider answers with to stderr.
if (process.env.OIDC_DEBUG === "1") {
  for (const ev of ["server_error", "grant.error", "authorization.error", "introspection.error", "registration_create.error"]) {
    provider.on(ev, (...args) => process.stderr.write(`oidc-provider ${ev}: ${args.find((a) => a instanceof Error)?.message}\n`));
  }
}

// Non-interactive login + consent.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === "login") {
    result = { login: { accountId: TEST_USER } };
  } else if (prompt.name === "consent") {
    const allowAdmin = adminAllowed();
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const split = (scopes) => {
      const list = typeof scopes === "string" ? scopes.split(" ") : [...scopes];
      return {
        granted: list.filter((s) => s && (s !== ADMIN || allowAdmin)),
        rejected: list.filter((s) => s === ADMIN && !allowAdmin),
      };
    };
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) {
      const { granted, rejected } = split(missingOIDCScope);
      if (granted.length) grant.addOIDCScope(granted.join(" "));
      if (rejected.length) grant.rejectOIDCScope(rejected.join(" "));
    }
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missingResourceScopes || {})) {
      const { granted, rejected } = split(scopes);
      if (granted.length) grant.addResourceScope(indicator, granted.join(" "));
      if (rejected.length) grant.rejectResourceScope(indicator, rejected.join(" "));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: "access_denied", error_description: `unsupported prompt ${prompt.name}` };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url.startsWith("/interaction/")) {
    interaction(req, res).catch((err) => {
      process.stderr.write(`interaction failed: ${err.stack || err}\n`);
      if (!res.headersSent) {
        res.statusCode = 400;
        res.setHeader("Content-Type", "text/plain");
      }
      res.end(`interaction failed: ${err.message}\n`);
    });
    return;
  }
  callback(req, res);
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${issuer}\n`);
});

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}

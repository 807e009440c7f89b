// TEST DOUBLE, not a real peer: GitHub cannot be reached from the machines that
// run these tests, and no installable package serves GitHub's OAuth and REST
// API. This is written to GitHub's documentation, and only as far as the
// gateway's GitHub connector reads it:
// - https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
//   GET /login/oauth/authorize (here approved at once, as if the user clicked
//   "Authorize"), POST /login/oauth/access_token (form body; JSON with
//   `Accept: application/json`; errors such as `bad_verification_code` come
//   with HTTP 200; PKCE S256 checked).
// - https://docs.github.com/en/rest/users/users#get-the-authenticated-user (GET /user)
// - https://docs.github.com/en/rest/users/emails#list-email-addresses-for-the-authenticated-user
// - https://docs.github.com/en/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user
//   (GET /user/memberships/orgs/{org}: 200 with state, or 404)
// A revoked token gets 401 {"message":"Bad credentials"} from every API call.
//
// Usage: node github_double.mjs <port>
//   Web at http://127.0.0.1:<port>/, API at http://127.0.0.1:<port>/api/.
//   Prints `READY <origin>`. Env: GH_ID (default 583231), GH_LOGIN (octocat),
//   GH_EMAILS (JSON list as GitHub returns it), GH_ORGS_FILE (comma-separated
//   orgs the user is an active member of; re-read on every call),
//   GH_REVOKED_FILE (when that file exists, every token is revoked).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";

const port = Number(process.argv[2]);
if (!Number.isInteger(port)) {
  process.stderr.write("usage: node github_double.mjs <port>\n");
  process.exit(64);
}
const env = process.env;
const codes = new Map(); // code -> {challenge, redirect_uri}
const tokens = new Set();

const json = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(body));
};
const readBody = (req) =>
  new Promise((resolve) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => resolve(data));
  });

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
    const q = url.searchParams;
    const code = crypto.randomBytes(10).toString("hex");
    codes.set(code, { challenge: q.get("code_challenge"), method: q.get("code_challenge_method"), redirect: q.get("redirect_uri") });
    process.stdout.write(`AUTHORIZE ${JSON.stringify(Object.fromEntries(q))}\n`);
    const back = new URL(q.get("redirect_uri"));
    back.searchParams.set("code", code);
    back.searchParams.set("state", q.get("state") || "");
    res.writeHead(302, { location: back.toString() });
    res.end();
    return;
  }
  if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
    const form = new URLSearchParams(await readBody(req));
    const saved = codes.get(form.get("code"));
    codes.delete(form.get("code"));
    if (form.get("client_id") !== "gh-client" || form.get("client_secret") !== "gh-secret") {
      return json(res, 200, { error: "incorrect_client_credentials", error_description: "The client_id and/or client_secret passed are incorrect." });
    }
    if (!saved || saved.redirect !== form.get("redirect_uri")) {
      return json(res, 200, { error: "bad_verification_code", error_description: "The code passed is incorrect or expired." });
    }
    const verifier = form.get("code_verifier") || "";
    const s256 = crypto.createHash("sha256").update(verifier).digest("base64url");
    if (saved.method !== "S256" || s256 !== saved.challenge) {
      return json(res, 200, { error: "invalid_grant", error_description: "PKCE verification failed." });
    }
    const token = `gho_${crypto.randomBytes(18).toString("hex")}`;
    tokens.add(token);
    return json(res, 200, { access_token: token, token_type: "bearer", scope: "read:org,read:user,user:email" });
  }
  if (req.method === "GET" && url.pathname.startsWith("/api/")) {
    const auth = req.headers.authorization || "";
    const token = auth.replace(/^(Bearer|token) /, "");
    const revoked = env.GH_REVOKED_FILE && fs.existsSync(env.GH_REVOKED_FILE);
    if (!tokens.has(token) || revoked) return json(res, 401, { message: "Bad credentials" });
    if (!req.headers["user-agent"]) return json(res, 403, { message: "Request forbidden by administrative rules. Please make sure your request has a User-Agent header" });
    const path = url.pathname.slice("/api".length);
    if (path === "/user") {
      return json(res, 200, { login: env.GH_LOGIN || "octocat", id: Number(env.GH_ID || 583231), type: "User" });
    }
    if (path === "/user/emails") {
      const emails = env.GH_EMAILS ? JSON.parse(env.GH_EMAILS) : [{ email: "octocat@github.com", verified: true, primary: true, visibility: "public" }];
      return json(res, 200, emails);
    }
    const m = path.match(/^\/user\/memberships\/orgs\/([^/]+)$/);
    if (m) {
      const orgs = env.GH_ORGS_FILE && fs.existsSync(env.GH_ORGS_FILE)
        ? fs.readFileSync(env.GH_ORGS_FILE, "utf8").split(",").map((o) => o.trim().toLowerCase()).filter(Boolean)
        : [];
      if (orgs.includes(m[1].toLowerCase())) {
        return json(res, 200, { state: "active", role: "member", organization: { login: m[1] } });
      }
      return json(res, 404, { message: "Not Found" });
    }
    return json(res, 404, { message: "Not Found" });
  }
  json(res, 404, { message: "Not Found" });
});
server.listen(port, "127.0.0.1", () => process.stdout.write(`READY http://127.0.0.1:${port}\n`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));

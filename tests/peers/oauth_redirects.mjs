// Plays the user agent for an authorization request without a browser: fetches the
// authorization URL with redirect: 'manual', keeps the authorization server's cookies
// (oidc-provider ties the interaction and its resumption to them), follows redirects
// within the authorization server's origin and stops at the first redirect to the
// client's redirect_uri. Used by ts_oauth_client.mjs and oidc_selftest.mjs.

/** A minimal cookie jar: name+path keyed, path-prefix matched, one origin. */
export class CookieJar {
  #cookies = new Map();

  store(url, response) {
    const lines = response.headers.getSetCookie?.() ?? [];
    for (const line of lines) {
      const [pair, ...attrs] = line.split(";").map((s) => s.trim());
      const eq = pair.indexOf("=");
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = "/";
      let expired = value === "";
      for (const a of attrs) {
        const [k, v = ""] = a.split("=");
        const key = k.toLowerCase();
        if (key === "path" && v.startsWith("/")) path = v;
        if (key === "max-age" && Number(v) <= 0) expired = true;
        if (key === "expires" && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${name}\u0000${path}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  header(url) {
    const p = new URL(url).pathname;
    const parts = [];
    for (const c of this.#cookies.values()) {
      if (p === c.path || p.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`)) {
        parts.push(`${c.name}=${c.value}`);
      }
    }
    return parts.join("; ");
  }
}

function sameEndpoint(a, b) {
  return a.origin === b.origin && a.pathname === b.pathname;
}

/**
 * Follows the authorization request to the redirect back to `redirectUri`.
 * Returns { code, state, iss, hops, url }; throws on an `error` response, a redirect
 * that leaves the authorization server for anything else, a non-redirect answer, or
 * more than `maxHops` redirects.
 */
export async function followAuthorization(authorizationUrl, redirectUri, { jar = new CookieJar(), maxHops = 10 } = {}) {
  const start = new URL(authorizationUrl);
  const target = new URL(redirectUri);
  let url = start;
  for (let hops = 0; hops <= maxHops; hops++) {
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    const res = await fetch(url, { redirect: "manual", headers });
    jar.store(url, res);
    const location = res.headers.get("location");
    if (res.status < 300 || res.status > 399 || !location) {
      const body = (await res.text().catch(() => "")).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
      throw new Error(`authorization stopped at HTTP ${res.status} ${url.pathname}: ${body.slice(0, 300)}`);
    }
    await res.body?.cancel();
    const next = new URL(location, url);
    if (sameEndpoint(next, target)) {
      const q = next.searchParams;
      if (q.get("error")) {
        const err = new Error(`authorization error: ${q.get("error")}${q.get("error_description") ? `: ${q.get("error_description")}` : ""}`);
        err.oauthError = q.get("error");
        throw err;
      }
      if (!q.get("code")) throw new Error(`redirect to redirect_uri without code: ${next.href}`);
      return { code: q.get("code"), state: q.get("state"), iss: q.get("iss"), hops: hops + 1, url: next.href };
    }
    if (next.origin !== start.origin) {
      throw new Error(`authorization redirected outside the authorization server: ${next.href}`);
    }
    url = next;
  }
  throw new Error(`authorization did not come back to ${redirectUri} within ${maxHops} redirects`);
}

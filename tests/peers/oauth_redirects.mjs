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

const decode = (s) =>
  s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&quot;/g, '"').replace(/&#x27;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

/**
 * The one form of a consent page: its action and hidden fields, plus the
 * button `decision`. A person would read the page and press the button; this
 * presses it.
 */
export function consentForm(html, pageUrl, decision) {
  const form = html.match(/<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  if (!form) return undefined;
  const fields = new URLSearchParams();
  for (const m of form[2].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    fields.append(decode(m[1]), decode(m[2]));
  }
  fields.append("decision", decision);
  return { action: new URL(decode(form[1]), pageUrl), body: fields.toString() };
}

/**
 * Follows the authorization request to the redirect back to `redirectUri`.
 * Returns { code, state, iss, hops, url }; throws on an `error` response, a redirect
 * that leaves the authorization server for anything else, a non-redirect answer, or
 * more than `maxHops` redirects.
 */
export async function followAuthorization(
  authorizationUrl,
  redirectUri,
  { jar = new CookieJar(), maxHops = 10, consent = undefined } = {},
) {
  const start = new URL(authorizationUrl);
  const target = new URL(redirectUri);
  let url = start;
  let post = undefined;
  for (let hops = 0; hops <= maxHops; hops++) {
    const headers = {};
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    let init = { redirect: "manual", headers };
    if (post) {
      headers["content-type"] = "application/x-www-form-urlencoded";
      init = { ...init, method: "POST", body: post };
      post = undefined;
    }
    const res = await fetch(url, init);
    jar.store(url, res);
    const location = res.headers.get("location");
    // A consent page (the gateway's built-in authorization server): answer it.
    if (consent && res.status === 200 && (res.headers.get("content-type") || "").startsWith("text/html")) {
      const form = consentForm(await res.text(), url, consent);
      if (!form) throw new Error(`a page without a consent form at ${url.pathname}`);
      url = form.action;
      post = form.body;
      continue;
    }
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
    // With consent, the way goes through the identity provider, as in a browser.
    if (next.origin !== start.origin && !consent) {
      throw new Error(`authorization redirected outside the authorization server: ${next.href}`);
    }
    url = next;
  }
  throw new Error(`authorization did not come back to ${redirectUri} within ${maxHops} redirects`);
}

//! The built-in authorization server against real peers: panva's
//! oidc-provider is the upstream identity provider (the gateway is a
//! confidential client there), server-everything is the MCP server, and the
//! clients are the TS SDK's OAuth client and a scripted user agent written
//! here (it keeps cookies like a browser, reads the consent form and presses
//! its button). Every protocol rule has a negative test.

use std::collections::HashMap;

use crate::ISS;
use crate::support::peers::{self, Peer};
use crate::support::{Gateway, GatewayBuilder, Reply, TestIssuer, send};

mod conformance;
mod idps;
mod replicas;
mod traces;

/// Where the scripted clients say they listen; nothing does.
const CLIENT_REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A gateway with the built-in server in front of server-everything, signing
/// people in at oidc-provider. `extra_as` is appended to the
/// `authorization_server` block (indented two spaces).
pub(super) struct Setup {
    gw: Gateway,
    idp: Peer,
    _server: Peer,
    issuer: String,
    resource: String,
    groups_file: tempfile::NamedTempFile,
}

fn setup(email: &str, extra_as: &str) -> Setup {
    setup_with(email, "email_domains: [example.com]", extra_as)
}

/// `login` is the YAML of the login block's one rule; the provider is asked
/// for `offline_access`, so refreshes re-check the person there.
fn setup_with(email: &str, login: &str, extra_as: &str) -> Setup {
    let port = crate::support::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let groups_file = tempfile::NamedTempFile::new().unwrap();
    let groups = groups_file.path().display().to_string();
    let callback = format!("{issuer}/oauth/callback");
    let idp = peers::oidc_provider(
        &[&format!("{issuer}/mcp")],
        &[
            ("OIDC_UPSTREAM_REDIRECT", &callback),
            ("OIDC_USER_EMAIL", email),
            ("OIDC_USER_GROUPS_FILE", &groups),
        ],
    );
    let upstream = format!(
        "kind: oidc\n    name: Example SSO\n    issuer: {}\n    client_id: mcp-gateway-upstream\n    \
         client_secret: upstream-secret\n    scopes: [openid, email, groups, offline_access]",
        idp.url
    );
    let mut s = assemble(
        port,
        idp,
        &upstream,
        login,
        "{groups: [mcp-admins]}",
        extra_as,
    );
    s.groups_file = groups_file;
    s
}

/// The gateway on `port` with the built-in server signing people in at
/// `idp` (`upstream`: the YAML of the upstream block, its lines after the
/// first indented four spaces), in front of server-everything.
fn assemble(
    port: u16,
    idp: Peer,
    upstream: &str,
    login: &str,
    admins: &str,
    extra_as: &str,
) -> Setup {
    let issuer = format!("http://127.0.0.1:{port}");
    let resource = format!("{issuer}/mcp");
    let server = peers::server_everything();
    let gw = GatewayBuilder::new()
        .port(port)
        // An organisation's existing issuer stays trusted beside the built-in one.
        .issuer(&TestIssuer::new(ISS))
        .route(
            "/mcp",
            &server.url,
            &resource,
            "resource_name: Everything demo server\n\
             scopes_supported: [mcp:tools, mcp:admin]\nrequired_scopes: [mcp:tools]\n\
             policy:\n  tools: {echo: [], get-sum: [mcp:admin]}\n  unlisted: allow",
        )
        // A route that names another authorization server: the built-in one
        // must neither mint tokens for it nor have its tokens accepted there,
        // even when the audience would pass (it lists /mcp's resource).
        .route(
            "/corp",
            &server.url,
            &format!("{issuer}/corp"),
            &format!("authorization_servers: [\"{ISS}\"]\naudiences: [\"{resource}\"]"),
        )
        .extra(&format!(
            "admin_listen: 127.0.0.1:0\nauthorization_server:\n  issuer: {issuer}\n  store: memory\n  upstream:\n    \
             {upstream}\n  login:\n    {login}\n  grants:\n    - scopes: [mcp:tools]\n    \
             - when: {admins}\n      scopes: [mcp:admin]\n  clients:\n    \
             dynamic_registration: true\n{extra_as}"
        ))
        .spawn();
    Setup {
        gw,
        idp,
        _server: server,
        issuer,
        resource,
        groups_file: tempfile::NamedTempFile::new().unwrap(),
    }
}

/// A browser: one cookie store for 127.0.0.1 (browsers do not separate
/// cookies by port), redirects followed by hand.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, reply: &Reply) {
        for v in reply.headers.get_all("set-cookie") {
            let line = v.to_str().unwrap();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> Reply {
        let cookie = self.cookie_header();
        let reply = send("GET", url, &[("cookie", &cookie)], "").await;
        self.keep(&reply);
        reply
    }

    async fn post_form(&mut self, url: &str, form: &str) -> Reply {
        let cookie = self.cookie_header();
        let headers = [
            ("cookie", cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        let reply = send("POST", url, &headers, form).await;
        self.keep(&reply);
        reply
    }

    /// Follows redirects from `reply` (the answer for `from`) until one
    /// leaves for `CLIENT_REDIRECT` (returned) or an answer is not a redirect
    /// (returned as `Err`).
    async fn follow(&mut self, from: &str, reply: Reply) -> Result<String, Reply> {
        self.follow_to(from, reply, CLIENT_REDIRECT).await
    }

    /// [`Browser::follow`], stopping at `redirect` instead.
    async fn follow_to(
        &mut self,
        from: &str,
        mut reply: Reply,
        redirect: &str,
    ) -> Result<String, Reply> {
        let mut current = url::Url::parse(from).unwrap();
        for _ in 0..12 {
            if !(300..400).contains(&reply.status) {
                return Err(reply);
            }
            let location = reply.header("location").to_owned();
            if location.starts_with(redirect) {
                return Ok(location);
            }
            current = current.join(&location).unwrap();
            reply = self.get(current.as_str()).await;
        }
        panic!("too many redirects");
    }
}

/// The hidden fields of the consent form and its action.
fn consent_form(html: &str) -> (String, String, String) {
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {html}"))
            + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let action_start = html.find("action=\"").unwrap() + "action=\"".len();
    let action =
        html[action_start..action_start + html[action_start..].find('"').unwrap()].to_owned();
    (action, field("pending"), field("csrf"))
}

fn pkce() -> (String, String) {
    use base64::Engine;
    let verifier = "e2e-verifier-0123456789-abcdefghijklmnopqrstuvwxyz".to_owned();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    (verifier, challenge)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn register(s: &Setup, redirect_uris: &[&str]) -> Reply {
    register_named(s, "e2e <b>client</b>", redirect_uris).await
}

async fn register_named(s: &Setup, name: &str, redirect_uris: &[&str]) -> Reply {
    let body = serde_json::json!({
        "client_name": name,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
    });
    send(
        "POST",
        &s.gw.url("/oauth/register"),
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await
}

fn authorize_url(s: &Setup, client_id: &str, extra: &str) -> String {
    let (_, challenge) = pkce();
    let scope = if extra.contains("&scope=") {
        ""
    } else {
        "&scope=mcp%3Atools"
    };
    format!(
        "{}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=st-1&\
         code_challenge={challenge}&code_challenge_method=S256{scope}{extra}",
        s.issuer,
        enc(client_id),
        enc(CLIENT_REDIRECT)
    )
}

/// The whole sign-in as a browser does it; returns the final redirect.
async fn sign_in(
    s: &Setup,
    browser: &mut Browser,
    client_id: &str,
    extra: &str,
) -> Result<String, Reply> {
    let url = authorize_url(s, client_id, extra);
    let page = browser.get(&url).await;
    if page.status != 200 {
        return browser.follow(&url, page).await;
    }
    let (action, pending, csrf) = consent_form(&page.text());
    let answer = browser
        .post_form(
            &action,
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    browser.follow(&action, answer).await
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn token(s: &Setup, form: &str) -> Reply {
    send(
        "POST",
        &s.gw.url("/oauth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
}

async fn redeem(s: &Setup, client_id: &str, code: &str) -> Reply {
    let (verifier, _) = pkce();
    token(
        s,
        &format!(
            "grant_type=authorization_code&code={}&client_id={}&redirect_uri={}&code_verifier={verifier}",
            enc(code),
            enc(client_id),
            enc(CLIENT_REDIRECT)
        ),
    )
    .await
}

async fn refresh(s: &Setup, client_id: &str, refresh_token: &str) -> Reply {
    token(
        s,
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(refresh_token),
            enc(client_id)
        ),
    )
    .await
}

/// An MCP `initialize` through the gateway with `access_token`.
async fn initialize(s: &Setup, access_token: &str) -> Reply {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}"#;
    send(
        "POST",
        &s.gw.url("/mcp"),
        &[
            ("authorization", &format!("Bearer {access_token}")),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn metadata_advertises_exactly_what_the_server_does() {
    let s = setup("ada@example.com", "");
    let meta = send(
        "GET",
        &s.gw.url("/.well-known/oauth-authorization-server"),
        &[],
        "",
    )
    .await
    .assert_status(200, &[])
    .json();
    assert_eq!(meta["issuer"], s.issuer.as_str());
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"none".into())
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        meta["registration_endpoint"],
        format!("{}/oauth/register", s.issuer)
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{}/oauth/revoke", s.issuer)
    );
    assert!(
        meta.get("client_id_metadata_document_supported").is_none(),
        "CIMD is off here"
    );
    let oidc = send(
        "GET",
        &s.gw.url("/.well-known/openid-configuration"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(oidc["issuer"], meta["issuer"]);
    let jwks = send("GET", &s.gw.url("/oauth/jwks"), &[], "").await.json();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none(), "never the private key");

    // The route points clients at the built-in server, and never at offline_access.
    let prm = send(
        "GET",
        &s.gw.url("/.well-known/oauth-protected-resource/mcp"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(prm["authorization_servers"], serde_json::json!([s.issuer]));
    assert!(!prm.to_string().contains("offline_access"));
}

#[tokio::test]
async fn a_person_signs_in_calls_a_tool_refreshes_and_replays_are_punished() {
    let s = setup("ada@example.com", "  refresh_reuse_grace: 1s\n");
    s.gw.wait_ready().await;
    let reg = register(
        &s,
        &[
            "cursor://anysphere/cb",
            CLIENT_REDIRECT,
            "javascript:alert(1)",
        ],
    )
    .await;
    let reg = reg.assert_status(201, &[]).json();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    assert!(!client_id.starts_with("https://"));
    assert_eq!(
        reg["redirect_uris"],
        serde_json::json!(["cursor://anysphere/cb", CLIENT_REDIRECT])
    );

    let mut browser = Browser::default();
    let page = browser.get(&authorize_url(&s, &client_id, "")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains("e2e &#60;b&#62;client&#60;/b&#62;") || html.contains("e2e &lt;b&gt;"),
        "escaped name: {html}"
    );
    assert!(
        html.contains("runs on your own computer"),
        "loopback warning: {html}"
    );
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    let set_cookie = page.header("set-cookie").to_owned();
    for attr in ["__Host-", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }

    // Consent without the browser's cookie: refused, nothing redirects.
    let (action, pending, csrf) = consent_form(&html);
    let stranger = Browser::default()
        .post_form(
            &action,
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    assert_eq!(stranger.status, 400, "{}", stranger.text());
    assert!(stranger.header("location").is_empty());

    // The real browser consents, signs in at the provider, comes back with a code.
    let location = sign_in(&s, &mut browser, &client_id, "")
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    let q = query(&location);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], s.issuer);
    let tokens = redeem(&s, &client_id, &q["code"])
        .await
        .assert_status(200, &[])
        .json();
    assert_eq!(
        tokens["scope"], "mcp:tools",
        "requested ∩ granted; not mcp:admin"
    );
    let access = tokens["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], s.issuer.as_str());
    assert_eq!(claims["aud"], s.resource.as_str());
    assert_eq!(claims["sub"], "oidc:test-user");
    assert_eq!(claims["client_id"], client_id.as_str());

    // The token works on the route, verified in-process (no fetch).
    let r = initialize(&s, access).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("serverInfo"), "{}", r.text());
    // Not on a route that sends clients to another authorization server,
    // although the audience would match there.
    let corp = send(
        "POST",
        &s.gw.url("/corp"),
        &[
            ("authorization", &format!("Bearer {access}")),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!(corp.status, 401, "{}", corp.text());
    assert!(corp.header("www-authenticate").contains("invalid_token"));
    // Not a token for anything else: the same JWT with a tampered audience fails.
    let forged = initialize(&s, &format!("{access}x")).await;
    assert_eq!(forged.status, 401);

    // Refresh rotates; the new refresh token works once; the old one, reused
    // after the grace, revokes the family (so the newest stops working too).
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let next = refresh(&s, &client_id, &first_refresh)
        .await
        .assert_status(200, &[])
        .json();
    let second_refresh = next["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(
        initialize(&s, next["access_token"].as_str().unwrap())
            .await
            .status,
        200
    );
    // Within the grace (a lost response), the old token gets a new successor
    // and the one the lost response carried becomes a tombstone: shown
    // later, it revokes the family (it was not lost after all, so two
    // parties hold the family).
    let retry = refresh(&s, &client_id, &first_refresh)
        .await
        .assert_status(200, &[])
        .json();
    let third_refresh = retry["refresh_token"].as_str().unwrap().to_owned();
    refresh(&s, &client_id, &second_refresh)
        .await
        .assert_status(400, &["invalid_grant", "already used"]);
    refresh(&s, &client_id, &third_refresh)
        .await
        .assert_status(400, &["invalid_grant", "revoked"]);
    s.gw.wait_for_log("a successor replaced by a retry").await;

    // Within the grace, a replay whose successor was already used (the
    // chain moved on) is a thief: the family is revoked, not forked.
    let mut chain = Vec::new();
    let location = sign_in(&s, &mut browser, &client_id, "")
        .await
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let t = redeem(&s, &client_id, &query(&location)["code"])
        .await
        .json();
    chain.push(t["refresh_token"].as_str().unwrap().to_owned());
    for _ in 0..2 {
        let last = chain.last().unwrap().clone();
        let t = refresh(&s, &client_id, &last)
            .await
            .assert_status(200, &[])
            .json();
        chain.push(t["refresh_token"].as_str().unwrap().to_owned());
    }
    refresh(&s, &client_id, &chain[0])
        .await
        .assert_status(400, &["invalid_grant", "already used"]);
    refresh(&s, &client_id, &chain[2])
        .await
        .assert_status(400, &["invalid_grant", "revoked"]);
    s.gw.wait_for_log("its successor was already used").await;

    // After the grace, reuse revokes the family: the newest token dies too.
    let location = sign_in(&s, &mut browser, &client_id, "")
        .await
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let t = redeem(&s, &client_id, &query(&location)["code"])
        .await
        .json();
    let old = t["refresh_token"].as_str().unwrap().to_owned();
    let t = refresh(&s, &client_id, &old)
        .await
        .assert_status(200, &[])
        .json();
    let newest = t["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refresh(&s, &client_id, &old)
        .await
        .assert_status(400, &["invalid_grant", "already used"]);
    refresh(&s, &client_id, &newest)
        .await
        .assert_status(400, &["invalid_grant", "revoked"]);
    s.gw.wait_for_log("after the grace").await;

    // Every decision is counted on the admin listener.
    let metrics = send("GET", &s.gw.admin_url("/metrics"), &[], "")
        .await
        .text();
    for series in [
        r#"event="register",outcome="registered""#,
        r#"event="authorize",outcome="code_issued""#,
        r#"event="token",outcome="issued""#,
        r#"event="token",outcome="refreshed""#,
        r#"event="token",outcome="refresh_reused""#,
    ] {
        assert!(
            metrics.contains(&format!(
                "mcp_gateway_authorization_server_events_total{{{series}}}"
            )),
            "{series} missing: {metrics}"
        );
    }

    // A code is single use, and a replay revokes what the first use produced.
    let location = sign_in(&s, &mut browser, &client_id, "")
        .await
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let code = query(&location)["code"].clone();
    let tokens = redeem(&s, &client_id, &code)
        .await
        .assert_status(200, &[])
        .json();
    redeem(&s, &client_id, &code)
        .await
        .assert_status(400, &["invalid_grant"]);
    refresh(&s, &client_id, tokens["refresh_token"].as_str().unwrap())
        .await
        .assert_status(400, &["revoked"]);
}

#[tokio::test]
async fn authorization_requests_that_break_a_rule_are_refused() {
    let s = setup("ada@example.com", "");
    let client_id = register(&s, &[CLIENT_REDIRECT]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::default();

    // Unknown client, or a redirect URI it did not register: a page, never a redirect.
    for url in [
        authorize_url(&s, "mcpgw-unknown", ""),
        authorize_url(&s, &client_id, "")
            .replace(&enc(CLIENT_REDIRECT), &enc("https://evil.example/cb")),
        authorize_url(&s, &client_id, "")
            .replace(&enc(CLIENT_REDIRECT), &enc("http://localhost:9/callback")),
    ] {
        let r = browser.get(&url).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.header("location").is_empty(), "{url} redirected");
    }
    // A loopback redirect on another port is the same client.
    let other_port = authorize_url(&s, &client_id, "").replace(
        &enc(CLIENT_REDIRECT),
        &enc("http://127.0.0.1:5555/callback"),
    );
    assert_eq!(browser.get(&other_port).await.status, 200);

    // Rule breaks before consent: a page naming the RFC code, never a
    // redirect (anyone can register a redirect URI).
    let cases = [
        (
            "",
            "code_challenge_method=S256",
            "code_challenge_method=plain",
            "invalid_request",
        ),
        ("", "&code_challenge=", "&x=", "invalid_request"),
        (
            "&resource=https%3A%2F%2Fother.example%2Fmcp",
            "",
            "",
            "invalid_target",
        ),
        (
            "",
            "response_type=code",
            "response_type=token",
            "unsupported_response_type",
        ),
    ];
    for (extra, from, to, code) in cases {
        let mut url = authorize_url(&s, &client_id, extra);
        if !from.is_empty() {
            url = url.replacen(from, to, 1);
        }
        let r = browser.get(&url).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.header("location").is_empty(), "{url} redirected");
        assert!(
            r.text().contains(&format!("({code})")),
            "{url}: {}",
            r.text()
        );
    }
    let long_state = authorize_url(&s, &client_id, "")
        .replace("state=st-1", &format!("state={}", "s".repeat(600)));
    assert_eq!(browser.get(&long_state).await.status, 400);
    // A route that names another authorization server gets no token here.
    let corp = format!("&resource={}", enc(&format!("{}/corp", s.issuer)));
    let r = browser.get(&authorize_url(&s, &client_id, &corp)).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("(invalid_target)"), "{}", r.text());
    // The resource named with another case and a trailing slash is the same route.
    let same = format!(
        "&resource={}",
        enc(&format!("{}/", s.resource.replace("http://", "HTTP://")))
    );
    assert_eq!(
        browser
            .get(&authorize_url(&s, &client_id, &same))
            .await
            .status,
        200
    );

    // A forged state at the callback: a page, nothing issued.
    let forged = browser
        .get(&format!(
            "{}/oauth/callback?code=x&state=forged&iss={}",
            s.issuer,
            enc(&s.idp.url)
        ))
        .await;
    assert_eq!(forged.status, 400, "{}", forged.text());

    // A code_verifier that does not match the challenge.
    let location = sign_in(&s, &mut browser, &client_id, "")
        .await
        .unwrap_or_else(|r| panic!("{}", r.text()));
    let code = query(&location)["code"].clone();
    let wrong = format!(
        "grant_type=authorization_code&code={}&client_id={}&redirect_uri={}&code_verifier={}",
        enc(&code),
        enc(&client_id),
        enc(CLIENT_REDIRECT),
        "x".repeat(43)
    );
    token(&s, &wrong)
        .await
        .assert_status(400, &["invalid_grant"]);
}

#[tokio::test]
async fn the_login_policy_refuses_strangers_and_removed_members_lose_refresh() {
    let s = setup("mallory@elsewhere.example", "");
    let client_id = register(&s, &[CLIENT_REDIRECT]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = sign_in(&s, &mut Browser::default(), &client_id, "")
        .await
        .expect_err("a stranger must not get a code");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("not among those allowed"));
    s.gw.wait_for_log("login_refused").await;

    // Members of mcp-users may sign in, mcp-admins also get mcp:admin. The
    // provider is asked again at every refresh: leaving mcp-admins narrows
    // the next token, leaving mcp-users ends the sign-in.
    let s = setup_with("bob@partner.example", "groups: [mcp-users]", "");
    std::fs::write(s.groups_file.path(), "mcp-users,mcp-admins").unwrap();
    let client_id = register(&s, &[CLIENT_REDIRECT]).await.json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut browser = Browser::default();
    let location = sign_in(
        &s,
        &mut browser,
        &client_id,
        "&scope=mcp%3Atools+mcp%3Aadmin+offline_access",
    )
    .await
    .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    let tokens = redeem(&s, &client_id, &query(&location)["code"])
        .await
        .assert_status(200, &[])
        .json();
    assert_eq!(tokens["scope"], "mcp:tools mcp:admin", "in the order asked");

    std::fs::write(s.groups_file.path(), "mcp-users").unwrap();
    let narrowed = refresh(&s, &client_id, tokens["refresh_token"].as_str().unwrap())
        .await
        .assert_status(200, &[])
        .json();
    assert_eq!(
        narrowed["scope"], "mcp:tools",
        "mcp:admin is gone after leaving mcp-admins"
    );

    std::fs::write(s.groups_file.path(), "").unwrap();
    refresh(&s, &client_id, narrowed["refresh_token"].as_str().unwrap())
        .await
        .assert_status(400, &["invalid_grant", "login policy"]);
}

#[tokio::test]
async fn the_ts_sdk_client_registers_consents_signs_in_and_is_held_to_its_grant() {
    let s = setup("ada@example.com", "");
    std::fs::write(s.groups_file.path(), "mcp-admins").unwrap();
    s.gw.wait_ready().await;
    let args = [
        s.resource.as_str(),
        "call",
        "echo",
        r#"{"message":"hi"}"#,
        "then-call",
        "get-sum",
        r#"{"a":1,"b":2}"#,
    ];
    // Registration (DCR), consent, sign-in at the provider, code + PKCE,
    // then the tool call with the minted token. The 403 for get-sum makes
    // SDK 1.32 "step up" by refreshing without `scope`; a refresh keeps the
    // scope first granted (RFC 6749 §6), so the call stays refused although
    // the person could have mcp:admin: it was not asked for at sign-in.
    let run = peers::ts_oauth_client_env(&args, &[("OAUTH_CONSENT", "allow")]);
    run.assert_exit(
        2,
        &[
            "RESULT1",
            "Echo: hi",
            "ERROR2",
            "403",
            "SCOPE mcp:tools",
            "AUTH_COUNT 1",
        ],
    );
    s.gw.wait_for_log("how=\"refresh\"").await;

    // A person who presses Cancel: the client gets access_denied, no token.
    let run = peers::ts_oauth_client_env(&args, &[("OAUTH_CONSENT", "deny")]);
    run.assert_exit(2, &["ERROR1", "access_denied"]);
}

/// A self-signed certificate for 127.0.0.1 and localhost, written to `dir`:
/// (cert path, key path, cert PEM).
fn loopback_cert(dir: &std::path::Path) -> (String, String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    (
        c.display().to_string(),
        k.display().to_string(),
        cert.cert.pem(),
    )
}

/// Test double (a static web host, nothing MCP): serves metadata documents
/// over https on 127.0.0.1 with the given certificate. `/good.json` is
/// valid, `/other.json` names another client, `/big.json` is over 5 KB,
/// `/redirect.json` redirects to `/good.json`. Returns the origin.
async fn document_host(cert: &str, key: &str) -> String {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let base = origin.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let base = base.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let doc = |id: &str, pad: usize| {
                                serde_json::json!({
                                    "client_id": id,
                                    "client_name": "doc host client",
                                    "redirect_uris": [CLIENT_REDIRECT],
                                    "pad": "x".repeat(pad),
                                })
                                .to_string()
                            };
                            let (status, location, body) = match path.as_str() {
                                "/good.json" => (200, None, doc(&format!("{base}/good.json"), 0)),
                                "/other.json" => (200, None, doc(&format!("{base}/good.json"), 0)),
                                "/big.json" => (200, None, doc(&format!("{base}/big.json"), 6000)),
                                "/redirect.json" => {
                                    (302, Some(format!("{base}/good.json")), String::new())
                                }
                                _ => (404, None, String::new()),
                            };
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            resp.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            if let Some(l) = location {
                                resp.headers_mut().insert("location", l.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn clients_identified_by_a_metadata_document_sign_in_and_ssrf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = loopback_cert(dir.path());
    let s = setup(
        "ada@example.com",
        &format!("    cimd: {{trust: any, insecure_test_loopback_ca: {cert}}}\n"),
    );
    s.gw.wait_ready().await;
    let meta = send(
        "GET",
        &s.gw.url("/.well-known/oauth-authorization-server"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    // The TS SDK client serves its own document and uses its URL as client_id.
    let args = [s.resource.as_str(), "call", "echo", r#"{"message":"cimd"}"#];
    let env = [
        ("OAUTH_CONSENT", "allow"),
        ("OAUTH_CIMD_CERT", cert.as_str()),
        ("OAUTH_CIMD_KEY", key.as_str()),
    ];
    peers::ts_oauth_client_env(&args, &env).assert_exit(0, &["RESULT1", "Echo: cimd"]);
    // The client was the document URL, and no registration happened.
    s.gw.wait_for_log("client_id=https://127.0.0.1:").await;
    s.gw.sync_logs().await;
    assert!(
        !s.gw.logged("event=\"register\""),
        "no registration happened"
    );

    let host = document_host(&cert, &key).await;
    let mut browser = Browser::default();
    // A valid document: the consent page names the host that vouches for it.
    let page = browser
        .get(&authorize_url(&s, &format!("{host}/good.json"), ""))
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("(from <code>127.0.0.1</code>)"),
        "{}",
        page.text()
    );
    // The page says which rule failed, never what the network answered; the
    // detail is in the log.
    for (path, shown, logged) in [
        ("/other.json", "is invalid", "not its own URL"),
        ("/big.json", "could not be fetched", "exceeds"),
        ("/redirect.json", "could not be fetched", "302"),
        ("/missing.json", "could not be fetched", "404"),
    ] {
        let r = browser
            .get(&authorize_url(&s, &format!("{host}{path}"), ""))
            .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains(shown), "{path}: {}", r.text());
        assert!(
            !r.text().contains(logged),
            "{path} leaks detail: {}",
            r.text()
        );
        assert!(r.header("location").is_empty());
        s.gw.wait_for_log(&format!("client_id=\"{host}{path}\""))
            .await;
        s.gw.wait_for_log(logged).await;
    }
    // URL rules, before any fetch.
    for bad in [
        format!("{host}/"),
        format!("{host}/good.json#f"),
        format!("{host}/a/../good.json"),
    ] {
        let r = browser.get(&authorize_url(&s, &bad, "")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}

#[tokio::test]
async fn metadata_documents_from_inside_the_network_or_off_the_allowlist_are_never_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = loopback_cert(dir.path());
    let host = document_host(&cert, &key).await;
    let port = host.rsplit(':').next().unwrap().to_owned();
    // No test setting: loopback, private and metadata-service addresses are
    // refused whether named by IP or by a name that resolves there.
    let s = setup("ada@example.com", "    cimd: {trust: any}\n");
    let mut browser = Browser::default();
    for target in [
        format!("https://127.0.0.1:{port}/good.json"),
        format!("https://localhost:{port}/good.json"),
        "https://169.254.169.254/latest/meta-data.json".to_owned(),
        "https://[::ffff:7f00:1]/x.json".to_owned(),
        "https://10.0.0.1/x.json".to_owned(),
    ] {
        let r = browser.get(&authorize_url(&s, &target, "")).await;
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert!(
            r.text().contains("could not be fetched"),
            "{target}: {}",
            r.text()
        );
        assert!(
            !r.text().contains("public address"),
            "detail only in the log"
        );
    }
    s.gw.wait_for_log("169.254.169.254 is not a public address")
        .await;
    s.gw.wait_for_log("127.0.0.1 is not a public address").await;
    // An allowlist refuses other hosts before anything is resolved.
    let s = setup(
        "ada@example.com",
        &format!(
            "    cimd: {{trust: allowlist, hosts: [claude.ai], insecure_test_loopback_ca: {cert}}}\n"
        ),
    );
    let r = browser
        .get(&authorize_url(&s, &format!("{host}/good.json"), ""))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not accepted here"), "{}", r.text());
    // CIMD off: a URL client id is refused, never fetched.
    let s = setup("ada@example.com", "");
    let r = browser
        .get(&authorize_url(&s, &format!("{host}/good.json"), ""))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("must register"), "{}", r.text());
}

#[tokio::test]
async fn the_python_sdk_oauth_client_signs_in_through_the_consent_page() {
    let s = setup("ada@example.com", "");
    s.gw.wait_ready().await;
    let run = peers::py_oauth_client(
        &s.resource,
        &["call", "echo", r#"{"message":"from python"}"#],
    );
    run.assert_exit(0, &["RESULT", "Echo: from python", "SCOPE mcp:tools"]);
    s.gw.wait_for_log("http://127.0.0.1:9/py-callback").await;
}

/// A real browser: Debian's Chromium, headless. The consent page renders,
/// its cookie is kept (a `__Host-` cookie over http works on loopback, as in
/// a person's browser), Continue posts the form and the browser comes back
/// with a code. The screenshot is the one in docs/ (written when
/// `UPDATE_SCREENSHOT=1`).
#[tokio::test]
async fn headless_chromium_renders_the_consent_page_and_signs_in() {
    let s = setup("ada@example.com", "");
    s.gw.wait_ready().await;
    let reg = register_named(&s, "Example MCP client", &[CLIENT_REDIRECT]).await;
    let client_id = reg.json()["client_id"].as_str().unwrap().to_owned();
    let out = tempfile::tempdir().unwrap();
    let shot = if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        crate::support::repo_root().join("docs/consent-page.png")
    } else {
        out.path().join("consent.png")
    };
    let url = authorize_url(&s, &client_id, "");
    let shot_str = shot.display().to_string();
    let run = peers::chromium_consent(&url, CLIENT_REDIRECT, Some(&shot_str));
    let run = run.assert_exit(0, &["TITLE Allow Example MCP client?", "REDIRECT "]);
    let location = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("REDIRECT "))
        .unwrap();
    let q = query(location);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], s.issuer);
    redeem(&s, &client_id, &q["code"])
        .await
        .assert_status(200, &["access_token"]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}

//! Replicas: three gateway processes sharing a real `redis-server` (Debian),
//! behind a real load balancer (Debian's nginx, round robin), in front of
//! server-everything, signing people in at oidc-provider. A sign-in whose
//! steps land on different replicas, refreshes at others, a code raced at
//! all three, tokens verified by each, rate limits and stream caps that hold
//! across them, a replica killed with streams open, and Redis stopped and
//! started under them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Browser, CLIENT_REDIRECT, consent_form, enc, pkce, query};
use crate::ISS;
use crate::support::{Gateway, GatewayBuilder, TestIssuer, peers, send};

/// A real `redis-server` on `port`, without persistence.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (tests/peers/setup.sh installs Debian's redis-server)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Self(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's nginx as a round-robin load balancer over `backends`, on `port`.
/// The directory (config, pid, temp files) lives as long as nginx does.
struct Nginx(
    Child,
    #[expect(dead_code, reason = "held, not read: dropping it deletes the files")]
    tempfile::TempDir,
);

impl Nginx {
    fn start(port: u16, backends: &[std::net::SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let servers: String = backends.iter().map(|b| format!("server {b};\n")).collect();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
             fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n\
             upstream gateways {{\n{servers}  }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             proxy_pass http://gateways;\n      proxy_http_version 1.1;\n\
             proxy_set_header Host $http_host;\n      proxy_buffering off;\n    }}\n  }}\n}}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|p| Command::new(p).arg("-v").output().is_ok())
            .expect("nginx (tests/peers/setup.sh installs Debian's nginx)");
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Self(child, dir)
    }
}

impl Drop for Nginx {
    /// SIGTERM (fast shutdown), so the master stops its workers too; a
    /// SIGKILLed master would leave them running.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn replica(issuer: &str, server: &str, idp: &str, redis_port: u16) -> Gateway {
    GatewayBuilder::new()
        .issuer(&TestIssuer::new(ISS))
        .route("/mcp", server, &format!("{issuer}/mcp"), "required_scopes: [mcp:tools]")
        .extra(&format!(
            "admin_listen: 127.0.0.1:0\nsession_binding: {{key: replicas-share-this-session-key-0123456789}}\n\
             authorization_server:\n  issuer: {issuer}\n  store: redis://127.0.0.1:{redis_port}\n  \
             cookie_key: replicas-share-this-cookie-key-0123456789\n  upstream:\n    kind: oidc\n    \
             issuer: {idp}\n    client_id: mcp-gateway-upstream\n    client_secret: upstream-secret\n  \
             login:\n    email_domains: [example.com]\n  grants:\n    - scopes: [mcp:tools]\n  \
             clients:\n    dynamic_registration: true\n"
        ))
        .spawn()
}

#[tokio::test]
async fn replicas_share_sign_ins_codes_keys_and_survive_a_redis_restart() {
    let (lb_port, redis_port) = (crate::support::free_port(), crate::support::free_port());
    let issuer = format!("http://127.0.0.1:{lb_port}");
    let idp = peers::oidc_provider(
        &[&format!("{issuer}/mcp")],
        &[(
            "OIDC_UPSTREAM_REDIRECT",
            &format!("{issuer}/oauth/callback"),
        )],
    );
    let server = peers::server_everything();
    let redis = Redis::start(redis_port);
    let replicas = [0, 1, 2].map(|_| replica(&issuer, &server.url, &idp.url, redis_port));
    for gw in &replicas {
        gw.wait_ready().await;
    }
    let [a, b, c] = &replicas;
    let _lb = Nginx::start(lb_port, &[a.addr, b.addr, c.addr]);
    // `url` (under the issuer, i.e. the load balancer) sent to one replica.
    let at = |gw: &Gateway, url: &str| gw.url(url.strip_prefix(issuer.as_str()).unwrap_or(url));

    // Every replica publishes the same keys (made once, in Redis).
    let jwks = send("GET", &a.url("/oauth/jwks"), &[], "").await.json();
    for gw in [b, c] {
        assert_eq!(
            send("GET", &gw.url("/oauth/jwks"), &[], "").await.json(),
            jwks
        );
    }

    // Registration through the load balancer.
    let reg = serde_json::json!({"redirect_uris": [CLIENT_REDIRECT], "client_name": "replicated"});
    let reg = send(
        "POST",
        &format!("{issuer}/oauth/register"),
        &[("content-type", "application/json")],
        &reg.to_string(),
    )
    .await
    .assert_status(201, &[])
    .json();
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let authorize = format!(
        "{issuer}/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&state=r&\
         code_challenge={challenge}&code_challenge_method=S256&scope=mcp%3Atools",
        enc(&client_id),
        enc(CLIENT_REDIRECT)
    );

    // One sign-in, each step on another replica: /authorize and the consent
    // at A, the provider's callback at B, /token at C.
    let mut browser = Browser::default();
    let page = browser.get(&at(a, &authorize)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let (action, pending, csrf) = consent_form(&page.text());
    let action = url::Url::parse(&authorize).unwrap().join(&action).unwrap();
    let action = at(a, action.as_str());
    let answer = browser
        .post_form(
            &action,
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    let callback = browser
        .follow_to(&action, answer, &format!("{issuer}/oauth/callback"))
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    let callback = at(b, &callback);
    let answer = browser.get(&callback).await;
    let landed = browser
        .follow(&callback, answer)
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    b.wait_for_log("outcome=\"code_issued\"").await;
    let code = query(&landed)["code"].clone();
    let redeem = |at: String, code: String| {
        let form = format!(
            "grant_type=authorization_code&code={}&client_id={}&redirect_uri={}&code_verifier={verifier}",
            enc(&code),
            enc(&client_id),
            enc(CLIENT_REDIRECT)
        );
        async move { token_request(&at, &form).await }
    };
    let tokens = redeem(c.url(""), code).await.assert_status(200, &[]).json();

    // A refresh at a third replica, and the next one at another: the family
    // rotates in Redis, whichever replica turns it.
    let refresh = |at: String, token: &str| {
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(token),
            enc(&client_id)
        );
        async move { token_request(&at, &form).await }
    };
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let next = refresh(a.url(""), &first_refresh)
        .await
        .assert_status(200, &[])
        .json();
    let again = refresh(b.url(""), next["refresh_token"].as_str().unwrap())
        .await
        .assert_status(200, &[])
        .json();

    // A token any replica signed verifies at every replica.
    for access in [&tokens, &next, &again].map(|t| t["access_token"].as_str().unwrap()) {
        for gw in &replicas {
            let r = send(
                "POST",
                &gw.url("/mcp"),
                &[
                    ("authorization", &format!("Bearer {access}")),
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                ],
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"r","version":"1"}}}"#,
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }

    // One code, redeemed at all three replicas at once: exactly one winner.
    let code = sign_in(&mut browser, &authorize).await;
    let (first, second, third) = tokio::join!(
        redeem(a.url(""), code.clone()),
        redeem(b.url(""), code.clone()),
        redeem(c.url(""), code.clone())
    );
    let mut statuses = [first.status, second.status, third.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 400, 400],
        "{} / {} / {}",
        first.text(),
        second.text(),
        third.text()
    );

    // Redis stopped: the authorization server fails closed with 503; the
    // proxy side (stateless) keeps working, and /readyz says what is down
    // without failing; Redis back: no restart needed.
    drop(redis);
    let r = send(
        "GET",
        &a.url("/.well-known/oauth-authorization-server"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "metadata needs no store");
    let down = redeem(a.url(""), "any".into()).await;
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(!down.header("retry-after").is_empty());
    assert!(
        down.text().contains("temporarily_unavailable"),
        "{}",
        down.text()
    );
    let ready = send("GET", &a.admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.text(), "ready\nredis store: down\n");
    // The public listener says ready, not what is down.
    let public = send("GET", &a.url("/readyz"), &[], "").await;
    assert_eq!((public.status, public.text().as_str()), (200, "ready\n"));
    let _redis = Redis::start(redis_port);
    let mut back = false;
    for _ in 0..60 {
        let r = send(
            "POST",
            &b.url("/oauth/register"),
            &[("content-type", "application/json")],
            &serde_json::json!({"redirect_uris": [CLIENT_REDIRECT]}).to_string(),
        )
        .await;
        if r.status == 201 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the replicas did not recover once Redis was back");
    let ready = send("GET", &b.admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.text(), "ready\nredis store: up\n");
}

async fn token_request(at: &str, form: &str) -> crate::support::Reply {
    send(
        "POST",
        &format!("{at}/oauth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
}

/// Consent and sign-in as a browser; returns the code.
async fn sign_in(browser: &mut Browser, authorize: &str) -> String {
    let page = browser.get(authorize).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let (action, pending, csrf) = consent_form(&page.text());
    let answer = browser
        .post_form(
            &action,
            &format!("pending={pending}&csrf={csrf}&decision=allow"),
        )
        .await;
    let location = browser
        .follow(&action, answer)
        .await
        .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    query(&location)["code"].clone()
}

/// A replica with `per_principal: 3/m burst 3`, `echo: 2/m burst 2` and
/// `unauthenticated_per_ip: 3/m burst 3`, shared through Redis.
fn limited(upstream: &str, issuer: &TestIssuer, redis_port: u16, on_error: &str) -> Gateway {
    GatewayBuilder::new()
        .issuer(issuer)
        .route("/mcp", upstream, crate::RESOURCE, "")
        .extra(&format!(
            "admin_listen: 127.0.0.1:0\nrate_limits:\n  per_principal: 3/m burst 3\n  tools: {{echo: 2/m burst 2}}\n  \
             unauthenticated_per_ip: 3/m burst 3\n\
             shared_state:\n  redis: redis://127.0.0.1:{redis_port}\n  on_redis_error: {on_error}\n"
        ))
        .spawn()
}

const ECHO: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

#[tokio::test]
async fn rate_limits_hold_across_replicas_and_redis_errors_follow_on_redis_error() {
    use crate::support::upstream::{Behavior, Upstream};
    let (lb_port, redis_port) = (crate::support::free_port(), crate::support::free_port());
    let redis = Redis::start(redis_port);
    let upstream = Upstream::start(Behavior::Json).await;
    let issuer = TestIssuer::new(ISS);
    let auth = format!("Bearer {}", issuer.token(crate::RESOURCE, ""));
    let a = limited(&upstream.url(), &issuer, redis_port, "local");
    let b = limited(&upstream.url(), &issuer, redis_port, "deny");
    let c = limited(&upstream.url(), &issuer, redis_port, "local");
    for gw in [&a, &b, &c] {
        gw.wait_ready().await;
    }
    let _lb = Nginx::start(lb_port, &[a.addr, b.addr, c.addr]);
    let lb = |auth: &str, body: &'static str| {
        let (url, auth) = (format!("http://127.0.0.1:{lb_port}/mcp"), auth.to_owned());
        async move {
            send(
                "POST",
                &url,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                ],
                body,
            )
            .await
        }
    };

    // Through the load balancer (round robin over three replicas): a tool's
    // budget (2) is spent across them, not 2 each (6).
    assert_eq!(lb(&auth, ECHO).await.status, 200);
    assert_eq!(lb(&auth, ECHO).await.status, 200);
    let third = lb(&auth, ECHO).await;
    assert_eq!(third.status, 429, "{}", third.text());
    assert!(!third.header("retry-after").is_empty());
    // The principal's budget (3) too: the refused call spent nothing (all
    // budgets of a request or none), so one more call fits, then none at
    // any replica.
    assert_eq!(lb(&auth, PING).await.status, 200);
    for gw in [&a, &b, &c] {
        let over = gw.post("/mcp", &auth, PING).await;
        assert_eq!(over.status, 429, "{}", over.text());
    }
    // Failed authentications from one address (3 allowed), across replicas.
    for _ in 0..3 {
        assert_eq!(lb("Bearer not-a-token", PING).await.status, 401);
    }
    let flood = lb("Bearer not-a-token", PING).await;
    assert_eq!(flood.status, 429, "{}", flood.text());

    // A batch calling one tool twice spends two of its shared budget: after
    // it, another replica has none left for that caller.
    let mut carol = issuer.claims(crate::RESOURCE, "");
    carol["sub"] = "carol".into();
    let carol = format!("Bearer {}", issuer.sign(&carol));
    let twice = format!("[{ECHO},{}]", ECHO.replace("\"id\":1", "\"id\":2"));
    assert_eq!(a.post("/mcp", &carol, &twice).await.status, 200);
    let after = c.post("/mcp", &carol, ECHO).await;
    assert_eq!(after.status, 429, "{}", after.text());

    // Redis down: `local` falls back to the replica's own budget (fresh for
    // another principal), `deny` refuses with 503.
    drop(redis);
    let mut bob = issuer.claims(crate::RESOURCE, "");
    bob["sub"] = "bob".into();
    let other = format!("Bearer {}", issuer.sign(&bob));
    assert_eq!(
        a.post("/mcp", &other, PING).await.status,
        200,
        "local fallback"
    );
    let denied = b.post("/mcp", &other, PING).await;
    assert_eq!(denied.status, 503, "{}", denied.text());
    assert_eq!(denied.header("retry-after"), "1");
    a.wait_for_log("shared rate limits: Redis cannot be asked")
        .await;
    let up = |gw: &Gateway| {
        let url = gw.admin_url("/metrics");
        async move { send("GET", &url, &[], "").await.text() }
    };
    assert!(
        up(&a)
            .await
            .contains(r#"mcp_gateway_redis_up{role="limits"} 0"#)
    );
    let ready = send("GET", &a.admin_url("/readyz"), &[], "").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (200, "ready\nredis limits: down\n")
    );

    // Redis back: the replicas use it again without a restart.
    let _redis = Redis::start(redis_port);
    let mut back = false;
    for _ in 0..40 {
        if b.post("/mcp", &other, PING).await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the deny replica did not recover");
    assert!(
        up(&b)
            .await
            .contains(r#"mcp_gateway_redis_up{role="limits"} 1"#)
    );
    // An idle replica notices too: its probe PINGs every few seconds.
    let mut noticed = false;
    for _ in 0..150 {
        if up(&c)
            .await
            .contains(r#"mcp_gateway_redis_up{role="limits"} 1"#)
        {
            noticed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(noticed, "the idle replica's gauge never came back");
}

#[tokio::test]
async fn stream_caps_hold_across_replicas_and_a_killed_replica_s_slots_come_back() {
    use crate::support::upstream::{Behavior, Upstream};
    let redis_port = crate::support::free_port();
    let _redis = Redis::start(redis_port);
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let issuer = TestIssuer::new(ISS);
    let replica = || {
        GatewayBuilder::new()
            .issuer(&issuer)
            .route("/mcp", &upstream.url(), crate::RESOURCE, "")
            .extra(&format!(
                "limits:\n  max_streams_per_principal: 2\n\
                 shared_state:\n  redis: redis://127.0.0.1:{redis_port}\n  stream_lease: 1s\n"
            ))
            .spawn()
    };
    let (a, b, c) = (replica(), replica(), replica());
    for gw in [&a, &b, &c] {
        gw.wait_ready().await;
    }
    let auth = format!("Bearer {}", issuer.token(crate::RESOURCE, ""));
    let headers = [("authorization", auth.as_str())];
    let open = |gw: &Gateway| {
        let url = gw.url("/mcp");
        async move { crate::support::http::open_stream(&url, &headers, PING).await }
    };
    let first = open(&a).await;
    let second = open(&b).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    // Two streams open, on two replicas: a third is refused on any.
    assert_eq!(
        open(&c).await.status(),
        429,
        "the cap is global, not per replica"
    );
    assert_eq!(open(&a).await.status(), 429);
    assert_eq!(open(&b).await.status(), 429);

    // A replica killed with its stream open stops renewing the lease: the
    // slot comes back once the lease runs out (1 s here), with no restart.
    let mut a = a;
    a.signal("KILL");
    drop(first);
    let started = std::time::Instant::now();
    let mut freed = None;
    while started.elapsed() < Duration::from_secs(5) {
        let r = open(&c).await;
        if r.status() == 200 {
            freed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let freed = freed.expect("the killed replica's slot never came back");
    assert!(a.exited(), "replica A is gone");
    assert!(
        freed >= Duration::from_millis(300),
        "came back before the lease ran out: {freed:?}"
    );
    drop(second);
    gate.notify_waiters();
}

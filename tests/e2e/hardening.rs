//! Session binding, Origin/CORS, rate limits and input limits.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::json;

use crate::support::upstream::{Behavior, Upstream};
use crate::support::{Gateway, GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

async fn setup(route_extra: &str, top_extra: &str) -> (TestIssuer, Upstream, Gateway) {
    let (issuer, upstream, gw) =
        crate::support::start(Behavior::Json, route_extra, top_extra).await;
    (issuer, upstream, gw)
}

fn token_for(issuer: &TestIssuer, sub: &str) -> String {
    let mut claims = issuer.claims(RESOURCE, "");
    claims["sub"] = json!(sub);
    claims["jti"] = json!(format!("{sub}-{}", rand_suffix()));
    issuer.sign(&claims)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn session_ids_are_bound_to_the_principal_that_created_them() {
    let (issuer, upstream, gw) = setup(
        "",
        "session_binding:\n  key: 0123456789abcdef0123456789abcdef-test",
    )
    .await;
    let alice = format!("Bearer {}", token_for(&issuer, "alice"));
    let r = gw.post("/mcp", &alice, PING).await;
    let wrapped = r.header("mcp-session-id").to_owned();
    assert!(
        wrapped.starts_with("up-1.") && wrapped.bytes().all(|b| b.is_ascii_graphic()),
        "{wrapped}"
    );

    // Alice, even with a refreshed token, gets her session; the upstream sees its own id.
    let refreshed = format!("Bearer {}", token_for(&issuer, "alice"));
    assert_ne!(refreshed, alice);
    send(
        "POST",
        &gw.url("/mcp"),
        &[("authorization", &refreshed), ("mcp-session-id", &wrapped)],
        PING,
    )
    .await
    .assert_status(200, &[]);
    assert_eq!(
        upstream.seen.lock().unwrap()[1].headers["mcp-session-id"],
        "up-1"
    );

    // Bob presenting Alice's session, a raw upstream id, or a forged wrapper: 404, upstream untouched.
    let bob = format!("Bearer {}", token_for(&issuer, "bob"));
    let forged = format!("up-1.{}", "A".repeat(43));
    for (auth, session) in [
        (&bob, wrapped.as_str()),
        (&alice, "up-1"),
        (&alice, forged.as_str()),
    ] {
        for (method, body) in [("POST", PING), ("GET", ""), ("DELETE", "")] {
            let r = send(
                method,
                &gw.url("/mcp"),
                &[("authorization", auth), ("mcp-session-id", session)],
                body,
            )
            .await;
            assert_eq!(r.status, 404, "{method} {session}: {}", r.text());
            assert_eq!(r.json()["error"]["message"], "Session not found");
        }
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn origins_are_validated_and_cors_preflights_answered() {
    let (issuer, upstream, gw) = setup("allowed_origins: [\"https://app.example.com\"]", "").await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));

    // A foreign Origin is refused before anything else, even without a token.
    for headers in [
        vec![("origin", "https://evil.example.com")],
        vec![("origin", "null"), ("authorization", auth.as_str())],
        // Look-alikes of the route's own origin are foreign.
        vec![
            ("origin", "https://mcp.example.test:8443"),
            ("authorization", auth.as_str()),
        ],
        vec![
            ("origin", "http://mcp.example.test"),
            ("authorization", auth.as_str()),
        ],
        vec![
            ("origin", "https://mcp.example.test.evil.com"),
            ("authorization", auth.as_str()),
        ],
    ] {
        let r = send("POST", &gw.url("/mcp"), &headers, PING).await;
        assert_eq!(r.status, 403, "{headers:?}");
        assert_eq!(r.json()["error"], "forbidden_origin");
    }
    // The route's own origin (the origin of its `resource`) is same-origin:
    // no DNS-rebinding attack can produce it, so it needs no listing.
    send(
        "POST",
        &gw.url("/mcp"),
        &[
            ("origin", "https://mcp.example.test"),
            ("authorization", &auth),
        ],
        PING,
    )
    .await
    .assert_status(200, &[]);
    // An allowed origin can read the challenge and the response headers.
    let r = send(
        "POST",
        &gw.url("/mcp"),
        &[("origin", "https://app.example.com")],
        PING,
    )
    .await
    .assert_status(401, &[]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(
        r.header("access-control-expose-headers")
            .contains("WWW-Authenticate")
    );
    let r = send(
        "POST",
        &gw.url("/mcp"),
        &[
            ("origin", "https://app.example.com"),
            ("authorization", &auth),
        ],
        PING,
    )
    .await
    .assert_status(200, &[]);
    assert!(
        r.header("access-control-expose-headers")
            .contains("Mcp-Session-Id")
    );
    // No Origin (a native client) passes.
    gw.post("/mcp", &auth, PING).await.assert_status(200, &[]);

    let r = send(
        "OPTIONS",
        &gw.url("/mcp"),
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await
    .assert_status(204, &[]);
    for h in [
        "Authorization",
        "Content-Type",
        "Mcp-Session-Id",
        "MCP-Protocol-Version",
        "Last-Event-ID",
        "Mcp-Method",
        "Mcp-Name",
    ] {
        assert!(r.header("access-control-allow-headers").contains(h), "{h}");
    }
    send(
        "OPTIONS",
        &gw.url("/mcp"),
        &[("origin", "https://evil.example.com")],
        "",
    )
    .await
    .assert_status(403, &[]);
    assert_eq!(
        upstream.count(),
        3,
        "preflights and refused origins never reach the upstream"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let top = "rate_limits:\n  per_principal: 3/m\n  tools: {expensive: 1/m}\n  unauthenticated_per_ip: 5/m";
    let (issuer, upstream, gw) = setup("", top).await;
    let auth = format!("Bearer {}", token_for(&issuer, "carol"));
    let call = |tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":"c-{tool}","method":"tools/call","params":{{"name":"{tool}"}}}}"#
        )
    };
    let post = |tool: &str| {
        let body = call(tool);
        let (gw, auth) = (&gw, &auth);
        async move { gw.post("/mcp", auth, &body).await }
    };
    post("expensive").await.assert_status(200, &[]);
    let r = post("expensive").await.assert_status(429, &[]);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(
        r.json()["id"],
        "c-expensive",
        "JSON-RPC shaped for a JSON-RPC call"
    );
    post("cheap").await.assert_status(200, &[]);
    // The per-principal budget (3/m) is spent.
    post("cheap").await.assert_status(429, &[]);
    // Another principal has its own budget.
    let dave = format!("Bearer {}", token_for(&issuer, "dave"));
    gw.post("/mcp", &dave, PING).await.assert_status(200, &[]);
    assert_eq!(upstream.count(), 3);

    // Failed authentications are limited per client IP.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(gw.post("/mcp", "Bearer bad", PING).await.status);
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn input_limits_are_enforced() {
    let limits = "limits:\n  max_json_depth: 8\n  max_batch: 3\n  max_header_bytes: 8KiB\n  header_read_timeout: 500ms";
    let (issuer, upstream, gw) = setup("", limits).await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"a":{}1{}}}}}"#,
        "[".repeat(10),
        "]".repeat(10)
    );
    gw.post("/mcp", &auth, &deep).await.assert_status(400, &[]);
    let batch = format!("[{}]", [PING; 4].join(","));
    gw.post("/mcp", &auth, &batch).await.assert_status(400, &[]);
    let batch = format!("[{}]", [PING; 3].join(","));
    gw.post("/mcp", &auth, &batch).await.assert_status(200, &[]);

    // Oversized head: refused by the HTTP layer (431), never forwarded.
    let big = "x".repeat(16 * 1024);
    let mut stream = std::net::TcpStream::connect(gw.addr).unwrap();
    // The gateway may answer and close before the whole head is written; a
    // broken pipe here is that, and the reply below is what counts.
    let _ = write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: gw\r\nX-Big: {big}\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut reply = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    // Slowloris: a head that never completes is cut off after header_read_timeout.
    let mut slow = std::net::TcpStream::connect(gw.addr).unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: gw\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow client was not cut off"
    );
    // Everyone else is still served.
    gw.post("/mcp", &auth, PING).await.assert_status(200, &[]);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn concurrent_streams_per_principal_are_capped() {
    let issuer = TestIssuer::new(ISS);
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .extra("limits:\n  max_streams_per_principal: 2")
        .spawn();
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let url = gw.url("/mcp");
    let headers = [("authorization", auth.as_str())];
    let open = || crate::support::http::open_stream(&url, &headers, PING);
    let first = open().await;
    let second = open().await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await;
    assert_eq!(third.status(), 429);
    // A reload (SIGHUP) neither frees slots nor refills anything.
    gw.signal("HUP");
    gw.wait_for_log("config reloaded").await;
    assert_eq!(open().await.status(), 429, "SIGHUP reset the stream cap");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(open().await.status(), 200, "a closed stream frees its slot");
    drop(second);
    gate.notify_waiters();
}

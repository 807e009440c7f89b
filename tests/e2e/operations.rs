//! Operations: hot reload, graceful drain, metrics, identity headers.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::support::http::open_stream;
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{Gateway, GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

fn call(tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
}

/// Reads frames until `needle` has arrived.
async fn read_until(body: &mut hyper::body::Incoming, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("stream stalled")
            .expect("stream ended early")
            .expect("stream failed");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

/// Waits up to 5 s for the gateway to exit, and checks it logged a full drain.
async fn assert_exits_drained(gw: &mut Gateway) {
    for _ in 0..100 {
        if gw.exited() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.exited(), "did not exit after the drain");
    assert!(gw.logged("drained=true"), "drain completion not logged");
}

/// The status of a call; the (SSE) body is not awaited, since this upstream
/// holds every stream open until the test's gate opens.
async fn status(url: &str, headers: &[(&str, &str)], tool: &str) -> u16 {
    open_stream(url, headers, &call(tool))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn reload_swaps_policy_without_dropping_streams_and_rejects_bad_configs() {
    let issuer = TestIssuer::new(ISS);
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            &upstream.url(),
            RESOURCE,
            "policy:\n  tools: {echo: [], deploy: [ops]}",
        )
        .spawn();
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let headers = [("authorization", auth.as_str())];

    let resp = open_stream(&gw.url("/mcp"), &headers, &call("echo")).await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body();
    read_until(&mut stream, "first").await;
    assert_eq!(status(&gw.url("/mcp"), &headers, "deploy").await, 403);

    // Reload on a file change: `deploy` no longer needs a scope.
    let yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, yaml.replace("deploy: [ops]", "deploy: []")).unwrap();
    gw.wait_for_log("config reloaded").await;
    assert_eq!(
        status(&gw.url("/mcp"), &headers, "deploy").await,
        200,
        "new policy not applied"
    );
    // The stream opened before the reload is still alive and keeps delivering.
    gate.notify_one();
    assert!(read_until(&mut stream, "second").await.contains("second"));

    // An invalid config is rejected and the current one kept.
    let good = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        good.replace("deploy: []", "deploy: [\"bad scope\"]"),
    )
    .unwrap();
    gw.wait_for_log("config reload rejected").await;
    assert_eq!(status(&gw.url("/mcp"), &headers, "deploy").await, 200);

    // SIGHUP reloads too.
    std::fs::write(&gw.config_path, good.replace("deploy: []", "deploy: [ops]")).unwrap();
    gw.signal("HUP");
    for _ in 0..100 {
        if status(&gw.url("/mcp"), &headers, "deploy").await == 403 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("SIGHUP reload did not apply");
}

#[tokio::test]
async fn sigterm_fails_readiness_at_once_and_lets_open_streams_finish() {
    let issuer = TestIssuer::new(ISS);
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let mut gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .extra("admin_listen: 127.0.0.1:0\nlimits:\n  shutdown_grace: 10s")
        .spawn();
    gw.wait_ready().await;
    assert_eq!(
        send("GET", &gw.admin_url("/readyz"), &[], "").await.status,
        200
    );
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let resp = open_stream(&gw.url("/mcp"), &[("authorization", &auth)], &call("echo")).await;
    let mut stream = resp.into_body();
    read_until(&mut stream, "first").await;

    gw.signal("TERM");
    gw.wait_for_log("shutting down").await;
    assert_eq!(
        send("GET", &gw.admin_url("/readyz"), &[], "").await.status,
        503,
        "readiness must fail at once"
    );
    assert!(!gw.exited(), "exited before the open stream finished");

    gate.notify_one();
    let rest = read_until(&mut stream, "second").await;
    assert!(rest.contains("second"));
    while stream.frame().await.is_some() {}
    assert_exits_drained(&mut gw).await;
}

/// Several workers share one listener: streams land on whichever accepted
/// them, each is served, and SIGTERM drains every worker before the exit.
#[tokio::test]
async fn every_worker_serves_and_drains() {
    let issuer = TestIssuer::new(ISS);
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let mut gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .extra("limits:\n  shutdown_grace: 10s")
        .workers(3)
        .spawn();
    gw.wait_ready().await;
    assert!(
        gw.logged("workers=3"),
        "startup line must name the worker count"
    );
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let mut streams = Vec::new();
    for _ in 0..9 {
        let resp = open_stream(&gw.url("/mcp"), &[("authorization", &auth)], &call("echo")).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        read_until(&mut body, "first").await;
        streams.push(body);
    }
    assert_eq!(
        upstream.count(),
        9,
        "every stream reached the upstream once"
    );

    gw.signal("TERM");
    gw.wait_for_log("shutting down").await;
    assert!(!gw.exited(), "exited before the open streams finished");
    // Each upstream task waits on the gate right after its first event;
    // give the last one a moment to get there before opening it for all.
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.notify_waiters();
    for body in &mut streams {
        read_until(body, "second").await;
        while body.frame().await.is_some() {}
    }
    assert_exits_drained(&mut gw).await;
}

#[tokio::test]
async fn workers_must_be_at_least_one() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth-gateway"))
        .args(["--workers", "0", "check", "--config", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--workers"), "{stderr}");
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let (issuer, _upstream, gw) = crate::support::start(
        Behavior::Json,
        "policy:\n  tools: {echo: [], admin: [admin]}",
        "admin_listen: 127.0.0.1:0",
    )
    .await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    for _ in 0..3 {
        gw.post("/mcp", &auth, &call("echo"))
            .await
            .assert_status(200, &[]);
    }
    gw.post("/mcp", &auth, &call("admin"))
        .await
        .assert_status(403, &[]);
    send("POST", &gw.url("/mcp"), &[], &call("echo"))
        .await
        .assert_status(401, &[]);
    send("GET", &gw.admin_url("/metrics"), &[], "").await.assert_status(
        200,
        &[
            r#"mcp_gateway_requests_total{route="/mcp",method="tools/call",decision="allow",status="200"} 3"#,
            r#"mcp_gateway_requests_total{route="/mcp",method="tools/call",decision="deny",status="403"} 1"#,
            r#"mcp_gateway_requests_total{route="/mcp",method="POST",decision="reject",status="401"} 1"#,
            r#"mcp_gateway_token_cache_hits_total 3"#,
            r#"mcp_gateway_jwks_fetches_total{issuer="https://issuer.example.test",result="ok"}"#,
            r#"mcp_gateway_upstream_duration_seconds_count{route="/mcp"} 3"#,
            "mcp_gateway_open_streams 0",
        ],
    );
    // The public port does not serve metrics.
    assert_eq!(send("GET", &gw.url("/metrics"), &[], "").await.status, 404);
}

#[tokio::test]
async fn identity_headers_are_set_from_the_token_and_never_spoofed() {
    let (issuer, upstream, gw) = crate::support::start(Behavior::Json, "forward_identity: {subject_header: X-MCP-Subject, scopes_header: X-MCP-Scopes, client_id_header: X-MCP-Client}\nupstream_headers: {X-Api-Key: upstream-secret}", "").await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, "b a"));
    let r = send(
        "POST",
        &gw.url("/mcp"),
        &[
            ("authorization", &auth),
            ("x-mcp-subject", "admin"),
            ("x-mcp-scopes", "everything"),
            ("x-mcp-client", "spoofed"),
            ("x-api-key", "client-chosen"),
            ("x-request-id", "client-chosen-id"),
        ],
        &call("echo"),
    )
    .await
    .assert_status(200, &[]);
    let request_id = r.header("x-request-id").to_owned();
    assert!(!request_id.is_empty() && request_id != "client-chosen-id");
    let seen = upstream.seen.lock().unwrap()[0].clone();
    assert_eq!(
        seen.headers
            .get_all("x-mcp-subject")
            .iter()
            .collect::<Vec<_>>(),
        vec!["alice"]
    );
    assert_eq!(seen.headers["x-mcp-scopes"], "a b");
    // An array entry is one scope, never split into two for the upstream.
    let mut claims = issuer.claims(RESOURCE, "");
    claims.as_object_mut().unwrap().remove("scope");
    claims["scp"] = serde_json::json!(["a", "b c", "x\ty"]);
    gw.post(
        "/mcp",
        &format!("Bearer {}", issuer.sign(&claims)),
        &call("echo"),
    )
    .await
    .assert_status(200, &[]);
    let again = upstream.seen.lock().unwrap()[1].clone();
    assert_eq!(again.headers["x-mcp-scopes"], "a");
    assert_eq!(seen.headers["x-mcp-client"], "test-client");
    assert_eq!(
        seen.headers.get_all("x-api-key").iter().collect::<Vec<_>>(),
        vec!["upstream-secret"]
    );
    assert_eq!(seen.headers["x-request-id"], request_id.as_str());
    gw.wait_for_log(&request_id).await;
}

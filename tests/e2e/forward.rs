//! Forwarding: what the upstream receives, streaming, upstream faults, limits, TLS.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::Notify;

use crate::support::http::{open_stream, send_tls};
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#;

#[tokio::test]
async fn upstream_gets_the_same_body_and_mcp_headers_but_never_the_token() {
    let (issuer, upstream, gw) = crate::support::start(Behavior::Json, "", "").await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let r = send(
        "POST",
        &gw.url("/mcp"),
        &[
            ("authorization", &auth),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("mcp-param-region", "eu-west"),
            ("last-event-id", "41"),
            ("x-forwarded-for", "6.6.6.6"),
            ("connection", "x-hop"),
            ("x-hop", "secret-hop"),
            ("x_mcp_subject", "admin"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("content-type", "application/json; charset=UTF-8"),
        ],
        CALL,
    )
    .await
    .assert_status(200, &[]);
    assert_eq!(r.json()["result"]["ok"], true);

    let seen = upstream.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/mcp");
    assert_eq!(
        seen.body,
        CALL.as_bytes(),
        "body must be forwarded byte for byte"
    );
    assert!(
        seen.headers.get("authorization").is_none(),
        "token passthrough"
    );
    assert!(seen.headers.get("x-hop").is_none());
    for dropped in ["x_mcp_subject", "x-original-url", "x-http-method-override"] {
        assert!(seen.headers.get(dropped).is_none(), "{dropped} forwarded");
    }
    assert_eq!(seen.headers["host"], upstream.addr.to_string());
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    for (name, value) in [
        ("mcp-protocol-version", "2025-06-18"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("mcp-param-region", "eu-west"),
        ("last-event-id", "41"),
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
    ] {
        assert_eq!(seen.headers[name], value, "{name}");
    }
}

#[tokio::test]
async fn sse_events_arrive_one_by_one_before_the_upstream_finishes() {
    let issuer = TestIssuer::new(ISS);
    let gate = Arc::new(Notify::new());
    let upstream = Upstream::start(Behavior::Sse(gate.clone())).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .spawn();
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let resp = open_stream(
        &gw.url("/mcp"),
        &[("authorization", &auth), ("accept", "text/event-stream")],
        CALL,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    // The upstream's session id reaches the client bound to its principal.
    let session = resp.headers()["mcp-session-id"].to_str().unwrap();
    assert!(
        session.starts_with("sess-1.") && session.len() > "sess-1.".len(),
        "{session}"
    );
    let mut body = resp.into_body();

    // The first event must arrive while the upstream is still holding the stream open.
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first SSE event was buffered by the gateway")
            .unwrap()
            .unwrap();
        received.extend_from_slice(frame.data_ref().unwrap());
    }
    let first = String::from_utf8_lossy(&received).into_owned();
    assert!(
        first.starts_with("id: 1\nretry: 1000\nevent: message\n"),
        "{first}"
    );
    assert!(!first.contains("second"));

    gate.notify_one();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
    {
        if let Ok(data) = frame.unwrap().into_data() {
            received.extend_from_slice(&data);
        }
    }
    let all = String::from_utf8_lossy(&received);
    assert!(
        all.contains("id: 2\nretry: 1000\nevent: message\ndata: "),
        "{all}"
    );
    assert!(all.ends_with("\"second\"}}\n\n"), "{all}");
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let issuer = TestIssuer::new(ISS);
    let slow = Upstream::start(Behavior::Stall(Duration::from_secs(30))).await;
    let dead_port = crate::support::free_port();
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            &format!("http://127.0.0.1:{dead_port}/mcp"),
            RESOURCE,
            "",
        )
        .route(
            "/slow",
            &slow.url(),
            "https://mcp.example.test/slow",
            "upstream_timeout: 500ms",
        )
        .spawn();
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let r = gw.post("/mcp", &auth, CALL).await.assert_status(502, &[]);
    assert_eq!(r.json()["error"], "upstream_unavailable");
    assert!(
        !r.text().contains("127.0.0.1"),
        "502 leaks internals: {}",
        r.text()
    );

    let auth = format!(
        "Bearer {}",
        issuer.token("https://mcp.example.test/slow", "")
    );
    let r = gw.post("/slow", &auth, CALL).await.assert_status(504, &[]);
    assert_eq!(r.json()["error"], "upstream_timeout");
    // The gateway keeps serving.
    assert_eq!(send("GET", &gw.url("/healthz"), &[], "").await.status, 200);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_other_methods_405() {
    let (issuer, upstream, gw) =
        crate::support::start(Behavior::Json, "", "limits:\n  max_body: 1KiB").await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2048)
    );
    gw.post("/mcp", &auth, &big).await.assert_status(413, &[]);
    let r = send("PUT", &gw.url("/mcp"), &[("authorization", &auth)], CALL)
        .await
        .assert_status(405, &[]);
    assert_eq!(r.header("allow"), "GET, POST, DELETE");
    gw.post("/mcp/", &auth, CALL).await.assert_status(404, &[]);
    assert_eq!(upstream.count(), 0);
    gw.post("/mcp", &auth, CALL).await.assert_status(200, &[]);
}

#[tokio::test]
async fn tls_listener_serves_http1_and_h2() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();

    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        .tls(dir.path().join("cert.pem"), dir.path().join("key.pem"))
        .spawn();
    assert_eq!(gw.scheme, "https");
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    for http2 in [false, true] {
        let (r, version) = send_tls(
            &cert_pem,
            "POST",
            &gw.url("/mcp"),
            &[("authorization", &auth)],
            CALL,
            http2,
        )
        .await;
        r.assert_status(200, &[]);
        assert_eq!(
            version,
            if http2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        let (r, _) = send_tls(&cert_pem, "POST", &gw.url("/mcp"), &[], CALL, http2).await;
        r.assert_status(401, &[]);
    }
    let seen = upstream.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");
}

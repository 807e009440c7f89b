//! Real peers: `server-everything` (npm) and the Python `mcp` server behind
//! the gateway, driven by the TS and Python SDK clients and by raw Streamable
//! HTTP where the test must watch the stream itself.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::support::http::open_stream;
use crate::support::peers::{self, py_client, ts_client};
use crate::support::{GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

fn gateway_for(issuer: &TestIssuer, upstream: &str) -> crate::support::Gateway {
    GatewayBuilder::new()
        .issuer(issuer)
        .route("/mcp", upstream, RESOURCE, "required_scopes: [mcp:tools]")
        .spawn()
}

#[tokio::test]
async fn ts_sdk_client_calls_a_tool_on_server_everything_through_the_gateway() {
    let server = peers::server_everything();
    let issuer = TestIssuer::new(ISS);
    let gw = gateway_for(&issuer, &server.url);
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");

    let run = ts_client(&gw.url("/mcp"), &token, &["list-tools"], &[]).assert_exit(0, &[]);
    let tools: Vec<String> = serde_json::from_str(&run.stdout).unwrap();
    assert!(tools.contains(&"echo".to_owned()), "{tools:?}");

    ts_client(
        &gw.url("/mcp"),
        &token,
        &["call", "echo", r#"{"message":"through the gateway"}"#],
        &[],
    )
    .assert_exit(0, &["Echo: through the gateway"]);

    ts_client(&gw.url("/mcp"), "", &["list-tools"], &[]).assert_exit(2, &["401"]);
}

#[tokio::test]
async fn python_sdk_client_calls_a_tool_on_the_python_server_through_the_gateway() {
    let server = peers::fastmcp(&[]);
    let issuer = TestIssuer::new(ISS);
    let gw = gateway_for(&issuer, &server.url);
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");

    // Both the 2026-07-28 stateless path and the legacy initialize/session path.
    for mode in ["auto", "legacy"] {
        let env = [("MCP_CLIENT_MODE", mode)];
        py_client(&gw.url("/mcp"), &token, &["list-tools"], &env).assert_exit(0, &["get_weather"]);
        py_client(
            &gw.url("/mcp"),
            &token,
            &["call", "echo", r#"{"message":"hi"}"#],
            &env,
        )
        .assert_exit(0, &["echo: hi"]);
    }
    // The TS client against the Python server too (Host rewriting matters here:
    // the Python server rejects foreign Host headers with 421).
    ts_client(
        &gw.url("/mcp"),
        &token,
        &["call", "get_weather", r#"{"city":"Oslo"}"#],
        &[],
    )
    .assert_exit(0, &[]);

    py_client(
        &gw.url("/mcp"),
        &issuer.token(RESOURCE, "other"),
        &["list-tools"],
        &[],
    )
    .assert_exit(2, &["403"]);
}

/// Reads SSE events from a streaming body, with their arrival times.
async fn read_events(body: &mut hyper::body::Incoming, until: &str) -> Vec<(Instant, String)> {
    let mut events = Vec::new();
    let mut buf = String::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("stream stalled");
        let Some(frame) = frame else { break };
        if let Ok(data) = frame.unwrap().into_data() {
            buf.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let done = event.contains(until);
                events.push((Instant::now(), event));
                if done {
                    return events;
                }
            }
        }
    }
    events
}

#[tokio::test]
async fn a_long_running_tool_streams_progress_through_the_gateway_and_sessions_work() {
    let server = peers::server_everything();
    let issuer = TestIssuer::new(ISS);
    let gw = gateway_for(&issuer, &server.url);
    gw.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, "mcp:tools"));
    let base = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];

    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}"#;
    let r = send("POST", &gw.url("/mcp"), &base, init)
        .await
        .assert_status(200, &["\"serverInfo\""]);
    let session = r.header("mcp-session-id").to_owned();
    assert!(
        !session.is_empty(),
        "server-everything issues a session id on initialize"
    );

    let mut headers = base.to_vec();
    headers.push(("mcp-session-id", &session));
    headers.push(("mcp-protocol-version", "2025-06-18"));
    send(
        "POST",
        &gw.url("/mcp"),
        &headers,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await
    .assert_status(202, &[]);

    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":2,"steps":4},"_meta":{"progressToken":"p1"}}}"#;
    let started = Instant::now();
    let resp = open_stream(&gw.url("/mcp"), &headers, call).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut body = resp.into_body();
    let events = read_events(&mut body, "\"id\":2").await;
    let progress: Vec<&(Instant, String)> = events
        .iter()
        .filter(|(_, e)| e.contains("notifications/progress"))
        .collect();
    assert!(
        progress.len() >= 3,
        "expected streamed progress events: {events:?}"
    );
    let (last_at, last) = events.last().unwrap();
    assert!(last.contains("\"result\""), "{last}");
    // Events were relayed as they were produced, not buffered until the end.
    let first_at = progress[0].0;
    assert!(
        last_at.duration_since(first_at) >= Duration::from_millis(800),
        "progress arrived in one burst: first after {:?}, last after {:?}",
        first_at - started,
        *last_at - started
    );
    assert!(
        events
            .iter()
            .all(|(_, e)| e.contains("id: ") || e.contains("id:")),
        "event ids stripped: {events:?}"
    );

    // DELETE ends the session; the same id then no longer works upstream.
    let r = send("DELETE", &gw.url("/mcp"), &headers, "").await;
    assert!(
        r.status == 200 || r.status == 204,
        "DELETE: {} {}",
        r.status,
        r.text()
    );
    let r = send(
        "POST",
        &gw.url("/mcp"),
        &headers,
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    )
    .await;
    assert!(
        r.status == 400 || r.status == 404,
        "session survived DELETE: {}",
        r.status
    );
}

/// A real legacy HTTP+SSE server (Python `mcp`, `sse_app()`): its session id
/// travels in a query string that no principal is bound to, so the gateway
/// never carries it. The `endpoint` event that would hand a client the
/// session URL ends the stream instead, on filtering and plain routes alike,
/// and a `session_id` query is refused before it reaches the upstream.
#[tokio::test]
async fn a_legacy_http_sse_upstream_is_refused_at_run_time() {
    let legacy = peers::legacy_sse();
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            &legacy.url,
            RESOURCE,
            "policy:\n  tools: {echo: []}",
        )
        .route("/plain", &legacy.url, "https://mcp.example.test/plain", "")
        .spawn();
    gw.wait_ready().await;
    // Open a legacy session directly, and keep it open.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut direct_stream = client.get(legacy.url.parse().unwrap()).await.unwrap();
    let direct = tokio::time::timeout(Duration::from_secs(5), direct_stream.body_mut().frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let direct = String::from_utf8_lossy(direct.data_ref().unwrap()).into_owned();
    assert!(
        direct.contains("event: endpoint") && direct.contains("session_id="),
        "control: the peer really speaks the legacy transport: {direct}"
    );
    // A route whose upstream URL names that session (an operator pasting a
    // legacy message URL): requests are answered 202 with the answer on the
    // other stream, which the gateway turns into a 502.
    let message_path = direct
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_owned();
    let origin = legacy.url.trim_end_matches("/sse");
    let gw_msg = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &format!("{origin}{message_path}"), RESOURCE, "")
        .spawn();
    gw_msg.wait_ready().await;
    let auth = format!("Bearer {}", issuer.token(RESOURCE, ""));
    let r = send(
        "POST",
        &gw_msg.url("/mcp"),
        &[("authorization", &auth), ("content-type", "application/json")],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    )
    .await
    .assert_status(502, &[]);
    assert_eq!(r.json()["error"], "upstream_unsupported");
    drop(direct_stream);

    for (path, resource) in [
        ("/mcp", RESOURCE),
        ("/plain", "https://mcp.example.test/plain"),
    ] {
        let auth = format!("Bearer {}", issuer.token(resource, ""));
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            send(
                "GET",
                &gw.url(path),
                &[("authorization", &auth), ("accept", "text/event-stream")],
                "",
            ),
        )
        .await
        .expect("the stream must end, not hang");
        let text = r.text();
        assert!(text.starts_with("event: error\n"), "{path}: {text}");
        assert!(
            !text.contains("session_id"),
            "{path}: session URL leaked: {text}"
        );

        let r = send(
            "POST",
            &gw.url(&format!("{path}?session_id=0123abcd")),
            &[("authorization", &auth), ("content-type", "application/json")],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#,
        )
        .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
}

//! OpenTelemetry traces, end to end with real components: the gateway
//! exports to a receiver that decodes the real OTLP protobuf payloads
//! (PyPI `opentelemetry-proto`), in front of the Python `mcp` server
//! instrumented with the OpenTelemetry SDK (its ASGI middleware continues
//! the `traceparent` the gateway sends). `sample_ratio: 0`, so only traces
//! a client sampled, and refusals, are exported.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Gateway, GatewayBuilder, Reply, TestIssuer, peers, send};
use crate::{ISS, RESOURCE};

const POLICY: &str =
    "required_scopes: [mcp:tools]\npolicy:\n  tools:\n    echo: []\n    \"admin_*\": [mcp:admin]\n";

async fn call(gw: &Gateway, token: &str, body: &str, traceparent: Option<&str>) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    if let Some(tp) = traceparent {
        headers.push(("traceparent", tp));
    }
    send("POST", &gw.url("/mcp"), &headers, body).await
}

/// The spans received so far.
pub(crate) async fn spans(receiver: &str) -> Vec<Value> {
    let r = send("GET", &format!("{receiver}/spans"), &[], "").await;
    r.json().as_array().cloned().unwrap_or_default()
}

/// Waits until the receiver holds a span of `trace` named `name`, and a
/// moment more for the rest of its request's spans (a request's spans can
/// be split across exports); returns the trace's spans.
pub(crate) async fn wait_for(receiver: &str, trace: &str, name: &str) -> Vec<Value> {
    let got = wait_until(receiver, trace, |all| all.iter().any(|s| s["name"] == name)).await;
    let count = got.len();
    // The exporter sends every 100 ms here: two more rounds.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = of_trace(receiver, trace).await;
    if again.len() > count { again } else { got }
}

async fn of_trace(receiver: &str, trace: &str) -> Vec<Value> {
    spans(receiver)
        .await
        .into_iter()
        .filter(|s| s["trace_id"] == trace)
        .collect()
}

/// Waits (up to 20 s) until the spans of `trace` satisfy `done`.
pub(crate) async fn wait_until(
    receiver: &str,
    trace: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let got = of_trace(receiver, trace).await;
        if done(&got) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the spans of trace {trace} never arrived: {:#?}",
        of_trace(receiver, trace).await
    );
}

pub(crate) fn one<'a>(spans: &'a [Value], service: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["service"] == service && s["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{service} {name}: {spans:#?}");
    found[0]
}

fn stage<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    one(spans, "mcp-auth-gateway", name)
}

#[tokio::test]
async fn traces_continue_the_client_reach_the_upstream_and_keep_every_refusal() {
    let receiver = peers::otlp_receiver();
    let traces = format!("{}/v1/traces", receiver.url);
    let server = peers::fastmcp(&[("FASTMCP_STATELESS", "1"), ("OTEL_TRACES_URL", &traces)]);
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &server.url, RESOURCE, POLICY)
        .extra(&format!(
            "telemetry:\n  tracing:\n    endpoint: {}\n    sample_ratio: 0\n    headers: {{x-collector-key: from-the-file}}\n",
            receiver.url
        ))
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        // The file names its own collector headers: these must not be sent.
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-env-secret=leaked")
        .spawn();
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");
    // The exporter's thread (named by the OpenTelemetry SDK; "comm" keeps 15 bytes).
    assert!(
        gw.thread_names()
            .iter()
            .any(|n| n.starts_with("OpenTelemetry")),
        "{:?}",
        gw.thread_names()
    );

    // An allowed tools/call the client traces (sampled): its SSE answer
    // arrives, and the whole tree is exported.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let tp = format!("00-{trace}-{client_span}-01");
    let body = r#"{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"echo","arguments":{"message":"secret-argument"}}}"#;
    let reply = call(&gw, &token, body, Some(&tp))
        .await
        .assert_status(200, &["echo: secret-argument"]);
    assert!(
        reply
            .header("content-type")
            .starts_with("text/event-stream")
    );
    assert_eq!(
        reply.header("x-request-id"),
        trace,
        "the trace id is the request id"
    );

    // Every span of the call, ours and the upstream's (they arrive in
    // several exports, the upstream's HTTP span last: it ends after the
    // answer is sent).
    let got = wait_until(&receiver.url, trace, |all| {
        let has = |service: &str, name: &str| {
            all.iter()
                .any(|s| s["service"] == service && s["name"] == name)
        };
        let upstream_http = all.iter().any(|s| {
            s["service"] == "py-mcp-peer" && s["kind"] == "SERVER" && s["name"] != "tools/call echo"
        });
        ["POST /mcp", "authenticate", "authorize", "POST"]
            .iter()
            .all(|n| has("mcp-auth-gateway", n))
            && has("py-mcp-peer", "tools/call echo")
            && upstream_http
    })
    .await;
    let server_span = one(&got, "mcp-auth-gateway", "POST /mcp");
    assert_eq!(server_span["kind"], "SERVER");
    assert_eq!(
        server_span["parent_span_id"], client_span,
        "continues the client's span"
    );
    let attrs = &server_span["attributes"];
    for (key, want) in [
        ("http.request.method", "POST"),
        ("http.route", "/mcp"),
        ("url.path", "/mcp"),
        ("url.scheme", "http"),
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("jsonrpc.request.id", "call-7"),
        ("mcp.protocol.version", "2025-06-18"),
        ("mcp_gateway.decision", "allow"),
    ] {
        assert_eq!(attrs[key], want, "{key}: {attrs:#}");
    }
    assert_eq!(attrs["http.response.status_code"], 200);
    let id = server_span["span_id"].as_str().unwrap();
    for name in ["authenticate", "authorize"] {
        let s = stage(&got, name);
        assert_eq!(s["parent_span_id"], id, "{name} is a child of the request");
        assert_eq!(s["kind"], "INTERNAL");
    }
    assert_eq!(
        stage(&got, "authorize")["attributes"]["mcp_gateway.decision"],
        "allow"
    );
    let forward = stage(&got, "POST");
    assert_eq!(forward["kind"], "CLIENT");
    assert_eq!(forward["parent_span_id"], id);
    assert_eq!(forward["attributes"]["http.response.status_code"], 200);
    assert_eq!(forward["attributes"]["server.address"], "127.0.0.1");
    // The instrumented upstream joined the trace under the forward span.
    let upstream: Vec<&Value> = got
        .iter()
        .filter(|s| s["service"] == "py-mcp-peer")
        .collect();
    let http_server = upstream
        .iter()
        .find(|s| s["kind"] == "SERVER" && s["parent_span_id"] == forward["span_id"])
        .unwrap_or_else(|| panic!("no upstream server span under the forward span: {upstream:#?}"));
    let mcp_span = upstream
        .iter()
        .find(|s| s["parent_span_id"] == http_server["span_id"] && s["name"] == "tools/call echo");
    assert!(mcp_span.is_some(), "the SDK's MCP span: {upstream:#?}");

    // Not sampled (no traceparent, ratio 0) and allowed: nothing exported.
    let quiet = call(&gw, &token, body, None).await.assert_status(200, &[]);
    let quiet_trace = quiet.header("x-request-id").to_owned();
    assert_eq!(quiet_trace.len(), 32);

    // Not sampled but refused: kept. A denied tool, and a bad token.
    let denied_body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"admin_reset","arguments":{"confirm":"secret-argument"}}}"#;
    let denied = call(&gw, &token, denied_body, None).await;
    assert_eq!(denied.status, 403, "{}", denied.text());
    let denied_trace = denied.header("x-request-id").to_owned();
    let got = wait_for(&receiver.url, &denied_trace, "POST /mcp").await;
    let request = one(&got, "mcp-auth-gateway", "POST /mcp");
    assert_eq!(request["attributes"]["mcp_gateway.decision"], "deny");
    assert_eq!(request["attributes"]["http.response.status_code"], 403);
    assert_eq!(request["attributes"]["gen_ai.tool.name"], "admin_reset");
    assert_eq!(request["parent_span_id"], "", "a new trace");
    let authorize = stage(&got, "authorize");
    assert_eq!(authorize["attributes"]["mcp_gateway.decision"], "deny");
    assert_eq!(
        authorize["attributes"]["mcp_gateway.missing_scopes"],
        "mcp:admin"
    );
    assert!(
        !got.iter().any(|s| s["kind"] == "CLIENT"),
        "a refused call is never forwarded: {got:#?}"
    );

    // A 2026-07-28 client's trace context in `params._meta` (SEP-414): the
    // request span links to it (the body is read after the span started).
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta_body = format!(
        r#"{{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{{"name":"admin_reset","arguments":{{}},"_meta":{{"traceparent":"00-{meta_trace}-b7ad6b7169203331-01"}}}}}}"#
    );
    let linked = call(&gw, &token, &meta_body, None).await;
    assert_eq!(linked.status, 403, "{}", linked.text());
    let linked_trace = linked.header("x-request-id").to_owned();
    let got = wait_for(&receiver.url, &linked_trace, "POST /mcp").await;
    let links = &one(&got, "mcp-auth-gateway", "POST /mcp")["links"];
    assert_eq!(links[0]["trace_id"], meta_trace, "{links:#}");
    assert_eq!(links[0]["span_id"], "b7ad6b7169203331");

    let bad = call(&gw, "not-a-token", body, None).await;
    assert_eq!(bad.status, 401);
    let bad_trace = bad.header("x-request-id").to_owned();
    let got = wait_for(&receiver.url, &bad_trace, "POST /mcp").await;
    assert_eq!(
        one(&got, "mcp-auth-gateway", "POST /mcp")["attributes"]["mcp_gateway.decision"],
        "reject"
    );

    // Exports are in order: the quiet trace, sent before both refusals, was
    // dropped, not delayed.
    let all = spans(&receiver.url).await;
    assert!(
        !all.iter().any(|s| s["trace_id"] == quiet_trace.as_str()),
        "an unsampled allowed request was exported"
    );
    // The collector got the file's headers only, and protobuf.
    let sent = send("GET", &format!("{}/headers", receiver.url), &[], "")
        .await
        .json();
    let gateway_exports: Vec<&Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["x-collector-key"] == "from-the-file")
        .collect();
    assert!(!gateway_exports.is_empty(), "{sent:#}");
    assert!(
        !sent.to_string().contains("leaked"),
        "environment headers were sent: {sent:#}"
    );
    assert_eq!(gateway_exports[0]["content-type"], "application/x-protobuf");
    // Never a token or tool arguments.
    let dump = serde_json::to_string(&all).unwrap();
    assert!(!dump.contains(&token), "a token was exported");
    assert!(
        !dump.contains("secret-argument"),
        "tool arguments were exported"
    );
    let names: HashSet<&str> = all.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains("authenticate") && names.contains("authorize"));
}

#[tokio::test]
async fn tracing_off_starts_no_exporter_and_passes_trace_context_through() {
    use crate::support::upstream::{Behavior, Upstream};
    let upstream = Upstream::start(Behavior::Json).await;
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &upstream.url(), RESOURCE, "")
        // Even with the environment pointing at a collector: the block is what turns it on.
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .spawn();
    gw.wait_ready().await;
    let names = gw.thread_names();
    assert!(
        !names.iter().any(|n| n.starts_with("OpenTelemetry")),
        "{names:?}"
    );
    let token = issuer.token(RESOURCE, "");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = call(
        &gw,
        &token,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        Some(tp),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The request id is the gateway's own, and the client's context reaches
    // the upstream untouched.
    assert_ne!(
        reply.header("x-request-id"),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let seen = upstream.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.headers.get("traceparent").unwrap(), tp);

    // Turning tracing on needs a restart, and a reload says so.
    let mut yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    yaml.push_str("telemetry:\n  tracing: {endpoint: 'http://127.0.0.1:9'}\n");
    std::fs::write(&gw.config_path, yaml).unwrap();
    gw.signal("HUP");
    gw.wait_for_log("`telemetry.tracing` is read at start only")
        .await;
    assert!(
        !gw.thread_names()
            .iter()
            .any(|n| n.starts_with("OpenTelemetry"))
    );
}

//! Three protocol revisions on one route (docs/protocol-versions.md): a
//! 2026-07-28 Python SDK client, a 2026-07-28 TS SDK v2 client, a 2025-11-25
//! TS SDK client and a raw 2025-06-18 session use the real Python `mcp` server
//! through one gateway route at the same time, each with list filtering; then
//! raw HTTP for every 2026-07-28 rule: the mirror headers, `-32020` with the
//! request's id, canonical base64, methods that 2026-07-28 removed, caching
//! hints and `X-Accel-Buffering`.

use serde_json::{Value, json};

use crate::support::peers::{self, py_client, ts_client, ts2_client};
use crate::support::{Gateway, GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

const POLICY: &str = r#"required_scopes: [mcp:tools]
policy:
  tools: {echo: [], get_weather: [], "admin_*": [mcp:admin]}
  resources:
    - uri: "file:///public/**"
  prompts: {summarize: []}
"#;

const ACCEPT: (&str, &str) = ("accept", "application/json, text/event-stream");
const MODERN: (&str, &str) = ("mcp-protocol-version", "2026-07-28");

struct Setup {
    _server: peers::Peer,
    _issuer: TestIssuer,
    gw: Gateway,
    token: String,
}

async fn setup() -> Setup {
    let server = peers::fastmcp(&[("FASTMCP_PUBLIC_CACHE", "1")]);
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", &server.url, RESOURCE, POLICY)
        .spawn();
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");
    Setup {
        _server: server,
        _issuer: issuer,
        gw,
        token,
    }
}

/// A 2026-07-28 request: `_meta` in the body, `headers` beside the version.
async fn modern(
    s: &Setup,
    id: u64,
    method: &str,
    params: Value,
    headers: &[(&str, &str)],
) -> crate::support::Reply {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    let auth = format!("Bearer {}", s.token);
    let mut all = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ACCEPT,
        MODERN,
    ];
    all.extend_from_slice(headers);
    send("POST", &s.gw.url("/mcp"), &all, &body).await
}

/// The JSON-RPC message of a JSON or single-event SSE answer.
fn message(r: &crate::support::Reply) -> Value {
    let text = r.text();
    if r.header("content-type").starts_with("text/event-stream") {
        let data: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| d.starts_with('{'))
            .unwrap_or_default()
            .to_owned();
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {text}"))
    } else {
        r.json()
    }
}

/// A whole 2025-06-18 session by hand: initialize, initialized, list, call.
async fn session_2025_06_18(s: &Setup) -> (Vec<String>, Value) {
    let url = s.gw.url("/mcp");
    let auth = format!("Bearer {}", s.token);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let base = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ACCEPT,
    ];
    let r = send("POST", &url, &base, &init.to_string())
        .await
        .assert_status(200, &[]);
    assert_eq!(message(&r)["result"]["protocolVersion"], "2025-06-18");
    let session = r.header("mcp-session-id").to_owned();
    assert!(!session.is_empty());
    let mut h = base.to_vec();
    h.push(("mcp-session-id", &session));
    h.push(("mcp-protocol-version", "2025-06-18"));
    send(
        "POST",
        &url,
        &h,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await
    .assert_status(202, &[]);
    let r = send(
        "POST",
        &url,
        &h,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await
    .assert_status(200, &[]);
    // SSE answers pass unbuffered through any proxy in front.
    if r.header("content-type").starts_with("text/event-stream") {
        assert_eq!(r.header("x-accel-buffering"), "no");
    }
    let tools = message(&r)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let r = send(
        "POST",
        &url,
        &h,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"06-18"}}}"#,
    )
    .await;
    (tools, message(&r))
}

#[tokio::test]
async fn three_protocol_revisions_share_one_route_at_once() {
    let s = setup().await;
    let url = s.gw.url("/mcp");
    let (u1, t1, u2, t2) = (url.clone(), s.token.clone(), url.clone(), s.token.clone());
    let (u3, t3) = (url.clone(), s.token.clone());
    let modern_client = tokio::task::spawn_blocking(move || {
        let env = [("MCP_CLIENT_MODE", "2026-07-28")];
        (
            py_client(&u1, &t1, &["list-tools"], &env),
            py_client(&u1, &t1, &["call", "echo", r#"{"message":"07-28"}"#], &env),
            py_client(&u1, &t1, &["read", "file:///public/readme.txt"], &env),
            py_client(&u1, &t1, &["read", "file:///private/secret.txt"], &env),
        )
    });
    let ts = tokio::task::spawn_blocking(move || {
        (
            ts_client(&u2, &t2, &["list-tools"], &[]),
            ts_client(&u2, &t2, &["call", "echo", r#"{"message":"11-25"}"#], &[]),
        )
    });
    let ts2 = tokio::task::spawn_blocking(move || {
        (
            ts2_client(&u3, &t3, &["list-tools"], &[]),
            ts2_client(&u3, &t3, &["call", "echo", r#"{"message":"v2"}"#], &[]),
        )
    });
    let (old_tools, old_call) = session_2025_06_18(&s).await;
    let (list, call, read, denied) = modern_client.await.unwrap();
    let (ts_list, ts_call) = ts.await.unwrap();
    let (ts2_list, ts2_call) = ts2.await.unwrap();

    for (who, run) in [
        ("2026-07-28 Python", list),
        ("2025-11-25 TS", ts_list),
        ("2026-07-28 TS v2", ts2_list),
    ] {
        let run = run.assert_exit(0, &["echo"]);
        assert!(
            !run.stdout.contains("admin_"),
            "{who} saw a filtered tool: {}",
            run.stdout
        );
    }
    assert!(old_tools.contains(&"echo".to_owned()), "{old_tools:?}");
    assert!(
        old_tools.iter().all(|t| !t.starts_with("admin_")),
        "{old_tools:?}"
    );
    call.assert_exit(0, &["echo: 07-28"]);
    assert!(ts_call.stdout.contains("echo: 11-25"), "{}", ts_call.stdout);
    ts2_call.assert_exit(0, &["echo: v2"]);
    assert_eq!(
        old_call["result"]["content"][0]["text"], "echo: 06-18",
        "{old_call}"
    );
    read.assert_exit(0, &["public readme"]);
    assert_ne!(
        denied.code, 0,
        "a private resource was read: {}",
        denied.stdout
    );
    assert!(denied.stdout.contains("403"), "{}", denied.stdout);
}

#[tokio::test]
async fn every_2026_07_28_rule_over_raw_http() {
    let s = setup().await;
    // The mirror headers, method by method: missing or wrong gets -32020
    // with the request's id, from the gateway; right passes.
    let cases = [
        (
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
            "echo",
        ),
        (
            "resources/read",
            json!({"uri": "file:///public/readme.txt"}),
            "file:///public/readme.txt",
        ),
        (
            "prompts/get",
            json!({"name": "summarize", "arguments": {"text": "x"}}),
            "summarize",
        ),
    ];
    for (i, (method, params, name)) in cases.iter().enumerate() {
        let id = 10 + i as u64;
        for (label, headers) in [
            ("no Mcp-Method", vec![("mcp-name", *name)]),
            ("no Mcp-Name", vec![("mcp-method", *method)]),
            (
                "wrong Mcp-Name",
                vec![("mcp-method", *method), ("mcp-name", "admin_reset")],
            ),
            (
                "wrong Mcp-Method",
                vec![("mcp-method", "tools/list"), ("mcp-name", *name)],
            ),
            (
                "two Mcp-Method",
                vec![
                    ("mcp-method", *method),
                    ("mcp-method", *method),
                    ("mcp-name", *name),
                ],
            ),
        ] {
            let r = modern(&s, id, method, params.clone(), &headers).await;
            assert_eq!(r.status, 400, "{method} {label}: {}", r.text());
            let m = r.json();
            assert_eq!(m["error"]["code"], -32020, "{method} {label}: {m}");
            assert_eq!(m["id"], id, "{method} {label}: the request's id");
        }
        let r = modern(
            &s,
            id,
            method,
            params.clone(),
            &[("mcp-method", *method), ("mcp-name", *name)],
        )
        .await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        assert!(
            message(&r).get("result").is_some(),
            "{method}: {}",
            r.text()
        );
    }
    let r = modern(&s, 20, "tools/list", json!({}), &[])
        .await
        .assert_status(400, &[]);
    assert_eq!(r.json()["error"]["code"], -32020);

    // Non-ASCII names travel as canonical base64 ("echo" here, to show the
    // decoding; a sentinel that is not canonical never matches).
    let echo = json!({"name": "echo", "arguments": {"message": "b64"}});
    modern(
        &s,
        21,
        "tools/call",
        echo.clone(),
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ],
    )
    .await
    .assert_status(200, &[]);
    modern(
        &s,
        22,
        "tools/call",
        echo,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw?="),
        ],
    )
    .await
    .assert_status(400, &[]);

    // A method 2026-07-28 removed is the upstream's to answer: 404, -32601.
    let r = modern(
        &s,
        23,
        "resources/subscribe",
        json!({}),
        &[("mcp-method", "resources/subscribe")],
    )
    .await
    .assert_status(404, &[]);
    assert_eq!(r.json()["error"]["code"], -32601, "{}", r.text());
    // With a URI it is still judged: a private one is refused here.
    modern(
        &s,
        24,
        "resources/subscribe",
        json!({"uri": "file:///private/secret.txt"}),
        &[("mcp-method", "resources/subscribe")],
    )
    .await
    .assert_status(403, &[]);

    // Caching hints: the upstream says public; the caller's filtered view
    // and what it was allowed to read are private.
    let r = modern(
        &s,
        25,
        "tools/list",
        json!({}),
        &[("mcp-method", "tools/list")],
    )
    .await;
    let m = message(&r);
    assert_eq!(m["result"]["cacheScope"], "private", "{m}");
    assert_eq!(m["result"]["ttlMs"], 60000, "{m}");
    let names: Vec<&str> = m["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && !names.iter().any(|n| n.starts_with("admin_")),
        "{names:?}"
    );
    let r = modern(
        &s,
        26,
        "resources/read",
        json!({"uri": "file:///public/readme.txt"}),
        &[
            ("mcp-method", "resources/read"),
            ("mcp-name", "file:///public/readme.txt"),
        ],
    )
    .await;
    assert_eq!(
        message(&r)["result"]["cacheScope"],
        "private",
        "{}",
        r.text()
    );

    // server/discover needs only Mcp-Method; `Mcp-Param-*` pass untouched
    // (the upstream checks them against the tool's schema itself).
    modern(
        &s,
        27,
        "server/discover",
        json!({}),
        &[("mcp-method", "server/discover")],
    )
    .await
    .assert_status(200, &[]);
}

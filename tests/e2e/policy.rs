//! Per-tool, per-resource and per-prompt scopes, end to end: the real Python
//! `mcp` server and `server-everything` behind a policy, the TS SDK client,
//! and the in-test upstream where a test must prove a call never arrived.

use crate::support::peers::{self, ts_client};
use crate::support::upstream::{Behavior, Upstream};
use crate::support::{Gateway, GatewayBuilder, TestIssuer, send};
use crate::{ISS, PRM_URL, RESOURCE};

const POLICY: &str = r#"
required_scopes: [mcp:tools]
policy:
  methods:
    tools/list: []
    logging/setLevel: [mcp:admin]
  tools:
    echo: []
    get_weather: [weather:read]
    "admin_*": [mcp:admin]
  resources:
    - uri: "file:///public/**"
      scopes: []
    - uri: "db://customers/{id}"
      scopes: [crm:read]
  prompts:
    summarize: [mcp:prompts]
  unlisted: deny
"#;

fn gateway(issuer: &TestIssuer, upstream: &str, extra: &str) -> Gateway {
    GatewayBuilder::new()
        .issuer(issuer)
        .route("/mcp", upstream, RESOURCE, &format!("{POLICY}{extra}"))
        .spawn()
}

fn rpc(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
}

async fn post(
    gw: &Gateway,
    token: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> crate::support::Reply {
    let auth = format!("Bearer {token}");
    let mut h = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    h.extend_from_slice(extra);
    send("POST", &gw.url("/mcp"), &h, body).await
}

#[tokio::test]
async fn denied_calls_get_the_exact_step_up_challenge_and_never_reach_the_upstream() {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = gateway(&issuer, &upstream.url(), "");
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");

    let cases = [
        (rpc("tools/call", r#"{"name":"admin_reset"}"#), "mcp:admin mcp:tools"),
        (rpc("tools/call", r#"{"name":"get_weather","arguments":{"city":"Oslo"}}"#), "mcp:tools weather:read"),
        (rpc("resources/read", r#"{"uri":"db://customers/42"}"#), "crm:read mcp:tools"),
        (rpc("prompts/get", r#"{"name":"summarize"}"#), "mcp:prompts mcp:tools"),
        (rpc("logging/setLevel", r#"{"level":"debug"}"#), "mcp:admin mcp:tools"),
        // Escaped method and name are read as the upstream will read them.
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"admin\u005freset"}}"#.to_owned(), "mcp:admin mcp:tools"),
        // A batch smuggling a denied call behind an allowed one names every scope.
        (
            format!("[{},{}]", rpc("tools/call", r#"{"name":"echo"}"#), rpc("tools/call", r#"{"name":"admin_reset"}"#)),
            "mcp:admin mcp:tools",
        ),
        // A "notification" cannot smuggle a tool call either.
        (r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"admin_reset"}}"#.to_owned(), "mcp:admin mcp:tools"),
    ];
    for (body, scope) in &cases {
        let r = post(&gw, &token, body, &[]).await;
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        let expected = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{PRM_URL}\""
        );
        assert_eq!(r.header("www-authenticate"), expected, "{body}");
        // Byte-identical on a second try.
        assert_eq!(
            post(&gw, &token, body, &[])
                .await
                .header("www-authenticate"),
            expected
        );
        assert_eq!(r.json()["error"], "insufficient_scope");
        assert!(
            !r.text().contains("mcp:tools\""),
            "body must not list the caller's scopes: {}",
            r.text()
        );
    }

    // Unlisted targets are refused without a challenge (no scope can fix them).
    for body in [
        rpc("tools/call", r#"{"name":"drop_tables"}"#),
        rpc("resources/read", r#"{"uri":"file:///private/secret.txt"}"#),
    ] {
        let r = post(&gw, &token, &body, &[]).await;
        assert_eq!(r.status, 403, "{body}");
        assert!(r.header("www-authenticate").is_empty(), "{body}");
        assert_eq!(r.json()["error"], "forbidden");
    }

    // Malformed and ambiguous bodies are 400, before anything is forwarded.
    let bad = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_reset"}}"#.to_owned(),
        "[]".to_owned(),
        "not json".to_owned(),
        r#"{"id":1,"method":"tools/list"}"#.to_owned(),
        "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}".to_owned(),
    ];
    for body in &bad {
        let r = post(&gw, &token, body, &[]).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], -32600, "{body}");
    }
    // MCP 2026-07-28 headers must agree with the body.
    let echo = rpc("tools/call", r#"{"name":"echo"}"#);
    post(
        &gw,
        &token,
        &echo,
        &[("mcp-method", "tools/call"), ("mcp-name", "admin_reset")],
    )
    .await
    .assert_status(400, &[]);
    post(&gw, &token, &echo, &[("mcp-method", "tools/list")])
        .await
        .assert_status(400, &[]);

    assert_eq!(upstream.count(), 0, "a refused call reached the upstream");

    // Allowed calls pass, with headers that match, including a base64 Mcp-Name.
    post(
        &gw,
        &token,
        &echo,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ],
    )
    .await
    .assert_status(200, &[]);
    post(
        &gw,
        &issuer.token(RESOURCE, "mcp:tools crm:read"),
        &rpc("resources/read", r#"{"uri":"db://customers/42"}"#),
        &[],
    )
    .await
    .assert_status(200, &[]);
    // Client responses pass with the route's scopes.
    post(
        &gw,
        &token,
        r#"{"jsonrpc":"2.0","id":"srv-1","result":{"roots":[]}}"#,
        &[],
    )
    .await
    .assert_status(200, &[]);
    assert_eq!(upstream.count(), 3);
    gw.wait_for_log("decision=\"deny_scope\"").await;
}

/// The list filter answers one list request: a list call batched with
/// anything else would come back as an array it cannot vouch for.
#[tokio::test]
async fn batched_list_calls_are_refused_where_lists_are_filtered() {
    let issuer = TestIssuer::new(ISS);
    let upstream = Upstream::start(Behavior::Json).await;
    let gw = gateway(&issuer, &upstream.url(), "");
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");
    let batch = format!(
        "[{},{}]",
        rpc("tools/list", "{}"),
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
    );
    post(&gw, &token, &batch, &[])
        .await
        .assert_status(400, &["tools/list cannot be batched"]);
    // Without a list call, a batch is judged element by element as before.
    let batch = format!(
        "[{},{}]",
        rpc("tools/call", r#"{"name":"echo"}"#),
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#
    );
    post(&gw, &token, &batch, &[]).await.assert_status(200, &[]);
    assert_eq!(
        upstream.count(),
        1,
        "only the batch without a list call went on"
    );
}

#[tokio::test]
async fn the_real_python_server_serves_allowed_tools_resources_and_prompts() {
    let server = peers::fastmcp(&[("FASTMCP_JSON_RESPONSE", "1"), ("FASTMCP_STATELESS", "1")]);
    let issuer = TestIssuer::new(ISS);
    let gw = gateway(&issuer, &server.url, "");
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools crm:read mcp:prompts");

    post(
        &gw,
        &token,
        &rpc(
            "tools/call",
            r#"{"name":"echo","arguments":{"message":"hi"}}"#,
        ),
        &[],
    )
    .await
    .assert_status(200, &["echo: hi"]);
    post(
        &gw,
        &token,
        &rpc("resources/read", r#"{"uri":"file:///public/readme.txt"}"#),
        &[],
    )
    .await
    .assert_status(200, &["file:///public/readme.txt"]);
    post(
        &gw,
        &token,
        &rpc("resources/read", r#"{"uri":"db://customers/42"}"#),
        &[],
    )
    .await
    .assert_status(200, &["42"]);
    post(
        &gw,
        &token,
        &rpc(
            "prompts/get",
            r#"{"name":"summarize","arguments":{"text":"abc"}}"#,
        ),
        &[],
    )
    .await
    .assert_status(200, &[]);
    post(
        &gw,
        &token,
        &rpc("resources/read", r#"{"uri":"file:///private/secret.txt"}"#),
        &[],
    )
    .await
    .assert_status(403, &[]);
}

#[tokio::test]
async fn jsonrpc_error_mode_answers_200_and_hides_unlisted_tools() {
    let server = peers::fastmcp(&[("FASTMCP_JSON_RESPONSE", "1"), ("FASTMCP_STATELESS", "1")]);
    let issuer = TestIssuer::new(ISS);
    let gw = gateway(
        &issuer,
        &server.url,
        "  on_insufficient_scope: jsonrpc_error\n",
    );
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools");

    let r = post(
        &gw,
        &token,
        r#"{"jsonrpc":"2.0","id":"a7","method":"tools/call","params":{"name":"admin_reset"}}"#,
        &[],
    )
    .await
    .assert_status(200, &[]);
    assert_eq!(
        r.json(),
        serde_json::json!({"jsonrpc":"2.0","id":"a7","error":{"code":-32003,"message":"insufficient scope","data":{"required_scopes":["mcp:admin","mcp:tools"]}}})
    );
    let r = post(
        &gw,
        &token,
        &rpc("tools/call", r#"{"name":"drop_tables"}"#),
        &[],
    )
    .await
    .assert_status(200, &[]);
    assert_eq!(r.json()["error"]["message"], "Unknown tool: drop_tables");
    let r = post(
        &gw,
        &token,
        &rpc(
            "tools/call",
            r#"{"name":"echo","arguments":{"message":"ok"}}"#,
        ),
        &[],
    )
    .await;
    assert!(r.text().contains("echo: ok"), "{}", r.text());
}

#[tokio::test]
async fn the_ts_sdk_client_sees_only_permitted_tools_and_gets_403_on_a_denied_call() {
    let server = peers::fastmcp(&[]);
    let issuer = TestIssuer::new(ISS);
    let gw = gateway(&issuer, &server.url, "");
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "mcp:tools weather:read");

    let run = ts_client(&gw.url("/mcp"), &token, &["list-tools"], &[]).assert_exit(0, &[]);
    assert_eq!(
        run.stdout, r#"["echo","get_weather"]"#,
        "filtered tools/list over SSE"
    );
    ts_client(
        &gw.url("/mcp"),
        &token,
        &["call", "get_weather", r#"{"city":"Oslo"}"#],
        &[],
    )
    .assert_exit(0, &[]);
    ts_client(&gw.url("/mcp"), &token, &["call", "admin_reset", "{}"], &[])
        .assert_exit(2, &["403"]);
}

#[tokio::test]
async fn list_filtering_keeps_event_ids_and_cursors() {
    // server-everything answers over SSE with `id:` lines.
    let server = peers::server_everything();
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            &server.url,
            RESOURCE,
            "policy:\n  tools: {echo: [], get-sum: [math], \"get-*\": [extra]}\n  resources:\n    - uri: \"demo://resource/static/document/**\"\n  prompts: {simple-prompt: []}\n",
        )
        .spawn();
    gw.wait_ready().await;
    let token = issuer.token(RESOURCE, "math");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}"#;
    let r = post(&gw, &token, init, &[]).await;
    let session = r.header("mcp-session-id").to_owned();
    assert!(!session.is_empty(), "{}", r.text());
    let h = [("mcp-session-id", session.as_str())];
    post(
        &gw,
        &token,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &h,
    )
    .await
    .assert_status(202, &[]);

    let data = |r: &crate::support::Reply| -> serde_json::Value {
        let text = r.text();
        let line = text
            .lines()
            .find(|l| l.starts_with("data: "))
            .unwrap_or_else(|| panic!("no data line: {text}"));
        serde_json::from_str(&line["data: ".len()..]).unwrap()
    };
    let r = post(&gw, &token, &rpc("tools/list", "{}"), &h)
        .await
        .assert_status(200, &[]);
    assert!(r.header("content-type").starts_with("text/event-stream"));
    assert!(
        r.text().lines().any(|l| l.starts_with("id:")),
        "event id lost: {}",
        r.text()
    );
    let mut names: Vec<String> = data(&r)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["echo", "get-sum"],
        "server-everything tools/list, filtered"
    );

    let r = post(&gw, &token, &rpc("resources/list", "{}"), &h).await;
    let uris: Vec<String> = data(&r)["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uri"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !uris.is_empty()
            && uris
                .iter()
                .all(|u| u.starts_with("demo://resource/static/document/")),
        "{uris:?}"
    );
    let r = post(&gw, &token, &rpc("resources/templates/list", "{}"), &h).await;
    assert_eq!(
        data(&r)["result"]["resourceTemplates"],
        serde_json::json!([])
    );
    let r = post(&gw, &token, &rpc("prompts/list", "{}"), &h).await;
    let listed = data(&r);
    let prompts: Vec<&str> = listed["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, vec!["simple-prompt"]);

    // JSON answers with a cursor (the in-test upstream, which can paginate).
    const PAGE: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"admin_x","inputSchema":{}},{"name":"get-sum","inputSchema":{}}],"nextCursor":"page-2"}}"#;
    let upstream = Upstream::start(Behavior::Fixed("application/json", PAGE)).await;
    let gw2 = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            &upstream.url(),
            RESOURCE,
            "policy:\n  tools: {echo: [], get-sum: [math]}",
        )
        .spawn();
    gw2.wait_ready().await;
    let r = post(
        &gw2,
        &token,
        &rpc("tools/list", r#"{"cursor":"page-1"}"#),
        &[],
    )
    .await;
    assert_eq!(
        r.json(),
        serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"get-sum","inputSchema":{}}],"nextCursor":"page-2"}})
    );
    assert_eq!(r.header("content-length"), r.body.len().to_string());
}

//! Real identity provider, real clients: panva's oidc-provider issues the
//! tokens; the TS SDK client does the whole OAuth dance (401 → protected-
//! resource metadata → AS metadata → dynamic registration → code + PKCE →
//! 403 step-up); the Python SDK client uses a client-credentials token; and
//! opaque tokens go through RFC 7662 introspection at the same provider.

use crate::support::GatewayBuilder;
use crate::support::peers::{self, client_credentials, py_client, ts_client, ts_oauth_client};

/// The route: echo needs the base scope; get-sum needs mcp:admin (step-up).
const POLICY: &str = r#"
scopes_supported: [mcp:tools]
required_scopes: [mcp:tools]
policy:
  tools: {echo: [], get-sum: [mcp:admin]}
  unlisted: allow
"#;

#[tokio::test]
async fn the_ts_sdk_client_discovers_authorizes_and_steps_up_through_the_gateway() {
    let port = crate::support::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let flag_dir = tempfile::tempdir().unwrap();
    let flag = flag_dir.path().join("may-admin");
    let flag_str = flag.display().to_string();
    let idp = peers::oidc_provider(&[&resource], &[("OIDC_ADMIN_FLAG_FILE", &flag_str)]);
    let server = peers::server_everything();
    let gw = GatewayBuilder::new()
        .port(port)
        .issuer_yaml(&format!("  - issuer: {}\n", idp.url))
        .route("/mcp", &server.url, &resource, POLICY)
        .spawn();
    gw.wait_ready().await;

    // The user may not have mcp:admin yet: the allowed call works, the step-up is refused.
    let args = [
        "call",
        "echo",
        r#"{"message":"hi"}"#,
        "then-call",
        "get-sum",
        r#"{"a":1,"b":2}"#,
    ];
    let mut full = vec![resource.as_str()];
    full.extend_from_slice(&args);
    let run = ts_oauth_client(&full);
    assert!(
        run.stdout.contains("RESULT1") && run.stdout.contains("Echo: hi"),
        "TS SDK OAuth client → oidc-provider: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ERROR2") && run.stdout.contains("403"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("AUTH_COUNT 2"),
        "the 403 must trigger a re-authorization: {}",
        run.stdout
    );

    // Now the user may have it: the client re-authorizes with the union of scopes and succeeds.
    std::fs::write(&flag, "yes").unwrap();
    ts_oauth_client(&full).assert_exit(
        0,
        &[
            "RESULT2",
            "The sum of 1 and 2 is 3",
            "SCOPE mcp:admin mcp:tools",
        ],
    );
}

#[tokio::test]
async fn client_credentials_tokens_work_with_the_python_client_and_opaque_ones_are_introspected() {
    let port = crate::support::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let idp = peers::oidc_provider(&[&resource], &[]);
    let server = peers::fastmcp(&[]);
    let issuer = format!(
        "  - issuer: {iss}\n    jwks_uri: {iss}/jwks\n    introspection:\n      endpoint: {iss}/token/introspection\n      client_id: gateway\n      client_secret: gateway-secret\n      cache_ttl: 30s\n",
        iss = idp.url
    );
    let gw = GatewayBuilder::new()
        .port(port)
        .issuer_yaml(&issuer)
        .route(
            "/mcp",
            &server.url,
            &resource,
            "required_scopes: [mcp:tools]",
        )
        .spawn();
    gw.wait_ready().await;

    // A JWT access token bound to the resource (RFC 8707), used by the Python SDK client.
    let jwt = client_credentials(
        &idp.url,
        "cc-jwt",
        "cc-jwt-secret",
        "mcp:tools",
        Some(&resource),
    );
    assert_eq!(jwt.split('.').count(), 3, "expected a JWT: {jwt}");
    py_client(&gw.url("/mcp"), &jwt, &["list-tools"], &[]).assert_exit(0, &["echo"]);
    let run = py_client(
        &gw.url("/mcp"),
        &jwt,
        &["call", "echo", r#"{"message":"cc"}"#],
        &[],
    );
    assert!(run.stdout.contains("echo: cc"), "{}", run.stdout);

    // A JWT for another resource is refused.
    let other = client_credentials(&idp.url, "cc-jwt", "cc-jwt-secret", "mcp:tools", None);
    ts_client(&gw.url("/mcp"), &other, &["list-tools"], &[]).assert_exit(2, &[]);

    // An opaque token bound to the resource goes through RFC 7662 introspection.
    let opaque = client_credentials(
        &idp.url,
        "cc-opaque",
        "cc-opaque-secret",
        "mcp:tools",
        Some(&resource),
    );
    assert_ne!(opaque.split('.').count(), 3, "expected an opaque token");
    ts_client(
        &gw.url("/mcp"),
        &opaque,
        &["call", "echo", r#"{"message":"opaque"}"#],
        &[],
    )
    .assert_exit(0, &[]);

    // Introspection down: a token not yet cached gets 503, never an allow.
    let fresh = client_credentials(
        &idp.url,
        "cc-opaque",
        "cc-opaque-secret",
        "mcp:tools",
        Some(&resource),
    );
    drop(idp);
    let r = gw
        .post(
            "/mcp",
            &format!("Bearer {fresh}"),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await
        .assert_status(503, &[]);
    assert!(!r.header("retry-after").is_empty());
}

#[tokio::test]
async fn sdk_demo_server_tokens_are_introspected_and_the_inspector_cli_calls_a_tool() {
    let port = crate::support::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let demo = peers::sdk_demo_as(&resource);
    let server = peers::server_everything();
    let issuer = format!(
        "  - issuer: {iss}\n    introspection: {{endpoint: {iss}introspect, client_id: gateway, client_secret: unused-secret}}\n",
        iss = demo.url
    );
    let gw = GatewayBuilder::new()
        .port(port)
        .issuer_yaml(&issuer)
        .route(
            "/mcp",
            &server.url,
            &resource,
            &format!(
                "authorization_servers: [\"{}\"]\nscopes_supported: [mcp:tools]",
                demo.url
            ),
        )
        .spawn();
    gw.wait_ready().await;

    let token = peers::sdk_demo_token(&demo.url, &resource, "mcp:tools");
    peers::inspector_cli(&gw.url("/mcp"), &token, "echo", &["message=inspected"])
        .assert_exit(0, &["Echo: inspected"]);

    // The demo answers an unknown token with 401 {"active": false}: an explicit
    // verdict, so the client gets 401 invalid_token, not 503.
    ts_client(&gw.url("/mcp"), "not-a-real-token", &["list-tools"], &[]).assert_exit(2, &["401"]);
    // No token at all: the Inspector reports that authorization is required.
    peers::inspector_cli(&gw.url("/mcp"), "", "echo", &["message=x"]).assert_exit(3, &[]);
}

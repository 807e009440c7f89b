//! RFC 9728 protected-resource metadata, health and readiness.

use crate::support::{GatewayBuilder, TestIssuer, send};
use crate::{ISS, RESOURCE};

#[tokio::test]
async fn metadata_is_served_at_the_suffixed_and_root_paths() {
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route(
            "/mcp",
            "http://127.0.0.1:9/mcp",
            RESOURCE,
            "scopes_supported: [mcp:tools, mcp:read]\nresource_name: Demo",
        )
        .route(
            "/other",
            "http://127.0.0.1:9/mcp",
            "https://other.example.test/other",
            "",
        )
        .spawn();

    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = send("GET", &gw.url(path), &[], "").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").starts_with("application/json"));
        assert!(r.header("cache-control").contains("max-age="), "{path}");
        assert_eq!(
            r.json(),
            serde_json::json!({
                "resource": RESOURCE,
                "authorization_servers": [ISS],
                "scopes_supported": ["mcp:tools", "mcp:read"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Demo",
            }),
            "{path}"
        );
    }

    // The second route has its own document; empty fields are omitted.
    let r = send(
        "GET",
        &gw.url("/.well-known/oauth-protected-resource/other"),
        &[],
        "",
    )
    .await
    .assert_status(200, &[]);
    let doc = r.json();
    assert_eq!(doc["resource"], "https://other.example.test/other");
    assert!(doc.get("scopes_supported").is_none());

    send(
        "GET",
        &gw.url("/.well-known/oauth-protected-resource/nope"),
        &[],
        "",
    )
    .await
    .assert_status(404, &[]);
    send(
        "POST",
        &gw.url("/.well-known/oauth-protected-resource/mcp"),
        &[],
        "",
    )
    .await
    .assert_status(405, &[]);
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", "http://127.0.0.1:9/mcp", RESOURCE, "")
        .spawn();
    assert_eq!(send("GET", &gw.url("/healthz"), &[], "").await.status, 200);
    gw.wait_ready().await;
}

#[tokio::test]
async fn keys_on_disk_are_loaded_before_the_gateway_listens() {
    let issuer = TestIssuer::new(ISS);
    let gw = GatewayBuilder::new()
        .issuer(&issuer)
        .route("/mcp", "http://127.0.0.1:9/mcp", RESOURCE, "")
        .spawn();
    // No waiting: the startup line is printed after the file was read.
    assert_eq!(send("GET", &gw.url("/readyz"), &[], "").await.status, 200);
}

#[tokio::test]
async fn readiness_fails_while_an_issuers_keys_are_missing() {
    let gw = GatewayBuilder::new()
        .issuer_yaml(&format!(
            "  - issuer: {ISS}\n    jwks_file: /nonexistent/jwks.json\n"
        ))
        .route("/mcp", "http://127.0.0.1:9/mcp", RESOURCE, "")
        .spawn();
    assert_eq!(send("GET", &gw.url("/healthz"), &[], "").await.status, 200);
    assert_eq!(send("GET", &gw.url("/readyz"), &[], "").await.status, 503);
}

//! Test harness: the gateway as a real process, a test issuer, HTTP helpers,
//! an in-test recording upstream, and the real MCP peers from npm and PyPI.

#![expect(
    dead_code,
    reason = "helpers kept for tests that use only part of the harness"
)]

pub mod gateway;
pub mod http;
pub mod issuer;
pub mod peers;
pub mod upstream;

pub use gateway::{Gateway, GatewayBuilder};
pub use http::{Reply, send};
pub use issuer::TestIssuer;

/// A free loopback port, for peers that cannot report the port they bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repository root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The usual set-up: the test issuer, an in-test upstream with `behavior`, and
/// a ready gateway with one `/mcp` route (plus `route_extra` YAML under the
/// route and `top_extra` YAML at the top level).
pub async fn start(
    behavior: upstream::Behavior,
    route_extra: &str,
    top_extra: &str,
) -> (TestIssuer, upstream::Upstream, Gateway) {
    let issuer = TestIssuer::new(crate::ISS);
    let upstream = upstream::Upstream::start(behavior).await;
    let mut builder = GatewayBuilder::new().issuer(&issuer).route(
        "/mcp",
        &upstream.url(),
        crate::RESOURCE,
        route_extra,
    );
    if !top_extra.is_empty() {
        builder = builder.extra(top_extra);
    }
    let gw = builder.spawn();
    gw.wait_ready().await;
    (issuer, upstream, gw)
}

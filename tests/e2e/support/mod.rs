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

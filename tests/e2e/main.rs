//! End-to-end tests: the gateway binary as a real process, in front of real
//! MCP servers (npm `server-everything`, PyPI `mcp`), driven by real MCP
//! clients (TS and Python SDKs), plus an in-test upstream where a test must
//! see exactly what reached the upstream.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: a failed set-up step must fail the test loudly"
)]
#![expect(
    unreachable_pub,
    clippy::let_underscore_must_use,
    reason = "one test crate: `pub` marks the harness API; killing a finished peer may fail harmlessly"
)]

mod support;

mod adversarial;
mod authn;
mod authserver;
mod check;
mod differential;
mod forward;
mod hardening;
mod idp_shapes;
mod interop;
mod metadata;
mod oauth;
mod operations;
mod policy;
mod timeouts;
mod tracing;
mod uri_whatwg;
mod versions;

/// The issuer every test trusts.
pub const ISS: &str = "https://issuer.example.test";
/// The canonical resource of the `/mcp` route.
pub const RESOURCE: &str = "https://mcp.example.test/mcp";
/// Its metadata URL as challenges must state it.
pub const PRM_URL: &str = "https://mcp.example.test/.well-known/oauth-protected-resource/mcp";

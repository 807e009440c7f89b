//! Deployment artifacts under `deploy/`: the Kubernetes sidecar example, the
//! Helm chart and the Dockerfile. They parse, the gateway configs they carry
//! pass `mcp-auth-gateway check`, and they have the properties a production pod
//! needs (probes, non-root, read-only root, drain time, TLS, loopback upstream).
//!
//! A test target of its own, apart from `tests/e2e`: it starts no gateway and
//! no peer. The chart is checked statically (`chart/`) and rendered only by
//! the real `helm`. `helm` and `hadolint` are used when installed (PATH, or
//! `tests/peers/.venv/bin`); set `MCP_GATEWAY_REQUIRE_LINTERS=1` to fail
//! instead of skipping without them. deploy/README.md lists what each test
//! checks.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a missing file or key must fail the test loudly"
)]

mod chart;
mod dockerfile;
mod grafana;
mod kubernetes;
mod support;

/// The plain Kubernetes manifests, under `deploy/`.
const SIDECAR: &str = "kubernetes/sidecar.yaml";
/// The Helm chart, under `deploy/`.
const CHART: &str = "helm/mcp-auth-gateway";
/// The standalone example values, under `deploy/`.
const EXAMPLE: &str = "helm/examples/standalone-values.yaml";
/// Where every manifest mounts the gateway's config directory.
const CONFIG_DIR: &str = "/etc/mcp-auth-gateway";

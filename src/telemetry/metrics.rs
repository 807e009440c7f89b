//! Prometheus metrics (`prometheus-client`), served on the admin listener.
//!
//! Label values come only from config (route paths, issuers) or from a fixed
//! list (MCP method names, decisions), never from raw client input, so a
//! client cannot create unbounded series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::mcp::KNOWN_METHODS;

/// Labels of `mcp_gateway_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route path, or `none`.
    pub route: String,
    /// JSON-RPC method (bounded set), `batch`, `response`, or the HTTP method for GET/DELETE.
    pub method: String,
    /// `allow`, `deny`, or `reject` (refused before authorization).
    pub decision: String,
    /// HTTP status.
    pub status: u16,
}

/// Labels of per-route histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route path.
    pub route: String,
}

/// Labels of `mcp_gateway_authorization_server_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthServerLabels {
    /// `register`, `authorize`, `token`, `revoke`.
    pub event: &'static str,
    /// What happened (a fixed set, see docs/authorization-server.md).
    pub outcome: &'static str,
}

/// Labels of `mcp_gateway_redis_up`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisLabels {
    /// `limits` (shared_state) or `store` (the authorization server's).
    pub role: &'static str,
}

/// Labels of `mcp_gateway_jwks_fetches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    /// Issuer.
    pub issuer: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method, decision and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time the gateway itself spent before forwarding (seconds).
    pub gateway_seconds: Family<RouteLabels, Histogram>,
    /// Time the upstream took to send response headers (seconds).
    pub upstream_seconds: Family<RouteLabels, Histogram>,
    /// SSE streams currently open through the gateway.
    pub open_streams: Gauge,
    /// JWKS (and metadata) fetches by issuer and result.
    pub jwks_fetches: Family<FetchLabels, Counter>,
    /// Verified-token cache hits.
    pub token_cache_hits: Counter,
    /// Verified-token cache misses (full verification).
    pub token_cache_misses: Counter,
    /// Config reloads by result.
    pub reloads: Family<Vec<(String, String)>, Counter>,
    /// Redis reachability by role.
    pub redis_up: Family<RedisLabels, Gauge>,
    /// Built-in authorization server decisions by event and outcome.
    pub auth_server: Family<AuthServerLabels, Counter>,
}

fn histogram() -> Histogram {
    // 10 µs … ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 2.5, 16))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let gateway_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let upstream_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let open_streams = Gauge::default();
        let jwks_fetches = Family::<FetchLabels, Counter>::default();
        let token_cache_hits = Counter::default();
        let token_cache_misses = Counter::default();
        let reloads = Family::<Vec<(String, String)>, Counter>::default();
        let auth_server = Family::<AuthServerLabels, Counter>::default();
        let redis_up = Family::<RedisLabels, Gauge>::default();
        registry.register(
            "redis_up",
            "Whether the last command to Redis succeeded (1) or failed (0), by role",
            redis_up.clone(),
        );
        registry.register(
            "authorization_server_events",
            "Built-in authorization server decisions: sign-ins, refusals, tokens issued and refreshed",
            auth_server.clone(),
        );
        registry.register(
            "requests",
            "Requests by route, JSON-RPC method, decision and status",
            requests.clone(),
        );
        registry.register(
            "gateway_duration_seconds",
            "Time spent in the gateway before forwarding",
            gateway_seconds.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time until the upstream's response headers",
            upstream_seconds.clone(),
        );
        registry.register(
            "open_streams",
            "SSE streams currently open",
            open_streams.clone(),
        );
        registry.register(
            "jwks_fetches",
            "JWKS and metadata fetches by result",
            jwks_fetches.clone(),
        );
        registry.register(
            "token_cache_hits",
            "Verified-token cache hits",
            token_cache_hits.clone(),
        );
        registry.register(
            "token_cache_misses",
            "Verified-token cache misses",
            token_cache_misses.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        Self {
            registry,
            requests,
            gateway_seconds,
            upstream_seconds,
            open_streams,
            jwks_fetches,
            token_cache_hits,
            token_cache_misses,
            reloads,
            auth_server,
            redis_up,
        }
    }

    /// The gauge that says whether Redis answers, for one role.
    pub fn redis_gauge(&self, role: &'static str) -> Gauge {
        self.redis_up.get_or_create(&RedisLabels { role }).clone()
    }

    /// Counts one decision of the built-in authorization server.
    pub fn auth_server_event(&self, event: &'static str, outcome: &'static str) {
        self.auth_server
            .get_or_create(&AuthServerLabels { event, outcome })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).ok();
        out
    }

    /// Counts one JWKS fetch.
    pub fn jwks_fetch(&self, issuer: &str, ok: bool) {
        self.jwks_fetches
            .get_or_create(&FetchLabels {
                issuer: issuer.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A method name safe to use as a label value.
pub fn method_label(method: &str) -> &str {
    if KNOWN_METHODS.contains(&method) {
        method
    } else {
        "other"
    }
}

/// The HTTP method as a label: the standard ones by name, any other token
/// (hyper accepts any) as `other`, so a client cannot create series.
pub fn http_method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Decrements the open-streams gauge when dropped.
pub struct StreamGauge(Gauge);

impl StreamGauge {
    /// Increments `gauge` until the returned guard is dropped.
    pub fn open(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_and_bounded_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/mcp".into(),
                method: method_label("tools/call").into(),
                decision: "allow".into(),
                status: 200,
            })
            .inc();
        m.jwks_fetch("https://as", false);
        let guard = StreamGauge::open(&m.open_streams);
        let text = m.encode();
        assert!(text.contains(r#"mcp_gateway_requests_total{route="/mcp",method="tools/call",decision="allow",status="200"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"mcp_gateway_jwks_fetches_total{issuer="https://as",result="error"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("mcp_gateway_open_streams 1"), "{text}");
        drop(guard);
        assert!(m.encode().contains("mcp_gateway_open_streams 0"));
        assert_eq!(method_label("evil\"label"), "other");
    }

    #[test]
    fn a_request_refused_before_its_body_never_names_a_series_after_its_method() {
        let m = Metrics::new();
        for method in ["GET", "FOO1", "FOO2", "get", "DELETE"] {
            let method = http::Method::from_bytes(method.as_bytes()).unwrap();
            m.record_request(&crate::telemetry::request::RequestEvent {
                method: &method,
                path: "/mcp",
                route: Some("/mcp"),
                rpc_method: "",
                sub: None,
                client_id: None,
                refusal: Some(("reject", "method not allowed".into())),
                started: std::time::Instant::now(),
                status: http::StatusCode::METHOD_NOT_ALLOWED,
            });
        }
        let text = m.encode();
        assert!(!text.contains("FOO"), "{text}");
        assert!(
            text.contains(r#"method="other",decision="reject",status="405"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"method="GET""#), "{text}");
    }
}

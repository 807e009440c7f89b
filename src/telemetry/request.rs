//! The one structured event per request (target `mcp_auth_gateway::request`)
//! and its metrics. The orchestrator says what happened; this file says how
//! it is logged and counted. Never tokens, never bodies.

use std::time::Instant;

use http::{Method, StatusCode};

use super::metrics::{self, Metrics, RequestLabels, RouteLabels};

/// What one request's log event records.
pub struct RequestEvent<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The request path.
    pub path: &'a str,
    /// The route's path, when the request reached one.
    pub route: Option<&'a str>,
    /// The JSON-RPC method (`batch` for several, empty for none).
    pub rpc_method: &'a str,
    /// The caller's `sub`, when authenticated.
    pub sub: Option<&'a str>,
    /// The caller's client, when authenticated.
    pub client_id: Option<&'a str>,
    /// `(decision, reason)` of a refusal: `deny` for policy and scope
    /// refusals, `reject` for everything else.
    pub refusal: Option<(&'static str, String)>,
    /// When the request arrived.
    pub started: Instant,
    /// The status sent.
    pub status: StatusCode,
}

impl Metrics {
    /// Records the time a request on `route` spent in the gateway before it
    /// was forwarded.
    pub fn observe_gateway(&self, route: &str, started: Instant) {
        let labels = RouteLabels {
            route: route.to_owned(),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.gateway_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Records the time `route`'s upstream took to send response headers.
    pub fn observe_upstream(&self, route: &str, started: Instant) {
        let labels = RouteLabels {
            route: route.to_owned(),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.upstream_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Counts the request and writes its log event.
    pub fn record_request(&self, e: &RequestEvent<'_>) {
        let latency_us = u64::try_from(e.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let decision = e.refusal.as_ref().map_or("allow", |(d, _)| *d);
        self.requests
            .get_or_create(&RequestLabels {
                route: e.route.unwrap_or("none").to_owned(),
                method: if e.rpc_method.is_empty() {
                    metrics::http_method_label(e.method).to_owned()
                } else {
                    metrics::method_label(e.rpc_method).to_owned()
                },
                decision: decision.to_owned(),
                status: e.status.as_u16(),
            })
            .inc();
        let (route, path, rpc_method) = (e.route, e.path, e.rpc_method);
        let (sub, client_id, status) = (e.sub, e.client_id, e.status.as_u16());
        match &e.refusal {
            None => tracing::info!(
                target: "mcp_auth_gateway::request",
                route, http.method = %e.method, path, rpc.method = rpc_method, status, latency_us, sub, client_id,
                "request"
            ),
            Some((decision, reason)) => tracing::info!(
                target: "mcp_auth_gateway::request",
                route, http.method = %e.method, path, rpc.method = rpc_method, status, latency_us, sub, client_id,
                decision, reason = %reason,
                "request rejected"
            ),
        }
    }
}

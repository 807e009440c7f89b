//! The request path's spans, for OpenTelemetry (`traces.rs`). With tracing
//! off, every function here is a load of one flag and returns
//! `Span::none()` or does nothing: the request path allocates no span but
//! the `request` span it always had (its id is in every log line).
//!
//! Names and attributes follow the OpenTelemetry semantic conventions for
//! HTTP servers and clients and for MCP (`mcp.method.name`,
//! `gen_ai.tool.name`, `mcp.protocol.version`, `mcp.session.id`,
//! `jsonrpc.request.id`). Never a token, a secret or tool arguments.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static ON: AtomicBool = AtomicBool::new(false);

/// Marks tracing on (once the layer is installed).
pub(super) fn turn_on() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The span of one request, and its id for logs and `x-request-id`: with
/// tracing on, a server span that continues the client's `traceparent`
/// (when it sent one), whose trace id is the request id, named after the
/// route (`POST /mcp`; the method alone off any route: the raw path is the
/// client's text, an attribute, never a name); else the plain `request`
/// span with `fallback`.
pub fn request(
    method: &http::Method,
    route: Option<&str>,
    headers: &HeaderMap,
    fallback: impl FnOnce() -> String,
) -> (Span, String) {
    if !enabled() {
        let id = fallback();
        return (tracing::info_span!("request", request_id = %id), id);
    }
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = name.as_str(),
        otel.kind = "server",
        request_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let parent =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if let Err(e) = span.set_parent(parent) {
        // Only when no OpenTelemetry layer is installed: then the span is a root.
        tracing::debug!(error = %e, "trace context not continued");
    }
    // The span starts here (its name and parent are fixed from now on).
    let cx = span.context();
    let context = cx.span().span_context().clone();
    let id = context.trace_id().to_string();
    span.record("request_id", id.as_str());
    // A client that sends a traceparent chooses the trace id (and so the
    // request id); the span id is the gateway's own, unique per request.
    span.record("span_id", context.span_id().to_string().as_str());
    span.set_attribute("http.request.method", method.to_string());
    if let Some(route) = route {
        span.set_attribute("http.route", route.to_owned());
    }
    (span, id)
}

/// The request's URL as attributes of the current (request) span, once it
/// is known to be on a route.
pub fn url(path: &str, scheme: &'static str) {
    if enabled() {
        let span = Span::current();
        span.set_attribute("url.path", path.to_owned());
        span.set_attribute("url.scheme", scheme);
    }
}

/// A child span for one stage of the request (`authenticate`, `authorize`,
/// `filter`…).
pub fn stage(name: &'static str) -> Span {
    if enabled() {
        tracing::info_span!("stage", otel.name = name)
    } else {
        Span::none()
    }
}

/// The span of the call to the upstream (kind client, named by the method).
pub fn upstream(
    method: &http::Method,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!("forward", otel.name = %method, otel.kind = "client");
    span.set_attribute("http.request.method", method.to_string());
    if let Ok(authority) = authority.parse::<http::uri::Authority>() {
        span.set_attribute("server.address", authority.host().to_owned());
        let default = if scheme == "https" { 443 } else { 80 };
        span.set_attribute(
            "server.port",
            i64::from(authority.port_u16().unwrap_or(default)),
        );
    }
    // No query: it could carry something the operator did not mean to export.
    let path = path_and_query.split('?').next().unwrap_or_default();
    span.set_attribute("url.full", format!("{scheme}://{authority}{path}"));
    span
}

/// Replaces the request's trace context headers with `span`'s, so the
/// upstream's spans are its children. With tracing off the client's headers
/// pass through untouched.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(
        &span.context(),
        &mut opentelemetry_http::HeaderInjector(headers),
    );
}

/// The request's MCP headers as attributes of the current (request) span:
/// `mcp.protocol.version`, and `mcp.session.id` (the id the client holds,
/// bound to its principal).
pub fn headers(headers: &HeaderMap) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(version) = text("mcp-protocol-version") {
        span.set_attribute("mcp.protocol.version", version);
    }
    if let Some(session) = text("mcp-session-id") {
        span.set_attribute("mcp.session.id", session);
    }
}

/// Links `span` to the trace context a 2026-07-28 client put in the
/// request's `params._meta.traceparent` (SEP-414), when it is valid and not
/// already the span's own trace. A link, not a parent: the body is read
/// after the span has started (the token is checked first).
pub fn link_meta(span: &Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let linked = TraceContextPropagator::new().extract(&carrier);
    let linked = linked.span().span_context().clone();
    if linked.is_valid() && linked.trace_id() != span.context().span().span_context().trace_id() {
        span.add_link(linked);
    }
}

/// Sets an attribute (string, integer or boolean).
pub fn attribute(span: &Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    if enabled() {
        span.set_attribute(key, value);
    }
}

/// Records the status a span's request got: `http.response.status_code`,
/// and for 5xx an error status (the semantic conventions leave 4xx of a
/// server unset; refusals are marked by [`super::traces::DECISION`]).
pub fn status(span: &Span, status: http::StatusCode) {
    if !enabled() {
        return;
    }
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_attribute("error.type", status.as_str().to_owned());
        span.set_status(opentelemetry::trace::Status::error(
            status.canonical_reason().unwrap_or("server error"),
        ));
    }
}

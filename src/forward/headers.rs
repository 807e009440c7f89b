//! Stage 7a: the header rewrite between client and upstream.
//!
//! Upstream requests lose hop-by-hop headers (RFC 9110 §7.6.1), the client's
//! `Authorization` (the MCP spec forbids token passthrough) and any client-sent
//! `Forwarded`/`X-Forwarded-*` (they would be spoofable); they gain `Host` set
//! to the upstream's own authority (localhost-bound SDK servers reject foreign
//! hosts) and fresh `X-Forwarded-*`. MCP headers (`Mcp-Session-Id`,
//! `MCP-Protocol-Version`, `Last-Event-ID`, `Mcp-Method`, `Mcp-Name`,
//! `Mcp-Param-*`) pass untouched.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{ClientConn, ForwardError};
use crate::authn::Principal;
use crate::config::Route;

/// Hop-by-hop headers, always removed in both directions.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers some frameworks read as the request's real path or method; the
/// gateway judged the path and method it saw, so none of them is forwarded.
const OVERRIDES: [&str; 7] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
];

/// Headers the gateway sets itself on upstream requests.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// The upstream request headers for a client request.
///
/// A header name with `_` is dropped, as nginx does by default: CGI-style
/// servers read `X_MCP_Subject` as `X-MCP-Subject`, so an underscore twin
/// would slip past every header the gateway strips or sets. The body is
/// described by the canonical `Content-Type: application/json` (when there
/// is one) and never by the client's `Content-Type` or `Content-Encoding`:
/// the gateway read it as UTF-8 JSON, and so must the upstream
/// (jsonrpc/media.rs).
pub fn upstream_request(
    client: &HeaderMap,
    route: &Route,
    conn: ClientConn,
    has_body: bool,
) -> Result<HeaderMap, ForwardError> {
    let mut out = HeaderMap::with_capacity(client.len() + 4);
    let named_in_connection = connection_tokens(client);
    for (name, value) in client {
        let drop = HOP_BY_HOP.contains(name)
            || name.as_str().contains('_')
            || OVERRIDES.contains(&name.as_str())
            || *name == header::CONTENT_TYPE
            || *name == header::CONTENT_ENCODING
            || *name == header::CONTENT_LENGTH
            || *name == header::UPGRADE
            // The gateway answered any 100-continue itself and has the body.
            || *name == header::EXPECT
            || *name == header::HOST
            || *name == header::AUTHORIZATION
            || *name == header::FORWARDED
            || *name == X_FORWARDED_FOR
            || *name == X_FORWARDED_PROTO
            || *name == X_FORWARDED_HOST
            || named_in_connection
                .iter()
                .any(|t| name.as_str().eq_ignore_ascii_case(t));
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| ForwardError::Build(e.to_string()));
    out.insert(header::HOST, value(&route.upstream.authority)?);
    out.insert(X_FORWARDED_FOR, value(&conn.peer.ip().to_string())?);
    out.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(host) = client.get(header::HOST) {
        out.insert(X_FORWARDED_HOST, host.clone());
    }
    if has_body {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(out)
}

/// Route-specific upstream headers, applied after authorization: client-sent
/// copies of the identity headers are always removed first (they would be
/// spoofable), then the verified identity and the static `upstream_headers`
/// are set.
pub fn add_identity(headers: &mut HeaderMap, route: &Route, principal: &Principal) {
    let fi = &route.forward_identity;
    for name in fi.names() {
        headers.remove(name);
    }
    let mut set = |name: &Option<HeaderName>, value: Option<String>| {
        if let (Some(name), Some(value)) = (name, value) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), v);
            }
        }
    };
    set(&fi.subject, principal.subject.clone());
    // Only RFC 6749 scope-tokens: an array entry `"b c"` is one scope to the
    // gateway and must not become two to the upstream.
    let scopes: Vec<&str> = principal
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| {
            s.bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        })
        .collect();
    set(&fi.scopes, Some(scopes.join(" ")));
    set(&fi.client_id, principal.client_id.clone());
    set(&fi.issuer, Some(principal.issuer.clone()));
    for (name, value) in &route.upstream_headers {
        headers.insert(name.clone(), value.clone());
    }
}

/// Rewrites upstream response headers in place for the client.
pub fn downstream_response(headers: &mut HeaderMap) {
    for name in connection_tokens(headers) {
        headers.remove(name.as_str());
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if is_event_stream(headers) {
        // Tell any buffering proxy in front of us (nginx) to pass events through.
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
}

/// Whether a response is an SSE stream (`text/event-stream`).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// The upstream path: the configured path, plus the client's query string
/// when the configured URL has none.
pub fn upstream_path(configured: &str, client_query: Option<&str>) -> String {
    match client_query {
        Some(q) if !q.is_empty() && !configured.contains('?') => format!("{configured}?{q}"),
        _ => configured.to_owned(),
    }
}

fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn route() -> std::sync::Arc<Route> {
        let yaml = r#"
issuers: [{issuer: "https://as.example.com", jwks_uri: "https://as.example.com/jwks"}]
routes: [{path: /mcp, upstream: "http://127.0.0.1:3001/mcp", resource: "https://gw.example.com/mcp"}]
"#;
        Config::from_yaml(yaml, Path::new(".")).unwrap().0.routes[0].clone()
    }

    #[test]
    fn strips_credentials_hop_by_hop_and_spoofed_forwarding() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer secret"),
            ("host", "gw.example.com"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("x-forwarded-for", "6.6.6.6"),
            ("mcp-session-id", "abc"),
            ("mcp-protocol-version", "2025-06-18"),
            ("last-event-id", "42"),
            ("mcp-param-region", "eu"),
            ("accept", "application/json, text/event-stream"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let conn = ClientConn {
            peer: "10.0.0.7:5555".parse().unwrap(),
            tls: true,
        };
        let out = upstream_request(&h, &route(), conn, false).unwrap();
        assert!(out.get("authorization").is_none());
        assert!(out.get("x-custom-hop").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out["host"], "127.0.0.1:3001");
        assert_eq!(out["x-forwarded-for"], "10.0.0.7");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-forwarded-host"], "gw.example.com");
        for kept in [
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-param-region",
            "accept",
        ] {
            assert_eq!(out[kept], h[kept], "{kept}");
        }
    }

    #[test]
    fn underscore_twins_overrides_and_body_headers_are_not_forwarded() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x_mcp_subject", "admin"),
            ("authorization_", "x"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("content-type", "application/json; charset=utf-7"),
            ("content-encoding", "gzip"),
            ("content-length", "99"),
            ("x-custom", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let conn = ClientConn {
            peer: "10.0.0.7:5555".parse().unwrap(),
            tls: false,
        };
        let out = upstream_request(&h, &route(), conn, true).unwrap();
        for gone in [
            "x_mcp_subject",
            "authorization_",
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "content-encoding",
            "content-length",
        ] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-custom"], "kept");
        let out = upstream_request(&h, &route(), conn, false).unwrap();
        assert!(out.get("content-type").is_none());
    }

    #[test]
    fn sse_responses_disable_proxy_buffering() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        downstream_response(&mut h);
        assert_eq!(h["x-accel-buffering"], "no");
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
    }

    #[test]
    fn query_passes_unless_configured() {
        assert_eq!(upstream_path("/mcp", Some("a=1")), "/mcp?a=1");
        assert_eq!(upstream_path("/mcp?x=1", Some("a=1")), "/mcp?x=1");
        assert_eq!(upstream_path("/mcp", None), "/mcp");
    }
}

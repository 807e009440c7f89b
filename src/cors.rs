//! Route guard: `Origin` validation (DNS-rebinding defence required by the MCP
//! transport spec) and CORS for browser-based MCP clients.
//!
//! Runs right after route lookup, before authentication: a present `Origin`
//! that is neither the route's own (the origin of its `resource`: a web
//! client served from the gateway's host, which no DNS-rebinding attack can
//! produce) nor listed in `allowed_origins` is refused outright. Requests
//! without `Origin` (native clients) pass. Preflights for allowed origins are answered
//! here and never reach the upstream.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::config::Route;

/// Request headers a browser client may send.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Mcp-Method, Mcp-Name";
/// Response headers a browser client may read.
const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";

/// The request's `Origin` when the route allows it, `None` when there is none;
/// a present origin the route does not list is refused.
pub fn check(route: &Route, headers: &HeaderMap) -> Result<Option<HeaderValue>, OriginNotAllowed> {
    let mut values = headers.get_all(ORIGIN).iter();
    let Some(origin) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OriginNotAllowed);
    }
    let allowed = origin.to_str().ok().is_some_and(|o| {
        route.resource_origin.eq_ignore_ascii_case(o)
            || route
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o))
    });
    if allowed {
        Ok(Some(origin.clone()))
    } else {
        Err(OriginNotAllowed)
    }
}

/// A present `Origin` the route does not allow (403; `reject.rs` answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("origin not allowed")]
pub struct OriginNotAllowed;

/// The answer to a CORS preflight from an allowed origin.
pub fn preflight(origin: HeaderValue) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    decorate(&mut resp, origin);
    resp
}

/// Lets an allowed origin read `resp` (including a 401's challenge).
pub fn decorate(resp: &mut Response<Body>, origin: HeaderValue) {
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    h.append(VARY, HeaderValue::from_static("Origin"));
}

//! Stage 3: what the gateway answers itself, with no token: RFC 9728
//! protected-resource metadata, `/healthz` and `/readyz`.
//!
//! The metadata's `resource` is always the configured canonical URI, never
//! derived from the request: a wrong `resource` is the most common way a
//! gateway breaks OAuth discovery. Fields are only those RFC 9728 defines, and
//! empty ones are omitted.

use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Serialize;

use crate::body::{self, Body};
use crate::config::{Config, Route};

/// The RFC 9728 well-known prefix.
pub use crate::config::PRM_PREFIX;

/// Why a well-known request is refused (`reject.rs` answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WellKnownError {
    /// A well-known path the gateway does not serve.
    #[error("no such well-known document")]
    NotFound,
    /// A method other than GET (or HEAD) on a well-known path.
    #[error("method not allowed")]
    MethodNotAllowed,
}

/// How long clients may cache the metadata.
const METADATA_MAX_AGE: &str = "public, max-age=3600";

/// RFC 9728 §2 protected-resource metadata.
#[derive(Serialize)]
struct Metadata<'a> {
    resource: &'a str,
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    scopes_supported: &'a [String],
    bearer_methods_supported: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<&'a str>,
}

/// What `/readyz` reports.
pub struct Readiness {
    /// SIGTERM was received: the gateway is draining.
    pub draining: bool,
    /// Every issuer has a usable key set.
    pub keys: bool,
    /// Each Redis connection in use (`limits`, `store`) and whether its last
    /// command or probe succeeded (admin listener only). Reported, never a
    /// reason to fail: the proxy keeps working without Redis (see README,
    /// "Running several replicas").
    pub redis: Vec<(&'static str, bool)>,
}

impl Readiness {
    /// Without the Redis lines: for the public listener, where they would
    /// tell anyone when the shared limits have fallen back to per-replica
    /// ones. The admin listener shows them.
    pub fn public(mut self) -> Self {
        self.redis.clear();
        self
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        !self.draining && self.keys
    }

    fn page(&self) -> Response<Body> {
        let mut body = String::from(match (self.draining, self.keys) {
            (true, _) => "not ready: draining (SIGTERM)\n",
            (false, false) => "not ready: signing keys not loaded for every issuer\n",
            (false, true) => "ready\n",
        });
        for (role, up) in &self.redis {
            let state = if *up { "up" } else { "down" };
            body.push_str(&format!("redis {role}: {state}\n"));
        }
        let status = if self.ready() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        text(status, body)
    }
}

/// Answers `/.well-known/…`, `/healthz` and `/readyz`; `None` for every other path.
pub fn respond(
    method: &Method,
    path: &str,
    config: &Config,
    readiness: impl FnOnce() -> Readiness,
) -> Option<Result<Response<Body>, WellKnownError>> {
    let kind = if path == "/healthz" {
        Page::Health
    } else if path == "/readyz" {
        Page::Ready
    } else if let Some(route) = metadata_route(path, config) {
        Page::Metadata(route)
    } else if path.starts_with("/.well-known/") {
        return Some(Err(WellKnownError::NotFound));
    } else {
        return None;
    };
    if method != Method::GET && method != Method::HEAD {
        return Some(Err(WellKnownError::MethodNotAllowed));
    }
    Some(Ok(match kind {
        Page::Health => text(StatusCode::OK, "ok\n"),
        Page::Ready => readiness().page(),
        Page::Metadata(route) => metadata(route),
    }))
}

enum Page<'a> {
    Health,
    Ready,
    Metadata(&'a Route),
}

/// The route whose metadata lives at `path`. The root document belongs to the
/// first route; each route also answers at its RFC 9728 path (built from its
/// `resource`) and at the well-known prefix + its public path.
fn metadata_route<'a>(path: &str, config: &'a Config) -> Option<&'a Route> {
    let suffix = path.strip_prefix(PRM_PREFIX)?;
    if suffix.is_empty() {
        return config.routes.first().map(AsRef::as_ref);
    }
    config
        .routes
        .iter()
        .find(|r| r.metadata_path == path || r.path == suffix)
        .map(AsRef::as_ref)
}

fn metadata(route: &Route) -> Response<Body> {
    let doc = Metadata {
        resource: &route.resource,
        authorization_servers: &route.authorization_servers,
        scopes_supported: &route.scopes_supported,
        bearer_methods_supported: ["header"],
        resource_name: route.resource_name.as_deref(),
        resource_documentation: route.resource_documentation.as_deref(),
    };
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    let mut resp = Response::new(body::full(json));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(METADATA_MAX_AGE));
    // Public document; browser-based MCP clients fetch it cross-origin.
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

fn text(status: StatusCode, msg: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(body::full(msg));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The absolute metadata URL for challenges on `route`. It is built from the
/// configured `resource`'s origin, or, when the route opts in, from
/// `X-Forwarded-Proto`/`X-Forwarded-Host` set by a trusted front proxy.
pub fn metadata_url(route: &Route, headers: &HeaderMap) -> String {
    if route.trust_forwarded_headers {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or(v).trim())
                .filter(|v| {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                })
        };
        if let (Some(proto @ ("http" | "https")), Some(host)) =
            (get("x-forwarded-proto"), get("x-forwarded-host"))
        {
            return format!("{proto}://{host}{}", route.metadata_path);
        }
    }
    format!("{}{}", route.resource_origin, route.metadata_path)
}

//! Errors → HTTP. The only place that builds error responses.
//!
//! Every rejection maps to one documented status and a short, stable JSON body
//! (`{"error", "error_description"}`) that never echoes token contents.
//! Challenges follow RFC 6750 §3 and the MCP authorization spec: every value
//! quoted, no `"` or `\` inside a value (scopes are validated at load), and a
//! fixed parameter order so the header is byte-identical for the same request.

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::authn::AuthnError;
use crate::authz::{Denied, DenyMode};
use crate::body::{self, Body};
use crate::forward::ForwardError;
use crate::jsonrpc::media::MediaError;
use crate::jsonrpc::{JsonRpcError, Target};
use crate::throttle::Throttled;

/// Why the gateway refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No route has this path.
    #[error("no route for this path")]
    NoRoute,
    /// The route exists but not for this HTTP method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Authentication failed.
    #[error(transparent)]
    Authn(#[from] AuthnError),
    /// The token lacks scopes this operation needs.
    #[error("insufficient scope")]
    InsufficientScope {
        /// Every scope the operation needs, sorted.
        required: Vec<String>,
    },
    /// The body is not acceptable JSON-RPC.
    #[error(transparent)]
    BadRpc(#[from] JsonRpcError),
    /// An MCP routing header (`MCP-Protocol-Version`, `Mcp-Method`,
    /// `Mcp-Name`) is missing where 2026-07-28 requires it, repeated, or
    /// disagrees with the body: 400 with JSON-RPC `-32020`.
    #[error("{header} header is missing, repeated or does not match the body")]
    HeaderMismatch {
        /// The header.
        header: &'static str,
        /// The request's id, for the JSON-RPC error.
        id: Option<serde_json::Value>,
    },
    /// The policy refuses a call in the body.
    #[error("{}", .0.describe())]
    Denied(Box<crate::authz::Denied>),
    /// The request body exceeds the configured cap.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The request body could not be read.
    #[error("request body could not be read")]
    BodyRead,
    /// A JSON-RPC body whose charset or content coding the gateway does not
    /// read the way an upstream might.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The request body did not arrive within `limits.body_read_timeout`.
    #[error("request body not received within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// A GET or DELETE with a body (never inspected, so never forwarded).
    #[error("GET and DELETE requests carry no body")]
    BodyNotAllowed,
    /// A query parameter that names a legacy HTTP+SSE session.
    #[error("session ids in the query string are not accepted")]
    SessionInQuery,
    /// The upstream speaks the legacy HTTP+SSE transport (a request answered
    /// with 202, its answer moved to another stream).
    #[error("upstream answered a request with 202 (legacy HTTP+SSE transport)")]
    LegacyTransport,
    /// The upstream failed.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// A present `Origin` the route does not allow (DNS-rebinding defence).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The session id is not one this principal was given.
    #[error("session not found")]
    SessionNotFound,
    /// A rate or stream limit refused the request.
    #[error("{throttled}")]
    Throttled {
        /// Which limit.
        throttled: Throttled,
        /// The JSON-RPC id, when the request was a single JSON-RPC request.
        id: Option<serde_json::Value>,
    },
}

impl From<crate::well_known::WellKnownError> for Rejection {
    fn from(e: crate::well_known::WellKnownError) -> Self {
        match e {
            crate::well_known::WellKnownError::NotFound => Rejection::NoRoute,
            crate::well_known::WellKnownError::MethodNotAllowed => Rejection::MethodNotAllowed,
        }
    }
}

impl From<crate::body::BodyError> for Rejection {
    fn from(e: crate::body::BodyError) -> Self {
        match e {
            crate::body::BodyError::TooLarge { limit } => Rejection::BodyTooLarge { limit },
            crate::body::BodyError::Timeout(t) => Rejection::BodyTimeout(t),
            crate::body::BodyError::Read => Rejection::BodyRead,
        }
    }
}

impl From<crate::cors::OriginNotAllowed> for Rejection {
    fn from(_: crate::cors::OriginNotAllowed) -> Self {
        Rejection::OriginNotAllowed
    }
}

/// What a `WWW-Authenticate` challenge needs to know about the route.
pub struct Challenge<'a> {
    /// Absolute URL of the route's protected-resource metadata.
    pub resource_metadata: &'a str,
    /// The route's base scopes, advertised on 401.
    pub scopes: &'a [String],
}

impl Rejection {
    /// The HTTP status for this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::Authn(e) => match e {
                AuthnError::MultipleAuthorization | AuthnError::TokenInQuery => {
                    StatusCode::BAD_REQUEST
                }
                AuthnError::KeysUnavailable { .. }
                | AuthnError::IntrospectionUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            },
            Rejection::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Rejection::BadRpc(_) | Rejection::HeaderMismatch { .. } => StatusCode::BAD_REQUEST,
            Rejection::Denied(d) if d.mode == DenyMode::JsonRpcError && !d.ids.is_empty() => {
                StatusCode::OK
            }
            Rejection::Denied(_) => StatusCode::FORBIDDEN,
            Rejection::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BodyRead => StatusCode::BAD_REQUEST,
            Rejection::Media(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Rejection::BodyNotAllowed | Rejection::SessionInQuery => StatusCode::BAD_REQUEST,
            Rejection::LegacyTransport => StatusCode::BAD_GATEWAY,
            Rejection::Forward(ForwardError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            Rejection::Forward(_) => StatusCode::BAD_GATEWAY,
            Rejection::OriginNotAllowed => StatusCode::FORBIDDEN,
            Rejection::SessionNotFound => StatusCode::NOT_FOUND,
            Rejection::Throttled {
                throttled: Throttled::Unavailable,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The OAuth/gateway error code and the short description sent to clients.
    fn code_and_description(&self) -> (&'static str, String) {
        match self {
            Rejection::NoRoute => ("not_found", "no MCP endpoint at this path".into()),
            Rejection::MethodNotAllowed => ("method_not_allowed", "use POST, GET or DELETE".into()),
            Rejection::Authn(AuthnError::Missing) => {
                ("invalid_request", "a bearer token is required".into())
            }
            Rejection::Authn(
                e @ (AuthnError::MultipleAuthorization | AuthnError::TokenInQuery),
            ) => ("invalid_request", e.to_string()),
            Rejection::Authn(AuthnError::KeysUnavailable { .. }) => (
                "temporarily_unavailable",
                "the issuer's signing keys are not available yet; retry later".into(),
            ),
            Rejection::Authn(AuthnError::IntrospectionUnavailable { .. }) => (
                "temporarily_unavailable",
                "the token could not be introspected; retry later".into(),
            ),
            Rejection::Authn(e) => ("invalid_token", e.to_string()),
            Rejection::InsufficientScope { .. } => (
                "insufficient_scope",
                "the token lacks a scope this operation requires".into(),
            ),
            Rejection::BadRpc(e) => ("invalid_request", e.to_string()),
            Rejection::HeaderMismatch { .. } => ("invalid_request", self.to_string()),
            Rejection::Denied(d) if d.unlisted => (
                "forbidden",
                format!("{} is not permitted on this route", d.describe()),
            ),
            Rejection::Denied(d) => (
                "insufficient_scope",
                format!("{} requires a scope the token lacks", d.describe()),
            ),
            Rejection::BodyTooLarge { limit } => (
                "payload_too_large",
                format!("request body exceeds {limit} bytes"),
            ),
            Rejection::BodyRead => ("invalid_request", "request body could not be read".into()),
            Rejection::Media(e) => ("unsupported_media_type", e.to_string()),
            Rejection::BodyTimeout(_) => ("request_timeout", self.to_string()),
            Rejection::BodyNotAllowed | Rejection::SessionInQuery => {
                ("invalid_request", self.to_string())
            }
            Rejection::LegacyTransport => (
                "upstream_unsupported",
                "the MCP server uses the legacy HTTP+SSE transport, which this gateway does not serve"
                    .into(),
            ),
            Rejection::Forward(ForwardError::Timeout(_)) => (
                "upstream_timeout",
                "the MCP server did not answer in time".into(),
            ),
            Rejection::Forward(_) => (
                "upstream_unavailable",
                "the MCP server could not be reached".into(),
            ),
            Rejection::OriginNotAllowed => (
                "forbidden_origin",
                "this Origin may not call this endpoint".into(),
            ),
            Rejection::SessionNotFound => (
                "session_not_found",
                "unknown session; start a new one".into(),
            ),
            Rejection::Throttled { throttled, .. } => {
                ("rate_limited", format!("{throttled}; retry later"))
            }
        }
    }

    /// A short, stable label for logs and metrics.
    pub fn reason(&self) -> String {
        match self {
            Rejection::Forward(e) => e.to_string(),
            other => other.code_and_description().1,
        }
    }
}

/// Builds the response for `rejection`. `challenge` is the route's metadata,
/// when the request reached a route.
pub fn respond(rejection: &Rejection, challenge: Option<&Challenge<'_>>) -> Response<Body> {
    match rejection {
        Rejection::BadRpc(e) => {
            return jsonrpc_response(StatusCode::BAD_REQUEST, bad_request_body(e));
        }
        Rejection::HeaderMismatch { id, .. } => {
            // MCP 2026-07-28 HeaderMismatch, answered with the request's id.
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": { "code": -32020, "message": rejection.to_string() },
            });
            return jsonrpc_response(StatusCode::BAD_REQUEST, body);
        }
        Rejection::Denied(d) if d.mode == DenyMode::JsonRpcError && !d.ids.is_empty() => {
            return jsonrpc_response(StatusCode::OK, denied_body(d));
        }
        Rejection::Throttled { throttled, id } => {
            return throttled_response(throttled, id.as_ref());
        }
        Rejection::SessionNotFound => {
            // The Python SDK's shape for "session not found"; clients re-initialize.
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": { "code": -32001, "message": "Session not found" },
            });
            return jsonrpc_response(StatusCode::NOT_FOUND, body);
        }
        _ => {}
    }
    let status = rejection.status();
    let (code, description) = rejection.code_and_description();
    let json = serde_json::json!({ "error": code, "error_description": description });
    let mut resp = Response::new(body::full(json.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));

    let www_error = match rejection {
        Rejection::Authn(AuthnError::Missing) => Some(None),
        Rejection::Authn(AuthnError::MultipleAuthorization | AuthnError::TokenInQuery) => {
            Some(Some("invalid_request"))
        }
        Rejection::Authn(
            AuthnError::KeysUnavailable { .. } | AuthnError::IntrospectionUnavailable { .. },
        ) => None,
        Rejection::Authn(_) => Some(Some("invalid_token")),
        Rejection::InsufficientScope { .. } => Some(Some("insufficient_scope")),
        Rejection::Denied(d) if !d.unlisted => Some(Some("insufficient_scope")),
        _ => None,
    };
    if let (Some(error), Some(challenge)) = (www_error, challenge) {
        let scopes: &[String] = match rejection {
            Rejection::InsufficientScope { required } => required,
            Rejection::Denied(d) => &d.required,
            _ => challenge.scopes,
        };
        if let Ok(v) = HeaderValue::from_str(&www_authenticate(
            error,
            scopes,
            challenge.resource_metadata,
        )) {
            h.insert(WWW_AUTHENTICATE, v);
        }
    }
    match rejection {
        Rejection::MethodNotAllowed => {
            h.insert(ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
        }
        Rejection::Authn(
            AuthnError::KeysUnavailable { .. } | AuthnError::IntrospectionUnavailable { .. },
        ) => {
            h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        _ => {}
    }
    resp
}

/// 429 with `Retry-After`; a JSON-RPC error body when the request was a call.
fn throttled_response(throttled: &Throttled, id: Option<&serde_json::Value>) -> Response<Body> {
    let retry_after = match throttled {
        Throttled::Rate { retry_after } => *retry_after,
        Throttled::Streams | Throttled::Unavailable => 1,
    };
    let status = match throttled {
        Throttled::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Throttled::Rate { .. } | Throttled::Streams => StatusCode::TOO_MANY_REQUESTS,
    };
    let body = match id {
        Some(id) => serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": -32000, "message": throttled.to_string(), "data": { "retry_after": retry_after } },
        }),
        None => {
            serde_json::json!({ "error": "rate_limited", "error_description": throttled.to_string() })
        }
    };
    let mut resp = jsonrpc_response(status, body);
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

fn jsonrpc_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(body::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// JSON-RPC 2.0 §5.1: -32600 Invalid Request, id null (it may be unreadable).
fn bad_request_body(e: &JsonRpcError) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32600, "message": format!("Invalid Request: {e}") },
    })
}

/// The JSON-RPC error a denied call gets in `jsonrpc_error` mode. Unlisted
/// targets get the error an MCP server gives for an unknown one, so the
/// answer does not reveal that the target exists.
fn denied_error(d: &Denied) -> serde_json::Value {
    match (&d.call.target, d.unlisted) {
        (Target::Tool(name), true) => {
            serde_json::json!({ "code": -32602, "message": format!("Unknown tool: {name}") })
        }
        (Target::Prompt(name), true) => {
            serde_json::json!({ "code": -32602, "message": format!("Unknown prompt: {name}") })
        }
        (Target::Resource(uri), true) => {
            serde_json::json!({ "code": -32002, "message": "Resource not found", "data": { "uri": uri } })
        }
        _ => serde_json::json!({
            "code": -32003,
            "message": "insufficient scope",
            "data": { "required_scopes": d.required },
        }),
    }
}

fn denied_body(d: &Denied) -> serde_json::Value {
    let error = denied_error(d);
    let one =
        |id: &serde_json::Value| serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error });
    match d.ids.as_slice() {
        [id] => one(id),
        ids => serde_json::Value::Array(ids.iter().map(one).collect()),
    }
}

/// `Bearer [error="…", ][scope="…", ]resource_metadata="…"`. Parameter order is
/// fixed; scopes are joined in the order given (callers sort them).
pub fn www_authenticate(error: Option<&str>, scopes: &[String], resource_metadata: &str) -> String {
    let mut out = String::from("Bearer ");
    if let Some(error) = error {
        out.push_str(&format!("error=\"{error}\", "));
    }
    if !scopes.is_empty() {
        out.push_str(&format!("scope=\"{}\", ", scopes.join(" ")));
    }
    out.push_str(&format!("resource_metadata=\"{resource_metadata}\""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "https://gw.example.com/.well-known/oauth-protected-resource/mcp";

    fn header(r: &Rejection, scopes: &[String]) -> Option<String> {
        let c = Challenge {
            resource_metadata: PRM,
            scopes,
        };
        respond(r, Some(&c))
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn missing_token_has_no_error_code() {
        let h = header(&Rejection::Authn(AuthnError::Missing), &[]).unwrap();
        assert_eq!(h, format!("Bearer resource_metadata=\"{PRM}\""));
    }

    #[test]
    fn invalid_token_with_route_scopes() {
        let scopes = vec!["mcp:read".to_owned(), "mcp:tools".to_owned()];
        let h = header(&Rejection::Authn(AuthnError::Expired), &scopes).unwrap();
        assert_eq!(
            h,
            format!(
                "Bearer error=\"invalid_token\", scope=\"mcp:read mcp:tools\", resource_metadata=\"{PRM}\""
            )
        );
    }

    #[test]
    fn insufficient_scope_names_every_required_scope() {
        let r = Rejection::InsufficientScope {
            required: vec!["a".into(), "b".into()],
        };
        let h = header(&r, &[]).unwrap();
        assert_eq!(
            h,
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"a b\", resource_metadata=\"{PRM}\""
            )
        );
        assert_eq!(respond(&r, None).status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn keys_unavailable_is_503_with_retry_after_and_no_challenge() {
        let r = Rejection::Authn(AuthnError::KeysUnavailable { issuer: "x".into() });
        assert!(header(&r, &[]).is_none());
        let resp = respond(&r, None);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(RETRY_AFTER));
    }
}

//! Every answer the authorization server sends: JSON with RFC error codes
//! for clients, HTML pages for people, redirects. Pages carry a CSP that
//! forbids framing (`frame-ancestors 'none'`) and scripts; nothing is cached.

use askama::Template;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::pages::ErrorPage;
use crate::body::{self, Body};

/// The CSP of every page: no scripts, no frames, forms post only here.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

/// An RFC 6749 / 7591 / 8707 error for a client.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub(crate) fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    pub(crate) fn invalid_target(d: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }
    pub(crate) fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    pub(crate) fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", d)
    }
    pub(crate) fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", d)
    }
    pub(crate) fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many registrations from this address",
        )
    }
    pub(crate) fn new_invalid_scope() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "a refresh may only narrow the scopes",
        )
    }
    pub(crate) fn unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
    pub(crate) fn description(&self) -> &str {
        &self.description
    }
    /// 405 for a known endpoint and the wrong method.
    pub(crate) fn method_not_allowed() -> Response<Body> {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "method not allowed",
        )
        .into_response()
    }
    /// 404 under the server's prefix.
    pub(crate) fn not_found() -> Response<Body> {
        Self::new(StatusCode::NOT_FOUND, "invalid_request", "no such endpoint").into_response()
    }

    /// The JSON answer.
    pub(crate) fn into_response(self) -> Response<Body> {
        let doc = serde_json::json!({"error": self.code, "error_description": self.description});
        let mut resp = json_ok(&doc);
        *resp.status_mut() = self.status;
        retry_later(resp)
    }
}

/// How long a client should wait after a 503 (the store or the provider
/// unavailable): about how long the connection to Redis takes to come back.
const RETRY_AFTER_UNAVAILABLE: &str = "5";

/// Adds `Retry-After` to a 503.
fn retry_later(mut resp: Response<Body>) -> Response<Body> {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_UNAVAILABLE),
        );
    }
    resp
}

/// 200 with a JSON document, never cached.
pub(crate) fn json_ok(doc: &impl Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let mut resp = Response::new(body::full(bytes));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// An HTML page.
pub(crate) fn page(status: StatusCode, html: String) -> Response<Body> {
    let mut resp = Response::new(body::full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    retry_later(resp)
}

/// An error page for the person in the browser (never a redirect: used
/// when the client or its redirect URI cannot be trusted).
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let html = ErrorPage { title, detail }
        .render()
        .unwrap_or_else(|_| "error".to_owned());
    page(status, html)
}

/// 303 to `location` (after a form POST) or 302.
pub(crate) fn redirect(location: &str, set_cookie: Option<String>) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(http::header::SET_COOKIE, cookie);
    }
    resp
}

/// 429 with `Retry-After` for a client over its rate.
pub(crate) fn too_many(throttled: &crate::throttle::Throttled) -> Response<Body> {
    let mut resp = OAuthError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "slow_down",
        "too many requests from this address; retry later",
    )
    .into_response();
    if let crate::throttle::Throttled::Rate { retry_after } = throttled {
        if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}

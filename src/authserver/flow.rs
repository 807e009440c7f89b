//! The browser's path up to the identity provider: `/authorize` (validation
//! and the consent page) and `/consent` (the user's answer, then the
//! provider), with what they share with callback.rs and token.rs: the
//! pending-authorization and code records, form parsing, the browser-binding
//! cookie, the audit event.
//!
//! Confused-deputy defences (MCP security best practices): the gateway is
//! one client at the provider for every MCP client, so consent per client
//! comes before any upstream redirect; the consent form carries a CSRF token
//! and is bound to the browser by a signed `__Host-` cookie; the upstream
//! `state` is made only after consent, is single use, short-lived and bound
//! to the same cookie.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use cookie::{Cookie, CookieJar, SameSite};
use http::header::{CONTENT_TYPE, COOKIE};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use url::Url;

use super::idp::{Identity, random_token, s256};
use super::respond::{OAuthError, error_page, page, redirect};
use super::store::Space;
use super::{AuthorizationServer, cimd, pages};
use crate::body::{self, Body};

/// The browser-binding cookie.
const COOKIE_NAME: &str = "__Host-mcp-gateway-login";
/// How long a consent page and an upstream round trip may take.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long an authorization code lives.
pub(super) const CODE_TTL: Duration = Duration::from_secs(60);
/// Largest form or registration body.
pub(super) const MAX_FORM: usize = 16 * 1024;
/// Longest `state` a client may send (it is stored until the callback).
const MAX_STATE: usize = 512;
/// Longest `scope` a client may send.
const MAX_SCOPE: usize = 1024;

/// An authorization request awaiting consent, then the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) client_id: String,
    pub(super) client_name: String,
    pub(super) redirect_uri: String,
    pub(super) state: Option<String>,
    pub(super) code_challenge: String,
    pub(super) resource: String,
    pub(super) scopes: Vec<String>,
    /// SHA-256 of the browser's cookie value.
    pub(super) browser: String,
    pub(super) csrf: String,
    /// Set once consented: the provider round trip's secrets.
    pub(super) upstream_verifier: Option<String>,
    pub(super) nonce: Option<String>,
}

/// What a code stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CodeGrant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) resource: String,
    pub(super) scopes: Vec<String>,
    pub(super) identity: Identity,
    /// The refresh-token family this code starts.
    pub(super) family: String,
    /// The provider's refresh token, sealed (`seal.rs`): each refresh asks
    /// the provider about the person again.
    pub(super) upstream_refresh: Option<String>,
}

/// SHA-256, base64url: how secrets are keyed in the store.
pub(super) fn hashed(secret: &str) -> String {
    super::idp::s256(secret)
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses `application/x-www-form-urlencoded` (a query or a body); a
/// repeated parameter is an error (RFC 6749 §3.1).
pub(super) fn parse_form(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("parameter `{k}` is repeated"));
        }
    }
    Ok(out)
}

/// Reads a form body: `application/x-www-form-urlencoded`, capped.
pub(super) async fn read_form(
    req: Request<Incoming>,
) -> Result<HashMap<String, String>, OAuthError> {
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = body::read_capped(req.into_body(), MAX_FORM, Duration::from_secs(10))
        .await
        .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    parse_form(text).map_err(OAuthError::invalid_request)
}

pub(super) fn cookie_value(headers: &HeaderMap, key: &cookie::Key) -> Option<String> {
    let mut jar = CookieJar::new();
    for header in headers.get_all(COOKIE) {
        for part in header.to_str().ok()?.split(';') {
            if let Ok(c) = Cookie::parse(part.trim().to_owned()) {
                jar.add_original(c);
            }
        }
    }
    jar.signed(key)
        .get(COOKIE_NAME)
        .map(|c| c.value().to_owned())
}

fn set_cookie(value: &str, key: &cookie::Key) -> Option<String> {
    let mut jar = CookieJar::new();
    let mut c = Cookie::new(COOKIE_NAME, value.to_owned());
    c.set_path("/");
    c.set_secure(true);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_max_age(cookie::time::Duration::seconds(600));
    jar.signed_mut(key).add(c);
    jar.delta().next().map(ToString::to_string)
}

impl AuthorizationServer {
    pub(super) async fn load<T: for<'de> Deserialize<'de>>(
        &self,
        space: Space,
        key: &str,
    ) -> Result<Option<T>, OAuthError> {
        let raw = self
            .store
            .get(space, key)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    pub(super) async fn save<T: Serialize>(
        &self,
        space: Space,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), OAuthError> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| OAuthError::unavailable(e.to_string()))?;
        self.store
            .put(space, key, bytes, ttl)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))
    }

    /// `GET /oauth/authorize`: validates the request and shows consent.
    pub(super) async fn authorize(&self, req: Request<Incoming>) -> Response<Body> {
        let params = match parse_form(req.uri().query().unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => return error_page(StatusCode::BAD_REQUEST, "Invalid sign-in request", &e),
        };
        let get = |k: &str| params.get(k).map(String::as_str);
        // Until the client and its redirect URI are known, errors are pages:
        // redirecting to an unverified URI would make this an open redirector.
        let Some(client_id) = get("client_id") else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid sign-in request",
                "The application did not say who it is (no client_id).",
            );
        };
        let client = match self.client(client_id).await {
            Ok(c) => c,
            Err(page) => return page,
        };
        // A document-described client is shown with the host that vouches for it.
        let client_host = cimd::is_document_url(&client.client_id)
            .then(|| Url::parse(&client.client_id).ok())
            .flatten()
            .and_then(|u| u.host_str().map(str::to_owned));
        let redirect_uri = match get("redirect_uri") {
            Some(uri) if client.redirect_matches(uri) => uri.to_owned(),
            Some(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Invalid sign-in request",
                    "The return address is not one this application registered.",
                );
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Invalid sign-in request",
                    "The application did not say where to return (redirect_uri).",
                );
            }
        };
        let state = get("state").map(str::to_owned);
        // Before the person has seen the consent page, a bad request is shown
        // as a page, never redirected: anyone may register a redirect URI, and
        // an automatic redirect from this origin would serve phishing or a
        // dangerous URI scheme (RFC 9700 §4.11.2). The page names the RFC code.
        let back = |code: &str, description: &str| {
            error_page(
                StatusCode::BAD_REQUEST,
                "Invalid sign-in request",
                &format!(
                    "{description} ({code}). The application sent a request this server refuses."
                ),
            )
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE)
            || get("scope").is_some_and(|s| s.len() > MAX_SCOPE)
        {
            return back("invalid_request", "state or scope is too long");
        }
        if get("response_type") != Some("code") {
            return back("unsupported_response_type", "response_type must be code");
        }
        let Some(challenge) = get("code_challenge") else {
            return back(
                "invalid_request",
                "PKCE is required: send code_challenge with method S256",
            );
        };
        if get("code_challenge_method") != Some("S256") {
            return back("invalid_request", "code_challenge_method must be S256");
        }
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return back("invalid_request", "code_challenge is not an S256 challenge");
        }
        let resource = match self.resource_for(get("resource")) {
            Ok(r) => r,
            Err(e) => return back(e.code(), e.description()),
        };
        let scopes: Vec<String> = get("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty() && *s != "offline_access")
            .map(str::to_owned)
            .collect();
        let (Ok(binding), Ok(csrf), Ok(pending_id)) =
            (random_token(32), random_token(32), random_token(32))
        else {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "The random source failed.",
            );
        };
        let client_name = client
            .client_name
            .clone()
            .unwrap_or_else(|| client.client_id.clone());
        let pending = Pending {
            client_id: client.client_id.clone(),
            client_name: client_name.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            code_challenge: challenge.to_owned(),
            resource: resource.clone(),
            scopes: scopes.clone(),
            browser: hashed(&binding),
            csrf: csrf.clone(),
            upstream_verifier: None,
            nonce: None,
        };
        if let Err(e) = self
            .save(Space::Pending, &hashed(&pending_id), &pending, PENDING_TTL)
            .await
        {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                e.description(),
            );
        }
        let redirect = Url::parse(&redirect_uri).ok();
        let redirect_host = redirect
            .as_ref()
            .map(|u| match u.host_str() {
                Some(h) => format!("{}://{h}", u.scheme()),
                None => format!("{}:", u.scheme()),
            })
            .unwrap_or_default();
        let loopback = redirect.as_ref().is_some_and(|u| {
            u.scheme() == "http"
                && match u.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d == "localhost",
                    None => false,
                }
        });
        // Asking for no scope gets every scope the person's grants give:
        // the page lists them all.
        let all_scopes = self.scopes_supported();
        let action = self.endpoint("consent");
        let idp_name = self.idp.display_name();
        let html = pages::Consent {
            client_name: &client_name,
            client_host: client_host.as_deref(),
            redirect_host: &redirect_host,
            loopback,
            resource: &resource,
            resource_name: self.resource_names.get(&resource).unwrap_or(&resource),
            scopes: if scopes.is_empty() {
                &all_scopes
            } else {
                &scopes
            },
            idp_name: &idp_name,
            action: &action,
            pending: &pending_id,
            csrf: &csrf,
        }
        .render()
        .unwrap_or_default();
        let mut resp = page(StatusCode::OK, html);
        if let Some(c) =
            set_cookie(&binding, &self.cookies).and_then(|c| http::HeaderValue::from_str(&c).ok())
        {
            resp.headers_mut().append(http::header::SET_COOKIE, c);
        }
        resp
    }

    /// `POST /oauth/consent`: the user's answer.
    pub(super) async fn consent(&self, req: Request<Incoming>) -> Response<Body> {
        let binding = cookie_value(req.headers(), &self.cookies);
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(e) => {
                return error_page(StatusCode::BAD_REQUEST, "Invalid consent", e.description());
            }
        };
        let Some(binding) = binding else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in expired or started elsewhere",
                "This browser did not start this sign-in (its cookie is missing or invalid). Start again from your application.",
            );
        };
        let pending_id = form.get("pending").map(String::as_str).unwrap_or_default();
        // Taken: a consent form is answered once.
        let pending: Option<Pending> =
            match self.store.take(Space::Pending, &hashed(pending_id)).await {
                Ok(raw) => raw.and_then(|r| serde_json::from_slice(&r).ok()),
                Err(e) => {
                    return error_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Sign-in unavailable",
                        &e.to_string(),
                    );
                }
            };
        let Some(mut pending) = pending else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in page expired or was already used. Start again from your application.",
            );
        };
        let csrf_ok = form
            .get("csrf")
            .is_some_and(|c| constant_time_eq(c.as_bytes(), pending.csrf.as_bytes()));
        if hashed(&binding) != pending.browser || !csrf_ok {
            return error_page(
                StatusCode::FORBIDDEN,
                "Sign-in refused",
                "The consent did not come from the page this browser was shown.",
            );
        }
        if form.get("decision").map(String::as_str) != Some("allow") {
            self.audit(&pending, None, &[], "denied_by_user");
            return client_error_redirect(
                &pending.redirect_uri,
                "access_denied",
                "the user declined",
                pending.state.as_deref(),
                &self.config.issuer,
            );
        }
        let (Ok(state), Ok(verifier), Ok(nonce)) =
            (random_token(32), random_token(32), random_token(24))
        else {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "The random source failed.",
            );
        };
        let callback = self.endpoint("callback");
        let url = match self
            .idp
            .authorization_url(&callback, &state, &nonce, &s256(&verifier))
            .await
        {
            Ok(r) => r.url,
            Err(e) => {
                return error_page(
                    StatusCode::BAD_GATEWAY,
                    "Identity provider unavailable",
                    &e.to_string(),
                );
            }
        };
        pending.upstream_verifier = Some(verifier);
        pending.nonce = Some(nonce);
        if let Err(e) = self
            .save(Space::Transaction, &hashed(&state), &pending, PENDING_TTL)
            .await
        {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                e.description(),
            );
        }
        redirect(url.as_str(), None)
    }

    /// The one audit event per authorization decision.
    pub(super) fn audit(
        &self,
        p: &Pending,
        who: Option<&Identity>,
        granted: &[String],
        outcome: &'static str,
    ) {
        let redirect_host = Url::parse(&p.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        self.metrics.auth_server_event("authorize", outcome);
        tracing::info!(
            target: "mcp_auth_gateway::audit",
            event = "authorize",
            outcome,
            client_id = %p.client_id,
            redirect_host = %redirect_host,
            resource = %p.resource,
            scopes_requested = %p.scopes.join(" "),
            scopes_granted = %granted.join(" "),
            user = who.map_or("", |i| i.subject.as_str()),
        );
    }
}

/// An error sent back to a verified redirect URI, with `state` and `iss`.
fn client_error_redirect(
    uri: &str,
    code: &str,
    description: &str,
    state: Option<&str>,
    iss: &str,
) -> Response<Body> {
    let Ok(mut url) = Url::parse(uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid return address",
            "The application's return address is not a URL.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", code);
        q.append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", iss);
    }
    redirect(url.as_str(), None)
}

/// Compares secrets without an early exit.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

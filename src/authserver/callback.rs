//! `GET /oauth/callback`: the identity provider's answer. The upstream
//! `state` is taken (single use) and must belong to this browser; then the
//! provider's code is redeemed, the login policy and the grants applied,
//! and the client gets its code, with `state` and `iss`.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use url::Url;

use super::AuthorizationServer;
use super::flow::{CODE_TTL, CodeGrant, Pending, cookie_value, hashed, parse_form};
use super::idp::random_token;
use super::policy::{granted, matches};
use super::respond::{error_page, redirect};
use super::store::Space;
use crate::body::Body;

impl AuthorizationServer {
    /// `GET /oauth/callback`: the provider's answer.
    pub(super) async fn callback(&self, req: Request<Incoming>) -> Response<Body> {
        let binding = cookie_value(req.headers(), &self.cookies);
        let params = match parse_form(req.uri().query().unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Invalid answer from the identity provider",
                    &e,
                );
            }
        };
        let get = |k: &str| params.get(k).map(String::as_str);
        let state = get("state").unwrap_or_default();
        let txn: Option<Pending> = match self.store.take(Space::Transaction, &hashed(state)).await {
            Ok(raw) => raw.and_then(|r| serde_json::from_slice(&r).ok()),
            Err(e) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in unavailable",
                    &e.to_string(),
                );
            }
        };
        let Some(txn) = txn else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in is unknown, expired or was already completed. Start again from your application.",
            );
        };
        if binding.as_deref().map(hashed).as_deref() != Some(txn.browser.as_str()) {
            return error_page(
                StatusCode::FORBIDDEN,
                "Sign-in refused",
                "This browser did not start this sign-in.",
            );
        }
        if let Err(e) = self.idp.check_response_issuer(get("iss")).await {
            return error_page(
                StatusCode::BAD_GATEWAY,
                "Identity provider answer refused",
                &e.to_string(),
            );
        }
        if let Some(error) = get("error") {
            self.audit(&txn, None, &[], "idp_error");
            let shown: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return error_page(
                StatusCode::BAD_REQUEST,
                "The identity provider did not sign you in",
                &format!("It answered `{shown}`."),
            );
        }
        let (Some(code), Some(verifier), Some(nonce)) = (
            get("code"),
            txn.upstream_verifier.as_deref(),
            txn.nonce.as_deref(),
        ) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid answer from the identity provider",
                "No code.",
            );
        };
        let (identity, upstream_refresh) = match self
            .idp
            .redeem(code, &self.endpoint("callback"), verifier, nonce)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                self.audit(&txn, None, &[], "idp_error");
                return error_page(
                    StatusCode::BAD_GATEWAY,
                    "Sign-in failed at the identity provider",
                    &e.to_string(),
                );
            }
        };
        if !matches(&self.config.login, &identity, self.config.upstream.kind) {
            self.audit(&txn, Some(&identity), &[], "login_refused");
            return error_page(
                StatusCode::FORBIDDEN,
                "You may not sign in here",
                "Your account is not among those allowed to use this server. Ask its operator to add you.",
            );
        }
        let allowed = granted(&self.config, &identity);
        let scopes: Vec<String> = if txn.scopes.is_empty() {
            allowed
        } else {
            txn.scopes
                .iter()
                .filter(|s| allowed.contains(s))
                .cloned()
                .collect()
        };
        let (Ok(code), Ok(family)) = (random_token(32), random_token(16)) else {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "The random source failed.",
            );
        };
        let grant = CodeGrant {
            client_id: txn.client_id.clone(),
            redirect_uri: txn.redirect_uri.clone(),
            code_challenge: txn.code_challenge.clone(),
            resource: txn.resource.clone(),
            scopes: scopes.clone(),
            identity: identity.clone(),
            family,
            upstream_refresh: upstream_refresh.and_then(|t| self.sealer.seal(&t).ok()),
        };
        if let Err(e) = self
            .save(Space::Code, &hashed(&code), &grant, CODE_TTL)
            .await
        {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                e.description(),
            );
        }
        self.audit(&txn, Some(&identity), &scopes, "code_issued");
        let mut url = match Url::parse(&txn.redirect_uri) {
            Ok(u) => u,
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "Invalid return address",
                    "The application's return address is not a URL.",
                );
            }
        };
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(s) = &txn.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", &self.config.issuer);
        }
        redirect(url.as_str(), None)
    }
}

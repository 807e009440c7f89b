//! The GitHub connector: OAuth 2, not OpenID Connect. The person is read
//! from GitHub's REST API with the user's token: `GET /user` (the numeric
//! id: `github:<id>`; logins can be renamed), `GET /user/emails` (only a
//! verified primary address counts) and, for each organisation the config
//! names, `GET /user/memberships/orgs/{org}` (`state: active`). The token
//! endpoint answers errors inside HTTP 200 (`{"error": …}`): those are
//! refusals. GitHub tokens of OAuth apps do not expire and there is no
//! refresh token, so the sealed access token itself is kept, and each
//! refresh asks the API again; a revoked token (401) ends the sign-in.
//!
//! `upstream.web_url` and `upstream.api_url` (defaults `https://github.com`
//! and `https://api.github.com`) also serve GitHub Enterprise Server.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use serde::Deserialize;
use url::Url;

use super::idp::{Identity, IdpError};
use crate::body;

/// Scopes asked of GitHub: the profile, the addresses, the org memberships.
pub(crate) const SCOPES: &str = "read:user user:email read:org";

impl super::idp::Idp {
    /// GitHub's authorization URL for one sign-in (PKCE S256; no nonce:
    /// nothing signed comes back).
    pub(crate) fn github_authorization_url(
        &self,
        callback: &str,
        state: &str,
        code_challenge: &str,
    ) -> Result<Url, IdpError> {
        let up = self.upstream();
        let mut url = up
            .web_url
            .join("login/oauth/authorize")
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("client_id", &up.client_id)
            .append_pair("redirect_uri", callback)
            .append_pair("scope", SCOPES)
            .append_pair("state", state)
            .append_pair("allow_signup", "false")
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    /// Redeems GitHub's code; returns the person and their token (kept,
    /// sealed, to ask again at each refresh).
    pub(crate) async fn github_redeem(
        &self,
        code: &str,
        callback: &str,
        code_verifier: &str,
    ) -> Result<(Identity, Option<String>), IdpError> {
        let up = self.upstream();
        let secret = String::from_utf8_lossy(&up.client_secret.0).into_owned();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &up.client_id)
            .append_pair("client_secret", &secret)
            .append_pair("code", code)
            .append_pair("redirect_uri", callback)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let url = up
            .web_url
            .join("login/oauth/access_token")
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let req = http::Request::post(url.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, "mcp-auth-gateway")
            .body(body::full(form))
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let (status, doc) = self.send(req).await?;
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Option<String>,
            error: Option<String>,
        }
        let answer: TokenResponse = serde_json::from_slice(&doc).map_err(|_| {
            IdpError::Unavailable(format!(
                "GitHub's token endpoint answered {status} without JSON"
            ))
        })?;
        // GitHub reports errors with HTTP 200.
        if let Some(error) = answer.error {
            return Err(IdpError::Refused(error));
        }
        if !status.is_success() {
            return Err(IdpError::Unavailable(format!(
                "GitHub's token endpoint answered {status}"
            )));
        }
        let token = answer
            .access_token
            .ok_or_else(|| IdpError::Invalid("no access_token from GitHub".into()))?;
        let identity = self.github_identity(&token).await?;
        Ok((identity, Some(token)))
    }

    /// The person behind `token`, now.
    pub(crate) async fn github_identity(&self, token: &str) -> Result<Identity, IdpError> {
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Email {
            email: String,
            verified: bool,
            primary: bool,
        }
        #[derive(Deserialize)]
        struct Membership {
            state: String,
        }
        let user: User = self
            .github_api(token, "user")
            .await?
            .ok_or_else(|| IdpError::Invalid("GET /user: not found".into()))?;
        let emails: Vec<Email> = self
            .github_api(token, "user/emails")
            .await?
            .unwrap_or_default();
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email.to_ascii_lowercase());
        let mut github_orgs = Vec::new();
        for org in self.github_orgs_of_interest() {
            let path = format!("user/memberships/orgs/{org}");
            let membership: Option<Membership> = self.github_api(token, &path).await?;
            if membership.is_some_and(|m| m.state == "active") {
                github_orgs.push(org);
            }
        }
        Ok(Identity {
            subject: format!("github:{}", user.id),
            email,
            groups: Vec::new(),
            hosted_domain: None,
            github_orgs,
        })
    }

    /// Every organisation the login policy or a grant names (only those are
    /// asked about).
    fn github_orgs_of_interest(&self) -> Vec<String> {
        let config = self.settings();
        let mut orgs: Vec<String> = config
            .login
            .github_orgs
            .iter()
            .chain(
                config
                    .grants
                    .iter()
                    .flat_map(|g| g.when.iter().flat_map(|w| w.github_orgs.iter())),
            )
            .cloned()
            .collect();
        orgs.sort_unstable();
        orgs.dedup();
        orgs
    }

    /// `GET {api_url}/{path}` as the user: `None` for 404, `Refused` for 401
    /// (the token was revoked), `Unavailable` for anything else that fails.
    async fn github_api<T: for<'de> Deserialize<'de>>(
        &self,
        token: &str,
        path: &str,
    ) -> Result<Option<T>, IdpError> {
        let url = self
            .upstream()
            .api_url
            .join(path)
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let req = http::Request::get(url.as_str())
            .header(ACCEPT, "application/vnd.github+json")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(USER_AGENT, "mcp-auth-gateway")
            .header("x-github-api-version", "2022-11-28")
            .body(body::empty())
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let (status, doc) = self.send(req).await?;
        match status.as_u16() {
            200 => serde_json::from_slice(&doc)
                .map(Some)
                .map_err(|e| IdpError::Invalid(format!("GET /{path}: {e}"))),
            404 => Ok(None),
            401 => Err(IdpError::Refused(
                "GitHub no longer accepts the token".into(),
            )),
            other => Err(IdpError::Unavailable(format!(
                "GET /{path} answered {other}"
            ))),
        }
    }
}

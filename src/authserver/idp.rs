//! The upstream identity provider, where people actually sign in. The
//! gateway is a confidential OAuth client there (pre-registered
//! `client_id`/`client_secret`). The OpenID Connect connector serves kinds
//! `oidc`, `google` and `entra`: discovery, PKCE (S256), `nonce`, ID-token
//! validation (signature from the discovered `jwks_uri`, `iss`, `aud`,
//! `azp`, `exp`, `nonce`) and the RFC 9207 `iss` response parameter when the
//! provider advertises it. The `resource` parameter is never sent upstream.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use tokio::sync::OnceCell;
use tracing::Instrument as _;
use url::Url;

use crate::authn::KeySet;
use crate::body;
use crate::config::{IdpKind, UpstreamIdp};
use crate::http_client::HttpClient;

/// Largest document accepted from the provider.
const MAX_DOCUMENT: usize = 256 * 1024;

/// A person as the provider vouches for them, after validation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    /// Stable, namespaced subject: `oidc:<sub>`, `google:<sub>`,
    /// `entra:<tid>:<oid>`.
    pub(crate) subject: String,
    /// Email, only when the provider says it is verified (lowercase).
    pub(crate) email: Option<String>,
    /// Group names from the configured claim.
    pub(crate) groups: Vec<String>,
    /// Google Workspace domain (`hd`), when present.
    pub(crate) hosted_domain: Option<String>,
    /// GitHub organisations (lowercase).
    pub(crate) github_orgs: Vec<String>,
}

/// What went wrong upstream. Shown to the user as a page; never carries a
/// token or a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdpError {
    /// The provider could not be reached or answered garbage.
    #[error("the identity provider is unavailable ({0})")]
    Unavailable(String),
    /// The provider refused (its `error` parameter).
    #[error("the identity provider refused the sign-in ({0})")]
    Refused(String),
    /// The answer failed validation.
    #[error("the identity provider's answer is invalid ({0})")]
    Invalid(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    refresh_token: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// The OpenID Connect connector.
pub(crate) struct Idp {
    config: Arc<crate::config::AuthServer>,
    client: HttpClient,
    timeout: Duration,
    discovery: OnceCell<Discovery>,
}

/// Where to send the browser, and what to remember for the callback.
pub(crate) struct Redirect {
    /// The provider's authorization URL with every parameter.
    pub(crate) url: Url,
}

impl Idp {
    pub(crate) fn new(
        config: Arc<crate::config::AuthServer>,
        client: HttpClient,
        timeout: Duration,
    ) -> Self {
        Self {
            config,
            client,
            timeout,
            discovery: OnceCell::new(),
        }
    }

    pub(super) fn upstream(&self) -> &UpstreamIdp {
        &self.config.upstream
    }

    pub(super) fn settings(&self) -> &crate::config::AuthServer {
        &self.config
    }

    /// The provider's name for pages.
    pub(crate) fn display_name(&self) -> String {
        if let Some(name) = &self.upstream().name {
            return name.clone();
        }
        match self.upstream().kind {
            IdpKind::Google => "Google".into(),
            IdpKind::Entra => "Microsoft".into(),
            IdpKind::Github => "GitHub".into(),
            IdpKind::Oidc => self
                .upstream()
                .issuer
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "your identity provider".into()),
        }
    }

    /// The discovery document, fetched once (failures are not cached).
    async fn discovery(&self) -> Result<&Discovery, IdpError> {
        self.discovery
            .get_or_try_init(|| async {
                let issuer = self
                    .upstream()
                    .issuer
                    .clone()
                    .ok_or_else(|| IdpError::Invalid("no issuer configured".into()))?;
                let base = issuer.as_str().trim_end_matches('/');
                let url = Url::parse(&format!("{base}/.well-known/openid-configuration"))
                    .map_err(|e| IdpError::Invalid(e.to_string()))?;
                let doc = self.get(&url).await?;
                let d: Discovery = serde_json::from_slice(&doc)
                    .map_err(|e| IdpError::Invalid(format!("discovery document: {e}")))?;
                if d.issuer.trim_end_matches('/') != base {
                    return Err(IdpError::Invalid(format!(
                        "discovery names issuer `{}`, configured `{base}`",
                        d.issuer
                    )));
                }
                Ok(d)
            })
            .await
    }

    /// The authorization URL for one sign-in.
    pub(crate) async fn authorization_url(
        &self,
        callback: &str,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<Redirect, IdpError> {
        if self.upstream().kind == IdpKind::Github {
            let url = self.github_authorization_url(callback, state, code_challenge)?;
            return Ok(Redirect { url });
        }
        let d = self.discovery().await?;
        let mut url = d.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.upstream().client_id)
            .append_pair("redirect_uri", callback)
            .append_pair("scope", &self.upstream().scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        // A provider refresh token lets every refresh re-check the person.
        // OIDC Core §11: offline_access needs prompt=consent; Google asks
        // for access_type=offline instead.
        let offline = self.upstream().scopes.iter().any(|s| s == "offline_access");
        match self.upstream().kind {
            IdpKind::Google => {
                url.query_pairs_mut()
                    .append_pair("access_type", "offline")
                    .append_pair("prompt", "consent");
            }
            IdpKind::Oidc if offline => {
                url.query_pairs_mut().append_pair("prompt", "consent");
            }
            _ => {}
        }
        Ok(Redirect { url })
    }

    /// Checks the RFC 9207 `iss` parameter of the callback: required and
    /// equal when the provider advertises it, equal when present anyway.
    pub(crate) async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), IdpError> {
        if self.upstream().kind == IdpKind::Github {
            // GitHub sends no `iss`; one that names anything is not GitHub's.
            return match iss {
                None => Ok(()),
                Some(other) => Err(IdpError::Invalid(format!(
                    "the answer names issuer `{other}` (mix-up?)"
                ))),
            };
        }
        let d = self.discovery().await?;
        match iss {
            Some(iss) if iss != d.issuer => Err(IdpError::Invalid(format!(
                "the answer names issuer `{iss}` (mix-up?)"
            ))),
            None if d.authorization_response_iss_parameter_supported => Err(IdpError::Invalid(
                "the answer lacks the `iss` parameter".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Redeems the provider's code and validates the ID token. Returns the
    /// person and the provider's refresh token, if it issued one.
    pub(crate) async fn redeem(
        &self,
        code: &str,
        callback: &str,
        code_verifier: &str,
        nonce: &str,
    ) -> Result<(Identity, Option<String>), IdpError> {
        if self.upstream().kind == IdpKind::Github {
            return self.github_redeem(code, callback, code_verifier).await;
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", callback)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let answer = self.token_request(form).await?;
        let id_token = answer
            .id_token
            .ok_or_else(|| IdpError::Invalid("no id_token in the token response".into()))?;
        let claims = self.verify_id_token(&id_token, Some(nonce)).await?;
        Ok((self.identity(&claims)?, answer.refresh_token))
    }

    /// Asks the provider about the person again with its refresh token: the
    /// fresh ID token must name the same subject. `Refused` means the
    /// provider no longer vouches for them (revoked, removed, disabled).
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<(Identity, Option<String>), IdpError> {
        if self.upstream().kind == IdpKind::Github {
            // The kept token is GitHub's access token: ask the API again.
            let identity = self.github_identity(refresh_token).await?;
            if identity.subject != subject {
                return Err(IdpError::Invalid(
                    "GitHub's token names another person".into(),
                ));
            }
            return Ok((identity, None));
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .finish();
        let answer = self.token_request(form).await?;
        let id_token = answer
            .id_token
            .ok_or_else(|| IdpError::Invalid("no id_token in the refresh response".into()))?;
        let claims = self.verify_id_token(&id_token, None).await?;
        let identity = self.identity(&claims)?;
        if identity.subject != subject {
            return Err(IdpError::Invalid(
                "the refreshed id_token names another person".into(),
            ));
        }
        Ok((identity, answer.refresh_token))
    }

    /// A token-endpoint request authenticated with `client_secret_basic`.
    async fn token_request(&self, form: String) -> Result<TokenResponse, IdpError> {
        let d = self.discovery().await?;
        let up = self.upstream();
        // RFC 6749 §2.3.1: both halves form-encoded before Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let secret = String::from_utf8_lossy(&up.client_secret.0).into_owned();
        let basic = STANDARD.encode(format!("{}:{}", enc(&up.client_id), enc(&secret)));
        let req = http::Request::post(d.token_endpoint.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .body(body::full(form))
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let (status, doc) = self.send(req).await?;
        let answer: TokenResponse = serde_json::from_slice(&doc).map_err(|_| {
            IdpError::Unavailable(format!("token endpoint answered {status} without JSON"))
        })?;
        // An `error` is a refusal even inside an HTTP 200 (GitHub does that),
        // except the provider's own trouble, which is not the person's.
        if let Some(error) = &answer.error {
            if matches!(error.as_str(), "temporarily_unavailable" | "server_error") {
                return Err(IdpError::Unavailable(format!(
                    "the provider answered {error}"
                )));
            }
            return Err(IdpError::Refused(error.clone()));
        }
        if !status.is_success() {
            return Err(IdpError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        Ok(answer)
    }

    /// Validates an ID token; `nonce` is the sign-in's (a refreshed ID token
    /// may carry none).
    async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<serde_json::Value, IdpError> {
        let d = self.discovery().await?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IdpError::Invalid(format!("id_token header: {e}")))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(IdpError::Invalid(
                "id_token signed with a shared secret".into(),
            ));
        }
        let jwks = self.get(&d.jwks_uri).await?;
        let keys = KeySet::parse(&jwks).map_err(|e| IdpError::Invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&d.issuer]);
        validation.set_audience(&[&self.upstream().client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let mut last = None;
        for key in keys.candidates(header.kid.as_deref(), header.alg) {
            match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let got = claims.get("nonce").and_then(|n| n.as_str());
                    let nonce_ok = match nonce {
                        Some(expected) => got == Some(expected),
                        None => true,
                    };
                    if !nonce_ok {
                        return Err(IdpError::Invalid("id_token nonce does not match".into()));
                    }
                    // OIDC Core §3.1.3.7: with several audiences, azp must be us.
                    let several = claims
                        .get("aud")
                        .and_then(|a| a.as_array())
                        .is_some_and(|a| a.len() > 1);
                    let azp = claims.get("azp").and_then(|a| a.as_str());
                    if (several || azp.is_some()) && azp != Some(self.upstream().client_id.as_str())
                    {
                        return Err(IdpError::Invalid("id_token azp is another client".into()));
                    }
                    return Ok(claims);
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(IdpError::Invalid(format!(
            "id_token signature: {}",
            last.unwrap_or_else(|| "no matching key".into())
        )))
    }

    /// The person, from validated ID-token claims.
    fn identity(&self, claims: &serde_json::Value) -> Result<Identity, IdpError> {
        let str_claim = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let kind = self.upstream().kind;
        let subject = match kind {
            IdpKind::Entra => {
                let (Some(tid), Some(oid)) = (str_claim("tid"), str_claim("oid")) else {
                    return Err(IdpError::Invalid(
                        "Entra id_token without tid and oid".into(),
                    ));
                };
                format!("entra:{tid}:{oid}")
            }
            _ => {
                let sub = str_claim("sub").ok_or_else(|| IdpError::Invalid("no sub".into()))?;
                format!("{}:{sub}", kind.subject_prefix())
            }
        };
        let verified = match claims.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        // Entra sends no email_verified; `xms_edov` (optional claim) says the
        // domain owner verified the address. Without either, no email.
        let verified = verified
            || (kind == IdpKind::Entra
                && claims.get("xms_edov") == Some(&serde_json::Value::Bool(true)));
        let email = str_claim("email")
            .filter(|_| verified)
            .map(|e| e.to_ascii_lowercase());
        let groups = match claims.get(&self.upstream().groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(Identity {
            subject,
            email,
            groups,
            hosted_domain: str_claim("hd").map(|d| d.to_ascii_lowercase()),
            github_orgs: Vec::new(),
        })
    }

    async fn get(&self, url: &Url) -> Result<Bytes, IdpError> {
        let req = http::Request::get(url.as_str())
            .header(ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let (status, doc) = self.send(req).await?;
        if !status.is_success() {
            return Err(IdpError::Unavailable(format!("{url} answered {status}")));
        }
        Ok(doc)
    }

    pub(super) async fn send(
        &self,
        req: http::Request<body::Body>,
    ) -> Result<(http::StatusCode, Bytes), IdpError> {
        // A client span for the call to the provider (no trace context is
        // sent to it: the provider is a third party).
        let uri = req.uri();
        let call = crate::telemetry::spans::upstream(
            req.method(),
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path(),
        );
        let traced = call.clone();
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| IdpError::Unavailable(e.to_string()))?;
            let status = resp.status();
            crate::telemetry::spans::status(&traced, status);
            let doc = body::read_capped(resp.into_body(), MAX_DOCUMENT, self.timeout)
                .await
                .map_err(|e| IdpError::Unavailable(e.to_string()))?;
            Ok((status, doc))
        };
        tokio::time::timeout(self.timeout, exchange)
            .instrument(call)
            .await
            .map_err(|_| IdpError::Unavailable(format!("no answer within {:?}", self.timeout)))?
    }
}

/// A random URL-safe token of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The S256 PKCE challenge of `verifier`.
pub(crate) fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

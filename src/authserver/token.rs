//! `/oauth/token` (authorization code with PKCE, refresh with rotation) and
//! `/oauth/revoke` (RFC 7009).
//!
//! Codes are taken atomically: of two racing redemptions one wins. A code
//! presented again afterwards revokes the family its first use started.
//! Refresh tokens rotate on every use. A rotated token presented again
//! within `refresh_reuse_grace` (a client that lost the response) gets a
//! fresh successor and the previous successor stops working; later, it
//! revokes the whole family. Each refresh re-applies the login policy and
//! the grants to the identity recorded at sign-in.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::AuthorizationServer;
use super::flow::{CodeGrant, constant_time_eq, hashed, now_secs, read_form};
use super::idp::{Identity, IdpError, random_token, s256};
use super::policy::{granted, matches};
use super::respond::{OAuthError, json_ok};
use super::store::Space;
use crate::body::Body;

/// A refresh token, as stored (under the hash of the token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RefreshRecord {
    family: String,
    client_id: String,
    resource: String,
    scopes: Vec<String>,
    identity: Identity,
    /// When the family started (its lifetime counts from there).
    family_started: u64,
    /// When this token was rotated, if it was.
    rotated_at: Option<u64>,
    /// The hash of its successor, if rotated.
    successor: Option<String>,
    /// The provider's refresh token, sealed.
    upstream_refresh: Option<String>,
    /// Replaced by a retry within the grace: presenting it revokes the family.
    #[serde(default)]
    superseded: bool,
}

/// RFC 9068 access-token claims.
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    scope: String,
    iat: u64,
    exp: u64,
    jti: String,
}

impl AuthorizationServer {
    /// `POST /oauth/token`.
    pub(super) async fn token(&self, req: Request<Incoming>) -> Response<Body> {
        let result = async {
            let form = read_form(req).await?;
            match form.get("grant_type").map(String::as_str) {
                Some("authorization_code") => self.redeem_code(&form).await,
                Some("refresh_token") => self.refresh(&form).await,
                Some(other) => Err(OAuthError::unsupported_grant_type(format!(
                    "`{other}` is not supported"
                ))),
                None => Err(OAuthError::invalid_request("grant_type is required")),
            }
        }
        .await;
        result.unwrap_or_else(|e| {
            self.metrics.auth_server_event("token", "refused");

            tracing::info!(target: "mcp_auth_gateway::audit", event = "token", outcome = "refused", error = e.code(), detail = e.description());
            e.into_response()
        })
    }

    async fn redeem_code(
        &self,
        form: &std::collections::HashMap<String, String>,
    ) -> Result<Response<Body>, OAuthError> {
        let get = |k: &str| form.get(k).map(String::as_str);
        let code = get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let client_id =
            get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
        let key = hashed(code);
        let taken = self
            .store
            .take(Space::Code, &key)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        let Some(raw) = taken else {
            // A replay: revoke what the first redemption produced.
            if let Some(family) = self.load_string(Space::UsedCode, &key).await? {
                self.revoke_family(&family).await?;
                self.metrics.auth_server_event("token", "code_replayed");

                tracing::warn!(target: "mcp_auth_gateway::audit", event = "token", outcome = "code_replayed", family = %family);
            }
            return Err(OAuthError::invalid_grant(
                "the code is invalid, expired or already used",
            ));
        };
        let grant: CodeGrant = serde_json::from_slice(&raw)
            .map_err(|_| OAuthError::invalid_grant("unreadable code"))?;
        // Remember the redemption for as long as the family may live.
        let used = serde_json::to_vec(&grant.family).unwrap_or_default();
        self.store
            .put(Space::UsedCode, &key, used, self.config.refresh_token_ttl)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        if grant.client_id != client_id {
            self.revoke_family(&grant.family).await?;
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client",
            ));
        }
        if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        let verifier = get("code_verifier")
            .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required (PKCE)"))?;
        let verifier_ok = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !verifier_ok
            || !constant_time_eq(s256(verifier).as_bytes(), grant.code_challenge.as_bytes())
        {
            return Err(OAuthError::invalid_grant(
                "code_verifier does not match the challenge",
            ));
        }
        if let Some(named) = get("resource") {
            let resource = self.resource_for(Some(named))?;
            if resource != grant.resource {
                return Err(OAuthError::invalid_target(
                    "resource differs from the authorization request".into(),
                ));
            }
        }
        let record = RefreshRecord {
            family: grant.family.clone(),
            client_id: grant.client_id.clone(),
            resource: grant.resource.clone(),
            scopes: grant.scopes.clone(),
            identity: grant.identity.clone(),
            family_started: now_secs(),
            rotated_at: None,
            successor: None,
            upstream_refresh: grant.upstream_refresh.clone(),
            superseded: false,
        };
        self.issue(record, "code").await
    }

    async fn refresh(
        &self,
        form: &std::collections::HashMap<String, String>,
    ) -> Result<Response<Body>, OAuthError> {
        let get = |k: &str| form.get(k).map(String::as_str);
        let token = get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let client_id =
            get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
        let key = hashed(token);
        let raw = self
            .store
            .get(Space::Refresh, &key)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?
            .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid or expired"))?;
        let record: RefreshRecord = serde_json::from_slice(&raw)
            .map_err(|_| OAuthError::invalid_grant("unreadable refresh token"))?;
        if self.family_revoked(&record.family).await? {
            return Err(OAuthError::invalid_grant("the refresh token was revoked"));
        }
        if record.client_id != client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if let Some(named) = get("resource") {
            if self.resource_for(Some(named))? != record.resource {
                return Err(OAuthError::invalid_target(
                    "a refresh token is for one resource".into(),
                ));
            }
        }
        let now = now_secs();
        if record.superseded {
            return Err(self
                .reuse_detected(&record, "a successor replaced by a retry")
                .await);
        }
        if let Some(rotated_at) = record.rotated_at {
            let grace = self.config.refresh_reuse_grace.as_secs();
            if now.saturating_sub(rotated_at) > grace {
                return Err(self.reuse_detected(&record, "after the grace").await);
            }
            // A retry within the grace is a client that lost the response:
            // its successor must be unused, and becomes a tombstone (showing
            // it later revokes the family). Otherwise two chains would live on.
            if let Some(successor) = &record.successor {
                let found = self
                    .store
                    .get(Space::Refresh, successor)
                    .await
                    .map_err(|e| OAuthError::unavailable(e.to_string()))?;
                if let Some(raw) = found {
                    {
                        let next: RefreshRecord = serde_json::from_slice(&raw)
                            .map_err(|_| OAuthError::invalid_grant("unreadable refresh token"))?;
                        if next.rotated_at.is_some() || next.superseded {
                            return Err(self
                                .reuse_detected(&record, "its successor was already used")
                                .await);
                        }
                        let tomb = RefreshRecord {
                            superseded: true,
                            ..next
                        };
                        let tomb = serde_json::to_vec(&tomb).unwrap_or_default();
                        let ttl = self.family_ttl(&record);
                        let swapped = self
                            .store
                            .compare_and_set(Space::Refresh, successor, &raw, tomb, ttl)
                            .await
                            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
                        if !swapped {
                            return Err(self
                                .reuse_detected(&record, "its successor was used meanwhile")
                                .await);
                        }
                    }
                }
            }
        }
        // Ask the provider about the person again (when it gave the gateway a
        // refresh token), then the login policy and grants: a person removed
        // from the group, or disabled at the provider, loses access here.
        let (identity, upstream_refresh) = self.recheck(&record).await?;
        if !matches(&self.config.login, &identity, self.config.upstream.kind) {
            self.revoke_family(&record.family).await?;
            self.metrics.auth_server_event("token", "login_refused");

            tracing::info!(target: "mcp_auth_gateway::audit", event = "token", outcome = "login_refused", user = %identity.subject);
            return Err(OAuthError::invalid_grant(
                "the login policy no longer admits this user",
            ));
        }
        let allowed = granted(&self.config, &identity);
        let mut scopes: Vec<String> = record
            .scopes
            .iter()
            .filter(|s| allowed.contains(s))
            .cloned()
            .collect();
        if let Some(asked) = get("scope") {
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.iter().any(|s| !scopes.iter().any(|g| g == s)) {
                return Err(OAuthError::new_invalid_scope());
            }
            scopes.retain(|s| asked.contains(&s.as_str()));
        }
        let next_token =
            random_token(32).map_err(|_| OAuthError::unavailable("random source failed"))?;
        let next_key = hashed(&next_token);
        // Rotate: only one of two racing refreshes wins the swap.
        let mut rotated = record.clone();
        rotated.rotated_at = Some(record.rotated_at.unwrap_or(now));
        rotated.successor = Some(next_key.clone());
        let ttl = self.family_ttl(&record);
        let swapped = self
            .store
            .compare_and_set(
                Space::Refresh,
                &key,
                &raw,
                serde_json::to_vec(&rotated).unwrap_or_default(),
                ttl,
            )
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        if !swapped {
            return Err(OAuthError::invalid_grant(
                "the refresh token was used concurrently; retry with the newest one",
            ));
        }
        let next = RefreshRecord {
            scopes,
            identity,
            upstream_refresh,
            rotated_at: None,
            successor: None,
            ..record
        };
        self.issue_with(next, next_token, "refresh").await
    }

    /// The person as the provider sees them now, and the provider's refresh
    /// token to keep. Without a provider refresh token, the identity recorded
    /// at sign-in. A provider that refuses revokes the family; one that is
    /// down gets 503 (never an allow).
    async fn recheck(
        &self,
        record: &RefreshRecord,
    ) -> Result<(Identity, Option<String>), OAuthError> {
        let Some(sealed) = &record.upstream_refresh else {
            return Ok((record.identity.clone(), None));
        };
        let Some(upstream) = self.sealer.open(sealed) else {
            // Sealed under another key (cookie_key changed): sign in again.
            return Err(OAuthError::invalid_grant(
                "the sign-in can no longer be renewed; sign in again",
            ));
        };
        match self.idp.refresh(&upstream, &record.identity.subject).await {
            Ok((identity, rotated)) => {
                let keep = match rotated {
                    Some(t) => Some(
                        self.sealer
                            .seal(&t)
                            .map_err(|_| OAuthError::unavailable("sealing failed"))?,
                    ),
                    None => Some(sealed.clone()),
                };
                Ok((identity, keep))
            }
            Err(IdpError::Refused(reason)) => {
                self.revoke_family(&record.family).await?;
                self.metrics.auth_server_event("token", "idp_refused");

                tracing::info!(target: "mcp_auth_gateway::audit", event = "token", outcome = "idp_refused", user = %record.identity.subject, reason = %reason);
                Err(OAuthError::invalid_grant(
                    "the identity provider no longer vouches for this user",
                ))
            }
            Err(e) => Err(OAuthError::unavailable(e.to_string())),
        }
    }

    /// A refresh token presented when it must not be: the family is revoked
    /// (both the thief's and the owner's tokens die) and the event audited.
    async fn reuse_detected(&self, record: &RefreshRecord, why: &'static str) -> OAuthError {
        if let Err(e) = self.revoke_family(&record.family).await {
            return e;
        }
        self.metrics.auth_server_event("token", "refresh_reused");

        tracing::warn!(target: "mcp_auth_gateway::audit", event = "token", outcome = "refresh_reused", why, family = %record.family, user = %record.identity.subject);
        OAuthError::invalid_grant("the refresh token was already used; its family is revoked")
    }

    fn family_ttl(&self, record: &RefreshRecord) -> Duration {
        let age = now_secs().saturating_sub(record.family_started);
        self.config
            .refresh_token_ttl
            .saturating_sub(Duration::from_secs(age))
    }

    async fn issue(&self, record: RefreshRecord, how: &str) -> Result<Response<Body>, OAuthError> {
        let token =
            random_token(32).map_err(|_| OAuthError::unavailable("random source failed"))?;
        self.issue_with(record, token, how).await
    }

    /// Stores the refresh token and answers with it and a fresh access token.
    async fn issue_with(
        &self,
        record: RefreshRecord,
        refresh: String,
        how: &str,
    ) -> Result<Response<Body>, OAuthError> {
        let ttl = self.family_ttl(&record);
        if ttl.is_zero() {
            return Err(OAuthError::invalid_grant(
                "the sign-in expired; sign in again",
            ));
        }
        self.store
            .put(
                Space::Refresh,
                &hashed(&refresh),
                serde_json::to_vec(&record).unwrap_or_default(),
                ttl,
            )
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        let now = now_secs();
        let lifetime = self.config.access_token_ttl.as_secs();
        let scope = record.scopes.join(" ");
        let claims = AccessClaims {
            iss: &self.config.issuer,
            sub: &record.identity.subject,
            aud: &record.resource,
            client_id: &record.client_id,
            scope: scope.clone(),
            iat: now,
            exp: now + lifetime,
            jti: random_token(16).map_err(|_| OAuthError::unavailable("random source failed"))?,
        };
        let access = self
            .keys
            .ring()
            .sign_access_token(&claims)
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        self.metrics
            .auth_server_event("token", if how == "code" { "issued" } else { "refreshed" });

        tracing::info!(target: "mcp_auth_gateway::audit", event = "token", outcome = "issued", how, client_id = %record.client_id, user = %record.identity.subject, resource = %record.resource, scopes = %scope);
        Ok(json_ok(&serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "refresh_token": refresh,
            "scope": scope,
        })))
    }

    async fn load_string(&self, space: Space, key: &str) -> Result<Option<String>, OAuthError> {
        let raw = self
            .store
            .get(space, key)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    async fn family_revoked(&self, family: &str) -> Result<bool, OAuthError> {
        Ok(self
            .store
            .get(Space::RevokedFamily, family)
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))?
            .is_some())
    }

    async fn revoke_family(&self, family: &str) -> Result<(), OAuthError> {
        self.store
            .put(
                Space::RevokedFamily,
                family,
                b"1".to_vec(),
                self.config.refresh_token_ttl,
            )
            .await
            .map_err(|e| OAuthError::unavailable(e.to_string()))
    }

    /// `POST /oauth/revoke` (RFC 7009): revokes a refresh token's family.
    /// Unknown tokens get 200 too (§2.2). Access tokens are short-lived
    /// JWTs and cannot be revoked.
    pub(super) async fn revoke(&self, req: Request<Incoming>) -> Response<Body> {
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(e) => return e.into_response(),
        };
        let Some(token) = form.get("token") else {
            return OAuthError::invalid_request("token is required").into_response();
        };
        let raw = match self.store.get(Space::Refresh, &hashed(token)).await {
            Ok(raw) => raw,
            Err(e) => return OAuthError::unavailable(e.to_string()).into_response(),
        };
        if let Some(record) = raw.and_then(|r| serde_json::from_slice::<RefreshRecord>(&r).ok()) {
            if form
                .get("client_id")
                .is_some_and(|c| *c != record.client_id)
            {
                return OAuthError::invalid_client("the token was issued to another client")
                    .into_response();
            }
            if let Err(e) = self.revoke_family(&record.family).await {
                return e.into_response();
            }
            self.metrics.auth_server_event("revoke", "revoked");

            tracing::info!(target: "mcp_auth_gateway::audit", event = "revoke", family = %record.family, user = %record.identity.subject);
        }
        json_ok(&serde_json::json!({}))
    }
}

//! Stage 4d: RFC 7662 token introspection, for opaque tokens and for JWTs of
//! an issuer configured without keys.
//!
//! The gateway authenticates to the endpoint with its own client credentials
//! (`client_secret_basic` or `client_secret_post`). An answer must say
//! `active: true`; `iss`, when present, must be the issuer; `exp`, when
//! present, must be in the future; `aud` is checked per route like a JWT's
//! (and required unless the issuer opts out). Results are cached by SHA-256 of
//! the token, never the token: active ones until `min(cache_ttl, exp)`,
//! inactive ones briefly. An endpoint failure is a 503, never an allow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;

use super::{AuthnError, Principal};
use crate::body;
use crate::config::{Introspection, Issuer};
use crate::http_client::HttpClient;

/// An introspection answer larger than this is refused.
const MAX_RESPONSE: usize = 64 * 1024;

/// A cached introspection outcome.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An active token, and who it stands for.
    Active(Arc<Principal>),
    /// `active: false`, or an explicit refusal.
    Inactive,
}

/// Introspects tokens at one issuer's endpoint, with a cache.
pub struct Introspector {
    issuer: Arc<Issuer>,
    settings: Introspection,
    client: HttpClient,
    timeout: Duration,
    cache: Cache<[u8; 32], Outcome>,
}

/// Active entries live until `min(cache_ttl, exp)`, inactive ones for
/// `negative_cache_ttl`.
struct Lifetime {
    positive: Duration,
    negative: Duration,
}

impl Expiry<[u8; 32], Outcome> for Lifetime {
    fn expire_after_create(&self, _: &[u8; 32], v: &Outcome, _: Instant) -> Option<Duration> {
        Some(match v {
            Outcome::Active(p) => {
                let until_exp = p
                    .expires_at
                    .saturating_sub(jsonwebtoken::get_current_timestamp());
                self.positive.min(Duration::from_secs(until_exp))
            }
            Outcome::Inactive => self.negative,
        })
    }
}

/// RFC 7662 §2.2 response members the gateway reads.
#[derive(Deserialize)]
struct Response {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Aud>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

impl Introspector {
    /// An introspector for `issuer`, which must have introspection settings.
    pub fn new(
        issuer: Arc<Issuer>,
        settings: Introspection,
        client: HttpClient,
        timeout: Duration,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(100_000)
            .expire_after(Lifetime {
                positive: settings.cache_ttl,
                negative: settings.negative_cache_ttl,
            })
            .build();
        Self {
            issuer,
            settings,
            client,
            timeout,
            cache,
        }
    }

    /// The issuer this introspector serves.
    pub fn issuer(&self) -> &str {
        &self.issuer.issuer
    }

    /// The principal for an active token; `InactiveToken` otherwise.
    pub async fn introspect(
        &self,
        token: &str,
        key: [u8; 32],
    ) -> Result<Arc<Principal>, AuthnError> {
        let outcome = match self.cache.get(&key).await {
            Some(outcome) => outcome,
            None => {
                let outcome = self.ask(token).await?;
                self.cache.insert(key, outcome.clone()).await;
                outcome
            }
        };
        match outcome {
            Outcome::Active(p)
                if p.expires_at == 0 || p.expires_at > jsonwebtoken::get_current_timestamp() =>
            {
                Ok(p)
            }
            _ => Err(AuthnError::InactiveToken),
        }
    }

    async fn ask(&self, token: &str) -> Result<Outcome, AuthnError> {
        let unavailable = |why: String| self.unavailable(&why);
        let secret = String::from_utf8_lossy(&self.settings.client_secret.0).into_owned();
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", "access_token");
            if self.settings.post_credentials {
                form.append_pair("client_id", &self.settings.client_id)
                    .append_pair("client_secret", &secret);
            }
            form.finish()
        };
        let mut req = http::Request::post(self.settings.endpoint.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        if !self.settings.post_credentials {
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&self.settings.client_id),
                enc(&secret)
            ));
            req = req.header(AUTHORIZATION, format!("Basic {basic}"));
        }
        let req = req
            .body(body::full(form))
            .map_err(|e| unavailable(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| unavailable(e.to_string()))?;
            Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unavailable("timed out".into()))??;
        self.read_answer(status, &bytes)
    }

    /// The outcome of the endpoint's answer (`status`, body `bytes`): the
    /// part of [`Self::introspect`] that reads what the authorization
    /// server sent, and the subject of `fuzz/fuzz_targets/idp_documents.rs`.
    pub fn read_answer(
        &self,
        status: http::StatusCode,
        bytes: &[u8],
    ) -> Result<Outcome, AuthnError> {
        let unavailable = |why: String| self.unavailable(&why);
        match serde_json::from_slice::<Response>(bytes) {
            Ok(answer) if status.is_success() => self.judge(answer),
            // Some servers (the MCP TS SDK's demo) answer an unknown token with a
            // 4xx *and* `{"active": false}`: an explicit verdict. Any other
            // non-2xx (our own credentials refused, say) is an outage.
            Ok(answer) if status.is_client_error() && !answer.active => Ok(Outcome::Inactive),
            Ok(_) => Err(unavailable(format!("status {status}"))),
            // serde's message may quote response values: keep it out of the log.
            Err(_) if status.is_success() => {
                Err(unavailable("response is not an RFC 7662 answer".into()))
            }
            Err(_) => Err(unavailable(format!("status {status}"))),
        }
    }

    /// The outage error for this issuer, logged once with `why`. `why` is
    /// our own description (a status, a timeout, a transport error), never
    /// the token, the client secret or a value from the answer.
    fn unavailable(&self, why: &str) -> AuthnError {
        tracing::warn!(issuer = %self.issuer.issuer, error = %why, "token introspection failed");
        AuthnError::IntrospectionUnavailable {
            issuer: self.issuer.issuer.clone(),
        }
    }

    /// Turns an answer into an outcome; `Err` only for answers that are
    /// active but unacceptable (wrong issuer, expired, no audience).
    fn judge(&self, answer: Response) -> Result<Outcome, AuthnError> {
        if !answer.active {
            return Ok(Outcome::Inactive);
        }
        if answer
            .iss
            .as_deref()
            .is_some_and(|iss| iss != self.issuer.issuer)
        {
            return Err(AuthnError::UnknownIssuer);
        }
        let now = jsonwebtoken::get_current_timestamp();
        if answer.exp.is_some_and(|exp| exp <= now) {
            return Err(AuthnError::Expired);
        }
        let audiences = match answer.aud {
            Some(Aud::One(a)) => vec![a],
            Some(Aud::Many(list)) => list,
            None if self.settings.require_audience => return Err(AuthnError::AudienceMismatch),
            None => Vec::new(),
        };
        let mut scopes = super::jwt::split_scopes(&answer.scope.unwrap_or_default());
        scopes.sort_unstable();
        scopes.dedup();
        Ok(Outcome::Active(Arc::new(Principal {
            issuer: self.issuer.issuer.clone(),
            subject: answer.sub,
            client_id: answer.client_id,
            scopes,
            audience_unchecked: audiences.is_empty(),
            audiences,
            expires_at: answer.exp.unwrap_or(0),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeySource, Secret};

    fn introspector(require_audience: bool) -> Introspector {
        rustls::crypto::aws_lc_rs::default_provider()
            .install_default()
            .ok();
        let issuer = Arc::new(Issuer {
            issuer: "https://as.example".into(),
            keys: KeySource::IntrospectionOnly,
            algorithms: vec![],
            scope_claims: vec![],
            leeway: Duration::from_secs(30),
            require_typ: true,
            introspection: None,
        });
        let settings = Introspection {
            endpoint: url::Url::parse("https://as.example/introspect").unwrap(),
            client_id: "gateway".into(),
            client_secret: Secret(b"s".to_vec()),
            post_credentials: false,
            cache_ttl: Duration::from_secs(60),
            negative_cache_ttl: Duration::from_secs(5),
            require_audience,
        };
        Introspector::new(
            issuer,
            settings,
            crate::http_client::build(Duration::from_secs(1)),
            Duration::from_secs(1),
        )
    }

    fn answer(json: serde_json::Value) -> Response {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn judges_answers() {
        let i = introspector(true);
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let ok = i.judge(answer(serde_json::json!({
            "active": true, "scope": "b a", "sub": "alice", "client_id": "c", "exp": exp,
            "iss": "https://as.example", "aud": ["https://mcp.example/mcp"]
        })));
        let Ok(Outcome::Active(p)) = ok else {
            panic!("expected active")
        };
        assert_eq!(p.scopes, vec!["a", "b"]);
        assert_eq!(p.audiences, vec!["https://mcp.example/mcp"]);
        assert!(matches!(
            i.judge(answer(serde_json::json!({"active": false}))),
            Ok(Outcome::Inactive)
        ));
        assert!(matches!(
            i.judge(answer(
                serde_json::json!({"active": true, "aud": "x", "iss": "https://evil"})
            )),
            Err(AuthnError::UnknownIssuer)
        ));
        assert!(matches!(
            i.judge(answer(
                serde_json::json!({"active": true, "aud": "x", "exp": 1})
            )),
            Err(AuthnError::Expired)
        ));
        assert!(matches!(
            i.judge(answer(serde_json::json!({"active": true}))),
            Err(AuthnError::AudienceMismatch)
        ));
        let lax = introspector(false);
        let Ok(Outcome::Active(p)) = lax.judge(answer(serde_json::json!({"active": true}))) else {
            panic!("expected active");
        };
        assert!(p.audience_unchecked);
        // Accepted on a route that lists no audiences beyond its resource,
        // refused on one that does.
        let route = |extra: &str| {
            let yaml = format!(
                "issuers: [{{issuer: \"https://as.example\", jwks_uri: \"https://as.example/jwks\"}}]\nroutes: [{{path: /mcp, upstream: \"http://127.0.0.1:1/mcp\", resource: \"https://mcp.example/mcp\"{extra}}}]\n"
            );
            crate::config::Config::from_yaml(&yaml, std::path::Path::new("."))
                .unwrap()
                .0
                .routes[0]
                .clone()
        };
        assert!(crate::authn::jwt::check_audience(&p, &route("")).is_ok());
        assert!(matches!(
            crate::authn::jwt::check_audience(&p, &route(", audiences: [api://x]")),
            Err(AuthnError::AudienceMismatch)
        ));
        // An answer with an `aud` is still checked.
        let Ok(Outcome::Active(named)) = lax.judge(answer(
            serde_json::json!({"active": true, "aud": "https://other/mcp"}),
        )) else {
            panic!("expected active");
        };
        assert!(crate::authn::jwt::check_audience(&named, &route("")).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_not_an_allow() {
        let mut i = introspector(true);
        i.settings.endpoint = url::Url::parse("http://127.0.0.1:9/introspect").unwrap();
        let err = i.introspect("opaque", [0; 32]).await.unwrap_err();
        assert!(matches!(err, AuthnError::IntrospectionUnavailable { .. }));
    }
}

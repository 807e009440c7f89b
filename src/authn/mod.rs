//! Stage 4: authenticate the bearer token → [`Principal`] or [`AuthnError`].
//!
//! Authn reads headers and the query string only; it never reads the body and
//! never decides authorization beyond "this token was minted for this
//! resource" (RFC 8707 audience). Implements RFC 6750 §2.1 (header only),
//! RFC 9068 / RFC 8725 JWT validation, and the MCP authorization spec's
//! audience rule.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use moka::Expiry;
use moka::future::Cache;

use crate::config::{Config, KeySource, Route};
use crate::http_client::HttpClient;
use crate::telemetry::metrics::Metrics;

pub mod bearer;
pub mod introspect;
pub mod jwks;
pub mod jwt;

pub use introspect::Introspector;
pub use jwks::{KeySet, KeyStore};

/// Who is calling, as proven by a verified token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's issuer (`iss`).
    pub issuer: String,
    /// The token's subject (`sub`), when present.
    pub subject: Option<String>,
    /// The OAuth client (`client_id` or `azp`), when present.
    pub client_id: Option<String>,
    /// Granted scopes, deduplicated and sorted.
    pub scopes: Vec<String>,
    /// The token's audiences (`aud`).
    pub audiences: Vec<String>,
    /// `exp`, in seconds since the epoch (0: the introspection gave none).
    pub expires_at: u64,
    /// Introspected without `aud`, on an issuer that opted out of requiring it.
    pub audience_unchecked: bool,
}

impl Principal {
    /// A bare principal (`iss`, `sub`, nothing granted) for unit tests.
    #[cfg(test)]
    pub fn for_tests(issuer: &str, subject: &str) -> Self {
        Self {
            issuer: issuer.into(),
            subject: Some(subject.into()),
            client_id: None,
            scopes: vec![],
            audiences: vec![],
            expires_at: 0,
            audience_unchecked: false,
        }
    }

    /// Whether every scope in `required` was granted.
    pub fn has_all(&self, required: &[String]) -> bool {
        required
            .iter()
            .all(|r| self.scopes.binary_search(r).is_ok())
    }
}

/// Why a request is not authenticated. Variants name the fault; `reject.rs`
/// picks the status.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// No bearer credentials were sent (RFC 6750 §3.1: no `error` code).
    #[error("no bearer token")]
    Missing,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    /// An `access_token` in the query string (forbidden by the MCP spec).
    #[error("access token in the query string")]
    TokenInQuery,
    /// The header or token is not well formed.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The `typ` header is not a JWT access-token type.
    #[error("token type is not accepted")]
    BadType,
    /// A `crit` header names extensions the gateway does not implement.
    #[error("token has critical header extensions")]
    CriticalHeader,
    /// `iss` is not a configured issuer.
    #[error("untrusted issuer")]
    UnknownIssuer,
    /// The algorithm is not on the issuer's allow-list or does not fit the key.
    #[error("algorithm {0} not allowed")]
    AlgorithmNotAllowed(String),
    /// No key with this `kid`, even after a refetch.
    #[error("unknown signing key")]
    UnknownKid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim is missing or has the wrong type.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// `aud` does not name this resource.
    #[error("token audience does not match this resource")]
    AudienceMismatch,
    /// A token of the built-in authorization server on a route that does
    /// not name it among its `authorization_servers`.
    #[error("this route does not accept the gateway's own tokens")]
    NotThisRoutesServer,
    /// The introspection endpoint says the token is not active.
    #[error("token is not active")]
    InactiveToken,
    /// The introspection endpoint could not be asked.
    #[error("token introspection at {issuer} is unavailable")]
    IntrospectionUnavailable {
        /// The issuer whose endpoint failed.
        issuer: String,
    },
    /// The issuer's keys were never loaded, so no token can be judged.
    #[error("signing keys for {issuer} are not available")]
    KeysUnavailable {
        /// The issuer whose keys are missing.
        issuer: String,
    },
}

/// Validates bearer tokens against the configured issuers' keys.
pub struct Authenticator {
    stores: HashMap<String, Arc<KeyStore>>,
    /// Verified tokens by SHA-256 (never the token itself), until `exp` or the
    /// configured TTL, whichever is first.
    cache: Cache<[u8; 32], Arc<Principal>>,
    metrics: Arc<Metrics>,
    /// Issuers with introspection, in config order; opaque tokens go to the first.
    introspectors: Vec<Arc<Introspector>>,
}

/// Expires each cached token at its own `exp`.
struct UntilExp;

impl Expiry<[u8; 32], Arc<Principal>> for UntilExp {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        p: &Arc<Principal>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(p.expires_at.saturating_sub(now())))
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl Authenticator {
    /// Creates one key store per issuer and starts their background refresh.
    /// Stores of `previous` whose issuer config is unchanged are reused, so a
    /// config reload keeps loaded keys.
    /// `built_in` is where the built-in authorization server (when
    /// configured) publishes its public keys, and republishes them when they
    /// rotate: its tokens are verified in-process, never fetched.
    pub fn start(
        config: &Config,
        client: HttpClient,
        metrics: Arc<Metrics>,
        previous: Option<&Authenticator>,
        mut built_in: Option<Arc<arc_swap::ArcSwapOption<KeySet>>>,
    ) -> Self {
        let stores = config
            .issuers
            .iter()
            .filter(|issuer| issuer.keys != KeySource::IntrospectionOnly)
            .map(|issuer| {
                let reused = previous
                    .and_then(|p| p.stores.get(&issuer.issuer))
                    .filter(|s| *s.issuer() == **issuer && s.has_keys());
                let timeout = config.limits.jwks_fetch_timeout;
                if issuer.keys == KeySource::BuiltIn {
                    let store = match built_in.take() {
                        Some(keys) => {
                            KeyStore::published(issuer.clone(), client.clone(), timeout, keys)
                        }
                        None => KeyStore::new(issuer.clone(), client.clone(), timeout),
                    };
                    return (issuer.issuer.clone(), store);
                }
                let store = match reused {
                    Some(store) => store.clone(),
                    None => {
                        let store = KeyStore::new(
                            issuer.clone(),
                            client.clone(),
                            config.limits.jwks_fetch_timeout,
                        );
                        store.load_file_now();
                        store.clone().spawn_refresh(metrics.clone());
                        store
                    }
                };
                (issuer.issuer.clone(), store)
            })
            .collect();
        let cache = Cache::builder()
            .max_capacity(config.token_cache.max_entries)
            .time_to_live(config.token_cache.ttl)
            .expire_after(UntilExp)
            .build();
        let introspectors = config
            .issuers
            .iter()
            .filter_map(|issuer| {
                let settings = issuer.introspection.clone()?;
                Some(Arc::new(Introspector::new(
                    issuer.clone(),
                    settings,
                    client.clone(),
                    config.limits.jwks_fetch_timeout,
                )))
            })
            .collect();
        Self {
            stores,
            cache,
            metrics,
            introspectors,
        }
    }

    /// Authenticates a request to `route`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        route: &Route,
    ) -> Result<Arc<Principal>, AuthnError> {
        let token = bearer::extract(headers, query)?.ok_or(AuthnError::Missing)?;
        let key = sha256(token);
        let principal = match self.cache.get(&key).await {
            // Belt and braces: never trust an entry past `exp`, whatever the cache does.
            Some(p) if p.expires_at > now() => {
                self.metrics.token_cache_hits.inc();
                p
            }
            _ => {
                self.metrics.token_cache_misses.inc();
                match self.introspector_for(token) {
                    Some(introspector) => introspector.introspect(token, key).await?,
                    None => {
                        let p = Arc::new(jwt::verify(token, &self.stores).await?);
                        self.cache.insert(key, p.clone()).await;
                        p
                    }
                }
            }
        };
        // A cached token still goes through the route's audience check.
        jwt::check_audience(&principal, route)?;
        // The built-in server's tokens count only where the route sends
        // clients to it: a route that names another server keeps its own.
        let built_in = self
            .stores
            .get(&principal.issuer)
            .is_some_and(|s| s.issuer().keys == KeySource::BuiltIn);
        if built_in && !route.authorization_servers.contains(&principal.issuer) {
            return Err(AuthnError::NotThisRoutesServer);
        }
        Ok(principal)
    }

    /// The introspector for `token`, if it is to be introspected: a token that
    /// is not a JWT goes to the first introspecting issuer; a JWT goes to its
    /// issuer's introspector when that issuer has no keys.
    fn introspector_for(&self, token: &str) -> Option<&Arc<Introspector>> {
        match jwt::unverified_issuer(token) {
            Some(iss) if !self.stores.contains_key(&iss) => {
                self.introspectors.iter().find(|i| i.issuer() == iss)
            }
            Some(_) => None,
            None if token.split('.').count() == 3 => None,
            None => self.introspectors.first(),
        }
    }

    /// How many verified tokens are cached (for tests and metrics).
    pub fn cached_tokens(&self) -> u64 {
        self.cache.entry_count()
    }

    /// True when every issuer has a usable key set (`/readyz`).
    pub fn ready(&self) -> bool {
        self.stores.values().all(|s| s.has_keys())
    }
}

/// SHA-256 of the token: the cache key, so the cache never holds a token.
fn sha256(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"s",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    fn config_with(jwks_file: &str) -> Config {
        let yaml = format!(
            "issuers:\n  - issuer: https://issuer.example.test\n    jwks_file: {jwks_file}\n\
             routes:\n  - path: /mcp\n    upstream: http://127.0.0.1:9/mcp\n    \
             resource: https://mcp.example.test/mcp\n"
        );
        Config::from_yaml(&yaml, std::path::Path::new("/"))
            .unwrap()
            .0
    }

    /// Readiness must not depend on the background loop having run: the
    /// runtime below is never yielded to between `start` and the check.
    #[tokio::test]
    async fn a_jwks_file_is_loaded_before_start_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, JWKS).unwrap();
        let client = crate::http_client::build(Duration::from_secs(1));
        let metrics = Arc::new(Metrics::new());
        let config = config_with(&path.display().to_string());
        assert!(Authenticator::start(&config, client.clone(), metrics.clone(), None, None).ready());

        let missing = config_with("/nonexistent/jwks.json");
        assert!(!Authenticator::start(&missing, client, metrics, None, None).ready());
    }
}

//! The built-in OAuth 2.1 authorization server: the second plane of the
//! binary. MCP clients discover it from the protected-resource metadata,
//! identify themselves (RFC 7591 registration), send the user's browser to
//! `/oauth/authorize`, where the gateway asks for consent and then sends the
//! browser on to the upstream identity provider (`idp.rs`). On the way back
//! it applies the login policy and the grants, and `/oauth/token` mints a
//! short-lived RFC 9068 JWT for the route's resource plus a rotating refresh
//! token. The resource side verifies those JWTs in-process (the public key
//! is handed to `authn`, never fetched).
//!
//! Files: `mod.rs` (endpoints and dispatch), `flow.rs` (authorize, consent),
//! `callback.rs`, `register.rs` (registration, client lookup), `policy.rs`
//! (login policy, grants), `token.rs` (token and revocation), `clients.rs` (registration,
//! redirect rule), `idp.rs` (upstream connector), `keys.rs` (signing key),
//! `store/` (state), `pages.rs` (HTML), `respond.rs` (every answer this
//! plane sends: JSON errors with RFC codes, HTML pages, redirects).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::json;

use crate::authn::KeySet;
use crate::body::Body;
use crate::config::{AuthServer, Config, StoreSetting};
use crate::http_client::HttpClient;
use crate::telemetry::metrics::Metrics;
use crate::throttle::IpLimiter;

mod callback;
mod cimd;
mod clients;
mod flow;
mod github;
mod idp;
mod keys;
mod pages;
mod policy;
mod register;
mod respond;
mod seal;
mod store;
mod token;

use keys::Keys;
use respond::{OAuthError, json_ok};
use store::{MemoryStore, Store};

/// Every endpoint is under this segment of the issuer's path.
const PREFIX: &str = "/oauth";

/// The authorization server of one config snapshot. Its store and signing
/// key outlive reloads (they are handed from one snapshot to the next).
pub struct AuthorizationServer {
    config: Arc<AuthServer>,
    /// (canonical form, configured form) of every route's resource: a
    /// request names the first, a token carries the second as `aud`.
    resources: Vec<(String, String)>,
    /// Configured resource → the route's `resource_name`, for the consent page.
    resource_names: std::collections::HashMap<String, String>,
    /// The issuer's path (`""` for a bare origin).
    base: String,
    store: Arc<Store>,
    keys: Arc<Keys>,
    idp: Arc<idp::Idp>,
    cookies: cookie::Key,
    sealer: Arc<seal::Sealer>,
    /// Client ID Metadata Documents, when accepted.
    cimd: Option<Arc<cimd::CimdClients>>,
    /// Per-network rates of the unauthenticated endpoints (kept across reloads).
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
}

/// The rates of the endpoints anyone can call, per client network (IPv4
/// address, IPv6 /64). Each request to `/authorize` stores a pending
/// record, so this bounds the store as well as the work.
pub(crate) struct Limits {
    /// `/authorize`, `/consent`, `/callback`: 60 a minute, 30 at once.
    pub(crate) browser: IpLimiter,
    /// `/register`: 20 an hour.
    pub(crate) register: IpLimiter,
    /// `/token`, `/revoke`: 120 a minute, 60 at once.
    pub(crate) token: IpLimiter,
}

impl Limits {
    fn new() -> Self {
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let minute = Duration::from_secs(60);
        Self {
            browser: IpLimiter::new(n(60), minute, n(30), 100_000),
            register: IpLimiter::new(n(20), Duration::from_secs(3600), n(20), 100_000),
            token: IpLimiter::new(n(120), minute, n(60), 100_000),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Key generation failed (the system RNG).
    #[error("authorization server: {0}")]
    Crypto(String),
    /// The configured store cannot be opened.
    #[error("authorization server store: {0}")]
    Store(String),
    /// The CIMD fetcher cannot be built (its test CA file).
    #[error("authorization server clients.cimd: {0}")]
    Cimd(String),
}

impl AuthorizationServer {
    /// Builds the server for `config`, reusing the store, key and cookie key
    /// of `previous` (so a reload loses no session, code or token).
    pub async fn start(
        config: &Config,
        client: HttpClient,
        metrics: Arc<Metrics>,
        previous: Option<&AuthorizationServer>,
    ) -> Result<Option<Self>, StartError> {
        let Some(settings) = config.authorization_server.clone() else {
            return Ok(None);
        };
        let (store, keys, cookies, sealer) = match previous {
            Some(p)
                if p.config.store == settings.store
                    && p.config.store_ca_file == settings.store_ca_file
                    && p.config.cookie_key == settings.cookie_key =>
            {
                (
                    p.store.clone(),
                    p.keys.clone(),
                    p.cookies.clone(),
                    p.sealer.clone(),
                )
            }
            _ => {
                let store = match &settings.store {
                    StoreSetting::Memory => Store::Memory(MemoryStore::default()),
                    StoreSetting::Redis(url) => {
                        let url = String::from_utf8_lossy(&url.0).into_owned();
                        let redis =
                            store::RedisStore::open(&url, settings.store_ca_file.as_deref())
                                .map_err(|e| StartError::Store(format!("redis: {e}")))?;
                        Store::Redis(redis)
                    }
                    StoreSetting::Sqlite(path) => {
                        Store::Sqlite(store::SqliteStore::open(path).map_err(|e| {
                            StartError::Store(format!("sqlite:{}: {e}", path.display()))
                        })?)
                    }
                };
                let crypto = |e: aws_lc_rs::error::Unspecified| StartError::Crypto(e.to_string());
                let master = match &settings.cookie_key {
                    Some(secret) => secret.0.clone(),
                    None => {
                        let mut master = vec![0u8; 32];
                        aws_lc_rs::rand::fill(&mut master).map_err(crypto)?;
                        master
                    }
                };
                let cookies = cookie::Key::derive_from(&master);
                let sealer = seal::Sealer::from_secret(&master).map_err(crypto)?;
                let persistent = settings.cookie_key.is_some();
                let shared = matches!(store, Store::Redis(_));
                let keys = Keys::start(&store, &sealer, persistent, shared).await?;
                let (store, sealer) = (Arc::new(store), Arc::new(sealer));
                if let Store::Redis(redis) = &*store {
                    let gauge = metrics.redis_gauge("store");
                    let _first = redis.up.set(gauge.clone());
                    let owner = Arc::downgrade(&store);
                    crate::telemetry::redis::probe(redis.conn(), gauge, owner);
                }
                if persistent {
                    keys.spawn_refresh(Arc::downgrade(&store), sealer.clone());
                }
                (store, keys, cookies, sealer)
            }
        };
        let base = url::Url::parse(&settings.issuer)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        // Only the routes that send clients here: a route that names another
        // authorization server is never given a token by this one.
        let ours = || {
            config
                .routes
                .iter()
                .filter(|r| r.authorization_servers.contains(&settings.issuer))
        };
        let resources = ours()
            .map(|r| {
                let canonical =
                    canonical_resource(&r.resource).unwrap_or_else(|| r.resource.clone());
                (canonical, r.resource.clone())
            })
            .collect();
        let resource_names = ours()
            .filter_map(|r| Some((r.resource.clone(), r.resource_name.clone()?)))
            .collect();
        let cimd = match &settings.cimd {
            Some(c) => Some(Arc::new(
                cimd::CimdClients::new(c, config.limits.jwks_fetch_timeout)
                    .map_err(StartError::Cimd)?,
            )),
            None => None,
        };
        let idp = Arc::new(idp::Idp::new(
            settings.clone(),
            client,
            config.limits.jwks_fetch_timeout,
        ));
        Ok(Some(Self {
            config: settings,
            resources,
            resource_names,
            base,
            store,
            keys,
            idp,
            cookies,
            sealer,
            cimd,
            limits: previous.map_or_else(|| Arc::new(Limits::new()), |p| p.limits.clone()),
            metrics,
        }))
    }

    /// Where the public keys are published for the resource side (updated
    /// in place when they rotate).
    pub fn public_keys(&self) -> Arc<arc_swap::ArcSwapOption<KeySet>> {
        self.keys.public()
    }

    /// Whether this server answers `path`.
    pub fn owns(&self, path: &str) -> bool {
        path.strip_prefix(&self.base)
            .is_some_and(|rest| rest.starts_with(&format!("{PREFIX}/")))
            || self.metadata_path(path)
    }

    /// The span name's route for a request to one of this server's own
    /// endpoints (a fixed set of paths; `None` for anything else, so a
    /// client's text never names a span).
    pub fn span_route(&self, path: &str) -> Option<String> {
        let endpoint = path
            .strip_prefix(&self.base)
            .and_then(|rest| rest.strip_prefix(PREFIX))?;
        let known = [
            "/jwks",
            "/register",
            "/authorize",
            "/consent",
            "/callback",
            "/token",
            "/revoke",
        ];
        (known.contains(&endpoint) || self.metadata_path(path)).then(|| path.to_owned())
    }

    fn metadata_path(&self, path: &str) -> bool {
        let rfc8414 = format!("/.well-known/oauth-authorization-server{}", self.base);
        let oidc = format!("{}/.well-known/openid-configuration", self.base);
        path == rfc8414 || path == oidc
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}{PREFIX}/{name}", self.config.issuer)
    }

    /// Answers one request on an owned path.
    pub async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
        let path = req.uri().path().to_owned();
        if self.metadata_path(&path) {
            return match *req.method() {
                Method::GET | Method::HEAD => json_ok(&self.metadata()),
                _ => OAuthError::method_not_allowed(),
            };
        }
        let name = path
            .strip_prefix(&self.base)
            .and_then(|p| p.strip_prefix(PREFIX))
            .unwrap_or_default();
        let limiter = match name {
            "/authorize" | "/consent" | "/callback" => Some(&self.limits.browser),
            "/token" | "/revoke" => Some(&self.limits.token),
            _ => None,
        };
        if let Some(Err(throttled)) = limiter.map(|l| l.check(peer)) {
            return respond::too_many(&throttled);
        }
        match (req.method().clone(), name) {
            (Method::GET, "/jwks") => json_ok(&self.keys.ring().jwks()),
            (Method::POST, "/register") => self.register(req, peer).await,
            (Method::GET, "/authorize") => self.authorize(req).await,
            (Method::POST, "/consent") => self.consent(req).await,
            (Method::GET, "/callback") => self.callback(req).await,
            (Method::POST, "/token") => self.token(req).await,
            (Method::POST, "/revoke") => self.revoke(req).await,
            (
                _,
                "/jwks" | "/register" | "/authorize" | "/consent" | "/callback" | "/token"
                | "/revoke",
            ) => OAuthError::method_not_allowed(),
            _ => OAuthError::not_found(),
        }
    }

    /// RFC 8414 metadata (also served as OpenID discovery).
    fn metadata(&self) -> serde_json::Value {
        let mut doc = json!({
            "issuer": self.config.issuer,
            "authorization_endpoint": self.endpoint("authorize"),
            "token_endpoint": self.endpoint("token"),
            "jwks_uri": self.endpoint("jwks"),
            "revocation_endpoint": self.endpoint("revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": self.scopes_supported(),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        if self.config.dynamic_registration {
            doc["registration_endpoint"] = json!(self.endpoint("register"));
        }
        if self.config.cimd.is_some() {
            doc["client_id_metadata_document_supported"] = json!(true);
        }
        doc
    }

    fn scopes_supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .config
            .grants
            .iter()
            .flat_map(|g| g.scopes.iter().cloned())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        scopes
    }

    /// The resource a request is for: the one named (after normalisation),
    /// or the only route's when none is named. With several routes and no
    /// `resource`, nothing is guessed: a token for the wrong route is worse
    /// than an error.
    fn resource_for(&self, named: Option<&str>) -> Result<String, OAuthError> {
        match named {
            Some(raw) => {
                let canonical = canonical_resource(raw).ok_or_else(|| {
                    OAuthError::invalid_target(
                        "`resource` is not an absolute URL without a fragment".into(),
                    )
                })?;
                self.resources
                    .iter()
                    .find(|(c, _)| *c == canonical)
                    .map(|(_, configured)| configured.clone())
                    .ok_or_else(|| {
                        OAuthError::invalid_target("`resource` is not served here".into())
                    })
            }
            None => match self.resources.as_slice() {
                [(_, only)] => Ok(only.clone()),
                _ => Err(OAuthError::invalid_target(
                    "this server protects several resources: name one with `resource`".into(),
                )),
            },
        }
    }

    /// The record lifetime of a registered client.
    fn client_ttl() -> Duration {
        Duration::from_secs(90 * 24 * 3600)
    }
}

/// The comparison form of a resource URI (MCP authorization: scheme and
/// host case, default port, one trailing slash): `None` if it is not an
/// absolute http(s) URL without a fragment.
fn canonical_resource(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() || !url.has_host() {
        return None;
    }
    let s = url.as_str();
    Some(s.strip_suffix('/').unwrap_or(s).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_compare_after_normalisation() {
        let c = |s| canonical_resource(s).unwrap();
        assert_eq!(
            c("HTTPS://MCP.Example.com:443/mcp/"),
            c("https://mcp.example.com/mcp")
        );
        assert_eq!(c("https://mcp.example.com"), c("https://mcp.example.com/"));
        assert_ne!(
            c("https://mcp.example.com/mcp"),
            c("https://mcp.example.com/other")
        );
        assert_ne!(
            c("https://mcp.example.com:8443/mcp"),
            c("https://mcp.example.com/mcp")
        );
        assert!(canonical_resource("https://mcp.example.com/mcp#x").is_none());
        assert!(canonical_resource("mcp.example.com/mcp").is_none());
    }
}

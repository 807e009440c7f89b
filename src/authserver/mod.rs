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

use keys::{KeyRing, SigningKey};
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
    key: Arc<KeyRing>,
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

/// Where the signing keys are kept in the store.
const SIGNING_KEY: &str = "signing-es256";
/// A signing key is replaced after this long; the one it replaces keeps
/// verifying for one more period (far longer than any access token lives).
const KEY_ROTATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The signing keys as stored (sealed): PKCS#8, base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKeys {
    current: String,
    /// When `current` was made (unix seconds).
    since: u64,
    previous: Option<String>,
}

/// The signing keys: with a `cookie_key` (so the store can be read after a
/// restart), the ones kept in the store, sealed, rotated when the current
/// one is older than [`KEY_ROTATION`] (checked at start and at each reload
/// that rebuilds the server); without, a new key per process (tokens issued
/// before a restart then stop verifying, and clients refresh).
async fn signing_keys(
    store: &Store,
    sealer: &seal::Sealer,
    persistent: bool,
) -> Result<KeyRing, StartError> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let crypto = |e: String| StartError::Crypto(e);
    let store_error = |e: store::StoreError| StartError::Store(e.to_string());
    let decode = |b64: &str| {
        STANDARD
            .decode(b64)
            .ok()
            .and_then(|der| SigningKey::from_pkcs8(&der).ok())
    };
    let now = flow::now_secs();
    let mut stored: Option<StoredKeys> = None;
    let mut stored_raw: Option<Vec<u8>> = None;
    if persistent {
        if let Some(sealed) = store
            .get(store::Space::Key, SIGNING_KEY)
            .await
            .map_err(store_error)?
        {
            stored_raw = Some(sealed.clone());
            stored = String::from_utf8(sealed)
                .ok()
                .and_then(|s| sealer.open(&s))
                .and_then(|json| serde_json::from_str::<StoredKeys>(&json).ok());
            if stored.is_none() {
                tracing::warn!(
                    "the stored signing keys cannot be opened (cookie_key changed?); making new ones: \
                     tokens signed before stop verifying"
                );
            }
        }
    }
    if let Some(keys) = &stored {
        let fresh = now.saturating_sub(keys.since) < KEY_ROTATION.as_secs();
        if let (true, Some(current)) = (fresh, decode(&keys.current)) {
            let previous = keys.previous.as_deref().and_then(decode);
            return Ok(KeyRing::new(current, previous));
        }
    }
    let (key, pkcs8) = SigningKey::generate().map_err(|e| crypto(e.to_string()))?;
    // The key being replaced keeps verifying for one more period.
    let previous_b64 = stored.map(|s| s.current);
    let previous = previous_b64.as_deref().and_then(decode);
    if persistent {
        let keys = StoredKeys {
            current: STANDARD.encode(&pkcs8),
            since: now,
            previous: previous_b64,
        };
        let json = serde_json::to_string(&keys).map_err(|e| crypto(e.to_string()))?;
        let sealed = sealer.seal(&json).map_err(|e| crypto(e.to_string()))?;
        let ttl = KEY_ROTATION * 3;
        // Replicas starting together race here: only one key set may win,
        // or tokens one signs would not verify at another.
        let written = match &stored_raw {
            None => store
                .put_new(store::Space::Key, SIGNING_KEY, sealed.into_bytes(), ttl)
                .await
                .map_err(store_error)?,
            Some(raw) => store
                .compare_and_set(
                    store::Space::Key,
                    SIGNING_KEY,
                    raw,
                    sealed.into_bytes(),
                    ttl,
                )
                .await
                .map_err(store_error)?,
        };
        if !written {
            // Another replica made or rotated them first: use theirs.
            return Box::pin(signing_keys(store, sealer, persistent)).await;
        }
        if previous.is_some() {
            tracing::info!("signing key rotated; the previous one still verifies");
        }
    }
    Ok(KeyRing::new(key, previous))
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
        let (store, key, cookies, sealer) = match previous {
            Some(p)
                if p.config.store == settings.store
                    && p.config.cookie_key == settings.cookie_key =>
            {
                (
                    p.store.clone(),
                    p.key.clone(),
                    p.cookies.clone(),
                    p.sealer.clone(),
                )
            }
            _ => {
                let store = match &settings.store {
                    StoreSetting::Memory => Store::Memory(MemoryStore::default()),
                    StoreSetting::Redis(url) => {
                        let url = String::from_utf8_lossy(&url.0).into_owned();
                        let redis = store::RedisStore::open(&url)
                            .map_err(|e| StartError::Store(format!("redis: {e}")))?;
                        let _first = redis.up.set(metrics.redis_gauge("store"));
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
                let key = signing_keys(&store, &sealer, persistent).await?;
                (Arc::new(store), Arc::new(key), cookies, Arc::new(sealer))
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
            key,
            idp,
            cookies,
            sealer,
            cimd,
            limits: previous.map_or_else(|| Arc::new(Limits::new()), |p| p.limits.clone()),
            metrics,
        }))
    }

    /// The public keys, for the resource side.
    pub fn public_keys(&self) -> Option<KeySet> {
        KeySet::parse(self.key.jwks().to_string().as_bytes()).ok()
    }

    /// Whether this server answers `path`.
    pub fn owns(&self, path: &str) -> bool {
        path.strip_prefix(&self.base)
            .is_some_and(|rest| rest.starts_with(&format!("{PREFIX}/")))
            || self.metadata_path(path)
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
            (Method::GET, "/jwks") => json_ok(&self.key.jwks()),
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

    fn kids(ring: &KeyRing) -> Vec<String> {
        ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn signing_keys_persist_and_rotate_with_overlap() {
        let store = Store::Memory(MemoryStore::default());
        let sealer = seal::Sealer::from_secret(b"a cookie key of at least 32 bytes").unwrap();
        let first = signing_keys(&store, &sealer, true).await.unwrap();
        let again = signing_keys(&store, &sealer, true).await.unwrap();
        assert_eq!(kids(&first), kids(&again), "kept across restarts");
        assert_eq!(kids(&first).len(), 1);

        // Age the stored keys past the rotation period.
        let sealed = store
            .get(store::Space::Key, SIGNING_KEY)
            .await
            .unwrap()
            .unwrap();
        let json = sealer.open(std::str::from_utf8(&sealed).unwrap()).unwrap();
        let mut keys: StoredKeys = serde_json::from_str(&json).unwrap();
        keys.since -= KEY_ROTATION.as_secs() + 1;
        let resealed = sealer.seal(&serde_json::to_string(&keys).unwrap()).unwrap();
        store
            .put(
                store::Space::Key,
                SIGNING_KEY,
                resealed.into_bytes(),
                KEY_ROTATION,
            )
            .await
            .unwrap();
        let rotated = signing_keys(&store, &sealer, true).await.unwrap();
        let (old, new) = (kids(&first), kids(&rotated));
        assert_eq!(new.len(), 2, "the previous key still verifies");
        assert_ne!(new[0], old[0], "a new key signs");
        assert_eq!(new[1], old[0]);

        // Another cookie_key cannot open them: new keys, never a crash.
        let other = seal::Sealer::from_secret(b"another cookie key, also 32 bytes").unwrap();
        let fresh = signing_keys(&store, &other, true).await.unwrap();
        assert!(!kids(&fresh).contains(&new[0]));
        // Without a cookie_key nothing is kept.
        let a = signing_keys(&store, &sealer, false).await.unwrap();
        let b = signing_keys(&store, &sealer, false).await.unwrap();
        assert_ne!(kids(&a), kids(&b));
    }

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

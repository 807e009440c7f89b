//! Configuration: YAML file → validated, immutable [`Config`].
//!
//! Two phases (see `file.rs` and `validate.rs`): the runtime only ever sees the
//! typed values defined here, never raw YAML shapes.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use rules::Policy;

mod authserver;
mod env;
mod file;
mod issuer;
mod limits;
mod policy;
mod telemetry;
/// The RFC 9728 well-known path: a route's metadata lives at this prefix
/// plus the route's resource path (`well_known.rs` serves it).
pub const PRM_PREFIX: &str = "/.well-known/oauth-protected-resource";

pub mod rules;
mod validate;

pub use authserver::{
    AuthServer, Cimd, CimdTrust, Grant, IdpKind, People, StoreSetting, UpstreamIdp,
};
pub use telemetry::TracingConfig;
pub use validate::is_scope_token;

/// The validated configuration snapshot.
#[derive(Debug)]
pub struct Config {
    /// Listener address.
    pub listen: SocketAddr,
    /// Admin listener address, when enabled.
    pub admin_listen: Option<SocketAddr>,
    /// TLS files, when the listener is HTTPS.
    pub tls: Option<TlsFiles>,
    /// Trusted issuers, in config order.
    pub issuers: Vec<Arc<Issuer>>,
    /// Routes, in config order (the first also owns the root PRM URL).
    pub routes: Vec<Arc<Route>>,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Verified-token cache settings.
    pub token_cache: TokenCache,
    /// HMAC key for session binding; `None` means a random key per process.
    pub session_key: Option<Secret>,
    /// Rate limits.
    pub rate_limits: RateLimitConfig,
    /// The built-in authorization server, when configured.
    pub authorization_server: Option<Arc<AuthServer>>,
    /// OpenTelemetry trace export (`telemetry.tracing`), when on.
    pub tracing: Option<TracingConfig>,
}

/// A secret from the config. `Debug` never shows it.
#[derive(Clone, PartialEq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A rate: `count` per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Requests per period.
    pub count: std::num::NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Requests allowed at once.
    pub burst: std::num::NonZeroU32,
}

/// `rate_limits:`
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Per `iss`+`sub`; off when `None`.
    pub per_principal: Option<Rate>,
    /// Per principal and tool.
    pub tools: std::collections::HashMap<String, Rate>,
    /// Failed authentications per client IP (IPv6: per /64).
    pub unauthenticated_per_ip: Rate,
    /// Keys a limiter may hold before it is pruned.
    pub max_keys: usize,
    /// Limits shared by replicas through Redis (`shared_state:`).
    pub shared: Option<SharedLimits>,
}

/// `shared_state:`: where replicas keep their common rate-limit state.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLimits {
    /// The Redis URL (may hold a password).
    pub redis: Secret,
    /// What a check does while Redis cannot be asked.
    pub on_error: OnRedisError,
    /// How long a stream slot outlives a replica that stopped renewing it.
    pub stream_lease: Duration,
    /// CA (PEM) that a `rediss://` server's certificate is checked against,
    /// instead of the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `shared_state.on_redis_error:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Fall back to this replica's own limits (and log it).
    Local,
    /// Refuse with 503.
    Deny,
}

/// Verified-token cache settings.
#[derive(Debug, Clone)]
pub struct TokenCache {
    /// Longest time a verified token is trusted without re-verification
    /// (never past its `exp`). Zero disables the cache.
    pub ttl: Duration,
    /// Most cached tokens.
    pub max_entries: u64,
}

/// Certificate chain and key for the listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// One trusted token issuer.
#[derive(Debug, PartialEq)]
pub struct Issuer {
    /// Exact `iss` value.
    pub issuer: String,
    /// Where its public keys come from.
    pub keys: KeySource,
    /// Allowed JWS algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Claims carrying scopes, in order of preference.
    pub scope_claims: Vec<String>,
    /// Allowed clock skew on `exp`/`nbf`.
    pub leeway: Duration,
    /// JWTs must carry the RFC 9068 header `typ: at+jwt`, so an ID token
    /// (`typ: JWT`) is never taken for an access token.
    pub require_typ: bool,
    /// RFC 7662 introspection for opaque tokens (and for JWTs of an issuer
    /// without keys).
    pub introspection: Option<Introspection>,
}

/// RFC 7662 introspection settings of one issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    /// The endpoint.
    pub endpoint: Url,
    /// The gateway's client id.
    pub client_id: String,
    /// The gateway's client secret.
    pub client_secret: Secret,
    /// Send the credentials in the form body instead of HTTP Basic.
    pub post_credentials: bool,
    /// Upper bound for caching an active result (never past `exp`).
    pub cache_ttl: Duration,
    /// How long an inactive result is cached.
    pub negative_cache_ttl: Duration,
    /// Refuse active tokens whose introspection has no `aud`.
    pub require_audience: bool,
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// A configured JWKS URL.
    JwksUri(Url),
    /// A static JWKS file, re-read on refresh.
    File(PathBuf),
    /// Discover `jwks_uri` from the issuer's RFC 8414 / OIDC metadata.
    Discover(Url),
    /// No signing keys: this issuer's tokens are introspected.
    IntrospectionOnly,
    /// The built-in authorization server: its keys are in this process.
    BuiltIn,
}

/// A public MCP endpoint and the upstream it protects.
#[derive(Debug)]
pub struct Route {
    /// Public path, matched exactly.
    pub path: String,
    /// Where allowed traffic goes.
    pub upstream: Upstream,
    /// Canonical resource identifier, served verbatim in the metadata.
    pub resource: String,
    /// `scheme://host[:port]` of `resource`.
    pub resource_origin: String,
    /// Path of this route's protected-resource metadata document.
    pub metadata_path: String,
    /// Accepted `aud` values; `resource` first.
    pub audiences: Vec<String>,
    /// Whether `audiences:` lists values beyond `resource`. Such a route
    /// never accepts a token whose audience went unchecked.
    pub extra_audiences: bool,
    /// `authorization_servers` for the metadata.
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` for the metadata.
    pub scopes_supported: Vec<String>,
    /// Scopes every request needs.
    pub required_scopes: Vec<String>,
    /// `resource_name` for the metadata.
    pub resource_name: Option<String>,
    /// `resource_documentation` for the metadata.
    pub resource_documentation: Option<String>,
    /// Whether `X-Forwarded-Proto/Host` may shape the metadata URL.
    pub trust_forwarded_headers: bool,
    /// Time allowed for the upstream's response headers.
    pub upstream_timeout: Duration,
    /// Per-tool/resource/prompt rules; `None` means only `required_scopes` apply.
    pub policy: Option<Policy>,
    /// Allowed browser origins (serialized, lowercase).
    pub allowed_origins: Vec<String>,
    /// Identity headers for the upstream.
    pub forward_identity: ForwardIdentity,
    /// Static headers for every upstream request.
    pub upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Which headers carry the verified identity upstream (none by default).
#[derive(Debug, Default, Clone)]
pub struct ForwardIdentity {
    /// `sub`.
    pub subject: Option<http::HeaderName>,
    /// Granted scopes, space-separated.
    pub scopes: Option<http::HeaderName>,
    /// `client_id`.
    pub client_id: Option<http::HeaderName>,
    /// `iss`.
    pub issuer: Option<http::HeaderName>,
}

impl ForwardIdentity {
    /// Every configured header name.
    pub fn names(&self) -> impl Iterator<Item = &http::HeaderName> {
        [&self.subject, &self.scopes, &self.client_id, &self.issuer]
            .into_iter()
            .flatten()
    }
}

/// A parsed upstream URL.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`, also sent as `Host`.
    pub authority: String,
    /// Path (and query) of the MCP endpoint on the upstream.
    pub path_and_query: String,
}

/// Limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body in bytes (413 past it).
    pub max_body: usize,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Open client connections at most.
    pub max_connections: usize,
    /// Time to connect to an upstream.
    pub upstream_connect_timeout: Duration,
    /// Default time for an upstream's response headers.
    pub upstream_timeout: Duration,
    /// Time for one JWKS or metadata fetch.
    pub jwks_fetch_timeout: Duration,
    /// Drain time after SIGTERM.
    pub shutdown_grace: Duration,
    /// Deepest JSON nesting in a request body.
    pub max_json_depth: usize,
    /// Most messages in a batch.
    pub max_batch: usize,
    /// Largest list response buffered for filtering.
    pub max_filtered_event: usize,
    /// Concurrent requests and streams per principal.
    pub max_streams_per_principal: usize,
    /// Time a connection may sit with no request in flight (between
    /// requests, or after an HTTP/2 preface).
    pub idle_timeout: Duration,
    /// Time to receive a whole request body (408 past it).
    pub body_read_timeout: Duration,
    /// HTTP/2 PING interval on a quiet connection.
    pub h2_keepalive_interval: Duration,
    /// Time for an HTTP/2 PING acknowledgement before the connection closes.
    pub h2_keepalive_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Open connections to the admin listener at most.
    pub admin_max_connections: usize,
}

/// One problem (or warning) found in a config file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// YAML path, e.g. `routes[0].upstream`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not have the expected shape (unknown key, wrong type, …).
    #[error("{0}")]
    Shape(String),
    /// The values are invalid; every problem is listed.
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and validates `path`. Returns the config and its warnings.
    pub fn load(path: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &validate::base_dir(path))
    }

    /// Validates YAML text; relative paths resolve against `base_dir`.
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<(Config, Vec<Problem>), ConfigError> {
        let raw = file::parse(text).map_err(ConfigError::Shape)?;
        validate::validate(raw, base_dir).map_err(ConfigError::Invalid)
    }

    /// The route whose public path is exactly `path`.
    pub fn route(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.path == path)
    }

    /// The issuer whose `iss` is exactly `iss`.
    pub fn issuer(&self, iss: &str) -> Option<&Arc<Issuer>> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }
}

#[cfg(test)]
mod tests;

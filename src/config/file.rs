//! Config, phase one: the raw YAML shapes, exactly as users write them.
//!
//! This is the only file that knows YAML (`serde_yaml` is archived; keeping it
//! here makes swapping it for a maintained fork a one-file change). Every struct
//! denies unknown keys, so a typo is an error rather than a silently ignored
//! setting. Values stay loosely typed (durations and URLs are strings) so that
//! `validate.rs` can report every semantic problem at once, each with its path.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// `host:port` of the admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin_listen: Option<String>,
    /// Optional TLS for the listener.
    pub tls: Option<RawTls>,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    /// Public MCP endpoints and where they forward.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Resource limits and timeouts; every one has a safe default.
    #[serde(default)]
    pub limits: RawLimits,
    /// Cache of verified tokens.
    #[serde(default)]
    pub token_cache: RawTokenCache,
    /// Key for binding session ids to principals.
    pub session_binding: Option<RawSessionBinding>,
    /// Rate limits.
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    /// The built-in authorization server (config/authserver.rs).
    pub authorization_server: Option<RawAuthServer>,
    /// State shared by replicas (rate limits).
    pub shared_state: Option<RawSharedState>,
    /// Trace export (config/telemetry.rs).
    pub telemetry: Option<super::telemetry::RawTelemetry>,
}

/// `shared_state:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSharedState {
    /// `redis://…` or `rediss://…`.
    pub redis: String,
    /// `local` (default) or `deny`.
    pub on_redis_error: Option<String>,
    /// Lease of a stream slot (default 30s).
    pub stream_lease: Option<String>,
    /// CA file for a `rediss://` server with a private CA.
    pub ca_file: Option<String>,
}

/// `authorization_server:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthServer {
    /// The public URL: `iss` everywhere.
    pub issuer: String,
    /// `sqlite:<path>`, `redis://…`, `rediss://…` or `memory`.
    pub store: Option<String>,
    /// CA file for a `rediss://` store with a private CA.
    pub store_ca_file: Option<String>,
    /// The identity provider people sign in with.
    pub upstream: RawUpstreamIdp,
    /// Who may sign in.
    #[serde(default)]
    pub login: RawPeople,
    /// Scopes a signed-in person may receive.
    #[serde(default)]
    pub grants: Vec<RawGrant>,
    /// How MCP clients identify themselves.
    #[serde(default)]
    pub clients: RawClients,
    /// Access-token lifetime (default 5m).
    pub access_token_ttl: Option<String>,
    /// Refresh-token lifetime (default 30d).
    pub refresh_token_ttl: Option<String>,
    /// How long a rotated refresh token may be presented again (default 10s).
    pub refresh_reuse_grace: Option<String>,
    /// Secret that signs the browser cookies (default: random per process).
    pub cookie_key: Option<String>,
}

/// `authorization_server.upstream:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamIdp {
    /// `oidc`, `google`, `entra` or `github`.
    pub kind: String,
    /// The provider's issuer (discovery).
    pub issuer: Option<String>,
    /// The gateway's client id there.
    pub client_id: String,
    /// The gateway's client secret there.
    pub client_secret: String,
    /// Scopes asked of the provider (default `openid email profile`).
    pub scopes: Option<Vec<String>>,
    /// The ID-token claim holding group names (default `groups`).
    pub groups_claim: Option<String>,
    /// The provider's name on the consent page (default: from the kind).
    pub name: Option<String>,
    /// GitHub only: the web origin (default `https://github.com`).
    pub web_url: Option<String>,
    /// GitHub only: the REST API base (default `https://api.github.com`).
    pub api_url: Option<String>,
}

/// A set of people: `login:` and `grants[].when:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeople {
    /// Verified email domains.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Verified email addresses.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// GitHub organisations.
    #[serde(default)]
    pub github_orgs: Vec<String>,
}

/// `authorization_server.grants[]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    /// Whom the grant is for (everyone signed in when absent).
    pub when: Option<RawPeople>,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// `authorization_server.clients:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClients {
    /// Client ID Metadata Documents.
    pub cimd: Option<RawCimd>,
    /// RFC 7591 dynamic registration.
    pub dynamic_registration: Option<bool>,
}

/// `authorization_server.clients.cimd:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCimd {
    /// `allowlist` or `any`.
    pub trust: String,
    /// Hosts trusted under `allowlist`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Tests only: allow loopback addresses and trust this CA for fetches.
    pub insecure_test_loopback_ca: Option<String>,
}

/// `session_binding:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionBinding {
    /// HMAC key, at least 32 characters.
    pub key: String,
}

/// `rate_limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimits {
    /// e.g. `20/s burst 40`, per `iss`+`sub`.
    pub per_principal: Option<String>,
    /// Tool name → rate, per principal.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
    /// Failed authentications per client IP (IPv6: per /64).
    pub unauthenticated_per_ip: Option<String>,
    /// Keys a limiter may hold before it is pruned.
    pub max_keys: Option<u64>,
}

/// `token_cache:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokenCache {
    /// Longest time a verified token is trusted without re-verification.
    pub ttl: Option<String>,
    /// Most cached tokens.
    pub max_entries: Option<u64>,
}

/// `tls:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key (PKCS#8, RSA or SEC1).
    pub key: String,
}

/// One entry of `issuers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    /// Exact `iss` value.
    pub issuer: String,
    /// Where the signing keys are published.
    pub jwks_uri: Option<String>,
    /// A static JWKS file instead of `jwks_uri`.
    pub jwks_file: Option<String>,
    /// Allowed JWS algorithms.
    pub algorithms: Option<Vec<String>>,
    /// Claims that carry scopes, in order of preference.
    pub scope_claims: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Option<String>,
    /// Require the RFC 9068 `typ: at+jwt` header (default true).
    pub require_typ: Option<bool>,
    /// RFC 7662 token introspection, for opaque tokens.
    pub introspection: Option<RawIntrospection>,
}

/// `issuers[].introspection:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospection {
    /// The introspection endpoint.
    pub endpoint: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// Its secret (use `${ENV}`).
    pub client_secret: String,
    /// `client_secret_basic` (default) or `client_secret_post`.
    pub auth_method: Option<String>,
    /// Upper bound for caching an active result (never past `exp`).
    pub cache_ttl: Option<String>,
    /// How long an inactive result is cached.
    pub negative_cache_ttl: Option<String>,
    /// Refuse active tokens whose introspection has no `aud` (default true).
    pub require_audience: Option<bool>,
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// Public path of the MCP endpoint on the gateway.
    pub path: String,
    /// URL of the unmodified MCP server.
    pub upstream: String,
    /// Canonical resource identifier (RFC 8707 / RFC 9728).
    pub resource: String,
    /// Extra accepted `aud` values.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `authorization_servers` for the metadata; default: the issuers.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// `scopes_supported` for the metadata.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Scopes every request on this route needs.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// `resource_name` for the metadata.
    pub resource_name: Option<String>,
    /// `resource_documentation` for the metadata.
    pub resource_documentation: Option<String>,
    /// Honour `X-Forwarded-Proto`/`X-Forwarded-Host` from a trusted front proxy.
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    /// How long to wait for the upstream's response headers.
    pub upstream_timeout: Option<String>,
    /// Per-tool, per-resource and per-prompt scopes.
    pub policy: Option<RawPolicy>,
    /// Browser origins allowed to call this route (exact `scheme://host[:port]`).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Headers carrying the verified identity to the upstream.
    pub forward_identity: Option<RawForwardIdentity>,
    /// Static headers added to every upstream request (e.g. an API key).
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, String>,
}

/// `routes[].forward_identity:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForwardIdentity {
    /// Header for `sub`.
    pub subject_header: Option<String>,
    /// Header for the granted scopes (space-separated).
    pub scopes_header: Option<String>,
    /// Header for `client_id`.
    pub client_id_header: Option<String>,
    /// Header for `iss`.
    pub issuer_header: Option<String>,
}

/// `routes[].policy:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    /// JSON-RPC method → extra scopes.
    #[serde(default)]
    pub methods: BTreeMap<String, Vec<String>>,
    /// Tool name or glob → scopes.
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<String>>,
    /// Ordered resource rules.
    #[serde(default)]
    pub resources: Vec<RawResourceRule>,
    /// Prompt name or glob → scopes.
    #[serde(default)]
    pub prompts: BTreeMap<String, Vec<String>>,
    /// `deny` (default) or `allow` for targets no rule matches.
    pub unlisted: Option<RawUnlisted>,
    /// `allow` (default) or `deny` for methods that are neither MCP methods
    /// nor listed under `methods`.
    pub unknown_methods: Option<RawUnlisted>,
    /// `challenge` (default) or `jsonrpc_error`.
    pub on_insufficient_scope: Option<RawDenyMode>,
    /// Hide unusable entries from list responses (default true).
    pub filter_lists: Option<bool>,
    /// Pass a list response too large to filter unfiltered (default false: end it with an error).
    pub pass_oversize_lists: Option<bool>,
}

/// One `resources:` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResourceRule {
    /// Glob or level-1 template.
    pub uri: String,
    /// Scopes required.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `unlisted:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawUnlisted {
    /// Refuse.
    Deny,
    /// Allow.
    Allow,
}

/// `on_insufficient_scope:`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawDenyMode {
    /// 403 with a step-up challenge.
    Challenge,
    /// 200 with a JSON-RPC error.
    JsonrpcError,
}

/// `limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    /// Largest request body, e.g. `4MiB`.
    pub max_body: Option<String>,
    /// Largest request head (request line + headers), e.g. `64KiB`.
    pub max_header_bytes: Option<String>,
    /// Time allowed to receive a request head.
    pub header_read_timeout: Option<String>,
    /// Open client connections at most.
    pub max_connections: Option<u64>,
    /// Time allowed to connect to an upstream.
    pub upstream_connect_timeout: Option<String>,
    /// Default time allowed for an upstream's response headers.
    pub upstream_timeout: Option<String>,
    /// Time allowed for one JWKS or metadata fetch.
    pub jwks_fetch_timeout: Option<String>,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Option<String>,
    /// Deepest JSON nesting accepted in a request body.
    pub max_json_depth: Option<u64>,
    /// Most messages accepted in a JSON-RPC batch.
    pub max_batch: Option<u64>,
    /// Largest list response (JSON body or one SSE event) buffered for filtering.
    pub max_filtered_event: Option<String>,
    /// Concurrent requests and streams one principal may hold open.
    pub max_streams_per_principal: Option<u64>,
    /// Time a connection may sit with no request in flight.
    pub idle_timeout: Option<String>,
    /// Time allowed to receive a whole request body.
    pub body_read_timeout: Option<String>,
    /// HTTP/2 PING interval on a quiet connection.
    pub h2_keepalive_interval: Option<String>,
    /// Time allowed for an HTTP/2 PING to be acknowledged.
    pub h2_keepalive_timeout: Option<String>,
    /// Concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: Option<u64>,
    /// Open connections to the admin listener at most.
    pub admin_max_connections: Option<u64>,
}

/// Parses YAML text into the raw shapes. Errors carry a path (`routes[0].upstrem`).
pub(super) fn parse(text: &str) -> Result<RawConfig, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let (value, env_errors) = expand_env(value, "");
    if !env_errors.is_empty() {
        return Err(env_errors.join("\n"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// Expands `${VAR}` in every string scalar. Expansion happens after YAML
/// parsing, so a secret's value can never inject YAML structure.
fn expand_env(value: serde_yaml::Value, path: &str) -> (serde_yaml::Value, Vec<String>) {
    use serde_yaml::Value;
    let mut errors = Vec::new();
    let out = match value {
        Value::String(s) => match super::env::expand(&s) {
            Ok(expanded) => Value::String(expanded),
            Err(var) => {
                errors.push(format!("{path}: environment variable `{var}` is not set"));
                Value::String(s)
            }
        },
        Value::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let (v, e) = expand_env(item, &format!("{path}[{i}]"));
                    errors.extend(e);
                    v
                })
                .collect(),
        ),
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .map(|(k, v)| {
                    let key = k.as_str().unwrap_or("?");
                    let child = if path.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{path}.{key}")
                    };
                    let (v, e) = expand_env(v, &child);
                    errors.extend(e);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    };
    (out, errors)
}

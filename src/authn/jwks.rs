//! Stage 4b: an issuer's signing keys (JWKS), kept fresh in the background.
//!
//! Keys are held as an immutable snapshot swapped atomically, so the request
//! path reads them without locks. A refresh failure keeps the last good keys.
//! An unknown `kid` triggers at most one on-demand refetch per
//! [`REFETCH_INTERVAL`] per issuer, so key rotation works without a restart
//! and a flood of random `kid`s cannot hammer the identity provider.
//! `jku`, `x5u` and `jwk` token headers are never consulted (RFC 8725 §3.10).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL};
use http_body_util::{BodyExt, Limited};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use url::Url;

use crate::body;
use crate::config::{Issuer, KeySource};
use crate::http_client::HttpClient;
use crate::telemetry::metrics::Metrics;

/// Minimum time between two on-demand refetches for unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Refresh period when the JWKS response has no usable `max-age`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// A JWKS or metadata document larger than this is refused.
const MAX_DOCUMENT: usize = 1 << 20;

/// One verification key from a JWKS.
pub struct Key {
    /// `kid`, when the JWK has one.
    pub kid: Option<String>,
    /// `alg`, when the JWK pins one.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

/// An immutable set of keys from one fetch.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
    by_kid: HashMap<String, usize>,
}

/// Why keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Network, status or timeout trouble.
    #[error("fetching {url}: {reason}")]
    Http {
        /// What was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A local JWKS file could not be read.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document is not a usable JWKS or metadata document.
    #[error("{0}")]
    Document(String),
}

/// The keys of one issuer.
pub struct KeyStore {
    issuer: Arc<Issuer>,
    client: HttpClient,
    timeout: Duration,
    /// Shared with the built-in authorization server for its issuer, which
    /// publishes here when its keys rotate.
    keys: Arc<ArcSwapOption<KeySet>>,
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    discovered_uri: ArcSwapOption<Url>,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot be used for signatures are
    /// skipped (a JWKS may also carry encryption keys), but a set with no
    /// usable key is an error.
    pub fn parse(doc: &[u8]) -> Result<Self, FetchError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(doc)
            .map_err(|e| FetchError::Document(format!("not a JWKS: {e}")))?;
        let mut set = KeySet::default();
        for value in doc.keys {
            // A JWK that pins an algorithm we cannot verify with (e.g. RSA-OAEP) is skipped.
            let alg = match value.get("alg").and_then(|a| a.as_str()) {
                None => None,
                Some(name) => match name.parse::<Algorithm>() {
                    Ok(alg) => Some(alg),
                    Err(_) => continue,
                },
            };
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            // Symmetric JWKs would let anyone who sees the JWKS mint tokens.
            if key.family() == AlgorithmFamily::Hmac {
                continue;
            }
            let kid = jwk.common.key_id.clone();
            if let Some(kid) = &kid {
                set.by_kid.insert(kid.clone(), set.keys.len());
            }
            set.keys.push(Key { kid, alg, key });
        }
        if set.keys.is_empty() {
            return Err(FetchError::Document(
                "JWKS has no usable signing key".into(),
            ));
        }
        Ok(set)
    }

    /// Keys that may verify a token with this `kid` and `alg`. A token without
    /// `kid` may be checked against every key of the algorithm's family.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&DecodingKey> {
        let fits = |k: &&Key| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|&i| &self.keys[i])
                .filter(fits)
                .map(|k| vec![&k.key])
                .unwrap_or_default(),
            None => self.keys.iter().filter(fits).map(|k| &k.key).collect(),
        }
    }

    /// Whether a key with this `kid` exists at all.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyStore {
    /// A store with no keys yet; call [`KeyStore::spawn_refresh`] to load them.
    pub fn new(issuer: Arc<Issuer>, client: HttpClient, timeout: Duration) -> Arc<Self> {
        Self::published(issuer, client, timeout, Arc::default())
    }

    /// A store holding `keys` already, which a refetch may replace (the JWT
    /// fuzz target verifies against one without any I/O).
    pub fn preloaded(
        issuer: Arc<Issuer>,
        client: HttpClient,
        timeout: Duration,
        keys: KeySet,
    ) -> Arc<Self> {
        let store = Self::new(issuer, client, timeout);
        store.keys.store(Some(Arc::new(keys)));
        store
    }

    /// A store whose keys someone else publishes into `keys` (the built-in
    /// authorization server, whose keys are never fetched).
    pub fn published(
        issuer: Arc<Issuer>,
        client: HttpClient,
        timeout: Duration,
        keys: Arc<ArcSwapOption<KeySet>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            client,
            timeout,
            keys,
            last_refetch: tokio::sync::Mutex::new(None),
            discovered_uri: ArcSwapOption::empty(),
        })
    }

    /// Loads a `jwks_file` key set right away, so a gateway whose keys are on
    /// disk is ready the moment it listens. Other sources, and a file that
    /// cannot be read yet, are left to [`KeyStore::spawn_refresh`].
    pub fn load_file_now(&self) {
        let KeySource::File(path) = &self.issuer.keys else {
            return;
        };
        let loaded = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|doc| KeySet::parse(&doc).map_err(|e| e.to_string()));
        match loaded {
            Ok(set) => {
                tracing::debug!(issuer = %self.issuer.issuer, keys = set.len(), "JWKS loaded from file");
                self.keys.store(Some(Arc::new(set)));
            }
            Err(error) => tracing::warn!(
                issuer = %self.issuer.issuer,
                path = %path.display(),
                %error,
                "JWKS file not loaded at start; retrying in the background"
            ),
        }
    }

    /// The issuer these keys belong to.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The current snapshot, if keys were ever loaded.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Whether keys were ever loaded.
    pub fn has_keys(&self) -> bool {
        self.keys.load().is_some()
    }

    /// Refetches now for an unknown `kid`, unless another refetch happened in
    /// the last [`REFETCH_INTERVAL`]. Concurrent callers wait for one fetch.
    pub async fn refetch_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            return self.keys();
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok((set, _)) => {
                tracing::info!(issuer = %self.issuer.issuer, keys = set.len(), "JWKS refetched for unknown kid");
                self.keys.store(Some(Arc::new(set)));
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.issuer, error = %e, "JWKS refetch failed; keeping last good keys")
            }
        }
        self.keys()
    }

    /// Starts the background refresh loop: fetch now, then again when the
    /// document's `max-age` (clamped) runs out; back off on failures. The loop
    /// ends once the store is dropped (e.g. its issuer left the config).
    pub fn spawn_refresh(self: Arc<Self>, metrics: Arc<Metrics>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            loop {
                let Some(store) = weak.upgrade() else { return };
                let result = store.fetch().await;
                metrics.jwks_fetch(&store.issuer.issuer, result.is_ok());
                let wait = match result {
                    Ok((set, max_age)) => {
                        failures = 0;
                        tracing::debug!(issuer = %store.issuer.issuer, keys = set.len(), "JWKS loaded");
                        store.keys.store(Some(Arc::new(set)));
                        max_age
                            .unwrap_or(DEFAULT_REFRESH)
                            .clamp(MIN_REFRESH, MAX_REFRESH)
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(
                            issuer = %store.issuer.issuer,
                            error = %e,
                            keeping_last_good_keys = store.has_keys(),
                            "JWKS fetch failed"
                        );
                        Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)))
                            .min(Duration::from_secs(30))
                    }
                };
                drop(store);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Fetches the key set once, with its `max-age` when served over HTTP.
    pub async fn fetch(&self) -> Result<(KeySet, Option<Duration>), FetchError> {
        match &self.issuer.keys {
            KeySource::IntrospectionOnly => Err(FetchError::Document(
                "issuer is configured for introspection only".into(),
            )),
            KeySource::BuiltIn => Err(FetchError::Document(
                "the built-in authorization server's keys are never fetched".into(),
            )),
            KeySource::File(path) => {
                let doc = tokio::fs::read(path)
                    .await
                    .map_err(|source| FetchError::File {
                        path: path.display().to_string(),
                        source,
                    })?;
                Ok((KeySet::parse(&doc)?, None))
            }
            KeySource::JwksUri(url) => {
                let (doc, max_age) = self.get(url).await?;
                Ok((KeySet::parse(&doc)?, max_age))
            }
            KeySource::Discover(issuer) => {
                let url = match self.discovered_uri.load_full() {
                    Some(url) => url,
                    None => {
                        let url = Arc::new(self.discover(issuer).await?);
                        self.discovered_uri.store(Some(url.clone()));
                        url
                    }
                };
                let (doc, max_age) = self.get(&url).await?;
                Ok((KeySet::parse(&doc)?, max_age))
            }
        }
    }

    /// Finds `jwks_uri` in the issuer's RFC 8414 metadata, falling back to
    /// OpenID Connect discovery.
    async fn discover(&self, issuer: &Url) -> Result<Url, FetchError> {
        let mut last_error = None;
        for url in metadata_urls(issuer) {
            match self.get(&url).await {
                Ok((doc, _)) => {
                    return jwks_uri_from_metadata(&doc, &self.issuer.issuer)
                        .map_err(|e| FetchError::Document(format!("{url}: {e}")));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| FetchError::Document("no metadata URL".into())))
    }

    async fn get(&self, url: &Url) -> Result<(Bytes, Option<Duration>), FetchError> {
        let err = |reason: String| FetchError::Http {
            url: url.to_string(),
            reason,
        };
        let req = http::Request::get(url.as_str())
            .header(ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| err(e.to_string()))?;
        let fetch = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| err(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(err(format!("status {}", resp.status())));
            }
            let max_age = resp
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| err(e.to_string()))?
                .to_bytes();
            Ok((body, max_age))
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| err("timed out".into()))?
    }
}

/// `jwks_uri` from an RFC 8414 / OpenID Connect metadata document, which
/// must name `issuer` exactly (RFC 8414 §3.3: a document for another issuer
/// is a mix-up, not a source of keys).
pub fn jwks_uri_from_metadata(doc: &[u8], issuer: &str) -> Result<Url, String> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        issuer: String,
        jwks_uri: String,
    }
    // serde's message may quote document values; keep only its category.
    let meta: Metadata = serde_json::from_slice(doc)
        .map_err(|e| format!("not a metadata document ({:?})", e.classify()))?;
    if meta.issuer != issuer {
        return Err(format!(
            "names issuer `{}`, expected `{issuer}`",
            meta.issuer
        ));
    }
    Url::parse(&meta.jwks_uri).map_err(|e| format!("bad jwks_uri: {e}"))
}

/// RFC 8414 §3.1 inserts the well-known segment before the issuer's path;
/// OIDC Discovery appends it.
fn metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mut urls = Vec::new();
    for candidate in [
        format!("/.well-known/oauth-authorization-server{path}"),
        format!("{path}/.well-known/openid-configuration"),
    ] {
        let mut url = issuer.clone();
        url.set_path(&candidate);
        url.set_query(None);
        urls.push(url);
    }
    urls
}

/// `max-age` from a `Cache-Control` value; `no-store`/`no-cache` mean "soon".
fn max_age(value: &str) -> Option<Duration> {
    let mut result = None;
    for directive in value.split(',').map(str::trim) {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, secs)) = directive.split_once('=') {
            if name.trim().eq_ignore_ascii_case("max-age") {
                result = secs
                    .trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn discovery_urls_follow_rfc8414_then_oidc() {
        let urls = metadata_urls(&Url::parse("https://idp.example.com/tenant1").unwrap());
        assert_eq!(
            urls[0].as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(
            urls[1].as_str(),
            "https://idp.example.com/tenant1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn jwks_skips_hmac_and_encryption_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"EC","crv":"P-256","use":"enc","kid":"e",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","kid":"s",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let set = KeySet::parse(doc).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.has_kid("s") && !set.has_kid("h") && !set.has_kid("e"));
        assert_eq!(set.candidates(Some("s"), Algorithm::ES256).len(), 1);
        assert!(set.candidates(Some("s"), Algorithm::RS256).is_empty());
    }

    #[test]
    fn jwks_without_usable_keys_is_an_error() {
        assert!(KeySet::parse(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::parse(b"not json").is_err());
    }
}

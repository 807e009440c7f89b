//! Config, phase two: raw shapes → the immutable, typed [`Config`] the runtime uses.
//!
//! Validation never stops at the first problem: it collects every one, each with
//! its YAML path, so `check` can list them all. Nothing here touches the network
//! or binds a port.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::PRM_PREFIX;
use super::file::{RawConfig, RawRoute};
use super::{
    Config, Issuer, KeySource, Limits, Problem, Route, Secret, TlsFiles, TokenCache, Upstream,
};

/// Paths the gateway answers itself; a route may not shadow them.
const RESERVED_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Collects problems and warnings while walking the raw config.
#[derive(Default)]
pub(super) struct Report {
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Report {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The errors so far (for tests).
    #[cfg(test)]
    pub(super) fn errors(&self) -> &[Problem] {
        &self.errors
    }

    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn duration(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: Duration,
    ) -> Duration {
        match raw.map(humantime::parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.error(
                    path,
                    format!("invalid duration ({e}); write e.g. `30s` or `5m`"),
                );
                default
            }
        }
    }

    pub(super) fn count(&mut self, path: &str, raw: Option<u64>, default: usize) -> usize {
        match raw {
            None => default,
            Some(0) => {
                self.error(path, "must be at least 1");
                default
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    pub(super) fn size(&mut self, path: &str, raw: Option<&str>, default: usize) -> usize {
        match raw.map(super::limits::parse_size) {
            None => default,
            Some(Some(n)) => n,
            Some(None) => {
                self.error(
                    path,
                    "invalid size; write e.g. `4MiB`, `64KiB` or `1048576`",
                );
                default
            }
        }
    }
}

/// Validates `raw`. Relative file paths resolve against `base_dir` (the config
/// file's directory). Returns the config and its warnings, or every error.
pub(super) fn validate(
    raw: RawConfig,
    base_dir: &Path,
) -> Result<(Config, Vec<Problem>), Vec<Problem>> {
    let mut report = Report::default();

    let listen = match raw.listen.as_deref() {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(s) => s.parse().unwrap_or_else(|_| {
            report.error(
                "listen",
                format!("`{s}` is not host:port (e.g. 0.0.0.0:8443)"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }),
    };

    let admin_listen = raw.admin_listen.as_deref().and_then(|s| {
        let addr = s.parse::<SocketAddr>().ok();
        if addr.is_none() {
            report.error(
                "admin_listen",
                format!("`{s}` is not host:port (e.g. 127.0.0.1:9090)"),
            );
        }
        addr
    });
    let tls = raw.tls.map(|t| TlsFiles {
        cert: base_dir.join(t.cert),
        key: base_dir.join(t.key),
    });

    let authorization_server = raw
        .authorization_server
        .and_then(|a| super::authserver::validate(a, base_dir, &mut report))
        .map(Arc::new);
    // A development sign-in (the server or its provider on plain http) is
    // for one machine: it must not be reachable from others.
    if let Some(a) = &authorization_server {
        let http = a.issuer.starts_with("http://")
            || a.upstream
                .issuer
                .as_ref()
                .is_some_and(|u| u.scheme() == "http")
            || a.upstream.web_url.scheme() == "http"
            || a.upstream.api_url.scheme() == "http";
        if http && !listen.ip().is_loopback() {
            report.error(
                "authorization_server",
                "an http issuer or identity provider is for development: `listen` must then be a loopback address",
            );
        }
    }
    if raw.issuers.is_empty() && authorization_server.is_none() {
        report.error(
            "issuers",
            "at least one trusted issuer (or an authorization_server) is required",
        );
    }
    let mut seen_issuers = HashSet::new();
    let mut issuers: Vec<Arc<Issuer>> = raw
        .issuers
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let path = format!("issuers[{i}]");
            if !seen_issuers.insert(raw.issuer.clone()) {
                report.error(format!("{path}.issuer"), "duplicate issuer");
            }
            super::issuer::issuer(raw, &path, base_dir, &mut report).map(Arc::new)
        })
        .collect();

    if let Some(built_in) = &authorization_server {
        if !seen_issuers.insert(built_in.issuer.clone()) {
            report.error(
                "authorization_server.issuer",
                "also listed under issuers: the built-in server's keys are its own",
            );
        }
        issuers.push(Arc::new(Issuer {
            issuer: built_in.issuer.clone(),
            keys: KeySource::BuiltIn,
            algorithms: vec![Algorithm::ES256],
            scope_claims: vec!["scope".to_owned()],
            leeway: Duration::from_secs(30),
            require_typ: true,
            introspection: None,
        }));
    }
    let introspecting = issuers.iter().filter(|i| i.introspection.is_some()).count();
    if introspecting > 1 {
        report.warn(
            "issuers",
            "several issuers introspect: opaque tokens (which name no issuer) go to the first one only",
        );
    }
    let limits = super::limits::limits(&raw.limits, &mut report);
    let session_key = raw.session_binding.and_then(|b| {
        if b.key.len() < 32 {
            report.error(
                "session_binding.key",
                "must be at least 32 characters (use a random secret)",
            );
            None
        } else {
            Some(Secret(b.key.into_bytes()))
        }
    });
    let mut rate_limits = super::limits::rate_limits(&raw.rate_limits, &mut report);
    rate_limits.shared =
        super::limits::shared_state(raw.shared_state.as_ref(), base_dir, &mut report);
    let tracing = super::telemetry::tracing(raw.telemetry.as_ref(), &mut report);
    let token_cache = TokenCache {
        ttl: report.duration(
            "token_cache.ttl",
            raw.token_cache.ttl.as_deref(),
            Duration::from_secs(300),
        ),
        max_entries: raw.token_cache.max_entries.unwrap_or(100_000),
    };

    if raw.routes.is_empty() {
        report.error("routes", "at least one route is required");
    }
    let mut seen_paths = HashSet::new();
    let routes: Vec<Arc<Route>> = raw
        .routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let path = format!("routes[{i}]");
            if !seen_paths.insert(raw.path.clone()) {
                report.error(
                    format!("{path}.path"),
                    format!("duplicate route path `{}`", raw.path),
                );
            }
            let built_in = authorization_server.as_deref();
            route(raw, &path, &issuers, built_in, &limits, &mut report).map(Arc::new)
        })
        .collect();

    if report.errors.is_empty() {
        Ok((
            Config {
                listen,
                admin_listen,
                tls,
                issuers,
                routes,
                limits,
                token_cache,
                session_key,
                rate_limits,
                authorization_server,
                tracing,
            },
            report.warnings,
        ))
    } else {
        Err(report.errors)
    }
}

fn route(
    raw: RawRoute,
    path: &str,
    issuers: &[Arc<Issuer>],
    built_in: Option<&super::AuthServer>,
    limits: &Limits,
    report: &mut Report,
) -> Option<Route> {
    let ok_path = raw.path.starts_with('/')
        && !raw.path.starts_with("/.well-known/")
        && !RESERVED_PATHS.contains(&raw.path.as_str())
        && !raw.path.contains(['?', '#', '%'])
        && !raw.path.split('/').any(|seg| seg == "." || seg == "..");
    if !ok_path {
        report.error(
            format!("{path}.path"),
            "must be an absolute path like `/mcp`, outside /.well-known, /healthz and /readyz, \
             without `.`/`..` segments, query or percent-encoding",
        );
    }

    let upstream = upstream(&raw.upstream, &format!("{path}.upstream"), report);

    for (key, scopes) in [
        ("required_scopes", &raw.required_scopes),
        ("scopes_supported", &raw.scopes_supported),
    ] {
        for (j, s) in scopes.iter().enumerate() {
            if !is_scope_token(s) {
                report.error(
                    format!("{path}.{key}[{j}]"),
                    "a scope is one or more visible ASCII characters other than `\"` and `\\`",
                );
            }
        }
    }
    if raw.scopes_supported.iter().any(|s| s == "offline_access") {
        report.warn(
            format!("{path}.scopes_supported"),
            "`offline_access` should not be advertised in protected-resource metadata",
        );
    }

    let resource = Url::parse(&raw.resource).ok().filter(|u| {
        matches!(u.scheme(), "https" | "http") && u.fragment().is_none() && u.has_host()
    });
    let Some(resource_url) = resource else {
        report.error(
            format!("{path}.resource"),
            "must be an absolute http(s) URL without a fragment (RFC 8707), \
             e.g. https://mcp.example.com/mcp",
        );
        return None;
    };
    if resource_url.scheme() == "http" && !is_loopback(&resource_url) {
        report.warn(
            format!("{path}.resource"),
            "plain http resource outside loopback",
        );
    }
    // RFC 9728 §3.1: the metadata URL inserts the well-known segment between the
    // resource's origin and its path. A bare origin has no path suffix.
    let resource_path = match resource_url.path() {
        "/" => "",
        p => p,
    };
    let metadata_path = format!("{PRM_PREFIX}{resource_path}");
    let origin = resource_url.origin().ascii_serialization();

    // A route that names none uses the built-in server when there is one
    // (only it can issue tokens for this route's resource), else every issuer.
    let authorization_servers = match (raw.authorization_servers.is_empty(), built_in) {
        (true, Some(built_in)) => vec![built_in.issuer.clone()],
        (true, None) => issuers.iter().map(|i| i.issuer.clone()).collect(),
        (false, _) => raw.authorization_servers,
    };

    let mut audiences = vec![raw.resource.clone()];
    audiences.extend(
        raw.audiences
            .iter()
            .filter(|a| **a != raw.resource)
            .cloned(),
    );

    let upstream_timeout = report.duration(
        &format!("{path}.upstream_timeout"),
        raw.upstream_timeout.as_deref(),
        limits.upstream_timeout,
    );

    let policy = raw
        .policy
        .map(|p| super::policy::compile(p, &format!("{path}.policy"), report));

    let allowed_origins = raw
        .allowed_origins
        .iter()
        .enumerate()
        .filter_map(|(j, o)| {
            let origin = Url::parse(o).ok().map(|u| u.origin().ascii_serialization());
            match origin {
                Some(origin) if origin.eq_ignore_ascii_case(o.trim_end_matches('/')) => Some(origin),
                _ => {
                    report.error(
                        format!("{path}.allowed_origins[{j}]"),
                        "must be an origin like https://app.example.com (scheme, host, optional port; no path)",
                    );
                    None
                }
            }
        })
        .collect();

    let header_name = |key: &str, name: &str, report: &mut Report| {
        let parsed = http::HeaderName::from_bytes(name.as_bytes()).ok();
        if parsed.is_none() {
            report.error(
                format!("{path}.{key}"),
                format!("`{name}` is not a valid header name"),
            );
        }
        parsed
    };
    let mut forward_identity = super::ForwardIdentity::default();
    if let Some(fi) = &raw.forward_identity {
        let mut pick = |key: &str, v: &Option<String>| {
            v.as_deref()
                .and_then(|n| header_name(&format!("forward_identity.{key}"), n, report))
        };
        forward_identity.subject = pick("subject_header", &fi.subject_header);
        forward_identity.scopes = pick("scopes_header", &fi.scopes_header);
        forward_identity.client_id = pick("client_id_header", &fi.client_id_header);
        forward_identity.issuer = pick("issuer_header", &fi.issuer_header);
    }
    let mut upstream_headers = Vec::new();
    for (name, value) in &raw.upstream_headers {
        let key = format!("upstream_headers.{name}");
        let parsed_name = header_name(&key, name, report);
        let parsed_value = http::HeaderValue::from_str(value).ok();
        if parsed_value.is_none() {
            report.error(key.clone(), "the value is not a valid header value");
        }
        if let (Some(n), Some(v)) = (parsed_name, parsed_value) {
            if matches!(
                n.as_str(),
                "host" | "authorization" | "content-length" | "transfer-encoding" | "connection"
            ) {
                report.error(key, "this header is managed by the gateway");
            } else {
                upstream_headers.push((n, v));
            }
        }
    }

    Some(Route {
        forward_identity,
        upstream_headers,
        allowed_origins,
        policy: policy.flatten(),
        path: raw.path,
        upstream: upstream?,
        resource: raw.resource,
        resource_origin: origin,
        metadata_path,
        extra_audiences: audiences.len() > 1,
        audiences,
        authorization_servers,
        scopes_supported: raw.scopes_supported,
        required_scopes: raw.required_scopes,
        resource_name: raw.resource_name,
        resource_documentation: raw.resource_documentation,
        trust_forwarded_headers: raw.trust_forwarded_headers,
        upstream_timeout,
    })
}

fn upstream(raw: &str, path: &str, report: &mut Report) -> Option<Upstream> {
    let url = http_url(raw, path, report)?;
    let Some(host) = url.host_str() else {
        report.error(path, "must have a host");
        return None;
    };
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    match url.as_str().parse::<http::Uri>() {
        Ok(uri) => Some(Upstream {
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            scheme: url.scheme().to_owned(),
            authority,
        }),
        Err(e) => {
            report.error(path, format!("not a valid URI: {e}"));
            None
        }
    }
}

pub(super) fn http_url(raw: &str, path: &str, report: &mut Report) -> Option<Url> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Some(u),
        Ok(_) => {
            report.error(path, format!("`{raw}` must be an http:// or https:// URL"));
            None
        }
        Err(e) => {
            report.error(path, format!("`{raw}` is not a URL: {e}"));
            None
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// RFC 6749 §3.3 scope-token, minus nothing: `%x21 / %x23-5B / %x5D-7E`. This
/// also guarantees scopes can be quoted in `WWW-Authenticate` without escaping.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Resolves `path` against the directory of `config_file`.
pub(super) fn base_dir(config_file: &Path) -> PathBuf {
    config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens() {
        assert!(is_scope_token("mcp:tools"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("quote\""));
        assert!(!is_scope_token(""));
    }
}

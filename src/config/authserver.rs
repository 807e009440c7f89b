//! The `authorization_server:` block: its typed form and its validation.
//! Every problem is reported with its YAML path, like the rest of the config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::Secret;
use super::file::{RawAuthServer, RawPeople};
use super::validate::{Report, is_scope_token};

/// The built-in authorization server.
#[derive(Debug, PartialEq)]
pub struct AuthServer {
    /// The issuer, exactly as configured (no trailing slash): the same string
    /// in the protected-resource metadata, the AS metadata, the `iss`
    /// authorization-response parameter and every token's `iss`.
    pub issuer: String,
    /// Where codes, clients and refresh tokens are kept.
    pub store: StoreSetting,
    /// CA (PEM) for a `rediss://` store with a private CA.
    pub store_ca_file: Option<std::path::PathBuf>,
    /// The identity provider people sign in with.
    pub upstream: UpstreamIdp,
    /// Who may sign in (nobody when no rule matches).
    pub login: People,
    /// Scopes a signed-in person may receive.
    pub grants: Vec<Grant>,
    /// Client ID Metadata Documents, when accepted.
    pub cimd: Option<Cimd>,
    /// Whether RFC 7591 dynamic registration is open.
    pub dynamic_registration: bool,
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh-token family.
    pub refresh_token_ttl: Duration,
    /// How long after rotation a refresh token may be presented again (a
    /// client that lost the response) before reuse revokes its family.
    pub refresh_reuse_grace: Duration,
    /// Key for the signed browser cookies; `None`: random per process.
    pub cookie_key: Option<Secret>,
}

/// `store:`
#[derive(Debug, Clone, PartialEq)]
pub enum StoreSetting {
    /// In memory; lost on restart (tests).
    Memory,
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// Redis or Valkey (`redis://` or `rediss://`), shared by replicas.
    Redis(Secret),
}

/// `upstream.kind:`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpKind {
    /// Any OpenID Connect provider, by discovery.
    Oidc,
    /// Google (OIDC, with a hosted-domain check).
    Google,
    /// Microsoft Entra ID (OIDC, tenant-aware).
    Entra,
    /// GitHub (OAuth 2, not OIDC).
    Github,
}

impl IdpKind {
    /// The prefix of every `sub` minted for people from this provider.
    pub fn subject_prefix(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Google => "google",
            Self::Entra => "entra",
            Self::Github => "github",
        }
    }
}

/// `upstream:`
#[derive(Debug, PartialEq)]
pub struct UpstreamIdp {
    /// Which connector.
    pub kind: IdpKind,
    /// The provider's issuer (`None` for GitHub).
    pub issuer: Option<Url>,
    /// The gateway's client id at the provider.
    pub client_id: String,
    /// The gateway's client secret at the provider.
    pub client_secret: Secret,
    /// Scopes asked of the provider.
    pub scopes: Vec<String>,
    /// The ID-token claim holding group names.
    pub groups_claim: String,
    /// The provider's name on the consent page.
    pub name: Option<String>,
    /// GitHub: the web origin (`/login/oauth/…`), with a trailing slash.
    pub web_url: Url,
    /// GitHub: the REST API base, with a trailing slash.
    pub api_url: Url,
}

/// A set of people (`login:` and `grants[].when:`): anyone who matches one
/// entry of one list.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct People {
    /// Verified email domains, lowercase.
    pub email_domains: Vec<String>,
    /// Verified email addresses, lowercase.
    pub emails: Vec<String>,
    /// Group names, exact.
    pub groups: Vec<String>,
    /// GitHub organisations, lowercase.
    pub github_orgs: Vec<String>,
}

impl People {
    /// Whether no rule is set (matches nobody).
    pub fn is_empty(&self) -> bool {
        self.email_domains.is_empty()
            && self.emails.is_empty()
            && self.groups.is_empty()
            && self.github_orgs.is_empty()
    }
}

/// `grants[]`
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Whom it applies to; `None`: everyone who may sign in.
    pub when: Option<People>,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// `clients.cimd:`
#[derive(Debug, Clone, PartialEq)]
pub struct Cimd {
    /// Which hosts may describe clients.
    pub trust: CimdTrust,
    /// Tests only: loopback addresses allowed, and this CA trusted, for
    /// document fetches.
    pub insecure_test_loopback_ca: Option<PathBuf>,
}

/// `clients.cimd.trust:`
#[derive(Debug, Clone, PartialEq)]
pub enum CimdTrust {
    /// Any https host.
    Any,
    /// Only these hosts (lowercase).
    Allowlist(Vec<String>),
}

/// Validates the block. `base_dir` resolves a relative `sqlite:` path and
/// holds the default store file.
pub(super) fn validate(
    raw: RawAuthServer,
    base_dir: &Path,
    report: &mut Report,
) -> Option<AuthServer> {
    let p = "authorization_server";
    let issuer = issuer_url(&raw.issuer, &format!("{p}.issuer"), report);
    let store = match raw.store.as_deref() {
        None => StoreSetting::Sqlite(base_dir.join("authorization-server.db")),
        Some("memory") => StoreSetting::Memory,
        Some(s) if s.starts_with("redis://") || s.starts_with("rediss://") => {
            if url::Url::parse(s).map_or(true, |u| !u.has_host()) {
                report.error(
                    format!("{p}.store"),
                    "not a redis:// or rediss:// URL with a host",
                );
            }
            StoreSetting::Redis(Secret(s.as_bytes().to_vec()))
        }
        Some(s) => {
            match s.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => StoreSetting::Sqlite(base_dir.join(path)),
                _ => {
                    report.error(
                    format!("{p}.store"),
                    format!("`{s}`: write `sqlite:<path>`, `redis://…` (or `rediss://…`) or `memory`"),
                );
                    StoreSetting::Memory
                }
            }
        }
    };

    let up = &raw.upstream;
    let up_path = format!("{p}.upstream");
    let kind = match up.kind.as_str() {
        "oidc" => Some(IdpKind::Oidc),
        "google" => Some(IdpKind::Google),
        "entra" => Some(IdpKind::Entra),
        "github" => Some(IdpKind::Github),
        other => {
            report.error(
                format!("{up_path}.kind"),
                format!("`{other}`: use oidc, google, entra or github"),
            );
            None
        }
    };
    let idp_issuer = match (kind, up.issuer.as_deref()) {
        (Some(IdpKind::Github), Some(_)) => {
            report.error(
                format!("{up_path}.issuer"),
                "GitHub is not an OpenID provider: remove `issuer`",
            );
            None
        }
        (Some(IdpKind::Google), None) => Url::parse("https://accounts.google.com").ok(),
        (Some(IdpKind::Oidc | IdpKind::Entra), None) => {
            report.error(
                format!("{up_path}.issuer"),
                "required for kind oidc and entra (discovery starts there)",
            );
            None
        }
        (_, Some(s)) => issuer_url(s, &format!("{up_path}.issuer"), report),
        (None | Some(IdpKind::Github), None) => None,
    };
    let github_url = |key: &str, raw: Option<&String>, default: &str, report: &mut Report| {
        if raw.is_some() && kind.is_some_and(|k| k != IdpKind::Github) {
            report.error(format!("{up_path}.{key}"), "only for kind github");
        }
        let text = raw.map_or(default, String::as_str);
        // With a trailing slash, so that `join` appends rather than replaces.
        let text = format!("{}/", text.trim_end_matches('/'));
        issuer_url(
            text.trim_end_matches('/'),
            &format!("{up_path}.{key}"),
            report,
        )
        .and_then(|_| Url::parse(&text).ok())
    };
    let web_url = github_url("web_url", up.web_url.as_ref(), "https://github.com", report);
    let api_url = github_url(
        "api_url",
        up.api_url.as_ref(),
        "https://api.github.com",
        report,
    );
    if up.client_id.is_empty() || up.client_secret.is_empty() {
        report.error(&up_path, "client_id and client_secret must not be empty");
    }
    let scopes = up
        .scopes
        .clone()
        .unwrap_or_else(|| ["openid", "email", "profile"].map(str::to_owned).to_vec());
    if kind != Some(IdpKind::Github) && !scopes.iter().any(|s| s == "openid") {
        report.error(
            format!("{up_path}.scopes"),
            "must include `openid` (the sign-in is an ID token)",
        );
    }
    let groups_claim = up.groups_claim.clone().unwrap_or_else(|| "groups".into());

    let login = people(&raw.login, &format!("{p}.login"), kind, report);
    if login.is_empty() {
        report.warn(
            format!("{p}.login"),
            "no rule: nobody can sign in; list email_domains, emails, groups or github_orgs",
        );
    }
    let grants = raw
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let gp = format!("{p}.grants[{i}]");
            for (j, scope) in g.scopes.iter().enumerate() {
                if !is_scope_token(scope) {
                    report.error(
                        format!("{gp}.scopes[{j}]"),
                        format!("`{scope}` is not a scope token"),
                    );
                }
            }
            if g.scopes.iter().any(|s| s == "offline_access") {
                report.error(
                    format!("{gp}.scopes"),
                    "offline_access is not a resource scope; refresh tokens are always issued",
                );
            }
            let when = g.when.as_ref().map(|w| {
                let when = people(w, &format!("{gp}.when"), kind, report);
                if when.is_empty() {
                    report.error(format!("{gp}.when"), "empty: drop `when` to grant everyone");
                }
                when
            });
            Grant {
                when,
                scopes: g.scopes.clone(),
            }
        })
        .collect::<Vec<_>>();
    if grants.is_empty() {
        report.warn(
            format!("{p}.grants"),
            "no grant: tokens will carry no scope, so only routes without required scopes work",
        );
    }

    let cimd = raw.clients.cimd.as_ref().and_then(|c| {
        let cp = format!("{p}.clients.cimd");
        let trust = match c.trust.as_str() {
            "any" => Some(CimdTrust::Any),
            "allowlist" if c.hosts.is_empty() => {
                report.error(
                    format!("{cp}.hosts"),
                    "trust: allowlist needs at least one host",
                );
                None
            }
            "allowlist" => Some(CimdTrust::Allowlist(
                c.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            )),
            other => {
                report.error(
                    format!("{cp}.trust"),
                    format!("`{other}`: use allowlist or any"),
                );
                None
            }
        };
        let insecure_test_loopback_ca = c.insecure_test_loopback_ca.as_ref().map(|ca| {
            report.warn(
                format!("{cp}.insecure_test_loopback_ca"),
                "for tests only: metadata documents may then be fetched from loopback addresses",
            );
            base_dir.join(ca)
        });
        Some(Cimd {
            trust: trust?,
            insecure_test_loopback_ca,
        })
    });
    let dynamic_registration = raw.clients.dynamic_registration.unwrap_or(false);
    if cimd.is_none() && !dynamic_registration {
        report.error(
            format!("{p}.clients"),
            "no way for a client to identify itself: enable cimd or dynamic_registration",
        );
    }

    let access_token_ttl = report.duration(
        &format!("{p}.access_token_ttl"),
        raw.access_token_ttl.as_deref(),
        Duration::from_secs(300),
    );
    if access_token_ttl > Duration::from_secs(3600) {
        report.warn(
            format!("{p}.access_token_ttl"),
            "over 1h: a person removed from the login policy keeps access that long",
        );
    }
    let refresh_token_ttl = report.duration(
        &format!("{p}.refresh_token_ttl"),
        raw.refresh_token_ttl.as_deref(),
        Duration::from_secs(30 * 24 * 3600),
    );
    let refresh_reuse_grace = report.duration(
        &format!("{p}.refresh_reuse_grace"),
        raw.refresh_reuse_grace.as_deref(),
        Duration::from_secs(10),
    );
    if refresh_reuse_grace > Duration::from_secs(60) {
        report.error(
            format!("{p}.refresh_reuse_grace"),
            "at most 60s: a longer grace lets a stolen refresh token race its owner",
        );
    }
    let cookie_key = raw.cookie_key.as_ref().and_then(|k| {
        if k.len() < 32 {
            report.error(
                format!("{p}.cookie_key"),
                "must be at least 32 characters (use a random secret)",
            );
            None
        } else {
            Some(Secret(k.clone().into_bytes()))
        }
    });
    if matches!(store, StoreSetting::Redis(_)) && raw.cookie_key.is_none() {
        // Replicas sharing a store must share the key that seals it (and the
        // signing keys in it) and signs the browser's cookies.
        report.error(
            format!("{p}.cookie_key"),
            "required with a redis store: every replica must use the same one",
        );
    }

    let store_ca_file = super::limits::ca_file(
        raw.store_ca_file.as_deref(),
        raw.store.as_deref().unwrap_or_default(),
        base_dir,
        &format!("{p}.store_ca_file"),
        report,
    );

    Some(AuthServer {
        issuer: issuer?.as_str().trim_end_matches('/').to_owned(),
        store,
        store_ca_file,
        upstream: UpstreamIdp {
            kind: kind?,
            issuer: idp_issuer,
            client_id: up.client_id.clone(),
            client_secret: Secret(up.client_secret.clone().into_bytes()),
            scopes,
            groups_claim,
            name: up.name.clone(),
            web_url: web_url?,
            api_url: api_url?,
        },
        login,
        grants,
        cimd,
        dynamic_registration,
        access_token_ttl,
        refresh_token_ttl,
        refresh_reuse_grace,
        cookie_key,
    })
}

/// An issuer URL: https (http only on loopback, for development), no query,
/// no fragment, no trailing slash.
fn issuer_url(raw: &str, path: &str, report: &mut Report) -> Option<Url> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            report.error(path, format!("`{raw}` is not a URL: {e}"));
            return None;
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !ok_scheme || !url.has_host() {
        report.error(
            path,
            format!("`{raw}` must be an https URL (http only on loopback)"),
        );
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        report.error(path, format!("`{raw}` must have no query or fragment"));
        return None;
    }
    if raw.ends_with('/') {
        report.error(
            path,
            format!("`{raw}`: drop the trailing slash (the issuer is compared as a string)"),
        );
        return None;
    }
    Some(url)
}

fn people(raw: &RawPeople, path: &str, kind: Option<IdpKind>, report: &mut Report) -> People {
    let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
    for (i, d) in raw.email_domains.iter().enumerate() {
        if d.is_empty() || d.contains('@') || d.starts_with('.') {
            report.error(
                format!("{path}.email_domains[{i}]"),
                format!("`{d}`: write the domain alone, e.g. example.com"),
            );
        }
    }
    for (i, e) in raw.emails.iter().enumerate() {
        if e.split('@').count() != 2 {
            report.error(
                format!("{path}.emails[{i}]"),
                format!("`{e}` is not an email address"),
            );
        }
    }
    if !raw.github_orgs.is_empty() && kind.is_some_and(|k| k != IdpKind::Github) {
        report.error(
            format!("{path}.github_orgs"),
            "github_orgs needs upstream.kind: github",
        );
    }
    People {
        email_domains: lower(&raw.email_domains),
        emails: lower(&raw.emails),
        groups: raw.groups.clone(),
        github_orgs: lower(&raw.github_orgs),
    }
}

//! MCP clients: RFC 7591 dynamic registration, and the redirect-URI rule.
//!
//! Redirect URIs match by exact string, except that for `http` loopback
//! (`127.0.0.1`, `[::1]`, `localhost`) the port is ignored, also against a
//! registration without a port (RFC 8252 §7.3; VS Code registers
//! `http://127.0.0.1/` and picks a port later). `localhost` never matches
//! `127.0.0.1`: they can resolve to different listeners.

use serde::{Deserialize, Serialize};
use url::Url;

/// A registered client, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Client {
    /// The id the client uses.
    pub(crate) client_id: String,
    /// Shown on the consent page.
    pub(crate) client_name: Option<String>,
    /// Exact redirect URIs (loopback: port-free comparison).
    pub(crate) redirect_uris: Vec<String>,
}

/// At most this many redirect URIs per registration.
pub(crate) const MAX_REDIRECT_URIS: usize = 10;
/// At most this long, each.
const MAX_URI_LEN: usize = 2048;

/// An RFC 7591 registration request (the fields the server reads).
#[derive(Debug, Deserialize)]
pub(crate) struct Registration {
    #[serde(default)]
    redirect_uris: Vec<serde_json::Value>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
}

/// Why a registration is refused (RFC 7591 §3.2.2 codes).
#[derive(Debug, PartialEq)]
pub(crate) enum RegistrationError {
    /// `invalid_redirect_uri`
    RedirectUri(String),
    /// `invalid_client_metadata`
    Metadata(String),
}

impl Registration {
    /// Validates the request into the client to store under `client_id`.
    /// Of the redirect URIs, the valid ones are kept and the rest dropped;
    /// the request fails only when none is valid (Cursor registers a
    /// `cursor://` URI beside https ones).
    pub(crate) fn into_client(self, client_id: String) -> Result<Client, RegistrationError> {
        if let Some(method) = self.token_endpoint_auth_method.as_deref() {
            if method != "none" {
                return Err(RegistrationError::Metadata(format!(
                    "token_endpoint_auth_method `{method}` is not supported: clients are public (`none`) and use PKCE"
                )));
            }
        }
        if let Some(grants) = &self.grant_types {
            if let Some(g) = grants
                .iter()
                .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
            {
                return Err(RegistrationError::Metadata(format!(
                    "grant type `{g}` is not supported"
                )));
            }
        }
        if let Some(types) = &self.response_types {
            if types.iter().any(|t| t != "code") {
                return Err(RegistrationError::Metadata(
                    "only response_type `code` is supported".into(),
                ));
            }
        }
        let redirect_uris: Vec<String> = self
            .redirect_uris
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|uri| acceptable_redirect(uri))
            .take(MAX_REDIRECT_URIS)
            .map(str::to_owned)
            .collect();
        if redirect_uris.is_empty() {
            return Err(RegistrationError::RedirectUri(
                "no acceptable redirect URI: use https, http on a loopback address, or a private-use scheme"
                    .into(),
            ));
        }
        let client_name = self
            .client_name
            .map(|n| {
                n.chars()
                    .filter(|c| !is_hidden(*c))
                    .take(100)
                    .collect::<String>()
            })
            .filter(|n| !n.trim().is_empty());
        Ok(Client {
            client_id,
            client_name,
            redirect_uris,
        })
    }
}

/// Whether a redirect URI may be registered: absolute, no fragment, and
/// https, http on loopback, or a private-use scheme (`cursor://`,
/// `com.example.app:/cb`). Never `javascript:`, `data:`, `file:`.
pub(crate) fn acceptable_redirect(uri: &str) -> bool {
    if uri.len() > MAX_URI_LEN || uri.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.has_host(),
        "http" => loopback_host(&url).is_some(),
        "javascript" | "data" | "file" | "about" | "blob" | "vbscript" | "ws" | "wss" | "ftp" => {
            false
        }
        // RFC 8252 §7.1: private-use schemes contain a dot or are app-specific.
        _ => true,
    }
}

/// The loopback host of an `http` URL, as written.
fn loopback_host(url: &Url) -> Option<String> {
    if url.scheme() != "http" {
        return None;
    }
    match url.host()? {
        url::Host::Ipv4(ip) if ip.is_loopback() => Some(ip.to_string()),
        url::Host::Ipv6(ip) if ip.is_loopback() => Some(format!("[{ip}]")),
        url::Host::Domain("localhost") => Some("localhost".into()),
        _ => None,
    }
}

impl Client {
    /// Whether `requested` matches one of the registered redirect URIs.
    pub(crate) fn redirect_matches(&self, requested: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| redirect_matches(registered, requested))
    }
}

/// The redirect rule (see the module doc).
pub(crate) fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    match (loopback_host(&reg), loopback_host(&req)) {
        (Some(a), Some(b)) if a == b => {
            // Same loopback host literal: compare everything but the port.
            // `set_port` fails only for URLs without a host, and these have one.
            let strip = |u: &Url| {
                let mut u = u.clone();
                u.set_port(None).ok().map(|()| u)
            };
            // Url normalises `http://127.0.0.1` to `http://127.0.0.1/`, so a
            // registration without a path still needs the exact path.
            strip(&reg).is_some_and(|r| strip(&req).is_some_and(|q| r.as_str() == q.as_str()))
                && path_as_written(registered) == path_as_written(requested)
        }
        _ => false,
    }
}

/// The path-and-after of a URI as written (after the authority), so that a
/// normalising parser does not make `/cb/../x` equal `/x`.
fn path_as_written(uri: &str) -> &str {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// Characters that would let a name disguise itself on the consent page:
/// controls, and Unicode format characters (bidi overrides and isolates,
/// zero-width joiners and spaces, soft hyphen, BOM).
pub(crate) fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_ports_are_ignored_but_hosts_and_paths_are_not() {
        let reg = "http://127.0.0.1/callback";
        assert!(redirect_matches(reg, "http://127.0.0.1:53682/callback"));
        assert!(redirect_matches(
            "http://127.0.0.1:3000/callback",
            "http://127.0.0.1:4000/callback"
        ));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:9/cb"));
        assert!(redirect_matches(
            "http://localhost:1/cb",
            "http://localhost:2/cb"
        ));
        assert!(!redirect_matches(
            "http://localhost/cb",
            "http://127.0.0.1:2/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://localhost/cb"
        ));
        assert!(!redirect_matches(reg, "http://127.0.0.1:1/callback/x"));
        assert!(!redirect_matches(reg, "http://127.0.0.1:1/callback?x=1"));
        assert!(!redirect_matches(
            "http://127.0.0.1/a/b",
            "http://127.0.0.1:1/a/c/../b"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/",
            "http://127.0.0.2:1/"
        ));
    }

    #[test]
    fn non_loopback_uris_match_exactly() {
        let reg = "https://app.example/cb";
        assert!(redirect_matches(reg, reg));
        assert!(!redirect_matches(reg, "https://app.example:443/cb"));
        assert!(!redirect_matches(reg, "https://APP.example/cb"));
        assert!(!redirect_matches(reg, "https://app.example/cb/"));
        assert!(!redirect_matches(
            "http://app.example/cb",
            "http://app.example:8080/cb"
        ));
    }

    #[test]
    fn registration_keeps_the_valid_redirects_and_refuses_when_none() {
        let req: Registration = serde_json::from_value(serde_json::json!({
            "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback", "https://x.example/cb",
                              "javascript:alert(1)", "http://evil.example/cb", 7],
            "client_name": "Cursor\u{7}",
            "token_endpoint_auth_method": "none"
        }))
        .unwrap();
        let client = req.into_client("id".into()).unwrap();
        assert_eq!(
            client.redirect_uris,
            [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "https://x.example/cb"
            ]
        );
        assert_eq!(client.client_name.as_deref(), Some("Cursor"));
        let spoof: Registration = serde_json::from_value(serde_json::json!({
            "redirect_uris": ["https://x.example/cb"],
            "client_name": "Claude\u{202E}edoC\u{200B}"
        }))
        .unwrap();
        let named = spoof.into_client("id".into()).unwrap();
        assert_eq!(
            named.client_name.as_deref(),
            Some("ClaudeedoC"),
            "no bidi override, no zero width"
        );

        let none: Registration = serde_json::from_value(
            serde_json::json!({"redirect_uris": ["http://evil.example/cb"]}),
        )
        .unwrap();
        assert!(matches!(
            none.into_client("id".into()),
            Err(RegistrationError::RedirectUri(_))
        ));
        let secret: Registration = serde_json::from_value(serde_json::json!({
            "redirect_uris": ["https://x.example/cb"], "token_endpoint_auth_method": "client_secret_basic"
        }))
        .unwrap();
        assert!(matches!(
            secret.into_client("id".into()),
            Err(RegistrationError::Metadata(_))
        ));
    }
}

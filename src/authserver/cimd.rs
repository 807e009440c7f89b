//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document):
//! a client whose `client_id` is an https URL is described by the JSON
//! document at that URL. Fetching a URL a stranger chose is an SSRF risk, so:
//!
//! - the URL is `https`, has a host and a non-root path, no fragment, no
//!   credentials, no dot segments (checked on the string as sent);
//! - with `trust: allowlist`, the host is one of `hosts` (exact);
//! - every address the host resolves to must be public: loopback, private,
//!   link-local, CGNAT, documentation, benchmarking, multicast, reserved,
//!   IPv4-mapped, NAT64, 6to4, Teredo, ULA and the rest are refused. The
//!   connector connects only to the addresses this resolver returned, so a
//!   second DNS answer cannot swap in a private one (rebinding). An IP
//!   literal host gets the same check;
//! - no redirect is followed (hyper's client follows none; a 3xx is an
//!   error), the body is capped at 5 KB, the whole fetch has a deadline;
//! - the document's `client_id` must equal the URL exactly;
//! - valid documents are cached (bounded, 5 minutes); errors never are.
//!
//! `insecure_test_loopback_ca` (tests only, logged as a warning) allows
//! loopback addresses and trusts one extra CA for these fetches.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::ACCEPT;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use url::Url;

use super::clients::{Client, Registration};
use crate::body::{self, Body};
use crate::config::{Cimd, CimdTrust};

/// Largest document accepted.
pub(crate) const MAX_DOCUMENT: usize = 5 * 1024;
/// How long a valid document is reused.
const CACHE_TTL: Duration = Duration::from_secs(300);

/// Why a document could not be used. Shown on the error page.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CimdError {
    /// The `client_id` is not an acceptable document URL.
    #[error("the client id is not an acceptable metadata document URL ({0})")]
    BadUrl(&'static str),
    /// The host is not on the allowlist.
    #[error("clients from {0} are not accepted here")]
    NotTrusted(String),
    /// The fetch failed or was refused.
    #[error("the client's metadata document could not be fetched ({0})")]
    Fetch(String),
    /// The document is not valid.
    #[error("the client's metadata document is invalid ({0})")]
    Invalid(String),
}

type Fetcher = HyperClient<HttpsConnector<HttpConnector<PublicResolver>>, Body>;

/// Fetches, checks and caches documents.
pub(crate) struct CimdClients {
    trust: CimdTrust,
    allow_loopback: bool,
    client: Fetcher,
    timeout: Duration,
    cache: moka::future::Cache<String, Arc<Client>>,
    /// Recent failures, briefly: a client id that failed is not fetched
    /// again on every request (each would be a fresh outbound fetch).
    failures: moka::future::Cache<String, CimdError>,
}

/// How long a failure is remembered.
const FAILURE_TTL: Duration = Duration::from_secs(30);

impl CimdClients {
    /// The fetcher for `settings`; reads the test CA if one is configured.
    pub(crate) fn new(settings: &Cimd, timeout: Duration) -> Result<Self, String> {
        let allow_loopback = settings.insecure_test_loopback_ca.is_some();
        let mut http = HttpConnector::new_with_resolver(PublicResolver { allow_loopback });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let https = match &settings.insecure_test_loopback_ca {
            None => builder.with_webpki_roots(),
            Some(ca) => {
                tracing::warn!(
                    ca = %ca.display(),
                    "clients.cimd.insecure_test_loopback_ca is set: client metadata documents may be \
                     fetched from loopback addresses with this CA. For tests only; never in production"
                );
                builder.with_tls_config(test_tls(ca)?)
            }
        }
        .https_only()
        .enable_http1()
        .wrap_connector(http);
        Ok(Self {
            trust: settings.trust.clone(),
            allow_loopback,
            client: HyperClient::builder(TokioExecutor::new()).build(https),
            timeout,
            cache: moka::future::Cache::builder()
                .max_capacity(1000)
                .time_to_live(CACHE_TTL)
                .build(),
            failures: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(FAILURE_TTL)
                .build(),
        })
    }

    /// The client described at `client_id`.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Arc<Client>, CimdError> {
        let url = check_url(client_id)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if let CimdTrust::Allowlist(hosts) = &self.trust {
            if !hosts.contains(&host) {
                return Err(CimdError::NotTrusted(host));
            }
        }
        if let Some(url::Host::Ipv4(ip)) = url.host() {
            check_ip(IpAddr::V4(ip), self.allow_loopback).map_err(CimdError::Fetch)?;
        }
        if let Some(url::Host::Ipv6(ip)) = url.host() {
            check_ip(IpAddr::V6(ip), self.allow_loopback).map_err(CimdError::Fetch)?;
        }
        if let Some(failed) = self.failures.get(client_id).await {
            return Err(failed);
        }
        let result = self
            .cache
            .try_get_with(client_id.to_owned(), async {
                let doc = self.fetch(&url).await?;
                document(client_id, &doc).map(Arc::new)
            })
            .await
            .map_err(|e: Arc<CimdError>| (*e).clone());
        if let Err(e) = &result {
            self.failures.insert(client_id.to_owned(), e.clone()).await;
        }
        result
    }

    async fn fetch(&self, url: &Url) -> Result<bytes::Bytes, CimdError> {
        let req = http::Request::get(url.as_str())
            .header(ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|e| CimdError::Fetch(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| CimdError::Fetch(error_chain(&e)))?;
            if resp.status() != http::StatusCode::OK {
                return Err(CimdError::Fetch(format!(
                    "answered {} (redirects are not followed)",
                    resp.status()
                )));
            }
            body::read_capped(resp.into_body(), MAX_DOCUMENT, self.timeout)
                .await
                .map_err(|e| CimdError::Fetch(e.to_string()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CimdError::Fetch(format!("no answer within {:?}", self.timeout)))?
    }
}

/// The error and its sources, for the page (hyper hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl CimdError {
    /// What the person may be shown: the rule that failed, never what the
    /// network answered (names resolved, ports probed, TLS errors stay in
    /// the log).
    pub(crate) fn public(&self) -> String {
        match self {
            Self::BadUrl(_) | Self::NotTrusted(_) => self.to_string(),
            Self::Fetch(_) => "the client's metadata document could not be fetched".into(),
            Self::Invalid(_) => "the client's metadata document is invalid".into(),
        }
    }
}

/// Whether `client_id` is a document URL at all (as opposed to a
/// registered id).
pub(crate) fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// The URL rules, on the string as the client sent it.
fn check_url(client_id: &str) -> Result<Url, CimdError> {
    if client_id.len() > 2048 || client_id.chars().any(|c| c.is_control() || c == ' ') {
        return Err(CimdError::BadUrl("too long or has control characters"));
    }
    let url = Url::parse(client_id).map_err(|_| CimdError::BadUrl("not a URL"))?;
    if url.scheme() != "https" {
        return Err(CimdError::BadUrl("not https"));
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(CimdError::BadUrl("has a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CimdError::BadUrl("has credentials"));
    }
    if !url.has_host() || url.path() == "/" {
        return Err(CimdError::BadUrl("needs a host and a path"));
    }
    let path_as_sent = client_id
        .trim_start_matches("https://")
        .split_once('/')
        .map_or("", |(_, p)| p);
    let path_as_sent = path_as_sent.split(['?', '#']).next().unwrap_or_default();
    if path_as_sent.split('/').any(|seg| {
        matches!(
            seg.to_ascii_lowercase().as_str(),
            "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
        )
    }) {
        return Err(CimdError::BadUrl("has dot segments"));
    }
    // The parser must not have changed it: `client_id` is compared as sent.
    if url.as_str() != client_id {
        return Err(CimdError::BadUrl("not in normal form"));
    }
    Ok(url)
}

/// The client a fetched document describes.
fn document(client_id: &str, doc: &[u8]) -> Result<Client, CimdError> {
    #[derive(Deserialize)]
    struct Named {
        client_id: String,
    }
    let named: Named = serde_json::from_slice(doc)
        .map_err(|e| CimdError::Invalid(format!("not a JSON object with client_id: {e}")))?;
    if named.client_id != client_id {
        return Err(CimdError::Invalid(
            "its client_id is not its own URL".into(),
        ));
    }
    let registration: Registration =
        serde_json::from_slice(doc).map_err(|e| CimdError::Invalid(e.to_string()))?;
    registration
        .into_client(client_id.to_owned())
        .map_err(|e| CimdError::Invalid(format!("{e:?}")))
}

/// Resolves with the system resolver and keeps only public addresses; fails
/// when any address is not public (a name that also points inside is
/// refused whole).
#[derive(Clone)]
pub(crate) struct PublicResolver {
    allow_loopback: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(std::io::Error::other("the name has no address"));
            }
            for addr in &addrs {
                check_ip(addr.ip(), allow_loopback).map_err(std::io::Error::other)?;
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Refuses every address that is not public unicast.
pub(crate) fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), String> {
    if allow_loopback && ip.is_loopback() {
        return Ok(());
    }
    let public = match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    };
    if public {
        Ok(())
    } else {
        Err(format!("{ip} is not a public address"))
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // 0.0.0.0/8 "this network"
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 CGNAT
        || (a == 169 && b == 254)              // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)    // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Only global unicast (2000::/3) can be public at all (this also rules
    // out ::1, ::, IPv4-mapped and -compatible, NAT64, ULA, link-local, multicast).
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let ietf = s[0] == 0x2001 && s[1] < 0x0200; // 2001::/23: Teredo, ORCHID, …
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] & 0xfff0) == 0x3ff0;
    let six_to_four = s[0] == 0x2002; // an IPv4 address inside
    !(ietf || documentation || six_to_four)
}

fn test_tls(ca: &Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_use_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2002:a00:1::1",
            "3fff::1",
            "100::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_ip(ip, false).is_err(), "{ip} must be refused");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check_ip(ip, false).is_ok(), "{ip} is public");
        }
        assert!(
            check_ip("127.0.0.1".parse().unwrap(), true).is_ok(),
            "test setting"
        );
        assert!(
            check_ip("10.0.0.1".parse().unwrap(), true).is_err(),
            "only loopback"
        );
    }

    #[test]
    fn document_urls_follow_the_draft() {
        assert!(check_url("https://client.example/app.json").is_ok());
        for bad in [
            "http://client.example/app.json",
            "https://client.example/",
            "https://client.example",
            "https://client.example/app.json#x",
            "https://user:pw@client.example/app.json",
            "https://client.example/a/../app.json",
            "https://client.example/a/%2e%2e/app.json",
            "https://CLIENT.example/app.json",
            "https://client.example:443/app.json",
            "https://client.example/app json",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_document_must_name_its_own_url() {
        let url = "https://client.example/app.json";
        let ok = br#"{"client_id":"https://client.example/app.json","redirect_uris":["http://127.0.0.1/cb"],"client_name":"App"}"#;
        let client = document(url, ok).unwrap();
        assert_eq!(client.client_name.as_deref(), Some("App"));
        let other = br#"{"client_id":"https://evil.example/app.json","redirect_uris":["http://127.0.0.1/cb"]}"#;
        assert!(matches!(document(url, other), Err(CimdError::Invalid(_))));
        let secret = br#"{"client_id":"https://client.example/app.json","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#;
        assert!(document(url, secret).is_err());
        assert!(document(url, b"[]").is_err());
    }
}

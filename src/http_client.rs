//! The pooled HTTP client: HTTPS upstreams (one per worker), JWKS and
//! metadata fetches, the authorization server's calls to identity providers
//! and the trace exporter. Plain-HTTP upstreams use `forward/h1.rs`.
//!
//! hyper-util's legacy client keeps connections alive per authority; HTTPS
//! goes through hyper-rustls with the bundled Mozilla roots (a distroless
//! image has no system store), HTTP/1.1 or HTTP/2 by ALPN.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

/// The shared client type.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Builds the pooled client. `connect_timeout` bounds the TCP connect.
pub fn build(connect_timeout: Duration) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

//! A small HTTP client for tests (hyper-util + rustls trusting the test CA).

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A buffered response.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Reply {
    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, and that the body contains each of `body_has`;
    /// a failure shows the body. Returns the reply for further checks.
    #[track_caller]
    pub fn assert_status(self, status: u16, body_has: &[&str]) -> Self {
        let body = self.text();
        assert_eq!(self.status, status, "status; body: {body}");
        for needle in body_has {
            assert!(body.contains(needle), "body lacks {needle:?}: {body}");
        }
        self
    }
}

/// Sends a request over plain HTTP.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = client
        .request(request(method, url, headers, body))
        .await
        .expect("request failed");
    buffer(resp).await
}

/// Sends a request over HTTPS trusting `ca_pem`; returns the reply and the negotiated HTTP version.
pub async fn send_tls(
    ca_pem: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
    http2: bool,
) -> (Reply, http::Version) {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let resp = client
        .request(request(method, url, headers, body))
        .await
        .expect("TLS request failed");
    let version = resp.version();
    (buffer(resp).await, version)
}

fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

async fn buffer(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Opens a streaming request and returns the response head and body stream.
pub async fn open_stream(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response<hyper::body::Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    client
        .request(request("POST", url, headers, body))
        .await
        .expect("request failed")
}

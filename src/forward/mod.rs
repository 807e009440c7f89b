//! Stage 7: forward an authorized request upstream and stream the answer back.
//!
//! Forwarding never decides anything: by the time a request gets here, authn
//! and authz have passed. Response bodies are relayed frame by frame as the
//! upstream writes them (SSE must not be buffered), with no read timeout on an
//! open stream; only the wait for response headers is bounded. A plain-HTTP
//! upstream is reached over the worker's own HTTP/1.1 connections
//! (`upstream.rs`, `h1.rs`), an HTTPS one through the worker's pooled client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::config::Route;

mod h1;
pub mod headers;
mod upstream;

pub use crate::http_client::HttpClient;
pub use upstream::Upstream;

/// Why the upstream could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connecting to the upstream failed.
    #[error("cannot connect to upstream: {0}")]
    Connect(String),
    /// The upstream did not send response headers in time.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The upstream broke the exchange in some other way.
    #[error("upstream failed: {0}")]
    Protocol(String),
    /// The upstream request could not be built (bad header from config).
    #[error("cannot build upstream request: {0}")]
    Build(String),
}

/// What the client connection looks like, for `X-Forwarded-*`.
#[derive(Debug, Clone, Copy)]
pub struct ClientConn {
    /// The peer's address.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS.
    pub tls: bool,
}

/// Sends `parts` + `body` to the route's upstream and returns its response with
/// a streaming body.
pub async fn forward(
    upstream: &Arc<Upstream>,
    route: &Route,
    parts: &http::request::Parts,
    body: Bytes,
    conn: ClientConn,
) -> Result<Response<Body>, ForwardError> {
    let up = &route.upstream;
    let path = headers::upstream_path(&up.path_and_query, parts.uri.query());
    // Plain HTTP goes over the worker's own connections (`h1.rs`), which
    // take the origin form; the pooled client takes the absolute form.
    let own = up.scheme == "http";
    let uri = if own {
        path
    } else {
        format!("{}://{}{}", up.scheme, up.authority, path)
    };
    let has_body = !body.is_empty();
    let headers = headers::upstream_request(&parts.headers, route, conn, has_body)?;
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(|e| ForwardError::Build(e.to_string()))?;
    *req.headers_mut() = headers;
    let sent = async {
        if own {
            return upstream.send(&up.authority, req).await;
        }
        let resp = upstream
            .pool()
            .request(req.map(body::full))
            .await
            .map_err(|e| {
                if e.is_connect() {
                    ForwardError::Connect(error_chain(&e))
                } else {
                    ForwardError::Protocol(error_chain(&e))
                }
            })?;
        Ok(resp.map(|body| body.map_err(Into::into).boxed()))
    };
    let mut resp = tokio::time::timeout(route.upstream_timeout, sent)
        .await
        .map_err(|_| ForwardError::Timeout(route.upstream_timeout))??;
    headers::downstream_response(resp.headers_mut());
    Ok(resp)
}

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

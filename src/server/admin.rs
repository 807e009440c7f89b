//! The admin listener (`admin_listen`): `/metrics` in Prometheus text format,
//! plus `/healthz` and `/readyz`, off the public port. Plain HTTP/1.1; meant
//! for loopback or the pod network only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::gateway::Gateway;
use crate::reject::{self, Rejection};
use crate::well_known;

/// Binds the admin listener and serves it in the background.
pub async fn start(addr: SocketAddr, gateway: Arc<Gateway>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("admin listener on http://{local}");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(answer(&gateway, &req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(local)
}

fn answer(gateway: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/metrics" && req.method() == Method::GET {
        let mut resp = Response::new(body::full(gateway.metrics().encode()));
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return resp;
    }
    if path == "/healthz" || path == "/readyz" {
        let config = gateway.config();
        if let Some(answer) = well_known::respond(req.method(), path, &config, gateway.ready()) {
            return answer.unwrap_or_else(|r| reject::respond(&r, None));
        }
    }
    let mut resp = reject::respond(&Rejection::NoRoute, None);
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

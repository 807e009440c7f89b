//! The admin listener (`admin_listen`): `/metrics` in Prometheus text format,
//! plus `/healthz` and `/readyz`, off the public port. Plain HTTP/1.1; meant
//! for loopback or the pod network only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::idle::Activity;
use crate::body::{self, Body};
use crate::config::Limits;
use crate::gateway::Gateway;
use crate::reject::{self, Rejection};
use crate::well_known;

/// First and longest pause after a failed accept.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Binds the admin listener and serves it in the background. Bounded like
/// the public one: at most `limits.admin_max_connections` open connections
/// (more wait in the kernel's backlog), `header_read_timeout` for each head
/// and for the first request, `idle_timeout` between requests, and a
/// growing pause after accept errors (e.g. out of file descriptors) instead
/// of a busy loop.
pub(super) async fn start(
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    limits: &Limits,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!("admin listener on http://{local}");
    let permits = Arc::new(Semaphore::new(limits.admin_max_connections));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let http1 = Arc::new(http1);
    let (first, idle) = (limits.header_read_timeout, limits.idle_timeout);
    tokio::spawn(async move {
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    stream
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            };
            let gateway = gateway.clone();
            let http1 = http1.clone();
            tokio::spawn(async move {
                let activity = Activity::new();
                let in_flight = activity.clone();
                let svc = service_fn(move |req| {
                    let gateway = gateway.clone();
                    let request = in_flight.begin();
                    async move {
                        let _request = request;
                        Ok::<_, Infallible>(answer(&gateway, &req))
                    }
                });
                tokio::select! {
                    _ = http1.serve_connection(TokioIo::new(stream), svc) => {}
                    () = activity.expired(first, idle) => {}
                }
                drop(permit);
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
            return answer.unwrap_or_else(|e| reject::respond(&e.into(), None));
        }
    }
    let mut resp = reject::respond(&Rejection::NoRoute, None);
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

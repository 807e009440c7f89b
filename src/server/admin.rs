//! The admin listener (`admin_listen`): `/metrics` in Prometheus text format,
//! plus `/healthz` and `/readyz`, off the public port. Plain HTTP/1.1; meant
//! for loopback or the pod network only.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{MakeSpan, TraceLayer};

use super::idle::Activity;
use crate::body::{self, Body};
use crate::config::Limits;
use crate::gateway::Gateway;
use crate::reject::{self, Rejection};
use crate::well_known;

/// The request id header (as on the public port).
const X_REQUEST_ID: &str = "x-request-id";

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
                serve(gateway, stream, http1, (first, idle)).await;
                drop(permit);
            });
        }
    });
    Ok(local)
}

/// Serves one admin connection: the answers below, under tower-http layers
/// for what every admin answer needs. Outermost first: a request id (from the
/// gateway's own sequence, so admin and proxy ids never collide) that the
/// trace span records and the answer echoes; `nosniff` and `no-store` on
/// every answer (metrics are not for caches); and a deadline (the head
/// timeout), after which the client gets 503 instead of waiting.
async fn serve(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    http1: Arc<hyper::server::conn::http1::Builder>,
    (first, idle): (Duration, Duration),
) {
    let activity = Activity::new();
    let in_flight = activity.clone();
    let ids = GatewayIds(gateway.clone());
    let svc = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(ids))
        .layer(TraceLayer::new_for_http().make_span_with(AdminSpan))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            first,
        ))
        .service_fn(move |req: Request<Incoming>| {
            let request = in_flight.begin();
            let resp = answer(&gateway, &req);
            drop(request);
            std::future::ready(Ok::<_, Infallible>(resp))
        });
    // Boxed so the compiler checks `Send` on the concrete service type: left
    // generic, the tower stack trips rustc's higher-ranked `Send` check.
    let connection: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> =
        Box::pin(http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)));
    tokio::select! {
        _ = connection => {}
        () = activity.expired(first, idle) => {}
    }
}

/// The trace span of one admin request, with its id and path.
#[derive(Clone, Copy)]
struct AdminSpan;

impl<B> MakeSpan<B> for AdminSpan {
    fn make_span(&mut self, req: &Request<B>) -> tracing::Span {
        let id = req
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::debug_span!("admin", request_id = %id, path = %req.uri().path())
    }
}

/// Request ids for the admin listener, from the gateway's sequence.
#[derive(Clone)]
struct GatewayIds(Arc<Gateway>);

impl MakeRequestId for GatewayIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&self.0.request_id())
            .ok()
            .map(RequestId::new)
    }
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
        if let Some(answer) =
            well_known::respond(req.method(), path, &config, || gateway.readiness())
        {
            return answer.unwrap_or_else(|e| reject::respond(&e.into(), None));
        }
    }
    let mut resp = reject::respond(&Rejection::NoRoute, None);
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

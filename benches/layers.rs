//! What a tower stack costs per request, against the same work done by plain
//! function calls: the question issue 13 asks before any tower layer may go
//! on the proxy's hot path. Both sides set and echo a request id, add two
//! response headers and put a deadline on the answer; the handler itself
//! answers at once. Figures are in bench/README.md ("tower or plain calls").

#![expect(clippy::expect_used, reason = "a benchmark: bad set-up must stop it")]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

const X_REQUEST_ID: &str = "x-request-id";
const DEADLINE: Duration = Duration::from_secs(10);

static NEXT: AtomicU64 = AtomicU64::new(0);

fn next_id() -> HeaderValue {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("0badc0de-{n:08x}")).expect("ascii")
}

#[derive(Clone)]
struct Ids;

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        Some(RequestId::new(next_id()))
    }
}

fn handler(req: &Request<Full<Bytes>>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    if req.uri().path() != "/metrics" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    }
    resp
}

/// The same duties as plain calls, as the proxy's stage chain does them.
async fn plain(mut req: Request<Full<Bytes>>) -> Response<Full<Bytes>> {
    let id = next_id();
    req.headers_mut().insert(X_REQUEST_ID, id.clone());
    let answer = async { handler(&req) };
    let mut resp = tokio::time::timeout(DEADLINE, answer)
        .await
        .unwrap_or_else(|_| {
            let mut r = Response::new(Full::default());
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        });
    let headers = resp.headers_mut();
    headers.insert(X_REQUEST_ID, id);
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn request() -> Request<Full<Bytes>> {
    Request::get("/metrics")
        .body(Full::default())
        .expect("static request")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("per_request");
    group.bench_function("plain_calls", |b| {
        b.iter(|| black_box(rt.block_on(plain(black_box(request())))));
    });
    let svc = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(Ids))
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
            DEADLINE,
        ))
        .service_fn(|req: Request<Full<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(handler(&req)))
        });
    group.bench_function("tower_stack", |b| {
        b.iter(|| {
            let mut svc = svc.clone();
            black_box(rt.block_on(async {
                svc.ready().await.expect("infallible");
                svc.call(black_box(request())).await.expect("infallible")
            }))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

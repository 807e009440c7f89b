//! What the tracing hooks cost on the request path when `telemetry.tracing`
//! is off (issue 17: "when off it costs nothing measurable"). Both sides run
//! under the same subscriber as production without tracing (the fmt layer,
//! `info` filter, writing to a sink) and create the `request` span the
//! gateway always had; the hooked side also makes every call the gateway now
//! makes per request: the three stage spans, the upstream span, the header
//! injection, the URL, header and status attributes and the decision.
//! Figures are in bench/README.md ("Tracing off").

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use mcp_auth_gateway::telemetry::spans;
use tracing::Instrument;

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2025-06-18"),
    );
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    h
}

fn bench(c: &mut Criterion) {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    assert!(!spans::enabled());
    let mut group = c.benchmark_group("tracing_off");
    let method = Method::POST;
    let mut n = 0u64;
    group.bench_function("request span only (before)", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("0badc0de-{n:08x}");
            let span = tracing::info_span!("request", request_id = %id);
            runtime.block_on(async { black_box(1) }.instrument(span))
        });
    });
    let mut h = headers();
    group.bench_function("with every tracing hook (after)", |b| {
        b.iter(|| {
            n += 1;
            let (span, id) =
                spans::request(&method, Some("/mcp"), &h, || format!("0badc0de-{n:08x}"));
            black_box(&id);
            runtime.block_on(
                async {
                    // As `gateway/mod.rs` and `gateway/outcome.rs` call them.
                    spans::url("/mcp", "http");
                    for stage in ["authenticate", "authorize", "filter"] {
                        let span = spans::stage(stage);
                        async { black_box(1) }.instrument(span.clone()).await;
                        spans::attribute(&span, "mcp_gateway.decision", "allow");
                    }
                    spans::headers(&h);
                    let call = spans::upstream(&method, "http", "127.0.0.1:3000", "/mcp");
                    spans::inject(&call, &mut h);
                    async { black_box(1) }.instrument(call.clone()).await;
                    spans::status(&call, StatusCode::OK);
                }
                .instrument(span),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! OpenTelemetry traces (`telemetry.tracing`): the exporter, the sampler
//! and the layer that turns the gateway's `tracing` spans into OTLP spans.
//! Spans are sent in batches over OTLP/HTTP (protobuf) with the gateway's
//! own hyper client, so no second HTTP or TLS stack is linked in.
//!
//! Sampling is parent-based: a client's `traceparent` decides when it sends
//! one, else `sample_ratio` of new traces are kept. Every request the gateway
//! refuses is kept too: spans of a trace that was not sampled are recorded
//! anyway, held until the request's own (local root) span ends, and sent
//! only if that span carries `mcp_gateway.decision` = `deny` or `reject` (or
//! an error status). When the block is absent nothing here runs: no layer,
//! no exporter thread, and the request path creates no spans but the one it
//! always had (`spans.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceId, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample,
    SpanData, SpanProcessor,
};

use crate::config::TracingConfig;

/// The attribute that marks a refused request (kept whatever the sampler said).
pub const DECISION: &str = "mcp_gateway.decision";
/// Traces held while their request is in flight; more are not kept.
const MAX_HELD_TRACES: usize = 10_000;
/// Spans held per trace; more are not kept.
const MAX_HELD_SPANS: usize = 64;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("telemetry.tracing: {0}")]
pub struct TracingError(String);

/// Starts the exporter; returns the provider (keep it: shutting it down
/// flushes what is batched) and the layer to add to the subscriber.
pub fn start<S>(
    config: &TracingConfig,
    runtime: tokio::runtime::Handle,
) -> Result<
    (
        SdkTracerProvider,
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
    ),
    TracingError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let mut headers = HashMap::new();
    for (name, value) in &config.headers {
        headers.insert(name.clone(), String::from_utf8_lossy(&value.0).into_owned());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Exporter {
            client: crate::http_client::build(config.timeout),
            runtime,
            timeout: config.timeout,
        })
        .with_endpoint(config.endpoint.clone())
        .with_headers(headers)
        .with_timeout(config.timeout)
        .build()
        .map_err(|e| TracingError(e.to_string()))?;
    let batch = BatchSpanProcessor::builder(exporter).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(KeepRefused::new(batch))
        .with_sampler(ParentOrRatio(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        )))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("mcp-auth-gateway");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    Ok((provider, layer))
}

/// Sends each batch with the gateway's hyper client. The batch processor
/// calls this from its own thread, so the request runs on the control
/// plane's runtime.
#[derive(Debug, Clone)]
struct Exporter {
    client: crate::http_client::HttpClient,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporter {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let send = async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, crate::body::full(body));
            let response = tokio::time::timeout(timeout, client.request(request)).await??;
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(timeout, body.collect()).await??;
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(
                parts,
                body.to_bytes(),
            ))
        };
        self.runtime.spawn(send).await?
    }
}

/// Parent-based sampling with a ratio for new traces; where the answer is
/// no, the span is still recorded (not exported) so that a refusal can be
/// kept at the end ([`KeepRefused`]).
#[derive(Debug, Clone)]
struct ParentOrRatio(Sampler);

impl ShouldSample for ParentOrRatio {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &opentelemetry::trace::SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        use opentelemetry::trace::TraceContextExt as _;
        let parent_span = parent
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let (sampled, trace_state) = match parent_span {
            Some(p) => (p.is_sampled(), p.trace_state().clone()),
            None => {
                let ratio = self
                    .0
                    .should_sample(parent, trace_id, name, kind, attributes, links);
                (
                    ratio.decision == SamplingDecision::RecordAndSample,
                    ratio.trace_state,
                )
            }
        };
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::RecordOnly
            },
            attributes: Vec::new(),
            trace_state,
        }
    }
}

/// Passes sampled spans on; holds the others per trace until the local root
/// span ends, then sends them all if it was a refusal, else drops them.
#[derive(Debug)]
struct KeepRefused<P> {
    inner: P,
    held: Mutex<HashMap<TraceId, Vec<SpanData>>>,
}

impl<P> KeepRefused<P> {
    fn new(inner: P) -> Self {
        Self {
            inner,
            held: Mutex::new(HashMap::new()),
        }
    }
}

fn refused(span: &SpanData) -> bool {
    matches!(span.status, opentelemetry::trace::Status::Error { .. })
        || span.attributes.iter().any(|kv| {
            kv.key.as_str() == DECISION
                && matches!(&kv.value, Value::String(s) if s.as_str() != "allow")
        })
}

fn sampled(mut span: SpanData) -> SpanData {
    let c = &span.span_context;
    span.span_context = SpanContext::new(
        c.trace_id(),
        c.span_id(),
        c.trace_flags().with_sampled(true),
        c.is_remote(),
        c.trace_state().clone(),
    );
    span
}

impl<P: SpanProcessor> SpanProcessor for KeepRefused<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            return self.inner.on_end(span);
        }
        let trace = span.span_context.trace_id();
        let local_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        if !local_root {
            if held.len() < MAX_HELD_TRACES || held.contains_key(&trace) {
                let spans = held.entry(trace).or_default();
                if spans.len() < MAX_HELD_SPANS {
                    spans.push(span);
                }
            }
            return;
        }
        let children = held.remove(&trace).unwrap_or_default();
        drop(held);
        if refused(&span) {
            for child in children {
                self.inner.on_end(sampled(child));
            }
            self.inner.on_end(sampled(span));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

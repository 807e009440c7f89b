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
/// Requests whose spans are held while in flight; more are not kept.
const MAX_HELD_TRACES: usize = 10_000;
/// Spans held per request; more are not kept.
const MAX_HELD_SPANS: usize = 64;
/// Unsampled refusals exported per second at most.
const MAX_KEPT_REFUSALS: u32 = 100;

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
    let headers = config
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            Some((name, http::HeaderValue::from_bytes(&value.0).ok()?))
        })
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Exporter {
            client: crate::http_client::build(config.timeout),
            runtime,
            timeout: config.timeout,
            headers: std::sync::Arc::new(headers),
        })
        .with_endpoint(config.endpoint.clone())
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

/// What the OpenTelemetry layer sees: the gateway's own spans at `info` and
/// above, never log events (those stay in the log: as span events they would
/// copy every audit field into the trace). Decided once per callsite, so
/// nothing else pays for the filter.
pub struct GatewaySpans;

impl GatewaySpans {
    fn wanted(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_span()
            && meta.target().starts_with("mcp_auth_gateway")
            && *meta.level() <= tracing::Level::INFO
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for GatewaySpans {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if Self::wanted(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::INFO)
    }
}

/// Sends each batch with the gateway's hyper client. The batch processor
/// calls this from its own thread, so the request runs on the control
/// plane's runtime.
#[derive(Debug, Clone)]
struct Exporter {
    client: crate::http_client::HttpClient,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    /// `telemetry.tracing.headers` (or the environment's, when the file has
    /// none): the only extra headers sent. The OTLP crate also adds the
    /// environment's on its own, which would send them to an endpoint the
    /// file chose; they are removed here.
    headers: std::sync::Arc<Vec<(http::HeaderName, http::HeaderValue)>>,
}

/// The collector's answer is read up to this size (only its status matters).
const MAX_COLLECTOR_ANSWER: usize = 64 * 1024;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporter {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let (mut parts, body) = request.into_parts();
        let keep = [http::header::CONTENT_TYPE, http::header::CONTENT_ENCODING];
        let mut headers = http::HeaderMap::new();
        for name in keep {
            if let Some(value) = parts.headers.remove(&name) {
                headers.insert(name, value);
            }
        }
        for (name, value) in self.headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        parts.headers = headers;
        let send = async move {
            let request = http::Request::from_parts(parts, crate::body::full(body));
            let response = tokio::time::timeout(timeout, client.request(request)).await??;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_COLLECTOR_ANSWER);
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

/// Passes sampled spans on; holds the others per request (the trace and the
/// request's span: every span the gateway makes under a request is its
/// direct child) until the request's span ends, then sends them all if it
/// was a refusal, else drops them. Keyed by request, not trace: concurrent
/// requests may share a client's trace id.
#[derive(Debug)]
struct KeepRefused<P> {
    inner: P,
    held: Mutex<HashMap<(TraceId, SpanId), Vec<SpanData>>>,
    /// Refusals kept this second, and which second: at most
    /// [`MAX_KEPT_REFUSALS`] a second, so a flood of refused requests cannot
    /// push every other span out of the export queue.
    kept: Mutex<(u64, u32)>,
}

impl<P> KeepRefused<P> {
    /// Whether one more refusal may be kept this second.
    fn keep_one(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let Ok(mut kept) = self.kept.lock() else {
            return false;
        };
        if kept.0 != now {
            *kept = (now, 0);
        }
        kept.1 += 1;
        kept.1 <= MAX_KEPT_REFUSALS
    }

    fn new(inner: P) -> Self {
        Self {
            inner,
            held: Mutex::new(HashMap::new()),
            kept: Mutex::new((0, 0)),
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
            let request = (trace, span.parent_span_id);
            if held.len() < MAX_HELD_TRACES || held.contains_key(&request) {
                let spans = held.entry(request).or_default();
                if spans.len() < MAX_HELD_SPANS {
                    spans.push(span);
                }
            }
            return;
        }
        let children = held
            .remove(&(trace, span.span_context.span_id()))
            .unwrap_or_default();
        drop(held);
        if refused(&span) && self.keep_one() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, Status, TraceFlags, TraceState};

    /// Test double: collects what would be exported.
    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<SpanData>>);

    impl SpanProcessor for Collect {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}
        fn on_end(&self, span: SpanData) {
            if span.span_context.is_sampled() {
                self.0.lock().unwrap().push(span);
            }
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn span(trace: u128, id: u64, parent: u64, sampled: bool, decision: Option<&str>) -> SpanData {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(id),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: format!("span {id}").into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: decision
                .map(|d| vec![KeyValue::new(DECISION, d.to_owned())])
                .unwrap_or_default(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    fn exported(p: &KeepRefused<Collect>) -> Vec<u64> {
        let spans = p.inner.0.lock().unwrap();
        spans
            .iter()
            .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
            .collect()
    }

    #[test]
    fn refusals_are_kept_with_their_own_children_only() {
        let p = KeepRefused::new(Collect::default());
        // A sampled span passes at once.
        p.on_end(span(1, 100, 0, true, Some("allow")));
        assert_eq!(exported(&p), [100]);
        // Two requests in one trace (a client reusing its trace id): 10
        // allowed, 20 refused, their children interleaved.
        p.on_end(span(7, 11, 10, false, None));
        p.on_end(span(7, 21, 20, false, Some("deny")));
        p.on_end(span(7, 10, 0, false, Some("allow")));
        assert_eq!(
            exported(&p),
            [100],
            "an unsampled allowed request is dropped"
        );
        p.on_end(span(7, 22, 20, false, None));
        p.on_end(span(7, 20, 0, false, Some("deny")));
        assert_eq!(
            exported(&p),
            [100, 21, 22, 20],
            "the refusal and its children"
        );
        assert!(
            p.inner
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|s| s.span_context.is_sampled())
        );
        assert!(p.held.lock().unwrap().is_empty(), "nothing left held");
    }

    #[test]
    fn a_flood_of_refusals_is_capped_per_second() {
        let p = KeepRefused::new(Collect::default());
        let second = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let started = second();
        for i in 0..300u64 {
            p.on_end(span(u128::from(i) + 1, i + 1, 0, false, Some("reject")));
        }
        let kept = exported(&p).len();
        if second() == started {
            assert_eq!(kept, MAX_KEPT_REFUSALS as usize);
        } else {
            assert!(kept <= 2 * MAX_KEPT_REFUSALS as usize, "{kept}");
        }
    }
}

//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`
//! (default `info`). Request events are emitted by `gateway.rs`; nothing ever
//! logs a token, a secret or a request body.

use tracing_subscriber::EnvFilter;

pub mod metrics;
pub mod redis;
pub mod request;
pub mod spans;
pub mod traces;

/// The log thread's write buffer.
const LOG_BUFFER_BYTES: usize = 64 * 1024;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What must outlive the server: the log writer's guard (dropping it
/// flushes the queue) and the trace exporter, when tracing is on.
pub struct Telemetry {
    _log: tracing_appender::non_blocking::WorkerGuard,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still batched (bounded by the exporter's timeout).
    /// Call it from the runtime the exporter uses, which keeps running.
    pub async fn shutdown(self) {
        if let Some(provider) = self.traces {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(error = %e, "trace export: spans not flushed at shutdown");
            }
        }
    }
}

/// Installs the global subscriber. Lines are written by a background thread,
/// so request tasks never contend for the stderr lock; the writer blocks
/// rather than drops when its queue is full (audit lines must not be lost).
/// That thread buffers and flushes whenever its queue is empty, so a quiet
/// gateway's lines appear at once while a busy one writes in batches instead
/// of one syscall per line (measured in bench/results.md).
///
/// With `tracing` (the `telemetry.tracing` block), spans are also exported
/// over OTLP (`traces.rs`), sent from `runtime`. Without, the subscriber is
/// exactly the log writer: no layer, no exporter, no span bookkeeping.
pub fn init(
    format: LogFormat,
    tracing: Option<&crate::config::TracingConfig>,
    runtime: tokio::runtime::Handle,
) -> Result<Telemetry, traces::TracingError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mcp-gateway-log")
        .finish(std::io::BufWriter::with_capacity(
            LOG_BUFFER_BYTES,
            std::io::stderr(),
        ));
    let Some(tracing) = tracing else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        match format {
            LogFormat::Text => builder.with_ansi(false).init(),
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .init(),
        }
        return Ok(Telemetry {
            _log: guard,
            traces: None,
        });
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(false).with_filter(filter).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let (provider, otel) = traces::start(tracing, runtime)?;
    // The gateway's own spans only, whatever RUST_LOG says for the log; log
    // events stay in the log (as span events they would double the cost of
    // a traced request and copy every audit field into the trace).
    let spans = traces::GatewaySpans;
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel.with_filter(spans))
        .init();
    spans::turn_on();
    Ok(Telemetry {
        _log: guard,
        traces: Some(provider),
    })
}

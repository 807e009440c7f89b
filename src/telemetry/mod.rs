//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`
//! (default `info`). Request events are emitted by `gateway.rs`; nothing ever
//! logs a token, a secret or a request body.

use tracing_subscriber::EnvFilter;

mod log_fields;
mod log_writer;
pub mod metrics;
pub mod redis;
pub mod request;
pub mod spans;
pub mod traces;

/// Why logging or tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The log writer thread could not be started.
    #[error("cannot start the log thread: {0}")]
    LogThread(std::io::Error),
    /// The trace exporter could not be started.
    #[error(transparent)]
    Tracing(#[from] traces::TracingError),
}

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
    _log: log_writer::Guard,
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

/// Installs the global subscriber. Lines are written by a background thread
/// in batches (`log_writer.rs`): a request thread only appends its line to a
/// buffer, never makes a system call for it, and waits rather than drops when
/// the writer falls far behind (audit lines must not be lost).
///
/// With `tracing` (the `telemetry.tracing` block), spans are also exported
/// over OTLP (`traces.rs`), sent from `runtime`. Without, the subscriber is
/// exactly the log writer: no layer, no exporter, no span bookkeeping.
pub fn init(
    format: LogFormat,
    tracing: Option<&crate::config::TracingConfig>,
    runtime: tokio::runtime::Handle,
) -> Result<Telemetry, InitError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = log_writer::start(std::io::stderr()).map_err(InitError::LogThread)?;
    let Some(tracing) = tracing else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        match format {
            LogFormat::Text => builder
                .with_ansi(false)
                .fmt_fields(log_fields::Fields)
                .init(),
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
        LogFormat::Text => fmt
            .with_ansi(false)
            .fmt_fields(log_fields::Fields)
            .with_filter(filter)
            .boxed(),
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

//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`
//! (default `info`). Request events are emitted by `gateway.rs`; nothing ever
//! logs a token, a secret or a request body.

use tracing_subscriber::EnvFilter;

pub mod metrics;
pub mod redis;
pub mod request;

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

/// Installs the global subscriber. Lines are written by a background thread,
/// so request tasks never contend for the stderr lock; the writer blocks
/// rather than drops when its queue is full (audit lines must not be lost).
/// That thread buffers and flushes whenever its queue is empty, so a quiet
/// gateway's lines appear at once while a busy one writes in batches instead
/// of one syscall per line (measured in bench/results.md).
/// Keep the returned guard alive until exit: dropping it flushes the queue.
pub fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mcp-gateway-log")
        .finish(std::io::BufWriter::with_capacity(
            LOG_BUFFER_BYTES,
            std::io::stderr(),
        ));
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
    guard
}

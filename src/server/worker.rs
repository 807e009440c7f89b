//! Stage 1, per core: a worker thread with its own single-threaded runtime,
//! accepting from the shared listening socket and serving what it accepts.
//!
//! Thread-per-core, as nginx's worker processes: a connection, its request
//! tasks and the upstream connection it uses all live on one thread, so a
//! proxied request never hands off between threads. With tokio's
//! work-stealing runtime, every request woke a second thread (futex + IPI);
//! the profile and the numbers are in `bench/results.md`.
//!
//! Workers never decide anything: they accept, cap, and hand connections to
//! stage 2 (`http.rs`).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::http;
use crate::gateway::Gateway;

/// What every worker shares.
#[derive(Clone)]
pub(super) struct Shared {
    /// The request handler.
    pub gateway: Arc<Gateway>,
    /// HTTP settings.
    pub builder: Arc<http::Builder>,
    /// TLS, when the listener is HTTPS.
    pub acceptor: Option<TlsAcceptor>,
    /// The process-wide connection cap (`limits.max_connections`).
    pub permits: Arc<Semaphore>,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may sit with no request in flight.
    pub idle_timeout: Duration,
    /// Bounds the TCP connect to upstreams.
    pub upstream_connect_timeout: Duration,
    /// How long open connections get to finish after the stop signal.
    pub shutdown_grace: Duration,
}

/// Starts worker `index` on its own OS thread. It accepts from `listener`
/// until `stop` turns true, then drains its connections for up to
/// `shutdown_grace` and reports on `done` whether all of them finished.
pub(super) fn spawn(
    index: usize,
    listener: std::net::TcpListener,
    shared: Shared,
    stop: watch::Receiver<bool>,
    done: oneshot::Sender<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("mcp-gateway-worker-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "cannot start worker runtime");
                    return;
                }
            };
            let drained = runtime.block_on(serve(listener, shared, stop));
            if done.send(drained).is_err() {
                tracing::debug!("worker drained after the main thread stopped waiting");
            }
        })
        .map(drop)
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listener with a worker");
            return false;
        }
    };
    // Upstream connections per worker: each is driven on the same thread as
    // the client connections that use it (forward/upstream.rs).
    let upstream = crate::forward::Upstream::new(shared.upstream_connect_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        // Waiting for a permit before accepting applies back-pressure: past the
        // cap, new connections queue in the kernel backlog instead of piling up here.
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // Latency only: a socket that refuses TCP_NODELAY still works.
        stream.set_nodelay(true).ok();
        let conn = http::Connection {
            gateway: shared.gateway.clone(),
            builder: shared.builder.clone(),
            acceptor: shared.acceptor.clone(),
            upstream: upstream.clone(),
            watcher: graceful.watcher(),
            handshake_timeout: shared.handshake_timeout,
            idle_timeout: shared.idle_timeout,
        };
        tokio::spawn(async move {
            conn.serve(stream, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::time::timeout(shared.shutdown_grace, graceful.shutdown())
        .await
        .is_ok()
}

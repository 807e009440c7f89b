//! Stage 1: the listener. Accepts TCP (and TLS), caps concurrent connections,
//! serves HTTP/1.1 and HTTP/2 on each, and drains on SIGTERM/SIGINT.
//!
//! The listen address and TLS files are read once at start. The startup line
//! `listening on <scheme>://<addr>` is the readiness signal tests wait for.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use std::path::PathBuf;

use crate::config::{Config, reload};
use crate::gateway::Gateway;
use crate::telemetry::metrics::Metrics;

mod admin;
mod http;
pub mod signal;
pub mod tls;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Runs the gateway until a shutdown signal, then drains. With `config_path`,
/// the config is reloaded on SIGHUP and when the file changes.
pub async fn run(config: Arc<Config>, config_path: Option<PathBuf>) -> Result<(), ServeError> {
    let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };

    let metrics = Arc::new(Metrics::new());
    let gateway = Gateway::start(config.clone(), metrics);
    if let Some(admin) = config.admin_listen {
        admin::start(admin, gateway.clone())
            .await
            .map_err(|source| ServeError::Bind {
                addr: admin,
                source,
            })?;
    }
    if let Some(path) = config_path {
        reload::spawn(path, gateway.clone());
    }
    let builder = Arc::new(http::builder(&config.limits));
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let shutdown = signal::shutdown();
    tokio::pin!(shutdown);

    tracing::info!(
        routes = config.routes.len(),
        issuers = config.issuers.len(),
        "listening on {scheme}://{local}"
    );

    loop {
        // Waiting for a permit before accepting applies back-pressure: past the
        // cap, new connections queue in the kernel backlog instead of piling up here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
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
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http::Connection {
            gateway: gateway.clone(),
            builder: builder.clone(),
            acceptor: acceptor.clone(),
            watcher: graceful.watcher(),
            handshake_timeout: config.limits.header_read_timeout,
        };
        tokio::spawn(async move {
            conn.serve(stream, peer).await;
            drop(permit);
        });
    }

    // Readiness fails from now on, so load balancers stop sending new work.
    gateway.begin_drain();
    drop(listener);
    let grace = config.limits.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: no longer accepting, draining"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!(drained = true, "all connections finished"),
        Err(_) => tracing::warn!(
            drained = false,
            "grace period over; closing remaining connections"
        ),
    }
    Ok(())
}

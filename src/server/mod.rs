//! Stage 1: the listener. Binds the public socket, starts the worker threads
//! that accept from it (`worker.rs`: TCP and TLS, the connection cap,
//! HTTP/1.1 and HTTP/2 on each), and drains them on SIGTERM/SIGINT.
//!
//! The listen address and TLS files are read once at start. The startup line
//! `listening on <scheme>://<addr>` is the readiness signal tests wait for.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::config::Config;
use crate::gateway::Gateway;
use crate::telemetry::metrics::Metrics;

mod admin;
mod http;
mod idle;
pub mod reload;
pub mod signal;
pub mod tls;
mod worker;

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
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Worker(std::io::Error),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The gateway's state could not be built (random source, built-in
    /// authorization server).
    #[error(transparent)]
    Start(#[from] crate::gateway::StartError),
}

/// Runs the gateway until a shutdown signal, then drains. With `config_path`,
/// the config is reloaded on SIGHUP and when the file changes.
///
/// The calling runtime is the control plane (signals, reload, key refresh,
/// the admin listener); `workers` threads serve the public listener.
pub async fn run(
    config: Arc<Config>,
    config_path: Option<PathBuf>,
    workers: usize,
) -> Result<(), ServeError> {
    let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let addr = config.listen;
    let listener = bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };

    let metrics = Arc::new(Metrics::new());
    let gateway = Gateway::start(config.clone(), metrics).await?;
    if let Some(admin) = config.admin_listen {
        admin::start(admin, gateway.clone(), &config.limits)
            .await
            .map_err(|source| ServeError::Bind {
                addr: admin,
                source,
            })?;
    }
    if let Some(path) = config_path {
        reload::spawn(path, gateway.clone());
    }
    let limits = &config.limits;
    let shared = worker::Shared {
        gateway: gateway.clone(),
        builder: Arc::new(http::builder(limits)),
        acceptor,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        handshake_timeout: limits.header_read_timeout,
        idle_timeout: limits.idle_timeout,
        upstream_connect_timeout: limits.upstream_connect_timeout,
        shutdown_grace: limits.shutdown_grace,
    };
    let (stop, stopped) = watch::channel(false);
    let mut done = Vec::with_capacity(workers);
    for index in 0..workers.max(1) {
        let (tx, rx) = oneshot::channel();
        listener
            .try_clone()
            .and_then(|l| worker::spawn(index, l, shared.clone(), stopped.clone(), tx))
            .map_err(ServeError::Worker)?;
        done.push(rx);
    }
    // Workers hold their own clones of the socket; it closes when the last one drops it.
    drop(listener);

    tracing::info!(
        routes = config.routes.len(),
        issuers = config.issuers.len(),
        workers = done.len(),
        "listening on {scheme}://{local}"
    );
    signal::shutdown().await;

    // Readiness fails from now on, so load balancers stop sending new work.
    gateway.begin_drain();
    // Fails only when every worker has already stopped.
    stop.send(true).ok();
    tracing::info!(
        grace_secs = limits.shutdown_grace.as_secs(),
        "shutting down: no longer accepting, draining"
    );
    let mut drained = true;
    for rx in done {
        // A worker that died without answering did not drain.
        drained &= rx.await.unwrap_or(false);
    }
    if drained {
        tracing::info!(drained = true, "all connections finished");
    } else {
        tracing::warn!(
            drained = false,
            "grace period over; closing remaining connections"
        );
    }
    Ok(())
}

/// Binds the public socket (non-blocking, as the workers' runtimes need it);
/// every worker accepts from a clone of it. A deep backlog absorbs
/// connection bursts (thousands of SSE clients reconnecting at once) while
/// workers catch up.
///
/// Not `SO_REUSEPORT` (one socket per worker): any process of the same user
/// could then bind the port too and be handed a share of the connections
/// (and their tokens), and on kept-alive connections it gained nothing
/// measurable (bench/README.md).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)?.into_std()
}

#[cfg(test)]
mod tests {
    use super::bind;

    #[tokio::test]
    async fn no_other_socket_can_join_the_port() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken = listener.local_addr().unwrap();
        // A second gateway is refused...
        assert_eq!(
            bind(taken).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
        // ...and so is any socket asking to share the port.
        let foreign = tokio::net::TcpSocket::new_v4().unwrap();
        foreign.set_reuseaddr(true).unwrap();
        foreign.set_reuseport(true).unwrap();
        assert_eq!(
            foreign.bind(taken).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
    }
}

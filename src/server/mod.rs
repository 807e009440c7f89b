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
    let listeners =
        bind(addr, workers.max(1)).map_err(|source| ServeError::Bind { addr, source })?;
    let local = listeners
        .first()
        .map(std::net::TcpListener::local_addr)
        .transpose()
        .map_err(|source| ServeError::Bind { addr, source })?
        .unwrap_or(addr);
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
    let mut done = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        worker::spawn(index, listener, shared.clone(), stopped.clone(), tx)
            .map_err(ServeError::Worker)?;
        done.push(rx);
    }

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

/// Binds one listening socket per worker (non-blocking, as the workers'
/// runtimes need them), all on the same address with `SO_REUSEPORT`: the
/// kernel hands each new connection to one worker's socket, so an arriving
/// client wakes one worker instead of all of them. (Only sockets of the same
/// user may join the group.) The first socket picks the port when `addr`
/// asks for port 0. A deep backlog absorbs connection bursts (thousands of
/// SSE clients reconnecting at once) while workers catch up.
fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count);
    for _ in 0..count {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = if at.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if listeners.is_empty() {
            // Bound before it joins the group: a port another process
            // listens on (even with SO_REUSEPORT) stays "address in use".
            socket.bind(at)?;
            socket.set_reuseport(true)?;
        } else {
            socket.set_reuseport(true)?;
            socket.bind(at)?;
        }
        listeners.push(socket.listen(4096)?.into_std()?);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::bind;

    #[tokio::test]
    async fn every_worker_gets_a_socket_on_one_port_that_no_one_else_can_take() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0));
        // A second gateway on the same port is refused, not let into the group.
        let taken = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let err = bind(taken, 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}

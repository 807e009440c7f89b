//! Stage 2: one client connection → HTTP requests handed to the gateway.
//!
//! HTTP/1.1 and HTTP/2 (ALPN or prior knowledge) via hyper-util's auto
//! builder. The header read timeout defeats slowloris; the head size cap
//! bounds memory per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::config::Limits;
use crate::forward::{ClientConn, HttpClient};
use crate::gateway::Gateway;

/// The connection builder, shared by every connection.
pub type Builder = auto::Builder<TokioExecutor>;

/// Everything needed to serve one accepted connection.
pub struct Connection {
    /// The request handler.
    pub gateway: Arc<Gateway>,
    /// HTTP settings.
    pub builder: Arc<Builder>,
    /// TLS, when the listener is HTTPS.
    pub acceptor: Option<TlsAcceptor>,
    /// This worker's upstream connection pool.
    pub upstream: Arc<HttpClient>,
    /// Registers the connection for graceful shutdown.
    pub watcher: Watcher,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
}

/// HTTP/1 and HTTP/2 settings from the limits.
pub fn builder(limits: &Limits) -> Builder {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's minimum buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

impl Connection {
    /// Serves the connection until the client closes it or shutdown completes.
    pub async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let tls = self.acceptor.is_some();
        let gateway = self.gateway.clone();
        let client = ClientConn { peer, tls };
        let upstream = self.upstream.clone();
        let service = service_fn(move |req| {
            let gateway = gateway.clone();
            let upstream = upstream.clone();
            // Boxed: hyper keeps one slot of the service future's size for the
            // life of the connection, and this future is kilobytes; an idle
            // SSE stream then holds a pointer instead (bench/results.md).
            Box::pin(
                async move { Ok::<_, Infallible>(gateway.handle(req, client, &upstream).await) },
            )
        });
        let result = match self.acceptor {
            Some(acceptor) => {
                let stream =
                    match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let conn = self.builder.serve_connection(TokioIo::new(stream), service);
                self.watcher.watch(conn.into_owned()).await
            }
            None => {
                let conn = self.builder.serve_connection(TokioIo::new(stream), service);
                self.watcher.watch(conn.into_owned()).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

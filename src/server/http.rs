//! Stage 2: one client connection → HTTP requests handed to the gateway.
//!
//! HTTP/1.1 or HTTP/2, chosen once per connection: by ALPN under TLS, and in
//! plaintext by peeking for the HTTP/2 preface (prior knowledge, RFC 9113
//! §3.3). Peeking rather than reading leaves the request in the socket, so
//! hyper reads it into its buffer in one go. (hyper-util's auto builder reads
//! the first bytes itself and replays them; hyper's HTTP/1 buffer then grew
//! to 16 KiB on the second read, which every idle SSE stream kept.)
//!
//! Every connection is bounded in time (`idle.rs`): the TLS handshake, the
//! preface sniff and the first head share one `header_read_timeout`, and a
//! connection with no request in flight is closed after `idle_timeout`.
//! hyper bounds each later HTTP/1 head by `header_read_timeout`; HTTP/2 gets
//! keep-alive PINGs with a timeout and a cap on concurrent streams, and
//! hyper's h2 refuses rapid resets (CVE-2023-44487) and CONTINUATION floods
//! (the header list is capped at `max_header_bytes`). The head size cap bounds
//! memory per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::idle::Activity;
use crate::body::Guarded;
use crate::config::Limits;
use crate::forward::{ClientConn, Upstream};
use crate::gateway::Gateway;

/// The start of the HTTP/2 client preface (RFC 9113 §3.4), enough to tell:
/// `PRI` was chosen because no HTTP/1 server accepts it as a method. A bad
/// rest of the preface fails the HTTP/2 handshake.
const H2_PREFIX: &[u8] = b"PRI ";

/// Waits between peeks at a prefix that arrived in parts: doubling from the
/// first, up to the last, so a client that stalls mid-prefix costs a few
/// dozen syscalls before the timeout, not one per millisecond.
const PEEK_RETRY: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(64));

/// HTTP/1 and HTTP/2 settings, shared by every connection.
pub(super) struct Builder {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// Everything needed to serve one accepted connection.
pub(super) struct Connection {
    /// The request handler.
    pub gateway: Arc<Gateway>,
    /// HTTP settings.
    pub builder: Arc<Builder>,
    /// TLS, when the listener is HTTPS.
    pub acceptor: Option<TlsAcceptor>,
    /// This worker's upstream connections.
    pub upstream: Arc<Upstream>,
    /// Registers the connection for graceful shutdown.
    pub watcher: Watcher,
    /// Time allowed for everything before the first request starts: TLS
    /// handshake, preface sniff, first head.
    pub handshake_timeout: Duration,
    /// Time allowed with no request in flight, after the first.
    pub idle_timeout: Duration,
}

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http1,
    Http2,
}

/// HTTP/1 and HTTP/2 settings from the limits.
pub(super) fn builder(limits: &Limits) -> Builder {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The exact cap (431). The buffer cap alone can overshoot by up to the
        // buffer's own size, and let a 100 KB head through a 64 KiB limit.
        .max_header_size(limits.max_header_bytes)
        // hyper's minimum buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout);
    Builder { http1, http2 }
}

impl Connection {
    /// Serves the connection until the client closes it or shutdown completes.
    pub(super) async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let activity = Activity::new();
        let (first, idle) = (self.handshake_timeout, self.idle_timeout);
        tokio::select! {
            () = self.serve_inner(stream, peer, activity.clone()) => {}
            () = activity.expired(first, idle) => {
                tracing::debug!(%peer, "connection closed: no request in flight within its timeout");
            }
        }
    }

    async fn serve_inner(self, stream: TcpStream, peer: SocketAddr, activity: Activity) {
        let tls = self.acceptor.is_some();
        let gateway = self.gateway.clone();
        let client = ClientConn { peer, tls };
        let upstream = self.upstream.clone();
        let service = service_fn(move |req| {
            let gateway = gateway.clone();
            let upstream = upstream.clone();
            // In flight until the response body ends (an SSE stream included).
            let in_flight = activity.begin();
            // Boxed: hyper keeps one slot of the service future's size for the
            // life of the connection, and this future is kilobytes; an idle
            // SSE stream then holds a pointer instead (bench/README.md).
            Box::pin(async move {
                let resp = gateway.handle(req, client, &upstream).await;
                Ok::<_, Infallible>(resp.map(|body| Guarded::new(body, in_flight)))
            })
        });
        // One expansion per transport: the two connection types differ.
        // Each is boxed, so a connection's task holds the state of the one
        // it speaks rather than room for the largest (HTTP/2 over TLS):
        // that is most of an idle SSE stream's task (bench/README.md).
        macro_rules! serve_as {
            ($version:expr, $io:expr) => {
                match $version {
                    Version::Http1 => {
                        let conn = self.builder.http1.serve_connection($io, service);
                        Box::pin(self.watcher.watch(conn)).await
                    }
                    Version::Http2 => {
                        let conn = self.builder.http2.serve_connection($io, service);
                        Box::pin(self.watcher.watch(conn)).await
                    }
                }
            };
        }
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
                let version = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Version::Http2,
                    _ => Version::Http1,
                };
                serve_as!(version, TokioIo::new(stream))
            }
            None => {
                let version = match tokio::time::timeout(self.handshake_timeout, sniff(&stream))
                    .await
                {
                    Ok(Ok(Some(version))) => version,
                    Ok(Ok(None)) => return, // closed before sending anything
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "connection failed before a request");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "no request within header_read_timeout");
                        return;
                    }
                };
                serve_as!(version, TokioIo::new(stream))
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Peeks at a plaintext connection's first bytes: the HTTP/2 preface means
/// HTTP/2, anything else HTTP/1. `None` when the client closed first.
async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Version>> {
    let mut buf = [0u8; H2_PREFIX.len()];
    let (mut wait, max_wait) = PEEK_RETRY;
    loop {
        let n = stream.peek(&mut buf).await?;
        let seen = buf.get(..n).unwrap_or_default();
        if n == 0 {
            return Ok(None);
        }
        if !H2_PREFIX.starts_with(seen) {
            return Ok(Some(Version::Http1));
        }
        if n == H2_PREFIX.len() {
            return Ok(Some(Version::Http2));
        }
        // A prefix of the prefix: the rest is on its way. Peeking again at
        // once would spin, since the socket stays readable.
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(max_wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn sniffed(parts: &[&[u8]]) -> Option<Version> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for p in parts {
                s.write_all(&p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Closing after the last part: what was sent stays readable.
        });
        let (server, _) = listener.accept().await.unwrap();
        let version = sniff(&server).await.unwrap();
        client.await.unwrap();
        version
    }

    #[tokio::test]
    async fn sniff_tells_the_preface_from_http1() {
        assert_eq!(
            sniffed(&[b"GET / HTTP/1.1\r\n\r\n"]).await,
            Some(Version::Http1)
        );
        // "POST" shares its first byte with "PRI ".
        assert_eq!(sniffed(&[b"P", b"OST /mcp"]).await, Some(Version::Http1));
        let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(sniffed(&[preface]).await, Some(Version::Http2));
        // A preface in pieces is still HTTP/2.
        assert_eq!(
            sniffed(&[&preface[..2], &preface[2..3], &preface[3..]]).await,
            Some(Version::Http2)
        );
    }

    #[tokio::test]
    async fn sniff_leaves_the_bytes_in_the_socket() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            s
        });
        let (mut server, _) = listener.accept().await.unwrap();
        assert_eq!(sniff(&server).await.unwrap(), Some(Version::Http1));
        let mut buf = [0u8; 18];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET / HTTP/1.1\r\n\r\n");
        drop(client.await.unwrap());
    }

    #[tokio::test]
    async fn sniff_sees_a_close_before_any_bytes() {
        assert_eq!(sniffed(&[]).await, None);
    }
}

//! A worker's connections to its upstreams.
//!
//! A plain-HTTP upstream (the sidecar case) is reached over HTTP/1.1
//! connections that belong to one worker thread (`server/worker.rs`): they
//! are opened, used and driven on that thread, so a request and its answer
//! never cross threads, and the list of idle ones is only ever locked by
//! that thread (never contended). A connection is back in the list only
//! once its answer has been read to the end (an SSE stream holds its
//! connection until it ends); the most recently used is taken first. An
//! HTTPS upstream goes through the worker's pooled client (`http_client.rs`:
//! TLS sessions and HTTP/2 by ALPN are worth that machinery).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use tokio::net::TcpStream;

use super::ForwardError;
use super::h1::{self, Conn};
use crate::body::Body;
use crate::http_client::HttpClient;

/// Idle upstream connections kept per worker.
const MAX_IDLE: usize = 128;

/// How long an idle upstream connection is kept: under the 5 s after which
/// Node and uvicorn close idle connections, so the gateway is not the one
/// racing the upstream's close.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// One idle connection.
struct Idle {
    authority: Arc<str>,
    conn: Conn,
    since: Instant,
}

/// The way to the upstreams for one worker.
pub struct Upstream {
    /// The worker's pooled client, for HTTPS upstreams.
    pool: HttpClient,
    /// The worker's idle HTTP/1.1 connections to plain-HTTP upstreams,
    /// oldest first. Locked only by the worker's own thread.
    idle: Mutex<VecDeque<Idle>>,
    connect_timeout: Duration,
}

impl Upstream {
    /// A worker's upstreams; `connect_timeout` bounds each TCP connect.
    pub fn new(connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            pool: crate::http_client::build(connect_timeout),
            idle: Mutex::new(VecDeque::new()),
            connect_timeout,
        })
    }

    /// The worker's pooled client (HTTPS upstreams).
    pub(super) fn pool(&self) -> &HttpClient {
        &self.pool
    }

    /// Sends `req` (origin-form URI, `Host` set) to the plain-HTTP upstream
    /// at `authority` (`h1.rs`). The answer's body gives the connection back
    /// to the worker when it has been read to the end.
    pub(super) async fn send(
        self: &Arc<Self>,
        authority: &str,
        req: Request<Bytes>,
    ) -> Result<Response<Body>, ForwardError> {
        let (parts, body) = req.into_parts();
        let head = h1::request_head(&parts, body.len());
        let failed =
            |e: std::io::Error| ForwardError::Protocol(format!("upstream connection: {e}"));
        let (key, conn) = match self.take(authority) {
            Some((key, mut conn)) => match conn.write(&head, &body).await {
                Ok(()) => (key, conn),
                // Closed by the upstream between the check and the write:
                // it read nothing, so a fresh connection may carry it.
                Err(_) => {
                    let mut conn = self.connect(authority).await?;
                    conn.write(&head, &body).await.map_err(failed)?;
                    (key, conn)
                }
            },
            None => {
                let mut conn = self.connect(authority).await?;
                conn.write(&head, &body).await.map_err(failed)?;
                (Arc::from(authority), conn)
            }
        };
        let resp = h1::answer(conn, &parts.method, self.clone(), key).await?;
        Ok(resp.map(BodyExt::boxed))
    }

    /// The most recently used idle connection to `authority` that the
    /// upstream has not closed, if any.
    fn take(&self, authority: &str) -> Option<(Arc<str>, Conn)> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(at) = idle.iter().rposition(|i| &*i.authority == authority) {
            let found = idle.remove(at)?;
            if now - found.since < IDLE_TIMEOUT && found.conn.usable() {
                return Some((found.authority, found.conn));
            }
        }
        None
    }

    /// Keeps a connection whose answer has been read. Past the cap, and
    /// past the idle timeout, the oldest are closed.
    pub(super) fn keep(&self, authority: Arc<str>, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while idle
            .front()
            .is_some_and(|i| idle.len() >= MAX_IDLE || now - i.since > IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        idle.push_back(Idle {
            authority,
            conn,
            since: now,
        });
    }

    /// Idle connections held (for tests).
    #[cfg(test)]
    pub(super) fn idle_len(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// Opens a connection to `authority`.
    async fn connect(&self, authority: &str) -> Result<Conn, ForwardError> {
        let failed = |e: std::io::Error| ForwardError::Connect(format!("{authority}: {e}"));
        let (host, port) = host_port(authority).map_err(failed)?;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| {
                ForwardError::Connect(format!(
                    "{authority}: no connection within {:?}",
                    self.connect_timeout
                ))
            })?
            .map_err(failed)?;
        // Latency only: a socket that refuses TCP_NODELAY still works.
        stream.set_nodelay(true).ok();
        Ok(Conn::new(stream))
    }
}

/// The host (without IPv6 brackets) and port (80 when none is given) of a
/// plain-HTTP authority.
fn host_port(authority: &str) -> std::io::Result<(&str, u16)> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid authority");
    let parsed: http::uri::Authority = authority.parse().map_err(|_| invalid())?;
    let port = parsed.port_u16().unwrap_or(80);
    let host = parsed.host();
    let start = authority.find(host).ok_or_else(invalid)?;
    let host = authority
        .get(start..start + host.len())
        .ok_or_else(invalid)?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;
    use http_body::Frame;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    /// A hyper HTTP/1.1 server on loopback that counts the connections it
    /// accepts. `/stream` answers with a body that stays open until the
    /// client goes away; `/close` answers with `Connection: close`;
    /// anything else answers `ok`.
    async fn server() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(|req: Request<Incoming>| async move {
                    let resp = match req.uri().path() {
                        "/stream" => {
                            // One event, then nothing until the client goes away.
                            let first: Result<Frame<Bytes>, std::io::Error> =
                                Ok(Frame::data(Bytes::from_static(b"data: 1\n\n")));
                            let stream = futures_util::stream::once(async { first })
                                .chain(futures_util::stream::pending());
                            Response::new(BodyExt::boxed(StreamBody::new(stream)))
                        }
                        "/close" => Response::builder()
                            .header("connection", "close")
                            .body(
                                http_body_util::Full::new(Bytes::from_static(b"bye"))
                                    .map_err(|e| match e {})
                                    .boxed(),
                            )
                            .unwrap(),
                        _ => Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"ok"))
                                .map_err(|e| match e {})
                                .boxed(),
                        ),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                });
                tokio::spawn(
                    server::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (authority, accepted)
    }

    fn get(authority: &str, path: &str) -> Request<Bytes> {
        Request::get(path)
            .header(http::header::HOST, authority)
            .body(Bytes::new())
            .unwrap()
    }

    /// `GET path`, read to its end.
    async fn fetch(upstream: &Arc<Upstream>, authority: &str, path: &str) -> Bytes {
        let resp = upstream
            .send(authority, get(authority, path))
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_answer_was_read() {
        let (authority, accepted) = server().await;
        let upstream = Upstream::new(Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(fetch(&upstream, &authority, "/").await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_still_streaming_is_never_given_a_second_request() {
        let (authority, accepted) = server().await;
        let upstream = Upstream::new(Duration::from_secs(5));
        let mut stream = upstream
            .send(&authority, get(&authority, "/stream"))
            .await
            .unwrap()
            .into_body();
        let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "data: 1\n\n");
        assert_eq!(fetch(&upstream, &authority, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // A stream dropped before its end closes its connection: the next
        // request reuses the one that finished, not the abandoned one.
        drop(stream);
        assert_eq!(fetch(&upstream, &authority, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(upstream.idle_len(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
        let (authority, accepted) = server().await;
        let upstream = Upstream::new(Duration::from_secs(5));
        assert_eq!(fetch(&upstream, &authority, "/close").await, "bye");
        // Let the closed connection's task see the end.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fetch(&upstream, &authority, "/").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connect_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        drop(listener);
        let upstream = Upstream::new(Duration::from_secs(5));
        let err = upstream
            .send(&authority, get(&authority, "/"))
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::Connect(_)), "{err:?}");
    }

    #[test]
    fn authorities_name_a_host_and_port() {
        assert_eq!(host_port("127.0.0.1:3001").unwrap(), ("127.0.0.1", 3001));
        assert_eq!(host_port("mcp.internal").unwrap(), ("mcp.internal", 80));
        assert_eq!(host_port("[::1]:8080").unwrap(), ("::1", 8080));
        assert_eq!(host_port("[::1]").unwrap(), ("::1", 80));
        assert!(host_port("a b").is_err());
    }
}

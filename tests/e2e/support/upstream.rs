//! An in-test upstream for what a real MCP server cannot show: the exact
//! headers it received, a stalled response, and an SSE stream whose pace the
//! test controls. The real MCP servers are in `peers.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, mpsc};

/// How the upstream answers.
#[derive(Clone)]
pub enum Behavior {
    /// `200 application/json` with a fixed JSON-RPC result.
    Json,
    /// Waits this long before sending headers.
    Stall(Duration),
    /// SSE: one event now, then waits for `gate`, then a second event and the end.
    Sse(Arc<Notify>),
    /// A fixed answer: content type and body.
    Fixed(&'static str, &'static str),
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A running in-test upstream.
pub struct Upstream {
    /// Bound address.
    pub addr: SocketAddr,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts on a free loopback port.
    pub async fn start(behavior: Behavior) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                let behavior = behavior.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let record = record.clone();
                        let behavior = behavior.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            record.lock().unwrap().push(Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            Ok::<_, Infallible>(answer(behavior).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    /// `http://addr/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(behavior: Behavior) -> http::Response<Body> {
    match behavior {
        Behavior::Json => json(),
        Behavior::Fixed(content_type, body) => http::Response::builder()
            .header("content-type", content_type)
            .body(http_body_util::Full::new(Bytes::from_static(body.as_bytes())).boxed())
            .unwrap(),
        Behavior::Stall(d) => {
            tokio::time::sleep(d).await;
            json()
        }
        Behavior::Sse(gate) => {
            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            tokio::spawn(async move {
                let event = |id: u32, text: &str| {
                    Ok(Frame::data(Bytes::from(format!(
                        "id: {id}\nretry: 1000\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{{\"data\":\"{text}\"}}}}\n\n"
                    ))))
                };
                let _ = tx.send(event(1, "first")).await;
                gate.notified().await;
                let _ = tx.send(event(2, "second")).await;
            });
            let stream = tokio_stream(rx);
            http::Response::builder()
                .header("content-type", "text/event-stream")
                .header("mcp-session-id", "sess-1")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
    }
}

fn json() -> http::Response<Body> {
    http::Response::builder()
        .header("content-type", "application/json")
        .header("mcp-session-id", "up-1")
        .body(
            http_body_util::Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#,
            ))
            .boxed(),
        )
        .unwrap()
}

/// An `mpsc::Receiver` as a `Stream`, without pulling in tokio-stream.
fn tokio_stream<T>(mut rx: mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

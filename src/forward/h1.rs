//! HTTP/1.1 to a plain-HTTP upstream, read by the task that answers the
//! client.
//!
//! The request is written in one vectored write; the response head is parsed
//! with `httparse`, and its body is read from the socket only when the client
//! connection asks for the next frame, on the same task. There is no
//! connection task, no channel between two tasks and no buffer held while a
//! stream is idle: an idle SSE stream through the gateway holds its socket
//! and a few hundred bytes of state on this side (bench/README.md has the
//! numbers that led here: hyper's client connection kept 24 KiB per stream).
//!
//! Framing is read strictly (RFC 9112 §6): `Transfer-Encoding` must be
//! exactly `chunked` and never comes with `Content-Length`; `Content-Length`
//! values must agree; a response with neither is read until the upstream
//! closes. Anything else is a 502, and the connection is never reused after
//! an error, a body not read to its end, bytes past the end of a response, a
//! `Connection: close` or an HTTP/1.0 answer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::ForwardError;
use super::upstream::Upstream;
use crate::body::BoxError;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields accepted.
const MAX_HEADERS: usize = 128;
/// Largest chunk-size line or trailer section accepted.
const MAX_CHUNK_META: usize = 16 * 1024;
/// What one read asks for.
const READ_SIZE: usize = 8 * 1024;

/// An open connection to an upstream, between exchanges.
pub(super) struct Conn {
    stream: TcpStream,
}

impl Conn {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self { stream }
    }

    /// Whether an idle connection can carry a request: not closed by the
    /// upstream, and with nothing unasked for waiting on it. Asks the socket
    /// itself (one `recv` that finds nothing): the runtime's readiness may
    /// not have caught up with a close yet.
    pub(super) fn usable(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// How the response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// Until the upstream closes.
    Close,
    /// Read to its end (or failed); the connection is gone.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// After a chunk's data, at its CRLF.
    DataEnd,
    /// After the last chunk, at the trailer section.
    Trailers,
}

impl Conn {
    /// Writes the request (one `writev` in the common case).
    pub(super) async fn write(&mut self, head: &Bytes, body: &Bytes) -> std::io::Result<()> {
        let mut out = head.clone().chain(body.clone());
        while out.has_remaining() {
            self.stream.write_buf(&mut out).await?;
        }
        Ok(())
    }
}

/// Reads the response head to the request `method` that was written on
/// `conn`. The body gives the connection back to `upstream` when it has been
/// read to its end and the connection may be reused.
pub(super) async fn answer(
    mut conn: Conn,
    method: &http::Method,
    upstream: Arc<Upstream>,
    authority: Arc<str>,
) -> Result<Response<UpstreamBody>, ForwardError> {
    let protocol = |m: &str| ForwardError::Protocol(m.to_owned());
    let io = |e: std::io::Error| ForwardError::Protocol(format!("upstream connection: {e}"));
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    loop {
        // What is buffered first: a final answer may follow an informational
        // one in the same read.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(protocol("upstream response head too large"));
            }
            Ok(httparse::Status::Partial) => {
                if read_more(&mut conn.stream, &mut buf).await.map_err(io)? == 0 {
                    return Err(protocol("upstream closed the connection before answering"));
                }
                continue;
            }
            Err(e) => {
                return Err(ForwardError::Protocol(format!(
                    "upstream response head: {e}"
                )));
            }
        };
        let code = parsed.code.unwrap_or_default();
        if (100..200).contains(&code) {
            if code == 101 {
                return Err(protocol("upstream switched protocols unasked"));
            }
            // Informational (100, 103): the final answer follows.
            buf.advance(len);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| protocol("bad upstream status"))?;
        let mut map = HeaderMap::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| protocol("bad upstream header name"))?;
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| protocol("bad upstream header value"))?;
            map.append(name, value);
        }
        let keep_alive = parsed.version == Some(1) && !has_token(&map, &CONNECTION, "close");
        let framing = framing(method, status, &map)?;
        buf.advance(len);
        let mut resp = Response::new(UpstreamBody {
            conn: Some(conn),
            buf,
            framing,
            reusable: keep_alive && framing != Framing::Close,
            back: Some((upstream, authority)),
        });
        *resp.status_mut() = status;
        *resp.headers_mut() = map;
        return Ok(resp);
    }
}

/// `GET /path HTTP/1.1`, the headers, and the body's length.
pub(super) fn request_head(parts: &http::request::Parts, body_len: usize) -> Bytes {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = BytesMut::with_capacity(256 + parts.headers.len() * 64);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if body_len > 0 || parts.method == http::Method::POST {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.freeze()
}

/// The body's framing, or why the answer cannot be read safely.
fn framing(
    method: &http::Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Framing, ForwardError> {
    let protocol = |m: &str| Err(ForwardError::Protocol(m.to_owned()));
    if *method == http::Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    let te: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    if !te.is_empty() {
        if headers.contains_key(CONTENT_LENGTH) {
            return protocol("upstream sent both Transfer-Encoding and Content-Length");
        }
        let chunked = matches!(te.as_slice(), [v] if v.as_bytes().eq_ignore_ascii_case(b"chunked"));
        if !chunked {
            return protocol("upstream Transfer-Encoding other than chunked");
        }
        return Ok(Framing::Chunked(Chunk::Size));
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return protocol("bad upstream Content-Length");
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ForwardError::Protocol("bad upstream Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return protocol("conflicting upstream Content-Length values");
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// A chunk-size line (with its extensions) ends in CRLF and has no other
/// control character than tab.
fn chunk_line_ok(line: &[u8]) -> bool {
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return false;
    };
    body.iter()
        .all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// An upstream answer's body, read from the socket as the client asks.
pub(super) struct UpstreamBody {
    conn: Option<Conn>,
    /// Bytes read and not yet handed on. Released while the stream is idle.
    buf: BytesMut,
    framing: Framing,
    reusable: bool,
    back: Option<(Arc<Upstream>, Arc<str>)>,
}

fn error(message: &str) -> BoxError {
    message.to_owned().into()
}

impl UpstreamBody {
    /// Reads more bytes into `buf`; `Ready(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let Some(conn) = &mut self.conn else {
            return Poll::Ready(Ok(0));
        };
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_SIZE);
        }
        // A fresh `read_buf` future per poll: it holds no state of its own.
        let read = std::pin::pin!(tokio::io::AsyncReadExt::read_buf(
            &mut conn.stream,
            &mut self.buf
        ));
        let polled = std::future::Future::poll(read, cx);
        if polled.is_pending() && self.buf.is_empty() {
            // Idle: hold no buffer while waiting (what was handed on has
            // been split off already).
            self.buf = BytesMut::new();
        }
        polled
    }

    /// The body ended: give the connection back if nothing is left on it.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let conn = self.conn.take();
        if let (Some(conn), Some((upstream, authority))) = (conn, self.back.take())
            && self.reusable
            && self.buf.is_empty()
        {
            upstream.keep(authority, conn);
        }
        self.buf = BytesMut::new();
    }

    fn fail(&mut self, message: &str) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(error(message))))
    }

    /// Up to `max` bytes of what was read, as a data frame.
    fn data(&mut self, max: u64) -> Bytes {
        let n = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.buf.split_to(n).freeze()
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            // Decide with what is buffered; read only when that is not enough.
            match this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !this.buf.is_empty() => {
                    let data = this.data(left);
                    this.framing = Framing::Length(left - data.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Close if !this.buf.is_empty() => {
                    let data = this.data(u64::MAX);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(Chunk::Data(left)) if !this.buf.is_empty() => {
                    let data = this.data(left);
                    let left = left - data.len() as u64;
                    this.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(Chunk::DataEnd) if this.buf.len() >= 2 => {
                    if &this.buf[..2] != b"\r\n" {
                        return this.fail("upstream chunk not followed by CRLF");
                    }
                    this.buf.advance(2);
                    this.framing = Framing::Chunked(Chunk::Size);
                    continue;
                }
                Framing::Chunked(Chunk::Size) if !this.buf.is_empty() => {
                    // httparse reads a line without digits as size 0: a
                    // broken body must not end as if it were complete.
                    if !this.buf[0].is_ascii_hexdigit() {
                        return this.fail("bad upstream chunk size");
                    }
                    let parsed = httparse::parse_chunk_size(&this.buf);
                    if let Ok(httparse::Status::Complete((len, _))) = parsed
                        && !chunk_line_ok(&this.buf[..len])
                    {
                        return this.fail("bad upstream chunk size");
                    }
                    match parsed {
                        Ok(httparse::Status::Complete((len, 0))) => {
                            this.buf.advance(len);
                            this.framing = Framing::Chunked(Chunk::Trailers);
                            continue;
                        }
                        Ok(httparse::Status::Complete((len, size))) => {
                            this.buf.advance(len);
                            this.framing = Framing::Chunked(Chunk::Data(size));
                            continue;
                        }
                        Ok(httparse::Status::Partial) if this.buf.len() < MAX_CHUNK_META => {}
                        _ => return this.fail("bad upstream chunk size"),
                    }
                }
                Framing::Chunked(Chunk::Trailers) if !this.buf.is_empty() => {
                    if this.buf.starts_with(b"\r\n") {
                        this.buf.advance(2);
                        this.finish();
                        return Poll::Ready(None);
                    }
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(&this.buf, &mut headers) {
                        Ok(httparse::Status::Complete((len, fields))) => {
                            let mut trailers = HeaderMap::new();
                            for h in fields {
                                if let (Ok(n), Ok(v)) = (
                                    HeaderName::from_bytes(h.name.as_bytes()),
                                    HeaderValue::from_bytes(h.value),
                                ) {
                                    trailers.append(n, v);
                                }
                            }
                            this.buf.advance(len);
                            this.finish();
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        Ok(httparse::Status::Partial) if this.buf.len() < MAX_CHUNK_META => {}
                        _ => return this.fail("bad upstream trailers"),
                    }
                }
                _ => {}
            }
            // More bytes are needed.
            match ready!(this.poll_fill(cx)) {
                Ok(0) if this.framing == Framing::Close => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail("upstream closed the connection mid-answer"),
                Ok(_) => {}
                Err(e) => {
                    let message = format!("upstream connection: {e}");
                    return this.fail(&message);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // An answer with no body may never be polled.
        if self.framing == Framing::Length(0) {
            self.finish();
        }
    }
}

/// Reads what has arrived into `buf` (waiting for something); 0 at the end.
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(READ_SIZE);
    }
    tokio::io::AsyncReadExt::read_buf(stream, buf).await
}

#[cfg(test)]
mod tests {
    //! Framing against exact bytes. The peer is a raw TCP socket writing
    //! canned answers (a test double: these are the malformed and edge-case
    //! answers no installable server sends on demand); the interop tests in
    //! tests/e2e run the same code against real MCP servers.
    use std::time::Duration;

    use http::Request;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one connection: answers each request (read up to its blank
    /// line) with the next of `answers`, written in pieces of `piece` bytes.
    async fn upstream(answers: Vec<&'static [u8]>, piece: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut byte = [0u8; 512];
                    let n = stream.read(&mut byte).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&byte[..n]);
                }
                for part in answer.chunks(piece) {
                    stream.write_all(part).await.unwrap();
                    stream.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            // Keep the connection open until the client closes it.
            let mut rest = [0u8; 64];
            while stream.read(&mut rest).await.is_ok_and(|n| n > 0) {}
        });
        authority
    }

    /// One request to an upstream that writes `bytes` and closes.
    async fn then_close(bytes: &'static [u8]) -> (Arc<Upstream>, Response<crate::body::Body>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(bytes).await.unwrap();
        });
        let up = Upstream::new(Duration::from_secs(5));
        let resp = up.send(&authority, get(&authority)).await.unwrap();
        (up, resp)
    }

    fn get(authority: &str) -> Request<Bytes> {
        Request::get("/mcp")
            .header(http::header::HOST, authority)
            .body(Bytes::new())
            .unwrap()
    }

    /// One exchange on a fresh upstream; the body read whole.
    async fn answer(bytes: &'static [u8], piece: usize) -> Result<(StatusCode, Bytes), String> {
        let authority = upstream(vec![bytes], piece).await;
        let up = Upstream::new(Duration::from_secs(5));
        let resp = up
            .send(&authority, get(&authority))
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, body.to_bytes()))
    }

    #[tokio::test]
    async fn content_length_and_chunked_bodies_are_read_in_any_pieces() {
        for piece in [1, 3, 1000] {
            let (status, body) =
                answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", piece)
                    .await
                    .unwrap();
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"hello"[..]));
            let chunked: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
            let (_, body) = answer(chunked, piece).await.unwrap();
            assert_eq!(&body[..], b"hello world");
        }
        // Read until the upstream closes: no length, no chunking.
        let (up, resp) = then_close(b"HTTP/1.1 200 OK\r\n\r\nuntil close").await;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"until close");
        assert!(
            up.idle_len() == 0,
            "a close-delimited answer's connection is not reused"
        );
    }

    #[tokio::test]
    async fn informational_answers_are_skipped_and_switching_protocols_is_refused() {
        let (status, body) = answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
            7,
        )
        .await
        .unwrap();
        assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"ok"[..]));
        // The final answer in the same read as the informational one.
        let (status, _) = answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            1000,
        )
        .await
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        let refused = answer(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            100,
        )
        .await;
        assert!(refused.unwrap_err().contains("switched protocols"));
    }

    #[tokio::test]
    async fn ambiguous_framing_is_refused() {
        let cases: [(&[u8], &str); 7] = [
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n", "both"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", "other than chunked"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n", "other than chunked"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!", "conflicting"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello", "bad upstream Content-Length"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!", "conflicting"),
            (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "response head"),
        ];
        for (bytes, why) in cases {
            let err = answer(bytes, 1000).await.unwrap_err();
            assert!(
                err.contains(why),
                "{}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
        // Agreeing repeated lengths are one length.
        let (_, body) = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok", 1000)
            .await
            .unwrap();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn broken_bodies_are_errors_not_short_answers() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"[..],
            // A size line without digits is not the last chunk.
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n;x\r\n\r\n"[..],
            // A bare LF inside the extensions.
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n"[..],
        ] {
            let err = answer(bytes, 1000).await.unwrap_err();
            assert!(err.contains("chunk"), "{err}");
        }
        // The upstream closes before the length is reached.
        let (_, resp) = then_close(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort").await;
        let err = resp.into_body().collect().await.unwrap_err();
        assert!(err.to_string().contains("mid-answer"), "{err}");
        // A head that never ends is refused at its cap.
        let huge: &'static [u8] = Box::leak(
            [&b"HTTP/1.1 200 OK\r\nx: "[..], &vec![b'a'; MAX_HEAD + 10]]
                .concat()
                .into_boxed_slice(),
        );
        assert!(
            answer(huge, 1 << 20)
                .await
                .unwrap_err()
                .contains("too large")
        );
    }

    #[tokio::test]
    async fn connections_are_reused_only_after_a_clean_keep_alive_answer() {
        let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let cases: [(&'static [u8], bool); 5] = [
            (ok, true),
            (b"HTTP/1.1 204 No Content\r\n\r\n", true),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
            // Bytes past the end of the answer: the connection is out of step.
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
                false,
            ),
        ];
        for (bytes, reused) in cases {
            let authority = upstream(vec![bytes, ok], 1000).await;
            let up = Upstream::new(Duration::from_secs(5));
            let resp = up.send(&authority, get(&authority)).await.unwrap();
            resp.into_body().collect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(
                up.idle_len() == 1,
                reused,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn the_request_head_carries_the_length_and_every_header() {
        let req = Request::post("/mcp?x=1")
            .header("host", "up:1")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let head = request_head(&parts, 7);
        assert_eq!(
            &head[..],
            b"POST /mcp?x=1 HTTP/1.1\r\nhost: up:1\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 7\r\n\r\n"
        );
        let (parts, ()) = Request::get("/s").body(()).unwrap().into_parts();
        assert_eq!(&request_head(&parts, 0)[..], b"GET /s HTTP/1.1\r\n\r\n");
    }
}

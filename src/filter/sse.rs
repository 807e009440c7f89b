//! Stage 8, `text/event-stream` bodies: an incremental SSE parser that
//! rewrites every event that carries a list.
//!
//! Event framing follows WHATWG HTML §9.2.6 ("Interpreting an event stream"):
//! lines end in `\r\n`, `\n` or `\r`; an event ends at a blank line; its data
//! is its `data` field values joined with `\n`, one leading space stripped.
//! Every other event is forwarded byte for byte as soon as it is complete; only
//! an incomplete trailing event is held back, never the whole stream. Every
//! event is inspected, also after a list was filtered: a client may take a
//! later one as its answer.
//!
//! Fail closed: an event over the cap, or non-JSON data, ends the stream with
//! an `event: error` carrying a JSON-RPC error.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::raw::{self, Rewrite};
use super::{FilterError, ListFilter, error_json};
use crate::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http::Response;
use http::header::CONTENT_LENGTH;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// UTF-8 byte order mark; a decoder strips it at the start of the stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The upstream SSE body with every list in it filtered.
struct SseFilter {
    inner: Body,
    filter: ListFilter,
    /// Bytes of the incomplete event not yet forwarded.
    buf: BytesMut,
    scan: Scanner,
    /// Output decided but not yet polled out.
    ready: VecDeque<Bytes>,
    state: State,
    /// Whether no event has been taken off `buf` yet (BOM handling).
    at_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inspecting every event for a list.
    Filtering,
    /// Oversize and the route passes oversize lists: relay frames as they come.
    PassThrough,
    /// Upstream ended or we failed closed: drain `ready`, then end.
    Done,
}

/// Where the search for the end of the current event stopped, so a large
/// event arriving in small chunks is scanned once, not once per chunk.
#[derive(Debug, Default)]
struct Scanner {
    /// Next byte to examine.
    pos: usize,
    /// Start of the current line.
    line_start: usize,
}

/// What to do with one event.
enum Outcome {
    /// Forward the original bytes.
    Pass,
    /// Forward these bytes instead: the event's list, filtered.
    Rewritten(Bytes),
}

/// Lines of a buffered event: `(content, terminator)`. The last line may lack
/// a terminator only at the end of the stream.
struct Lines<'a>(&'a [u8]);

/// Wraps an SSE response body in [`SseFilter`].
pub(super) fn wrap(resp: Response<Body>, filter: ListFilter) -> Response<Body> {
    let (mut parts, inner) = resp.into_parts();
    // The rewritten event changes the length.
    parts.headers.remove(CONTENT_LENGTH);
    let body = SseFilter {
        inner,
        filter,
        buf: BytesMut::new(),
        scan: Scanner::default(),
        ready: VecDeque::new(),
        state: State::Filtering,
        at_start: true,
    };
    Response::from_parts(parts, body.boxed())
}

impl SseFilter {
    /// Moves every complete event out of `buf` into `ready`, rewriting the
    /// ones that carry a list. At `eof`, also decides the incomplete tail.
    fn drain(&mut self, eof: bool) {
        while let Some(end) = self.scan.event_end(&self.buf, eof) {
            let event = self.buf.split_to(end).freeze();
            self.scan = Scanner::default();
            let at_start = std::mem::replace(&mut self.at_start, false);
            if event.len() > self.filter.max_event_bytes {
                let limit = self.filter.max_event_bytes;
                if self.filter.pass_oversize {
                    return self.give_up(event, eof, &FilterError::TooLarge { limit });
                }
                return self.fail(&FilterError::TooLarge { limit });
            }
            match self.inspect(&event, at_start) {
                Ok(Outcome::Pass) => self.ready.push_back(event),
                // Every later event is inspected too: a client may read a
                // later list as the answer (e.g. if it rejects this one).
                Ok(Outcome::Rewritten(bytes)) => self.ready.push_back(bytes),
                Err(err) => return self.fail(&err),
            }
        }
        if eof {
            self.state = State::Done;
            let tail = self.buf.split().freeze();
            if tail.is_empty() {
                return;
            }
            // SSE clients drop an unterminated event, but not every client
            // is compliant: if the tail carries a list, filter it anyway, and
            // if it cannot be read, it does not go out as it is.
            match self.inspect(&tail, self.at_start) {
                Ok(Outcome::Rewritten(bytes)) => self.ready.push_back(bytes),
                Ok(Outcome::Pass) => self.ready.push_back(tail),
                Err(err) => self.fail(&err),
            }
        } else if self.buf.len() > self.filter.max_event_bytes {
            let limit = self.filter.max_event_bytes;
            if self.filter.pass_oversize {
                return self.give_up(Bytes::new(), false, &FilterError::TooLarge { limit });
            }
            self.fail(&FilterError::TooLarge { limit });
        }
    }

    /// The route allows oversize lists to pass unfiltered: forward `event` and
    /// everything buffered as-is, then relay the rest untouched.
    fn give_up(&mut self, event: Bytes, eof: bool, err: &FilterError) {
        tracing::warn!(id = %self.filter.id, error = %err, "list response passed unfiltered (pass_oversize_lists)");
        if !event.is_empty() {
            self.ready.push_back(event);
        }
        let rest = self.buf.split().freeze();
        if !rest.is_empty() {
            self.ready.push_back(rest);
        }
        self.state = if eof { State::Done } else { State::PassThrough };
    }

    /// Drops what is buffered, queues the error event and ends the stream.
    /// Events already in `ready` were complete and allowed, so they still go.
    fn fail(&mut self, err: &FilterError) {
        self.filter.log_failure(err);
        self.buf.clear();
        let mut event = b"event: error\ndata: ".to_vec();
        event.extend_from_slice(&error_json(&self.filter.id));
        event.extend_from_slice(b"\n\n");
        self.ready.push_back(event.into());
        self.state = State::Done;
    }

    /// Whether `event` carries a list, and if so its rewrite.
    fn inspect(&self, event: &[u8], at_start: bool) -> Result<Outcome, FilterError> {
        let bom = if at_start && event.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let (bom, fields) = event.split_at(bom);
        if Lines(fields).any(|(line, _)| field_value(line, b"event") == Some(b"endpoint")) {
            return Err(FilterError::LegacyTransport);
        }
        let Some(allow) = &self.filter.allow else {
            return Ok(Outcome::Pass);
        };
        let mut data = Vec::new();
        let mut seen = false;
        for value in Lines(fields).filter_map(|(line, _)| data_value(line)) {
            if seen {
                data.push(b'\n');
            }
            data.extend_from_slice(value);
            seen = true;
        }
        // No data, or only whitespace: nothing a client could parse as a
        // message (MCP's priming events have empty data).
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Outcome::Pass);
        }
        let Rewrite::Matched(json) = raw::rewrite_any(&data, allow)? else {
            return Ok(Outcome::Pass);
        };
        let mut out = BytesMut::with_capacity(event.len());
        out.extend_from_slice(bom);
        let mut first = true;
        for (line, term) in Lines(fields) {
            if data_value(line).is_none() {
                out.extend_from_slice(line);
                out.extend_from_slice(term);
            } else if std::mem::take(&mut first) {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
                out.extend_from_slice(term);
            }
        }
        Ok(Outcome::Rewritten(out.freeze()))
    }
}

impl http_body::Body for SseFilter {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match this.state {
                State::Done => return Poll::Ready(None),
                State::PassThrough => return Pin::new(&mut this.inner).poll_frame(cx),
                State::Filtering => {}
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers are dropped while filtering: SSE has no use for them.
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                        this.drain(false);
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => this.drain(true),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_empty()
            && match self.state {
                State::Done => true,
                State::PassThrough => self.inner.is_end_stream(),
                State::Filtering => false,
            }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Scanner {
    /// The length of the first complete event in `buf` (through its blank
    /// line), if there is one. A `\r` as the last byte may be the first half
    /// of `\r\n`, so it counts as a line end only at `eof`.
    fn event_end(&mut self, buf: &[u8], eof: bool) -> Option<usize> {
        loop {
            let Some(off) = buf[self.pos..]
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
            else {
                self.pos = buf.len();
                return None;
            };
            let at = self.pos + off;
            let next = match (buf[at], buf.get(at + 1)) {
                (b'\r', Some(b'\n')) => at + 2,
                (b'\r', None) if !eof => {
                    self.pos = at;
                    return None;
                }
                _ => at + 1,
            };
            let blank = at == self.line_start;
            self.pos = next;
            self.line_start = next;
            if blank {
                return Some(next);
            }
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let rest = self.0;
        let Some(at) = rest.iter().position(|&b| b == b'\r' || b == b'\n') else {
            self.0 = &[];
            return Some((rest, &[]));
        };
        let end = if rest[at..].starts_with(b"\r\n") {
            at + 2
        } else {
            at + 1
        };
        self.0 = &rest[end..];
        Some((&rest[..at], &rest[at..end]))
    }
}

/// The value of a `data` field line (one leading space stripped), or `None`
/// for any other line: comments, other fields, blank lines.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    field_value(line, b"data")
}

/// The value of a field line named `field` (one leading space stripped), or
/// `None` for any other line.
fn field_value<'a>(line: &'a [u8], field: &[u8]) -> Option<&'a [u8]> {
    let (name, value) = match line.iter().position(|&b| b == b':') {
        Some(0) => return None,
        Some(colon) => (&line[..colon], &line[colon + 1..]),
        None => (line, &[][..]),
    };
    if name != field {
        return None;
    }
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::{Lines, data_value};

    #[test]
    fn data_field_parsing() {
        assert_eq!(data_value(b"data:  x"), Some(&b" x"[..]));
        assert_eq!(data_value(b"data:x: y"), Some(&b"x: y"[..]));
        assert_eq!(data_value(b"data"), Some(&b""[..]));
        assert_eq!(data_value(b": data: x"), None);
        assert_eq!(data_value(b"datax: x"), None);
        assert_eq!(data_value(b"Data: x"), None);
    }

    #[test]
    fn lines_keep_their_terminators() {
        let lines: Vec<_> = Lines(b"a\r\nb\rc\n\rd").collect();
        let expected: [(&[u8], &[u8]); 5] = [
            (b"a", b"\r\n"),
            (b"b", b"\r"),
            (b"c", b"\n"),
            (b"", b"\r"),
            (b"d", b""),
        ];
        assert_eq!(lines, expected);
    }
}

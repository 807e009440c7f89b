//! Stage 8, `application/json` bodies: buffer one JSON-RPC response (up to the
//! cap), filter it, and send it on with a correct `Content-Length`.
//!
//! A body that carries no list goes on byte for byte. Anything
//! that cannot be filtered (over the cap, not JSON, a batch, a body error)
//! becomes a 502 with a JSON-RPC error: the unfiltered list never leaves.

use super::raw::{self, Rewrite};
use super::{FilterError, ListFilter, fail_closed_response};
use crate::body::{self, Body};
use http::Response;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http_body_util::BodyExt;

/// Reads, filters and rebuilds a JSON response.
pub(super) async fn filter(resp: Response<Body>, filter: ListFilter) -> Response<Body> {
    let (mut parts, upstream) = resp.into_parts();
    let bytes = match read_capped(upstream, filter.max_event_bytes).await {
        Ok(bytes) => bytes,
        Err((err, Some((read, rest)))) if filter.pass_oversize => {
            tracing::warn!(id = %filter.id, error = %err, "list response passed unfiltered (pass_oversize_lists)");
            return Response::from_parts(
                parts,
                Prefixed {
                    prefix: Some(read),
                    inner: rest,
                }
                .boxed(),
            );
        }
        Err((err, _)) => {
            filter.log_failure(&err);
            return fail_closed_response(&filter.id);
        }
    };
    let out = match rewrite(&bytes, &filter) {
        Ok(Some(rewritten)) => bytes::Bytes::from(rewritten),
        Ok(None) => bytes,
        Err(err) => {
            filter.log_failure(&err);
            return fail_closed_response(&filter.id);
        }
    };
    // The body is now a known length: any upstream framing is stale.
    parts.headers.remove(TRANSFER_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, out.len().into());
    Response::from_parts(parts, body::full(out))
}

/// The whole body, or `TooLarge` once it passes `limit` bytes.
// A hand loop rather than `http_body_util::Limited`: `Limited` converts the
// error through a higher-ranked `From` bound that rustc cannot prove for a
// boxed error inside the connection future (rust-lang/rust#64552).
/// Past the cap, the error comes with what was read and the unread rest, so
/// the response can still be passed on whole.
async fn read_capped(mut upstream: Body, limit: usize) -> Result<bytes::Bytes, ReadError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = upstream.frame().await {
        let frame = frame.map_err(|err| (FilterError::Body(err.to_string()), None))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Err((
                    FilterError::TooLarge { limit },
                    Some((buf.freeze(), upstream)),
                ));
            }
        }
    }
    Ok(buf.freeze())
}

type ReadError = (FilterError, Option<(bytes::Bytes, Body)>);

/// Bytes already read, then the rest of the upstream body.
struct Prefixed {
    prefix: Option<bytes::Bytes>,
    inner: Body,
}

impl http_body::Body for Prefixed {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(prefix))));
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// The filtered body, or `None` when `bytes` carries no list
/// (then it goes on unchanged).
fn rewrite(bytes: &[u8], filter: &ListFilter) -> Result<Option<Vec<u8>>, FilterError> {
    // An empty body holds no list (e.g. a 202 sent as chunked with no data).
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Some(allow) = &filter.allow else {
        return Ok(None);
    };
    let batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    // A batch answer to a single list request is not something we can vouch
    // for entry by entry; refuse it rather than guess. Any other answer (to
    // a batch, say) has every message in it filtered.
    if batch && filter.kind.is_some() {
        return Err(FilterError::Batch);
    }
    Ok(match raw::rewrite_any(bytes, allow)? {
        Rewrite::Matched(out) => Some(out),
        Rewrite::NoMatch => None,
    })
}

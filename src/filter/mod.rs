//! Stage 8: response filter. Hides list entries the caller may not use.
//!
//! When a client calls `tools/list`, `prompts/list`, `resources/list` or
//! `resources/templates/list`, the upstream answer passes through here and the
//! JSON-RPC messages carrying `result.<list>` (whatever their `id`: clients
//! match ids in their own ways) lose every entry the
//! [`Allow`] predicate refuses. Only array items are removed: every other
//! field, `nextCursor`, `_meta`, field order and the kept entries' bytes stay
//! as the upstream wrote them (`raw.rs` rewrites without a DOM).
//!
//! Two transports (MCP 2025-06-18 "Transports", Streamable HTTP):
//! - `application/json`: one buffered body, see `json.rs`;
//! - `text/event-stream`: an incremental SSE parser that forwards every event
//!   as it completes and rewrites the ones carrying a list, see `sse.rs`.
//!
//! Fail closed: if a list response cannot be filtered (too large, not JSON,
//! a batch, compressed), the client gets a JSON-RPC error instead of the
//! unfiltered list. This stage never decides *what* is allowed (that is the
//! predicate's job, built from the policy) and never buffers a whole SSE
//! stream, only one event at a time.

use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body as _;
use serde_json::Value;

use crate::body::{self, Body};

mod json;
mod plan;
mod raw;
mod sse;

pub use plan::{list_visibility, refuse_batched_lists};
#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod tests;

/// Which list a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `tools/list`: entries in `result.tools[]`, keyed by `name`.
    Tools,
    /// `prompts/list`: entries in `result.prompts[]`, keyed by `name`.
    Prompts,
    /// `resources/list`: entries in `result.resources[]`, keyed by `uri`.
    Resources,
    /// `resources/templates/list`: entries in `result.resourceTemplates[]`,
    /// keyed by `uriTemplate`.
    ResourceTemplates,
}

/// Decides whether the caller may see one entry.
pub type Allow = std::sync::Arc<dyn Fn(ListKind, &str) -> bool + Send + Sync>;

/// What to filter: the predicate, the max size of one SSE event / JSON body
/// that may be buffered, and the list request's id (for the error answer).
#[derive(Clone)]
pub struct ListFilter {
    /// The `id` of the list request (`null` for a notification or a stream
    /// that answers no request), for the JSON-RPC error sent when the list
    /// cannot be filtered.
    pub id: Value,
    /// Which list the request asked for; `None` for a GET stream, which may
    /// replay any answer (resumption with `Last-Event-ID`). Every list in a
    /// response is filtered either way; this is for logs.
    pub kind: Option<ListKind>,
    /// Whether the caller may see an entry; `None` on routes that do not
    /// filter lists, where only the transport is checked.
    pub allow: Option<Allow>,
    /// Largest JSON body or single SSE event buffered for filtering.
    pub max_event_bytes: usize,
    /// Past `max_event_bytes`, pass the response on unfiltered (the route's
    /// `pass_oversize_lists`) instead of failing closed.
    pub pass_oversize: bool,
}

/// Why a list response could not be filtered. Logged, never sent to clients:
/// they get the fixed JSON-RPC error from [`error_json`].
#[derive(Debug, thiserror::Error)]
enum FilterError {
    /// The body or one SSE event exceeds the buffering cap.
    #[error("list response exceeds {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The body or an SSE event's data is not JSON.
    #[error("list response is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON body is an array (JSON-RPC batch).
    #[error("list response is a JSON-RPC batch")]
    Batch,
    /// The list field exists but is not an array.
    #[error("`result.{field}` is not an array")]
    NotAList {
        /// The list field, e.g. `tools`.
        field: &'static str,
    },
    /// The body is compressed, so it cannot be parsed.
    #[error("list response has content-encoding {0:?}")]
    Encoded(HeaderValue),
    /// The upstream body failed while it was being buffered.
    #[error("upstream body failed: {0}")]
    Body(String),
    /// `Content-Type` missing, repeated, or not one this stage reads.
    #[error(
        "response media type is missing, repeated or not application/json or text/event-stream in UTF-8"
    )]
    Media,
    /// An SSE `endpoint` event: the legacy HTTP+SSE transport, whose
    /// session id travels in a query string the gateway does not bind.
    #[error("upstream uses the legacy HTTP+SSE transport (`endpoint` event)")]
    LegacyTransport,
}

/// The media types this stage understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    EventStream,
}

impl ListKind {
    /// Every kind, in the order their fields are looked for.
    pub const ALL: [ListKind; 4] = [
        Self::Tools,
        Self::Prompts,
        Self::Resources,
        Self::ResourceTemplates,
    ];

    /// The list method for a JSON-RPC method name, e.g. "tools/list" -> Some(Tools).
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "tools/list" => Some(Self::Tools),
            "prompts/list" => Some(Self::Prompts),
            "resources/list" => Some(Self::Resources),
            "resources/templates/list" => Some(Self::ResourceTemplates),
            _ => None,
        }
    }

    /// The array inside `result` that holds the entries.
    fn list_field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The string field that names one entry.
    fn key_field(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::ResourceTemplates => "uriTemplate",
        }
    }
}

impl std::fmt::Debug for ListFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListFilter")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("max_event_bytes", &self.max_event_bytes)
            .finish_non_exhaustive()
    }
}

impl ListFilter {
    /// Logs why filtering failed; the caller then answers with [`error_json`].
    fn log_failure(&self, err: &FilterError) {
        tracing::warn!(
            id = %self.id,
            kind = ?self.kind,
            error = %err,
            "list response could not be filtered; answering with a JSON-RPC error"
        );
    }
}

/// Wraps the upstream response so every list result in it loses disallowed
/// entries.
///
/// Async because a JSON body must be read whole before the new status and
/// `Content-Length` can be chosen; SSE and pass-through never wait here.
pub async fn filter_response(resp: Response<Body>, filter: ListFilter) -> Response<Body> {
    // Clients read no body on an error, on 202 (a notification or response
    // accepted) or on an empty one.
    let status = resp.status();
    if !status.is_success() || status == StatusCode::ACCEPTED || resp.body().is_end_stream() {
        return resp;
    }
    let media = media_type(resp.headers());
    if filter.allow.is_none() {
        // Transport checks only: an SSE stream is watched for the legacy
        // transport's `endpoint` event; anything else passes.
        return match media {
            Ok(Some(Media::EventStream)) => sse::wrap(resp, filter),
            _ => resp,
        };
    }
    // Fail closed: a body whose type we do not read the way a client might
    // (twice, another type or charset) could carry the list. A body with no
    // type at all is parsed by no SDK client, so only the answer to a list
    // request must have one.
    let media = match media {
        Ok(Some(media)) => media,
        Ok(None) if filter.kind.is_none() => return resp,
        Ok(None) => {
            filter.log_failure(&FilterError::Media);
            return fail_closed_response(&filter.id);
        }
        Err(err) => {
            filter.log_failure(&err);
            return fail_closed_response(&filter.id);
        }
    };
    // A compressed body cannot be parsed; passing it on would leak the list.
    let encoded = resp
        .headers()
        .get(CONTENT_ENCODING)
        .filter(|enc| !enc.as_bytes().eq_ignore_ascii_case(b"identity"));
    if let Some(enc) = encoded {
        filter.log_failure(&FilterError::Encoded(enc.clone()));
        return fail_closed_response(&filter.id);
    }
    match media {
        Media::Json => json::filter(resp, filter).await,
        Media::EventStream => sse::wrap(resp, filter),
    }
}

/// The one `Content-Type` of a response: `application/json` or
/// `text/event-stream`, case-insensitive, with no charset but UTF-8; `None`
/// when there is none.
fn media_type(headers: &HeaderMap) -> Result<Option<Media>, FilterError> {
    let mut values = headers.get_all(CONTENT_TYPE).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(FilterError::Media),
    };
    let value = value.to_str().map_err(|_| FilterError::Media)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let media = if essence.eq_ignore_ascii_case("application/json") {
        Media::Json
    } else if essence.eq_ignore_ascii_case("text/event-stream") {
        Media::EventStream
    } else {
        return Err(FilterError::Media);
    };
    for param in parts {
        if let Some((name, v)) = param.split_once('=') {
            let v = v.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset") && !v.eq_ignore_ascii_case("utf-8") {
                return Err(FilterError::Media);
            }
        }
    }
    Ok(Some(media))
}

/// The JSON-RPC error the client gets instead of a list we could not filter.
fn error_json(id: &Value) -> Vec<u8> {
    let msg = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32603,
            "message": "gateway could not filter the list response",
        },
    });
    // Serializing a `Value` with string keys cannot fail; fall back to the
    // null-id form rather than panic.
    serde_json::to_vec(&msg).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"gateway could not filter the list response"}}"#
            .to_vec()
    })
}

/// A 502 carrying [`error_json`].
// Built here rather than in `reject.rs`: the failure is only known after the
// upstream answered, inside this stage, and the body is a JSON-RPC message,
// not a gateway rejection.
fn fail_closed_response(id: &Value) -> Response<Body> {
    let bytes = error_json(id);
    let len = bytes.len();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

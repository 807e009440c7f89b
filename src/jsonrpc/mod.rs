//! Stage 5: read the JSON-RPC envelope of a POST body → [`Envelope`].
//!
//! Only what authorization needs is extracted (`method`, `id`, `params.name`,
//! `params.uri`, `params.ref`), in one pass over the bytes; the same bytes are
//! then forwarded unchanged. The reader is strict where the upstream's parser
//! could disagree with ours: a duplicate key anywhere is refused (serde_json
//! maps and JavaScript's `JSON.parse` keep the last value, so a smuggled second
//! `method` must never reach an upstream), as is a BOM, a non-`"2.0"`
//! `jsonrpc`, or nesting deeper than the limit. Escapes are decoded before
//! matching, so `"tools\u002fcall"` is `tools/call`.
//!
//! MCP 2026-07-28 also carries `Mcp-Method`/`Mcp-Name` headers;
//! [`version::check`] refuses any disagreement with the body, and the
//! decision is always taken from the body.

use serde::de::DeserializeSeed;

use crate::json::short;
use serde_json::Value;
use strict::{RawMessage, Top, TopSeed};

pub use crate::mcp::KNOWN_METHODS;

/// The longest `params.name`/`params.uri` considered; longer ones are refused
/// (bounds the cost of glob matching).
pub const MAX_TARGET_LEN: usize = 8 * 1024;

/// A parsed POST body.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// One message.
    Single(RpcCall),
    /// A JSON array of messages (removed from MCP in 2025-06-18, still accepted by some servers).
    Batch(Vec<RpcCall>),
}

/// One JSON-RPC message, reduced to what authorization needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    /// `method`; `None` for a response from the client to a server request.
    pub method: Option<String>,
    /// `id` (string, number or null); `None` for a notification.
    pub id: Option<Value>,
    /// What the call acts on.
    pub target: Target,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]` (2026-07-28).
    pub meta_version: Option<String>,
    /// `params._meta.traceparent` (W3C trace context; 2026-07-28, SEP-414).
    pub meta_traceparent: Option<String>,
    /// The body's own `params.name` / `params.uri` for the methods whose
    /// 2026-07-28 `Mcp-Name` header mirrors it (before canonicalization).
    pub raw_name: Option<String>,
}

/// The object of a call, for per-tool/resource/prompt rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The method has no target.
    None,
    /// `tools/call` of `params.name`.
    Tool(String),
    /// `resources/read|subscribe|unsubscribe` of `params.uri`, or a
    /// completion on a resource, in canonical form ([`crate::uri::canonical`]).
    Resource(String),
    /// `prompts/get` of `params.name`, or a completion on a prompt.
    Prompt(String),
    /// `subscriptions/listen` (2026-07-28) of every URI in
    /// `params.notifications.resourceSubscriptions`, each judged as
    /// `resources/subscribe`. Canonical, like [`Target::Resource`].
    Resources(Vec<String>),
    /// A method that names a target in some versions only, sent without it
    /// (method, missing field). Settled by [`Envelope::resolve`] before
    /// authorization; never allowed as it is.
    Missing(&'static str, &'static str),
}

/// Limits on the shape of a body.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Maximum nesting of arrays/objects.
    pub max_depth: usize,
    /// Maximum messages in a batch.
    pub max_batch: usize,
}

/// Why a body is not an acceptable JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonRpcError {
    /// Not JSON, a duplicate key, too deep, or the wrong shape.
    #[error("invalid JSON-RPC: {0}")]
    Invalid(String),
    /// `[]`.
    #[error("empty batch")]
    EmptyBatch,
    /// More messages than allowed.
    #[error("batch of {0} messages exceeds the limit")]
    BatchTooLarge(usize),
    /// A method that needs a target has none (or a non-string one).
    #[error("{0} requires {1}")]
    MissingTarget(&'static str, &'static str),
    /// The target exceeds [`MAX_TARGET_LEN`].
    #[error("target name or URI too long")]
    TargetTooLong,
    /// A resource URI that upstreams could read differently.
    #[error("{0}")]
    AmbiguousUri(#[from] crate::uri::UriError),
    /// A method or name with control characters or surrounding whitespace.
    #[error("{0} contains a control character or leading or trailing whitespace")]
    AmbiguousName(&'static str),
    /// A `*/list` call inside a batch, on a route that filters lists.
    #[error("{0} cannot be batched on a route that filters lists")]
    BatchedList(String),
}

impl RpcCall {
    /// The method name, or `""` for a response.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// The tool a `tools/call` names.
    pub fn tool(&self) -> Option<&str> {
        match &self.target {
            Target::Tool(name) => Some(name),
            _ => None,
        }
    }
}

impl Target {
    /// The tool/prompt name or resource URI (`None` for none or several).
    pub fn name(&self) -> Option<&str> {
        match self {
            Target::None | Target::Resources(_) | Target::Missing(..) => None,
            Target::Tool(s) | Target::Resource(s) | Target::Prompt(s) => Some(s),
        }
    }
}

impl Envelope {
    /// The id of a single request, for JSON-RPC-shaped refusals.
    pub fn single_id(&self) -> Option<Value> {
        match self {
            Envelope::Single(call) => call.id.clone(),
            Envelope::Batch(_) => None,
        }
    }

    /// The messages, one or many.
    pub fn calls(&self) -> &[RpcCall] {
        match self {
            Envelope::Single(c) => std::slice::from_ref(c),
            Envelope::Batch(cs) => cs,
        }
    }
}

/// Bodies up to this size are parsed on the worker thread (well under a
/// millisecond); larger ones on the runtime's blocking pool, so that a
/// worst-case 4 MiB body (tens of milliseconds) never holds up the other
/// connections of its worker.
const PARSE_INLINE_MAX: usize = 64 << 10;

/// [`parse`], off the worker thread when the body is large.
pub async fn parse_off_thread(
    body: &bytes::Bytes,
    limits: ParseLimits,
) -> Result<Envelope, JsonRpcError> {
    if body.len() <= PARSE_INLINE_MAX {
        return parse(body, limits);
    }
    let body = body.clone();
    tokio::task::spawn_blocking(move || parse(&body, limits))
        .await
        .unwrap_or_else(|_| Err(JsonRpcError::Invalid("parser task failed".into())))
}

/// Parses a POST body.
pub fn parse(body: &[u8], limits: ParseLimits) -> Result<Envelope, JsonRpcError> {
    if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(JsonRpcError::Invalid("byte order mark".into()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw = TopSeed { limits }
        .deserialize(&mut de)
        .map_err(|e| JsonRpcError::Invalid(short(&e)))?;
    de.end().map_err(|e| JsonRpcError::Invalid(short(&e)))?;
    match raw {
        Top::Single(m) => Ok(Envelope::Single(m.into_call()?)),
        Top::Batch(ms) if ms.is_empty() => Err(JsonRpcError::EmptyBatch),
        Top::Batch(ms) => Ok(Envelope::Batch(
            ms.into_iter()
                .map(RawMessage::into_call)
                .collect::<Result<_, _>>()?,
        )),
    }
}

pub mod media;
mod modern;
mod strict;
pub mod version;

#[cfg(test)]
mod tests;

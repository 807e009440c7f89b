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
//! [`check_headers`] refuses any disagreement with the body, and the decision
//! is always taken from the body.

use base64::Engine;
use http::HeaderMap;
use serde::de::DeserializeSeed;

use crate::json::short;
use serde_json::Value;
use strict::{RawMessage, Top, TopSeed};

/// Every method an MCP client sends (2025-06-18 … 2026-07-28), requests and
/// notifications. Used to warn about misspelled policy keys and to bound
/// metric labels.
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
    "tasks/list",
    "server/discover",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

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
}

/// The object of a call, for per-tool/resource/prompt rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The method has no target.
    None,
    /// `tools/call` of `params.name`.
    Tool(String),
    /// `resources/read|subscribe|unsubscribe` of `params.uri`, or a
    /// completion on a resource, in canonical form ([`uri::canonical`]).
    Resource(String),
    /// `prompts/get` of `params.name`, or a completion on a prompt.
    Prompt(String),
    /// `subscriptions/listen` (2026-07-28) of every URI in
    /// `params.notifications.resourceSubscriptions`, each judged as
    /// `resources/subscribe`. Canonical, like [`Target::Resource`].
    Resources(Vec<String>),
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
    AmbiguousUri(#[from] uri::UriError),
    /// A method or name with control characters or surrounding whitespace.
    #[error("{0} contains a control character or leading or trailing whitespace")]
    AmbiguousName(&'static str),
    /// `Mcp-Method`/`Mcp-Name` disagree with the body.
    #[error("{0} header does not match the body")]
    HeaderMismatch(&'static str),
    /// A `*/list` call inside a batch, on a route that filters lists.
    #[error("{0} cannot be batched on a route that filters lists")]
    BatchedList(String),
}

impl RpcCall {
    /// The method name, or `""` for a response.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
}

impl Target {
    /// The tool/prompt name or resource URI (`None` for none or several).
    pub fn name(&self) -> Option<&str> {
        match self {
            Target::None | Target::Resources(_) => None,
            Target::Tool(s) | Target::Resource(s) | Target::Prompt(s) => Some(s),
        }
    }
}

impl Envelope {
    /// The messages, one or many.
    pub fn calls(&self) -> &[RpcCall] {
        match self {
            Envelope::Single(c) => std::slice::from_ref(c),
            Envelope::Batch(cs) => cs,
        }
    }
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

/// Checks MCP 2026-07-28 `Mcp-Method`/`Mcp-Name` headers against the body.
pub fn check_headers(headers: &HeaderMap, envelope: &Envelope) -> Result<(), JsonRpcError> {
    let one = |name: &'static str| -> Result<Option<&str>, JsonRpcError> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(JsonRpcError::HeaderMismatch(name));
        }
        first
            .map(|v| v.to_str().map_err(|_| JsonRpcError::HeaderMismatch(name)))
            .transpose()
    };
    let method = one("mcp-method")?;
    let name = one("mcp-name")?;
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let Envelope::Single(call) = envelope else {
        return Err(JsonRpcError::HeaderMismatch("Mcp-Method"));
    };
    if let Some(m) = method {
        if call.method.as_deref() != Some(m) {
            return Err(JsonRpcError::HeaderMismatch("Mcp-Method"));
        }
    }
    if let Some(n) = name {
        let decoded = decode_header_value(n).ok_or(JsonRpcError::HeaderMismatch("Mcp-Name"))?;
        // The body's URI is held in canonical form; the header's is compared
        // in the same form.
        let matches = match &call.target {
            Target::Tool(s) | Target::Prompt(s) => decoded == *s,
            Target::Resource(s) => uri::canonical(&decoded).is_ok_and(|h| h == *s),
            Target::None | Target::Resources(_) => false,
        };
        if !matches {
            return Err(JsonRpcError::HeaderMismatch("Mcp-Name"));
        }
    }
    Ok(())
}

/// Decodes `=?base64?…?=` header values; other values are taken as they are.
fn decode_header_value(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(v.to_owned()),
    }
}

pub mod media;
mod strict;
pub mod uri;

#[cfg(test)]
mod tests;

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

use std::fmt;

use base64::Engine;
use http::HeaderMap;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

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
    /// `resources/read|subscribe|unsubscribe` of `params.uri`, or a completion on a resource.
    Resource(String),
    /// `prompts/get` of `params.name`, or a completion on a prompt.
    Prompt(String),
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
    /// A resource URI with dot-segments or encoded separators.
    #[error("resource URI with dot-segments or encoded separators")]
    AmbiguousUri,
    /// `Mcp-Method`/`Mcp-Name` disagree with the body.
    #[error("{0} header does not match the body")]
    HeaderMismatch(&'static str),
}

impl RpcCall {
    /// The method name, or `""` for a response.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
}

impl Target {
    /// The tool/prompt name or resource URI.
    pub fn name(&self) -> Option<&str> {
        match self {
            Target::None => None,
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

/// serde_json's message without the position suffix noise kept short.
fn short(e: &serde_json::Error) -> String {
    let s = e.to_string();
    s.chars().take(120).collect()
}

/// Checks that `bytes` is one JSON value with no duplicate object keys and
/// nesting within `max_depth`. Used for JWT headers and payloads, where a
/// duplicate claim could be read differently by another parser.
pub fn check_strict_json(bytes: &[u8], max_depth: usize) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strict {
        depth: 1,
        max: max_depth,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| short(&e))
}

/// A resource URI the policy can judge: no dot-segments, no percent-encoded
/// dots or separators, no backslashes. Servers may normalize such URIs after
/// the gateway matched them (`file:///public/../private`), so they are refused.
fn is_judgeable_uri(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    let encoded = ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e));
    let dot_segment = uri
        .split(['/', '?', '#'])
        .skip(1)
        .any(|seg| seg == "." || seg == "..");
    !encoded && !dot_segment && !uri.contains('\\')
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
        let body_name = match &call.target {
            Target::Tool(s) | Target::Resource(s) | Target::Prompt(s) => s.as_str(),
            Target::None => return Err(JsonRpcError::HeaderMismatch("Mcp-Name")),
        };
        if decoded != body_name {
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

// ---- the one-pass strict reader ------------------------------------------------

enum Top {
    Single(Box<RawMessage>),
    Batch(Vec<RawMessage>),
}

#[derive(Default)]
struct RawMessage {
    jsonrpc: Option<String>,
    method: Option<String>,
    id: Option<Value>,
    has_result: bool,
    has_error: bool,
    params: RawParams,
}

#[derive(Default)]
struct RawParams {
    name: Option<Scalar>,
    uri: Option<Scalar>,
    reference: Option<RawRef>,
}

#[derive(Default)]
struct RawRef {
    kind: Option<Scalar>,
    name: Option<Scalar>,
    uri: Option<Scalar>,
}

/// A value we want as a string; anything else is remembered as "not a string".
enum Scalar {
    Str(String),
    Other,
}

impl RawMessage {
    fn into_call(self) -> Result<RpcCall, JsonRpcError> {
        if self.jsonrpc.as_deref() != Some("2.0") {
            return Err(JsonRpcError::Invalid("`jsonrpc` must be \"2.0\"".into()));
        }
        let Some(method) = self.method else {
            // A response to a server request: needs an id and exactly one of result/error.
            if self.id.is_none() || self.has_result == self.has_error {
                return Err(JsonRpcError::Invalid(
                    "a message needs `method`, or `id` with `result` or `error`".into(),
                ));
            }
            return Ok(RpcCall {
                method: None,
                id: self.id,
                target: Target::None,
            });
        };
        if self.has_result || self.has_error {
            return Err(JsonRpcError::Invalid(
                "a request cannot carry `result` or `error`".into(),
            ));
        }
        let p = self.params;
        let target = match method.as_str() {
            "tools/call" => Target::Tool(required(p.name, "tools/call", "params.name")?),
            "prompts/get" => Target::Prompt(required(p.name, "prompts/get", "params.name")?),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Target::Resource(required(p.uri, "resources/*", "params.uri")?)
            }
            "completion/complete" => {
                let r = p.reference.ok_or(JsonRpcError::MissingTarget(
                    "completion/complete",
                    "params.ref",
                ))?;
                match r.kind {
                    Some(Scalar::Str(k)) if k == "ref/prompt" => {
                        Target::Prompt(required(r.name, "completion/complete", "params.ref.name")?)
                    }
                    Some(Scalar::Str(k)) if k == "ref/resource" => {
                        Target::Resource(required(r.uri, "completion/complete", "params.ref.uri")?)
                    }
                    _ => {
                        return Err(JsonRpcError::MissingTarget(
                            "completion/complete",
                            "params.ref.type",
                        ));
                    }
                }
            }
            _ => Target::None,
        };
        if let Target::Resource(uri) = &target {
            if !is_judgeable_uri(uri) {
                return Err(JsonRpcError::AmbiguousUri);
            }
        }
        Ok(RpcCall {
            method: Some(method),
            id: self.id,
            target,
        })
    }
}

fn required(
    v: Option<Scalar>,
    method: &'static str,
    what: &'static str,
) -> Result<String, JsonRpcError> {
    match v {
        Some(Scalar::Str(s)) if s.len() > MAX_TARGET_LEN => Err(JsonRpcError::TargetTooLong),
        Some(Scalar::Str(s)) => Ok(s),
        _ => Err(JsonRpcError::MissingTarget(method, what)),
    }
}

struct TopSeed {
    limits: ParseLimits,
}

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC object or an array of them")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top, A::Error> {
        MessageSeed {
            depth: 1,
            max: self.limits.max_depth,
        }
        .visit_map(map)
        .map(|m| Top::Single(Box::new(m)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut out = Vec::new();
        let seed = || MessageSeed {
            depth: 2,
            max: self.limits.max_depth,
        };
        while let Some(m) = seq.next_element_seed(seed())? {
            out.push(m);
            if out.len() > self.limits.max_batch {
                return Err(de::Error::custom(format!(
                    "batch longer than {}",
                    self.limits.max_batch
                )));
            }
        }
        Ok(Top::Batch(out))
    }
}

struct MessageSeed {
    depth: usize,
    max: usize,
}

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = RawMessage;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawMessage, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed {
    type Value = RawMessage;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMessage, A::Error> {
        let mut m = RawMessage::default();
        let mut keys = Keys::default();
        let inner = Strict {
            depth: self.depth + 1,
            max: self.max,
        };
        while let Some(key) = map.next_key::<String>()? {
            keys.insert::<A::Error>(&key)?;
            match key.as_str() {
                "jsonrpc" => m.jsonrpc = Some(map.next_value::<String>()?),
                "method" => m.method = Some(map.next_value::<String>()?),
                "id" => m.id = Some(map.next_value_seed(IdSeed)?),
                "params" => m.params = map.next_value_seed(ParamsSeed { inner })?,
                "result" => {
                    map.next_value_seed(inner)?;
                    m.has_result = true;
                }
                "error" => {
                    map.next_value_seed(inner)?;
                    m.has_error = true;
                }
                _ => map.next_value_seed(inner)?,
            }
        }
        Ok(m)
    }
}

/// Keys seen in one object; refuses duplicates.
#[derive(Default)]
struct Keys(Vec<String>);

impl Keys {
    fn insert<E: de::Error>(&mut self, key: &str) -> Result<(), E> {
        if self.0.iter().any(|k| k == key) {
            return Err(E::custom(format!(
                "duplicate key `{}`",
                key.chars().take(40).collect::<String>()
            )));
        }
        self.0.push(key.to_owned());
        Ok(())
    }
}

struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for IdSeed {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or null id")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

struct ParamsSeed {
    inner: Strict,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = RawParams;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawParams, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed {
    type Value = RawParams;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("params object or array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParams, A::Error> {
        self.inner.check_depth::<A::Error>()?;
        let mut p = RawParams::default();
        let mut keys = Keys::default();
        let inner = self.inner.deeper();
        while let Some(key) = map.next_key::<String>()? {
            keys.insert::<A::Error>(&key)?;
            match key.as_str() {
                "name" => p.name = Some(map.next_value_seed(ScalarSeed { inner })?),
                "uri" => p.uri = Some(map.next_value_seed(ScalarSeed { inner })?),
                "ref" => p.reference = Some(map.next_value_seed(RefSeed { inner })?),
                _ => map.next_value_seed(inner)?,
            }
        }
        Ok(p)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawParams, A::Error> {
        self.inner.visit_seq(seq)?;
        Ok(RawParams::default())
    }
}

struct RefSeed {
    inner: Strict,
}

impl<'de> DeserializeSeed<'de> for RefSeed {
    type Value = RawRef;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawRef, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RefSeed {
    type Value = RawRef;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a completion reference object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRef, A::Error> {
        self.inner.check_depth::<A::Error>()?;
        let mut r = RawRef::default();
        let mut keys = Keys::default();
        let inner = self.inner.deeper();
        while let Some(key) = map.next_key::<String>()? {
            keys.insert::<A::Error>(&key)?;
            match key.as_str() {
                "type" => r.kind = Some(map.next_value_seed(ScalarSeed { inner })?),
                "name" => r.name = Some(map.next_value_seed(ScalarSeed { inner })?),
                "uri" => r.uri = Some(map.next_value_seed(ScalarSeed { inner })?),
                _ => map.next_value_seed(inner)?,
            }
        }
        Ok(r)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawRef, A::Error> {
        self.inner.visit_seq(seq)?;
        Ok(RawRef::default())
    }
}

struct ScalarSeed {
    inner: Strict,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        self.inner.visit_map(map)?;
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        self.inner.visit_seq(seq)?;
        Ok(Scalar::Other)
    }
}

/// Walks any value, refusing duplicate keys and excess depth, keeping nothing.
/// (`serde::de::IgnoredAny` would skip duplicate keys unchecked.)
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
    max: usize,
}

impl Strict {
    fn deeper(self) -> Self {
        Self {
            depth: self.depth + 1,
            max: self.max,
        }
    }
    fn check_depth<E: de::Error>(self) -> Result<(), E> {
        if self.depth > self.max {
            Err(E::custom(format!("nesting deeper than {}", self.max)))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.check_depth::<A::Error>()?;
        let mut keys = Keys::default();
        while let Some(key) = map.next_key::<String>()? {
            keys.insert::<A::Error>(&key)?;
            map.next_value_seed(self.deeper())?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.check_depth::<A::Error>()?;
        while seq.next_element_seed(self.deeper())?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests;

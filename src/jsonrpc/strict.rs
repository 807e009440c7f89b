//! Stage 5, the one-pass strict reader behind [`super::parse`]: serde
//! visitors that keep only the envelope fields and refuse duplicate keys and
//! excess depth everywhere else. Nothing here allocates for values it skips.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::modern::{Meta, MetaSeed, NotificationsSeed};
use super::{JsonRpcError, MAX_TARGET_LEN, ParseLimits, RpcCall, Target};
use crate::json::{KeySet, Strict, Text};
use crate::uri;

pub(super) enum Top {
    /// One message.
    Single(Box<RawMessage>),
    Batch(Vec<RawMessage>),
}

#[derive(Default)]
pub(super) struct RawMessage {
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
    /// `notifications.resourceSubscriptions` of `subscriptions/listen`
    /// (2026-07-28): `None` when absent, `Some(Err(()))` when not an array of
    /// strings.
    subscriptions: Option<Result<Vec<String>, ()>>,
    /// What `_meta` carries for the gateway.
    meta: Meta,
}

#[derive(Default)]
struct RawRef {
    kind: Option<Scalar>,
    name: Option<Scalar>,
    uri: Option<Scalar>,
}

/// A value we want as a string; anything else is remembered as "not a string".
pub(super) enum Scalar {
    Str(String),
    Other,
}

impl RawMessage {
    pub(super) fn into_call(self) -> Result<RpcCall, JsonRpcError> {
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
                meta_version: None,
                meta_traceparent: None,
                raw_name: None,
            });
        };
        if self.has_result || self.has_error {
            return Err(JsonRpcError::Invalid(
                "a request cannot carry `result` or `error`".into(),
            ));
        }
        check_name(&method, "method")?;
        let p = self.params;
        let target = match method.as_str() {
            "tools/call" => Target::Tool(required(p.name, "tools/call", "params.name")?),
            "prompts/get" => Target::Prompt(required(p.name, "prompts/get", "params.name")?),
            "resources/read" => Target::Resource(required(p.uri, "resources/*", "params.uri")?),
            // Removed in 2026-07-28: without a URI, whether that is an error
            // depends on the request's version (`Envelope::resolve`).
            "resources/subscribe" | "resources/unsubscribe" => match p.uri {
                None => Target::Missing(method_name(&method), "params.uri"),
                uri => Target::Resource(required(uri, "resources/*", "params.uri")?),
            },
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
            "subscriptions/listen" => match p.subscriptions {
                None => Target::None,
                Some(Ok(uris)) => Target::Resources(
                    uris.iter()
                        .map(|u| canonical_uri(u))
                        .collect::<Result<_, _>>()?,
                ),
                Some(Err(())) => {
                    return Err(JsonRpcError::MissingTarget(
                        "subscriptions/listen",
                        "params.notifications.resourceSubscriptions as an array of strings",
                    ));
                }
            },
            _ => Target::None,
        };
        // The body's own string, for the 2026-07-28 `Mcp-Name` comparison.
        let raw_name = match method.as_str() {
            "tools/call" | "prompts/get" | "resources/read" => target.name().map(str::to_owned),
            _ => None,
        };
        let target = match target {
            Target::Resource(raw) => Target::Resource(canonical_uri(&raw)?),
            Target::Tool(name) => {
                check_name(&name, "params.name")?;
                Target::Tool(name)
            }
            Target::Prompt(name) => {
                check_name(&name, "params.name")?;
                Target::Prompt(name)
            }
            other => other,
        };
        Ok(RpcCall {
            method: Some(method),
            id: self.id,
            target,
            meta_version: p.meta.version,
            meta_traceparent: p.meta.traceparent,
            raw_name,
        })
    }
}

fn method_name(method: &str) -> &'static str {
    match method {
        "resources/unsubscribe" => "resources/unsubscribe",
        _ => "resources/subscribe",
    }
}

/// A method, tool or prompt name that every parser reads the same way: no
/// control characters (a C server stops at NUL), no leading or trailing
/// whitespace (a trimming server would drop it).
fn check_name(name: &str, what: &'static str) -> Result<(), JsonRpcError> {
    let bad = name.chars().any(char::is_control)
        || name.starts_with(char::is_whitespace)
        || name.ends_with(char::is_whitespace);
    if bad {
        Err(JsonRpcError::AmbiguousName(what))
    } else {
        Ok(())
    }
}

fn canonical_uri(raw: &str) -> Result<String, JsonRpcError> {
    if raw.len() > MAX_TARGET_LEN {
        return Err(JsonRpcError::TargetTooLong);
    }
    uri::canonical(raw).map_err(JsonRpcError::AmbiguousUri)
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

pub(super) struct TopSeed {
    pub(super) limits: ParseLimits,
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
        let mut keys = KeySet::default();
        let inner = Strict {
            depth: self.depth + 1,
            max: self.max,
        };
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key.clone())?;
            match key.as_ref() {
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
        let mut keys = KeySet::default();
        let inner = self.inner.deeper();
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key.clone())?;
            match key.as_ref() {
                "name" => p.name = Some(map.next_value_seed(ScalarSeed { inner })?),
                "uri" => p.uri = Some(map.next_value_seed(ScalarSeed { inner })?),
                "ref" => p.reference = Some(map.next_value_seed(RefSeed { inner })?),
                "notifications" => {
                    p.subscriptions = map.next_value_seed(NotificationsSeed { inner })?;
                }
                "_meta" => {
                    p.meta = map.next_value_seed(MetaSeed { inner })?;
                }
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
        let mut keys = KeySet::default();
        let inner = self.inner.deeper();
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key.clone())?;
            match key.as_ref() {
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

#[derive(Clone, Copy)]
pub(super) struct ScalarSeed {
    pub(super) inner: Strict,
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

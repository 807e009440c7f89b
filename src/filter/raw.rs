//! Stage 8, the rewrite itself: in one message (or an SSE batch) that
//! carries `result.<list>`, drop the list entries the caller may not see,
//! without building a DOM.
//!
//! The message and its `result` are read as members whose values stay raw
//! (`serde_json::value::RawValue`); each list entry is read only for its key
//! (`name`, `uri` or `uriTemplate`). The output is those raw bytes re-joined:
//! what the upstream wrote, less the hidden entries. A `serde_json::Value`
//! round trip cost a third of the gateway's time on `tools/list` in
//! allocations alone (bench/README.md).
//!
//! Fail closed: a duplicate key in a message or its `result` is an error,
//! because the client and the gateway could then read different lists; an
//! entry whose key is missing, not a string, or given twice is dropped.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Allow, FilterError, ListKind};
use crate::json::{KeySet, Text};

/// One JSON object: its members in order, values unparsed. Duplicate keys
/// are refused.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// What [`rewrite_any`] found.
pub(super) enum Rewrite {
    /// No list in it: the bytes go on unchanged.
    NoMatch,
    /// A message carrying the list, filtered, as it must be sent.
    Matched(Vec<u8>),
}

/// Rewrites `json` if it carries the list, or a batch holding such a message
/// (legal on an SSE stream, and it must not smuggle the list past us).
pub(super) fn rewrite_any(json: &[u8], allow: &Allow) -> Result<Rewrite, FilterError> {
    if first_byte(json) != Some(b'[') {
        return rewrite(json, allow);
    }
    let items: Vec<&RawValue> = serde_json::from_slice(json)?;
    let mut matched = false;
    let mut parts = Vec::with_capacity(items.len());
    for item in &items {
        match rewrite(item.get().as_bytes(), allow)? {
            Rewrite::Matched(bytes) => {
                matched = true;
                parts.push(Cow::Owned(bytes));
            }
            Rewrite::NoMatch => parts.push(Cow::Borrowed(item.get().as_bytes())),
        }
    }
    if !matched {
        return Ok(Rewrite::NoMatch);
    }
    Ok(Rewrite::Matched(join_array(&parts, json.len())))
}

/// Rewrites one message if it carries `result.<list>`, whatever its `id`.
/// Clients match responses to requests by id in their own ways (the TS SDK
/// by `Number(id)`, the Python SDK by `int(id)`), so any id could be read as
/// the list request's; in the answer to a list request, every list is
/// filtered. Filtering a list that was not ours hides nothing it should not.
pub(super) fn rewrite(json: &[u8], allow: &Allow) -> Result<Rewrite, FilterError> {
    if first_byte(json) != Some(b'{') {
        // Not an object, so not our response; but it must still be JSON.
        serde_json::from_slice::<IgnoredAny>(json)?;
        return Ok(Rewrite::NoMatch);
    }
    let message: Members<'_> = serde_json::from_slice(json)?;
    let Some(result) = message.get("result") else {
        return Ok(Rewrite::NoMatch);
    };
    if first_byte(result.get().as_bytes()) != Some(b'{') {
        // Nothing listed, nothing to hide.
        return Ok(Rewrite::NoMatch);
    }
    let result_members: Members<'_> = serde_json::from_str(result.get())?;
    // Every list the result carries is filtered, not only the one that was
    // asked for: a resumed or GET stream has no request to say which.
    let mut replaced: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for kind in ListKind::ALL {
        let field = kind.list_field();
        let Some(list) = result_members.get(field) else {
            continue;
        };
        replaced.push((field, filter_list(list, kind, allow)?));
    }
    // MCP 2026-07-28 caching hints: a result the gateway answers for one
    // caller (a list it filtered for them, or anything it let them read) is
    // that caller's, so a shared cache must not hand it to another.
    let scope = result_members.get("cacheScope");
    let hinted = scope.is_some() || result_members.get("ttlMs").is_some();
    let shared = scope.is_some_and(|s| s.get() != r#""private""#);
    if shared || (hinted && !replaced.is_empty()) {
        replaced.push(("cacheScope", br#""private""#.to_vec()));
    }
    if replaced.is_empty() {
        return Ok(Rewrite::NoMatch);
    }
    let result = result_members.write_with(&replaced, result.get().len())?;
    Ok(Rewrite::Matched(
        message.write_with(&[("result", result)], json.len())?,
    ))
}

/// The list's JSON array without the entries `allow` refuses.
fn filter_list(list: &RawValue, kind: ListKind, allow: &Allow) -> Result<Vec<u8>, FilterError> {
    let field = kind.list_field();
    let items: Vec<&RawValue> =
        serde_json::from_str(list.get()).map_err(|_| FilterError::NotAList { field })?;
    let key = Probe(Some(kind.key_field()));
    let mut kept = Vec::with_capacity(items.len());
    for item in &items {
        let mut de = serde_json::Deserializer::from_str(item.get());
        // An entry we cannot name is an entry we cannot authorize.
        let visible = key
            .deserialize(&mut de)?
            .is_some_and(|name| allow(kind, &name));
        if visible {
            kept.push(Cow::Borrowed(item.get().as_bytes()));
        }
    }
    tracing::debug!(
        ?kind,
        kept = kept.len(),
        hidden = items.len() - kept.len(),
        "filtered list response"
    );
    Ok(join_array(&kept, list.get().len()))
}

impl<'a> Members<'a> {
    /// The raw value of the member `key`.
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The object, compact, with the values of the `replaced` keys swapped;
    /// a replaced key the object lacks is added at the end.
    fn write_with(
        &self,
        replaced: &[(&str, Vec<u8>)],
        hint: usize,
    ) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::with_capacity(hint);
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, k.as_ref())?;
            out.push(b':');
            match replaced.iter().find(|(key, _)| k == key) {
                Some((_, value)) => out.extend_from_slice(value),
                None => out.extend_from_slice(v.get().as_bytes()),
            }
        }
        for (key, value) in replaced {
            if self.get(key).is_none() {
                if out.len() > 1 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, key)?;
                out.push(b':');
                out.extend_from_slice(value);
            }
        }
        out.push(b'}');
        Ok(out)
    }
}

fn join_array(items: &[Cow<'_, [u8]>], hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hint);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

fn first_byte(json: &[u8]) -> Option<u8> {
    json.iter().copied().find(|b| !b.is_ascii_whitespace())
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                let mut keys = KeySet::default();
                while let Some(Text(key)) = map.next_key()? {
                    keys.insert::<A::Error>(key.clone())?;
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// `Probe(Some(key))` reads a list entry for the string under `key`: `None`
/// when the entry is not an object, lacks the key, has it twice, or has a
/// non-string there. `Probe(None)` reads a value: `Some` if it is a string.
/// Everything else is skipped.
#[derive(Clone, Copy)]
struct Probe(Option<&'static str>);

impl<'de> DeserializeSeed<'de> for Probe {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.is_none().then_some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_none().then(|| Cow::Owned(v.to_owned())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut twice = false;
        while let Some(Text(key)) = map.next_key()? {
            if self.0 != Some(key.as_ref()) {
                map.next_value::<IgnoredAny>()?;
            } else if found.is_some() {
                twice = true;
                map.next_value::<IgnoredAny>()?;
            } else {
                found = Some(map.next_value_seed(Probe(None))?);
            }
        }
        Ok(if twice { None } else { found.flatten() })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

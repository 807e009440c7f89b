//! Stage 5, the strict reader's seeds for the MCP 2026-07-28 fields of
//! `params`: `notifications.resourceSubscriptions` of `subscriptions/listen`
//! (judged as `resources/subscribe`) and the `_meta` protocol version (which
//! decides the request's version, `version.rs`). Everything else in them is
//! walked strictly and dropped.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::strict::{Scalar, ScalarSeed};
use crate::json::{KeySet, Strict, Text};

/// `params.notifications` of `subscriptions/listen`: keeps
/// `resourceSubscriptions`, checks the rest strictly.
pub(super) struct NotificationsSeed {
    pub(super) inner: Strict,
}

impl<'de> DeserializeSeed<'de> for NotificationsSeed {
    type Value = Option<Result<Vec<String>, ()>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NotificationsSeed {
    type Value = Option<Result<Vec<String>, ()>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a notifications object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.inner.check_depth::<A::Error>()?;
        let mut out = None;
        let mut keys = KeySet::default();
        let inner = self.inner.deeper();
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key.clone())?;
            if key == "resourceSubscriptions" {
                out = Some(map.next_value_seed(StringsSeed { inner })?);
            } else {
                map.next_value_seed(inner)?;
            }
        }
        Ok(out)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)?;
        Ok(Some(Err(())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(Err(())))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(Err(())))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(Err(())))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(Err(())))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(Err(())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// What the gateway reads from `params._meta`.
#[derive(Default)]
pub(super) struct Meta {
    /// `io.modelcontextprotocol/protocolVersion` (2026-07-28), when a string.
    pub(super) version: Option<String>,
    /// `traceparent` (W3C trace context, reserved by 2026-07-28), when a
    /// string of at most [`MAX_TRACEPARENT`] bytes.
    pub(super) traceparent: Option<String>,
}

/// A version-00 `traceparent` is 55 bytes; later versions may append fields.
const MAX_TRACEPARENT: usize = 128;

/// `params._meta`: keeps the protocol version (2026-07-28) and the trace
/// context, checks the rest strictly.
pub(super) struct MetaSeed {
    pub(super) inner: Strict,
}

impl<'de> DeserializeSeed<'de> for MetaSeed {
    type Value = Meta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetaSeed {
    type Value = Meta;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a _meta object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.inner.check_depth::<A::Error>()?;
        let mut out = Meta::default();
        let mut keys = KeySet::default();
        let inner = self.inner.deeper();
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key.clone())?;
            if key == crate::jsonrpc::version::META_KEY {
                if let Scalar::Str(v) = map.next_value_seed(ScalarSeed { inner })? {
                    out.version = Some(v);
                }
            } else if key == "traceparent" {
                if let Scalar::Str(v) = map.next_value_seed(ScalarSeed { inner })? {
                    out.traceparent = Some(v).filter(|v| v.len() <= MAX_TRACEPARENT);
                }
            } else {
                map.next_value_seed(inner)?;
            }
        }
        Ok(out)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)?;
        Ok(Meta::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Meta::default())
    }
}

/// An array whose items must all be strings; `Err(())` otherwise (the
/// value is still walked strictly).
struct StringsSeed {
    inner: Strict,
}

impl<'de> DeserializeSeed<'de> for StringsSeed {
    type Value = Result<Vec<String>, ()>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringsSeed {
    type Value = Result<Vec<String>, ()>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        self.inner.check_depth::<A::Error>()?;
        let mut out = Ok(Vec::new());
        let item = ScalarSeed {
            inner: self.inner.deeper(),
        };
        while let Some(v) = seq.next_element_seed(item)? {
            match (v, &mut out) {
                (Scalar::Str(s), Ok(list)) => list.push(s),
                _ => out = Err(()),
            }
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(map)?;
        Ok(Err(()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(()))
    }
}

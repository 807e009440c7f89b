//! Strict JSON reading, shared by every reader of attacker bytes: the
//! JSON-RPC envelope (stage 5), JWT headers and claims (stage 4) and the list
//! filter (stage 8). A leaf: it imports no stage.
//!
//! Two parsers that disagree on a duplicate key read different documents
//! (serde_json maps, `JSON.parse` and Python keep the last value), so every
//! object is checked for duplicates, in time linear in its size: [`KeySet`]
//! scans a short list for small objects and, past [`KeySet::SMALL`] keys,
//! keeps a set of 64-bit key hashes (SipHash keyed at random, so colliding
//! keys cannot be precomputed; a hash seen twice is confirmed against the
//! keys themselves). A 4 MiB object of 350,000 keys costs one pass, not
//! 350,000² comparisons; hashes rather than keys in the set keep it small
//! enough to stay in cache (bench/README.md, "Parse cost").

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The keys of one object seen so far.
#[derive(Default)]
pub struct KeySet<'de> {
    keys: Vec<Cow<'de, str>>,
    /// Past [`Self::SMALL`] keys: their keyed hashes.
    hashes: Option<(RandomState, HashSet<u64, BuildHasherDefault<Prehashed>>)>,
}

/// The hasher of a set whose items are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, to stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A string that borrows from the input unless it had escapes.
pub struct Text<'de>(pub Cow<'de, str>);

/// Walks any value, refusing duplicate keys and nesting deeper than `max`,
/// keeping nothing. (`serde::de::IgnoredAny` would skip duplicates unchecked.)
#[derive(Clone, Copy, Debug)]
pub struct Strict {
    /// Nesting depth of the value about to be read (the top level is 1).
    pub depth: usize,
    /// The deepest nesting allowed.
    pub max: usize,
}

impl<'de> KeySet<'de> {
    /// Objects up to this many keys are checked by a linear scan, which is
    /// faster than hashing for the few keys JSON-RPC messages have.
    pub const SMALL: usize = 16;

    /// Records `key`; an error if the object already had it.
    pub fn insert<E: de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        if self.hashes.is_none() && self.keys.len() >= Self::SMALL {
            let state = RandomState::new();
            let set = self.keys.iter().map(|k| state.hash_one(k)).collect();
            self.hashes = Some((state, set));
        }
        let fresh = match &mut self.hashes {
            None => !self.keys.contains(&key),
            // A hash seen before is a duplicate only if the key is.
            Some((state, set)) => set.insert(state.hash_one(&key)) || !self.keys.contains(&key),
        };
        if fresh {
            self.keys.push(key);
            Ok(())
        } else {
            Err(E::custom(format!(
                "duplicate key `{}`",
                key.chars().take(40).collect::<String>()
            )))
        }
    }
}

impl Strict {
    /// The walker for a value one level down.
    pub fn deeper(self) -> Self {
        Self {
            depth: self.depth + 1,
            max: self.max,
        }
    }

    /// An error when this level is past the limit.
    pub fn check_depth<E: de::Error>(self) -> Result<(), E> {
        if self.depth > self.max {
            Err(E::custom(format!("nesting deeper than {}", self.max)))
        } else {
            Ok(())
        }
    }
}

/// Checks that `bytes` is one JSON value with no duplicate object keys and
/// nesting within `max_depth`.
pub fn check_strict(bytes: &[u8], max_depth: usize) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Strict {
        depth: 1,
        max: max_depth,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| short(&e))
}

/// serde_json's message, kept short.
pub fn short(e: &serde_json::Error) -> String {
    e.to_string().chars().take(120).collect()
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
        let mut keys = KeySet::default();
        while let Some(Text(key)) = map.next_key()? {
            keys.insert::<A::Error>(key)?;
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

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_depth_are_refused() {
        assert!(check_strict(br#"{"a":1,"b":{"c":[1,2]}}"#, 8).is_ok());
        assert!(check_strict(br#"{"a":1,"a":2}"#, 8).is_err());
        assert!(check_strict(br#"{"a":{"b":1,"b":1}}"#, 8).is_err());
        assert!(
            check_strict(br#"{"a\u0062":1,"ab":1}"#, 8).is_err(),
            "escapes decoded"
        );
        assert!(check_strict(b"[[[[1]]]]", 3).is_err());
        assert!(check_strict(b"{} {}", 8).is_err());
    }

    #[test]
    fn duplicates_are_found_past_the_small_set() {
        for n in [KeySet::SMALL - 1, KeySet::SMALL, KeySet::SMALL + 1, 1000] {
            let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\":0")).collect();
            let ok = format!("{{{}}}", keys.join(","));
            assert!(check_strict(ok.as_bytes(), 4).is_ok(), "{n}");
            for dup in [0, n / 2, n - 1] {
                let bad = format!("{{{},\"k{dup}\":1}}", keys.join(","));
                assert!(check_strict(bad.as_bytes(), 4).is_err(), "{n} {dup}");
            }
        }
    }
}

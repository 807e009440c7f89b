//! Where the authorization server keeps what outlives a request: clients,
//! pending authorizations, codes, refresh tokens, its signing key.
//!
//! One narrow interface with the atomic operations the protocol needs:
//! put with expiry, put-if-absent, get, take (read and delete at once: a
//! code is used once even when two requests race), compare-and-set (refresh
//! rotation), delete. Callers store secrets only as hashes. Values are
//! opaque bytes (JSON records, see `records.rs`).
//!
//! `memory` is the only backend so far; the embedded file store (`sqlite:`)
//! and Redis (for replicas) implement the same operations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A record's namespace: one per kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Space {
    /// Registered clients, by client id.
    Client,
    /// Authorization requests awaiting the user's consent.
    Pending,
    /// Consented authorizations waiting for the identity provider.
    Transaction,
    /// Authorization codes, by hash.
    Code,
    /// Codes already redeemed, by hash: a replay revokes what they produced.
    UsedCode,
    /// Refresh tokens, by hash.
    Refresh,
    /// Revoked refresh-token families, by family id.
    RevokedFamily,
    /// DCR registrations per client IP, for the rate limit.
    Registrations,
}

/// Why the store failed; the caller answers 5xx (never an allow).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The backend is unavailable or broken.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The store, by backend.
pub(crate) enum Store {
    /// In memory (tests; lost on restart).
    Memory(MemoryStore),
}

impl Store {
    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    pub(crate) async fn put(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.put(space, key, value, ttl),
        }
    }

    /// Stores `value` only if `key` holds nothing live; says whether it did.
    pub(crate) async fn put_new(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => m.put_new(space, key, value, ttl),
        }
    }

    /// The live value under `key`.
    pub(crate) async fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Memory(m) => m.get(space, key),
        }
    }

    /// Reads and deletes `key` atomically: of two racing callers, one gets
    /// the value and the other `None`.
    pub(crate) async fn take(
        &self,
        space: Space,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Memory(m) => m.take(space, key),
        }
    }

    /// Replaces the value under `key` with `new` only if it is still
    /// `expected`; says whether it did.
    pub(crate) async fn compare_and_set(
        &self,
        space: Space,
        key: &str,
        expected: &[u8],
        new: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => m.compare_and_set(space, key, expected, new, ttl),
        }
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, space: Space, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => {
                m.take(space, key)?;
                Ok(())
            }
        }
    }
}

/// Entries of the memory store: value and expiry, by space and key.
type Entries = HashMap<(Space, String), (Vec<u8>, Instant)>;

/// The in-memory backend: one map behind a mutex, expired entries dropped
/// when touched and swept when the map grows.
#[derive(Default)]
pub(crate) struct MemoryStore {
    map: Mutex<Entries>,
}

/// Entries beyond which a write first sweeps expired ones.
const SWEEP_AT: usize = 10_000;

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }

    fn put(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        let now = Instant::now();
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, until)| *until > now);
        }
        map.insert((space, key.to_owned()), (value, now + ttl));
        Ok(())
    }

    fn put_new(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock()?;
        let now = Instant::now();
        let k = (space, key.to_owned());
        if map.get(&k).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        map.insert(k, (value, now + ttl));
        Ok(true)
    }

    fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.lock()?;
        let now = Instant::now();
        Ok(map
            .get(&(space, key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone()))
    }

    fn take(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.lock()?;
        let now = Instant::now();
        Ok(map
            .remove(&(space, key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v))
    }

    fn compare_and_set(
        &self,
        space: Space,
        key: &str,
        expected: &[u8],
        new: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock()?;
        let now = Instant::now();
        match map.get_mut(&(space, key.to_owned())) {
            Some((value, until)) if *until > now && value.as_slice() == expected => {
                *value = new;
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn take_hands_a_value_out_once() {
        let store = Store::Memory(MemoryStore::default());
        store
            .put(Space::Code, "c", b"v".to_vec(), TTL)
            .await
            .unwrap();
        assert_eq!(
            store.take(Space::Code, "c").await.unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(store.take(Space::Code, "c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn spaces_are_separate_and_put_new_does_not_overwrite() {
        let store = Store::Memory(MemoryStore::default());
        assert!(
            store
                .put_new(Space::Client, "k", b"a".to_vec(), TTL)
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_new(Space::Client, "k", b"b".to_vec(), TTL)
                .await
                .unwrap()
        );
        assert_eq!(store.get(Space::Code, "k").await.unwrap(), None);
        assert_eq!(
            store.get(Space::Client, "k").await.unwrap(),
            Some(b"a".to_vec())
        );
    }

    #[tokio::test]
    async fn compare_and_set_fails_on_a_changed_value() {
        let store = Store::Memory(MemoryStore::default());
        store
            .put(Space::Refresh, "r", b"1".to_vec(), TTL)
            .await
            .unwrap();
        assert!(
            store
                .compare_and_set(Space::Refresh, "r", b"1", b"2".to_vec(), TTL)
                .await
                .unwrap()
        );
        assert!(
            !store
                .compare_and_set(Space::Refresh, "r", b"1", b"3".to_vec(), TTL)
                .await
                .unwrap()
        );
        assert_eq!(
            store.get(Space::Refresh, "r").await.unwrap(),
            Some(b"2".to_vec())
        );
    }

    #[tokio::test]
    async fn expired_values_are_gone() {
        let store = Store::Memory(MemoryStore::default());
        store
            .put(Space::Code, "c", b"v".to_vec(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(store.get(Space::Code, "c").await.unwrap(), None);
        assert_eq!(store.take(Space::Code, "c").await.unwrap(), None);
        assert!(
            store
                .put_new(Space::Code, "c", b"w".to_vec(), TTL)
                .await
                .unwrap()
        );
    }
}

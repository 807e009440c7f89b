//! Where the authorization server keeps what outlives a request: clients,
//! pending authorizations, codes, refresh tokens, its signing key.
//!
//! One narrow interface with the atomic operations the protocol needs:
//! put with expiry, put-if-absent, get, take (read and delete at once: a
//! code is used once even when two requests race), compare-and-set (refresh
//! rotation). Callers store secrets only as hashes. Values are
//! opaque bytes (JSON records of the callers).
//!
//! Two backends implement it: `memory` (tests; lost on restart) and the
//! embedded file store `sqlite:<path>` (the default, one instance). An
//! expired value is invisible to every read in both. Redis (for replicas)
//! is still to come. Nothing here decides what a failure means: every
//! backend error is `StoreError::Unavailable`, and the caller answers 5xx.

use std::time::Duration;

mod memory;
mod redis;
mod sqlite;
#[cfg(test)]
mod tests;

pub(crate) use memory::MemoryStore;
pub(crate) use redis::RedisStore;
pub(crate) use sqlite::SqliteStore;

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
    /// The server's signing key (sealed PKCS#8).
    Key,
}

impl Space {
    /// The number that stands for this space in the `sqlite` table. Stored
    /// rows keep the number they were written with, so never renumber or
    /// reuse one: a new space takes a new number.
    pub(super) const fn id(self) -> i64 {
        match self {
            Self::Client => 1,
            Self::Pending => 2,
            Self::Transaction => 3,
            Self::Code => 4,
            Self::UsedCode => 5,
            Self::Refresh => 6,
            Self::RevokedFamily => 7,
            // 8 was the registration counter: never reuse it.
            Self::Key => 9,
        }
    }
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
    /// An embedded SQLite file.
    Sqlite(SqliteStore),
    /// Redis or Valkey, shared by replicas.
    Redis(RedisStore),
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
            Self::Sqlite(s) => s.put(space, key, value, ttl).await,
            Self::Redis(r) => r.put(space, key, value, ttl).await,
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
            Self::Sqlite(s) => s.put_new(space, key, value, ttl).await,
            Self::Redis(r) => r.put_new(space, key, value, ttl).await,
        }
    }

    /// The live value under `key`.
    pub(crate) async fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Memory(m) => m.get(space, key),
            Self::Sqlite(s) => s.get(space, key).await,
            Self::Redis(r) => r.get(space, key).await,
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
            Self::Sqlite(s) => s.take(space, key).await,
            Self::Redis(r) => r.take(space, key).await,
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
            Self::Sqlite(s) => s.compare_and_set(space, key, expected, new, ttl).await,
            Self::Redis(r) => r.compare_and_set(space, key, expected, new, ttl).await,
        }
    }
}

//! The in-memory backend (`store: memory`): tests, and one process that
//! may lose its state on restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Space, StoreError};

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

    pub(super) fn put(
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

    pub(super) fn put_new(
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

    pub(super) fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.lock()?;
        let now = Instant::now();
        Ok(map
            .get(&(space, key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone()))
    }

    pub(super) fn take(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.lock()?;
        let now = Instant::now();
        Ok(map
            .remove(&(space, key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v))
    }

    pub(super) fn compare_and_set(
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

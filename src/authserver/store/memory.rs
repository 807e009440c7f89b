//! The in-memory backend (`store: memory`): tests, and one process that
//! may lose its state on restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Space, StoreError};

/// Entries of the memory store: value and expiry, by space and key.
type Entries = HashMap<(Space, String), (Vec<u8>, Instant)>;

/// The in-memory backend: one map behind a mutex. Expired entries are
/// invisible, and swept when the map has doubled since the last sweep (so a
/// write costs amortised O(1)). Past [`MAX_ENTRIES`] live entries a write
/// fails (503): the authorization endpoints are rate-limited per client
/// network, and this bounds what many networks together can hold.
#[derive(Default)]
pub(crate) struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: Entries,
    /// Size at which the next write sweeps first.
    sweep_at: usize,
}

/// Smallest sweep threshold.
const MIN_SWEEP_AT: usize = 1_024;
/// Live entries at most.
pub(crate) const MAX_ENTRIES: usize = 200_000;

impl MemoryStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }

    /// Room for one more entry: sweeps when due, refuses when full.
    fn make_room(inner: &mut Inner, now: Instant) -> Result<(), StoreError> {
        if inner.map.len() >= inner.sweep_at.max(MIN_SWEEP_AT) {
            inner.map.retain(|_, (_, until)| *until > now);
            inner.sweep_at = inner.map.len() * 2;
        }
        if inner.map.len() >= MAX_ENTRIES {
            return Err(StoreError::Unavailable("memory store full".into()));
        }
        Ok(())
    }

    pub(super) fn put(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        Self::make_room(&mut inner, now)?;
        inner
            .map
            .insert((space, key.to_owned()), (value, now + ttl));
        Ok(())
    }

    pub(super) fn put_new(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        Self::make_room(&mut inner, now)?;
        let map = &mut inner.map;
        let k = (space, key.to_owned());
        if map.get(&k).is_some_and(|(_, until)| *until > now) {
            return Ok(false);
        }
        map.insert(k, (value, now + ttl));
        Ok(true)
    }

    pub(super) fn get(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock()?;
        let map = &inner.map;
        let now = Instant::now();
        Ok(map
            .get(&(space, key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone()))
    }

    pub(super) fn take(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inner = self.lock()?;
        let map = &mut inner.map;
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
        let mut inner = self.lock()?;
        let map = &mut inner.map;
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

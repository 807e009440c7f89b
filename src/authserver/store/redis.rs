//! The shared backend (`store: redis://…` or `rediss://…`, Redis ≥ 6.2 or
//! Valkey): what replicas of the gateway share. One key per record,
//! `mcpgw:<space>:<key>`, with a millisecond expiry. Every operation is one
//! atomic command: `SET … PX` (put), `SET … NX PX` (put-if-absent),
//! `GETDEL` (take: of two replicas racing on one code, one gets it), and a
//! Lua script for compare-and-set (refresh rotation). The connection is a
//! redis-rs `ConnectionManager`: made lazily, it reconnects by itself when
//! Redis comes back; every command has a deadline, and any failure is
//! `StoreError::Unavailable` (the endpoint answers 503, never an allow).

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::{Space, StoreError};

/// How long one command may take, connection included.
const DEADLINE: Duration = Duration::from_secs(2);

/// `KEYS[1]` holds `ARGV[1]`: replace it with `ARGV[2]` for `ARGV[3]` ms.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// A Redis (or Valkey) server shared by replicas.
pub(crate) struct RedisStore {
    conn: ConnectionManager,
    cas: redis::Script,
    /// `mcp_gateway_redis_up{role="store"}`, once the server hands it over.
    pub(crate) up: std::sync::OnceLock<prometheus_client::metrics::gauge::Gauge>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn key(space: Space, key: &str) -> String {
    format!("mcpgw:{}:{key}", space.id())
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// A store for `url`; connects on first use (so a gateway starts while
    /// Redis is down, and answers 503 until it is up).
    pub(crate) fn open(url: &str, ca_file: Option<&std::path::Path>) -> Result<Self, StoreError> {
        let conn = crate::throttle::redis_connect(url, ca_file, DEADLINE).map_err(unavailable)?;
        Ok(Self {
            conn,
            cas: redis::Script::new(COMPARE_AND_SET),
            up: std::sync::OnceLock::new(),
        })
    }

    /// The connection, for the reachability probe.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn run<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(DEADLINE, op)
            .await
            .map_err(|_| unavailable("no answer in time"))
            .and_then(|r| r.map_err(unavailable));
        if let Some(gauge) = self.up.get() {
            gauge.set(i64::from(result.is_ok()));
        }
        result
    }

    pub(super) async fn put(
        &self,
        space: Space,
        k: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        if ttl.is_zero() {
            // Dead on arrival: as in the other backends, nothing is readable.
            return self.run(conn.del::<_, ()>(key(space, k))).await;
        }
        let opts = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms(ttl)));
        self.run(conn.set_options::<_, _, ()>(key(space, k), value, opts))
            .await
    }

    pub(super) async fn put_new(
        &self,
        space: Space,
        k: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl_ms(ttl)));
        let set: Option<String> = self
            .run(conn.set_options(key(space, k), value, opts))
            .await?;
        Ok(set.is_some())
    }

    pub(super) async fn get(&self, space: Space, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        self.run(conn.get(key(space, k))).await
    }

    pub(super) async fn take(&self, space: Space, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        self.run(conn.get_del(key(space, k))).await
    }

    pub(super) async fn compare_and_set(
        &self,
        space: Space,
        k: &str,
        expected: &[u8],
        new: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.cas.key(key(space, k));
        invocation.arg(expected).arg(new).arg(ttl_ms(ttl));
        let swapped: i64 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(swapped == 1)
    }
}

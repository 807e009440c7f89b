//! Rate limits shared by replicas (`shared_state: {redis: …}`): the same
//! GCRA as the local limiters, kept in Redis, one round trip per check (a
//! Lua script reads the key's theoretical arrival time, compares, and
//! advances it atomically, on Redis's own clock, so replicas with skewed
//! clocks agree). Keys are `mcpgw:rl:<limit>:<principal>`, expiring once
//! the budget is full again.
//!
//! While Redis cannot be asked, `on_redis_error: local` (the default) falls
//! back to this replica's own limiters and logs it (at most every 10 s);
//! `deny` refuses with 503. The connection reconnects by itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{OnRedisError, Rate, SharedLimits};

/// How long one check may take.
const DEADLINE: Duration = Duration::from_millis(500);

/// GCRA. KEYS[1]: the budget's key. ARGV[1]: ms between requests at the
/// rate; ARGV[2]: burst. Returns 0 (admitted) or the ms to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return 0";

/// What a shared check found.
pub(super) enum Verdict {
    /// Admitted by the shared budget.
    Admit,
    /// Over the shared budget: retry after this long.
    Wait(Duration),
    /// Redis could not be asked.
    Unavailable,
}

/// The Redis side of the limits.
pub(super) struct Shared {
    conn: ConnectionManager,
    script: redis::Script,
    pub(super) on_error: OnRedisError,
    last_warning: Mutex<Option<Instant>>,
}

impl Shared {
    /// A lazily connected limiter store for `settings`.
    pub(super) fn open(settings: &SharedLimits) -> Result<Self, String> {
        let url = String::from_utf8_lossy(&settings.redis.0).into_owned();
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA),
            on_error: settings.on_error,
            last_warning: Mutex::new(None),
        })
    }

    /// One request against the budget `key` at `rate`.
    pub(super) async fn check(&self, key: &str, rate: &Rate) -> Verdict {
        let interval_ms = (rate.period.as_millis() / u128::from(rate.count.get())).max(1);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!("mcpgw:rl:{key}"));
        invocation
            .arg(u64::try_from(interval_ms).unwrap_or(u64::MAX))
            .arg(rate.burst.get());
        let answer =
            tokio::time::timeout(DEADLINE, invocation.invoke_async::<i64>(&mut conn)).await;
        match answer {
            Ok(Ok(0)) => Verdict::Admit,
            Ok(Ok(ms)) => Verdict::Wait(Duration::from_millis(u64::try_from(ms).unwrap_or(1))),
            Ok(Err(e)) => self.unavailable(&e.to_string()),
            Err(_) => self.unavailable("no answer in time"),
        }
    }

    fn unavailable(&self, why: &str) -> Verdict {
        if let Ok(mut last) = self.last_warning.lock() {
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(error = why, on_redis_error = ?self.on_error, "shared rate limits: Redis cannot be asked");
            }
        }
        Verdict::Unavailable
    }
}

//! Rate limits shared by replicas (`shared_state: {redis: …}`): the same
//! GCRA as the local limiters, kept in Redis, one round trip per request
//! (a Lua script reads the theoretical arrival time of every budget the
//! request spends, the caller's and its tools', compares, and advances them
//! all or none, atomically, on Redis's own clock, so replicas with skewed
//! clocks agree). Keys are `mcpgw:rl:<limit>:<principal>`, expiring once
//! the budget is full again.
//!
//! Stream caps are leases: a sorted set per principal whose members are the
//! open streams, scored by when their lease runs out. A replica renews its
//! streams' leases while they are open and removes them when they close; a
//! replica that dies (SIGKILL) stops renewing, and its slots come back once
//! the lease (`stream_lease`, default 30 s) runs out.
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

/// GCRA over every budget a request spends, all or nothing, in one round
/// trip. KEYS: the budgets' keys (each once). ARGV: for each key, the ms
/// between requests at its rate, its burst, and how many requests this one
/// counts for (a batch calling one tool three times spends three). Returns 0
/// (admitted, every budget spent) or the ms to wait (nothing spent).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, tats = 0, {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat + interval * cost
  local allow_at = tats[i] - interval * burst
  if allow_at - now > wait then wait = allow_at - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i], 'PX', tats[i] - now + 1000)
end
return 0";

/// Takes a stream slot. KEYS[1]: the principal's set. ARGV: cap, lease id,
/// lease ms. Returns 1 (taken) or 0 (full).
const LEASE_TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1";

/// Renews a lease that still exists. ARGV: lease id, lease ms.
const LEASE_RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1";

/// A connection to Redis (or Valkey) for `url` (`redis://` or `rediss://`),
/// made on first use and remade by itself after a failure; one multiplexed
/// connection serves every request of the process. With `ca_file`, a
/// `rediss://` server is verified against that CA (PEM) instead of the
/// public roots. Used by the shared limits and the authorization server's
/// store.
pub fn connect(
    url: &str,
    ca_file: Option<&std::path::Path>,
    deadline: Duration,
) -> Result<ConnectionManager, String> {
    let client = match ca_file {
        None => redis::Client::open(url),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(url, certs)
        }
    }
    .map_err(|e| e.to_string())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(deadline))
        .set_response_timeout(Some(deadline))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())
}

/// A stream slot held in Redis: renewed while alive, given back on drop.
pub(super) struct Lease {
    renew: tokio::task::JoinHandle<()>,
    conn: ConnectionManager,
    key: String,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let (mut conn, key, id) = (self.conn.clone(), self.key.clone(), self.id.clone());
        // Best effort: if this fails, the lease runs out by itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let removed: redis::RedisResult<i64> = redis::cmd("ZREM")
                    .arg(&key)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = removed {
                    tracing::debug!(error = %e, "stream lease not returned; it expires by itself");
                }
            });
        }
    }
}

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
    take: redis::Script,
    renew: redis::Script,
    lease: Duration,
    pub(super) on_error: OnRedisError,
    last_warning: Mutex<Option<Instant>>,
    /// `mcp_gateway_redis_up{role="limits"}`, once the gateway hands it over.
    pub(super) up: std::sync::OnceLock<prometheus_client::metrics::gauge::Gauge>,
}

impl Shared {
    /// A lazily connected limiter store for `settings`.
    pub(super) fn open(settings: &SharedLimits) -> Result<Self, String> {
        let url = String::from_utf8_lossy(&settings.redis.0);
        let conn = connect(&url, settings.ca_file.as_deref(), DEADLINE)?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA),
            take: redis::Script::new(LEASE_TAKE),
            renew: redis::Script::new(LEASE_RENEW),
            lease: settings.stream_lease,
            on_error: settings.on_error,
            last_warning: Mutex::new(None),
            up: std::sync::OnceLock::new(),
        })
    }

    /// One request against each of `budgets` (key, rate): admitted only if
    /// every one has room, and then spent from all of them. A key named
    /// several times is spent that many times (Redis sees it once).
    pub(super) async fn check(&self, budgets: &[(String, &Rate)]) -> Verdict {
        let mut merged: Vec<(&str, &Rate, u32)> = Vec::with_capacity(budgets.len());
        for (key, rate) in budgets {
            match merged.iter_mut().find(|(k, _, _)| *k == key.as_str()) {
                Some((_, _, cost)) => *cost = cost.saturating_add(1),
                None => merged.push((key, rate, 1)),
            }
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.script.prepare_invoke();
        for (key, rate, cost) in merged {
            let interval_ms = (rate.period.as_millis() / u128::from(rate.count.get())).max(1);
            invocation
                .key(format!("mcpgw:rl:{key}"))
                .arg(u64::try_from(interval_ms).unwrap_or(u64::MAX))
                .arg(rate.burst.get())
                .arg(cost);
        }
        let answer =
            tokio::time::timeout(DEADLINE, invocation.invoke_async::<i64>(&mut conn)).await;
        if answer.as_ref().is_ok_and(Result::is_ok) {
            self.mark(true);
        }
        match answer {
            Ok(Ok(0)) => Verdict::Admit,
            Ok(Ok(ms)) => Verdict::Wait(Duration::from_millis(u64::try_from(ms).unwrap_or(1))),
            Ok(Err(e)) => self.unavailable(&e.to_string()),
            Err(_) => self.unavailable("no answer in time"),
        }
    }

    /// Takes one of `cap` stream slots of `principal`: `Ok(Some)` with the
    /// lease, `Ok(None)` when all are taken, `Err` when Redis cannot be asked.
    pub(super) async fn take_slot(&self, principal: &str, cap: usize) -> Result<Option<Lease>, ()> {
        let key = format!("mcpgw:st:{principal}");
        let mut id_bytes = [0u8; 12];
        if aws_lc_rs::rand::fill(&mut id_bytes).is_err() {
            return Err(());
        }
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let lease_ms = u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        let mut invocation = self.take.key(&key);
        invocation.arg(cap).arg(&id).arg(lease_ms);
        let answer =
            tokio::time::timeout(DEADLINE, invocation.invoke_async::<i64>(&mut conn)).await;
        if answer.as_ref().is_ok_and(Result::is_ok) {
            self.mark(true);
        }
        match answer {
            Ok(Ok(1)) => {}
            Ok(Ok(_)) => return Ok(None),
            Ok(Err(e)) => {
                self.unavailable(&e.to_string());
                return Err(());
            }
            Err(_) => {
                self.unavailable("no answer in time");
                return Err(());
            }
        }
        let (renew_conn, renew_key, renew_id) = (self.conn.clone(), key.clone(), id.clone());
        let script = self.renew.clone();
        let every = self.lease / 3;
        let renew = tokio::spawn(async move {
            let mut conn = renew_conn;
            loop {
                tokio::time::sleep(every).await;
                let mut invocation = script.key(&renew_key);
                invocation.arg(&renew_id).arg(lease_ms);
                let renewed = invocation.invoke_async::<i64>(&mut conn).await;
                if let Err(e) = renewed {
                    tracing::debug!(error = %e, "stream lease not renewed; retrying");
                }
            }
        });
        Ok(Some(Lease {
            renew,
            conn: self.conn.clone(),
            key,
            id,
        }))
    }

    /// The connection, for the reachability probe.
    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn mark(&self, up: bool) {
        if let Some(gauge) = self.up.get() {
            gauge.set(i64::from(up));
        }
    }

    fn unavailable(&self, why: &str) -> Verdict {
        self.mark(false);
        if let Ok(mut last) = self.last_warning.lock() {
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(error = why, on_redis_error = ?self.on_error, "shared rate limits: Redis cannot be asked");
            }
        }
        Verdict::Unavailable
    }
}

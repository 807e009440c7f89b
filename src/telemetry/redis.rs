//! `mcp_gateway_redis_up{role}` kept honest while a replica is idle: every
//! command to Redis sets it, and a probe PINGs every [`PROBE_EVERY`] as
//! long as the connection's owner lives. `/readyz` reports the same value.

use std::sync::Weak;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use redis::aio::ConnectionManager;

/// How often an idle connection is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// How long one probe may take.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

/// PINGs through `conn` now and then every [`PROBE_EVERY`], setting `gauge`
/// to 1 or 0, until `owner` is dropped. A failed PING also makes the
/// connection manager reconnect, so recovery is noticed without traffic.
pub fn probe<T: Send + Sync + 'static>(conn: ConnectionManager, gauge: Gauge, owner: Weak<T>) {
    tokio::spawn(async move {
        loop {
            if owner.strong_count() == 0 {
                return;
            }
            let (mut conn, ping) = (conn.clone(), redis::cmd("PING"));
            let answer = ping.query_async::<String>(&mut conn);
            let up = matches!(
                tokio::time::timeout(PROBE_DEADLINE, answer).await,
                Ok(Ok(_))
            );
            gauge.set(i64::from(up));
            tokio::time::sleep(PROBE_EVERY).await;
        }
    });
}

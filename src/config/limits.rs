//! Config, phase two for `limits:` and `rate_limits:`: sizes, counts,
//! durations and rates, each with a safe default.

use std::num::NonZeroU32;
use std::time::Duration;

use super::file::{RawLimits, RawRateLimits};
use super::validate::Report;
use super::{Limits, Rate, RateLimitConfig};

pub(super) fn rate_limits(raw: &RawRateLimits, report: &mut Report) -> RateLimitConfig {
    let mut parse = |path: String, text: &str| {
        let rate = parse_rate(text);
        if rate.is_none() {
            report.error(
                path,
                format!("`{text}` is not a rate; write e.g. `20/s burst 40`, `100/m` or `1/s`"),
            );
        }
        rate
    };
    let per_principal = raw
        .per_principal
        .as_deref()
        .and_then(|t| parse("rate_limits.per_principal".into(), t));
    let tools = raw
        .tools
        .iter()
        .filter_map(|(tool, t)| {
            parse(format!("rate_limits.tools.{tool}"), t).map(|r| (tool.clone(), r))
        })
        .collect();
    let unauthenticated_per_ip = raw
        .unauthenticated_per_ip
        .as_deref()
        .and_then(|t| parse("rate_limits.unauthenticated_per_ip".into(), t))
        .or_else(|| parse_rate("20/s burst 100"));
    RateLimitConfig {
        per_principal,
        tools,
        unauthenticated_per_ip: unauthenticated_per_ip.unwrap_or(Rate {
            count: NonZeroU32::MIN,
            period: Duration::from_secs(1),
            burst: NonZeroU32::MIN,
        }),
        max_keys: usize::try_from(raw.max_keys.unwrap_or(100_000)).unwrap_or(usize::MAX),
        shared: None,
    }
}

/// `shared_state:`
pub(super) fn shared_state(
    raw: Option<&super::file::RawSharedState>,
    base_dir: &std::path::Path,
    report: &mut Report,
) -> Option<super::SharedLimits> {
    let raw = raw?;
    let url_ok = (raw.redis.starts_with("redis://") || raw.redis.starts_with("rediss://"))
        && url::Url::parse(&raw.redis).is_ok_and(|u| u.has_host());
    if !url_ok {
        report.error(
            "shared_state.redis",
            "not a redis:// or rediss:// URL with a host",
        );
    }
    let on_error = match raw.on_redis_error.as_deref() {
        None | Some("local") => super::OnRedisError::Local,
        Some("deny") => super::OnRedisError::Deny,
        Some(other) => {
            report.error(
                "shared_state.on_redis_error",
                format!("`{other}`: use local or deny"),
            );
            super::OnRedisError::Local
        }
    };
    let stream_lease = report.duration(
        "shared_state.stream_lease",
        raw.stream_lease.as_deref(),
        Duration::from_secs(30),
    );
    if stream_lease < Duration::from_millis(300) {
        report.error(
            "shared_state.stream_lease",
            "at least 300ms (it is renewed every third of it)",
        );
    }
    let ca_file = ca_file(
        raw.ca_file.as_deref(),
        &raw.redis,
        base_dir,
        "shared_state.ca_file",
        report,
    );
    Some(super::SharedLimits {
        redis: super::Secret(raw.redis.as_bytes().to_vec()),
        on_error,
        stream_lease,
        ca_file,
    })
}

/// A Redis CA file (`shared_state.ca_file`, `authorization_server.store_ca_file`):
/// relative to the config's directory, readable now, and only with `rediss://`.
pub(super) fn ca_file(
    raw: Option<&str>,
    url: &str,
    base_dir: &std::path::Path,
    path: &str,
    report: &mut Report,
) -> Option<std::path::PathBuf> {
    let file = base_dir.join(raw?);
    if !url.starts_with("rediss://") {
        report.error(path, "only with a rediss:// (TLS) URL");
    } else if let Err(e) = std::fs::metadata(&file) {
        report.error(path, format!("{}: {e}", file.display()));
    }
    Some(file)
}

/// Parses `N/s`, `N/m`, `N/h`, each optionally followed by `burst B`.
fn parse_rate(text: &str) -> Option<Rate> {
    let mut words = text.split_whitespace();
    let (count, unit) = words.next()?.split_once('/')?;
    let count: NonZeroU32 = count.parse().ok()?;
    let period = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return None,
    };
    let burst = match (words.next(), words.next(), words.next()) {
        (None, _, _) => count,
        (Some("burst"), Some(b), None) => b.parse().ok()?,
        _ => return None,
    };
    Some(Rate {
        count,
        period,
        burst,
    })
}

pub(super) fn limits(raw: &RawLimits, report: &mut Report) -> Limits {
    let max_connections = raw.max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        report.error("limits.max_connections", "must be at least 1");
    }
    Limits {
        max_body: report.size("limits.max_body", raw.max_body.as_deref(), 4 << 20),
        max_header_bytes: report.size(
            "limits.max_header_bytes",
            raw.max_header_bytes.as_deref(),
            64 << 10,
        ),
        header_read_timeout: report.duration(
            "limits.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        upstream_connect_timeout: report.duration(
            "limits.upstream_connect_timeout",
            raw.upstream_connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        upstream_timeout: report.duration(
            "limits.upstream_timeout",
            raw.upstream_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        jwks_fetch_timeout: report.duration(
            "limits.jwks_fetch_timeout",
            raw.jwks_fetch_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        shutdown_grace: report.duration(
            "limits.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(25),
        ),
        max_json_depth: report.count("limits.max_json_depth", raw.max_json_depth, 64),
        max_batch: report.count("limits.max_batch", raw.max_batch, 32),
        max_streams_per_principal: report.count(
            "limits.max_streams_per_principal",
            raw.max_streams_per_principal,
            64,
        ),
        max_filtered_event: report.size(
            "limits.max_filtered_event",
            raw.max_filtered_event.as_deref(),
            4 << 20,
        ),
        idle_timeout: report.duration(
            "limits.idle_timeout",
            raw.idle_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        body_read_timeout: report.duration(
            "limits.body_read_timeout",
            raw.body_read_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        h2_keepalive_interval: report.duration(
            "limits.h2_keepalive_interval",
            raw.h2_keepalive_interval.as_deref(),
            Duration::from_secs(30),
        ),
        h2_keepalive_timeout: report.duration(
            "limits.h2_keepalive_timeout",
            raw.h2_keepalive_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        h2_max_concurrent_streams: u32::try_from(report.count(
            "limits.h2_max_concurrent_streams",
            raw.h2_max_concurrent_streams,
            100,
        ))
        .unwrap_or(u32::MAX),
        admin_max_connections: report.count(
            "limits.admin_max_connections",
            raw.admin_max_connections,
            64,
        ),
    }
}

/// Parses `4MiB`, `64KiB`, `1MB`, `512` (bytes).
pub(super) fn parse_size(raw: &str) -> Option<usize> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let r = parse_rate("20/s burst 40").unwrap();
        assert_eq!(
            (r.count.get(), r.period.as_secs(), r.burst.get()),
            (20, 1, 40)
        );
        let r = parse_rate("100/m").unwrap();
        assert_eq!(
            (r.count.get(), r.period.as_secs(), r.burst.get()),
            (100, 60, 100)
        );
        for bad in [
            "",
            "0/s",
            "5",
            "5/d",
            "5/s burst",
            "5/s burst 0",
            "5/s jump 3",
            "5/s burst 3 x",
        ] {
            assert!(parse_rate(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1 KB"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }
}

//! `telemetry.tracing:`: OpenTelemetry trace export (OTLP over HTTP with
//! protobuf). Off unless the block is present; each key left out is taken
//! from the standard environment variable, then a default:
//!
//! | key | environment | default |
//! |---|---|---|
//! | `endpoint` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`) | `http://localhost:4318/v1/traces` |
//! | `service_name` | `OTEL_SERVICE_NAME` | `mcp-auth-gateway` |
//! | `sample_ratio` | `OTEL_TRACES_SAMPLER_ARG` | `1.0` |
//! | `headers` | `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) | none |
//! | `timeout` | `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) | `10s` |
//!
//! `OTEL_SDK_DISABLED=true` turns it off whatever the file says.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::validate::Report;

/// `telemetry:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    /// Trace export; off when absent.
    pub tracing: Option<RawTracing>,
}

/// `telemetry.tracing:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    /// The collector's OTLP/HTTP URL (`/v1/traces` is added to a bare origin).
    pub endpoint: Option<String>,
    /// Only `http/protobuf`.
    pub protocol: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: Option<String>,
    /// Share of new traces kept (0.0 to 1.0); a client's sampled flag wins.
    pub sample_ratio: Option<f64>,
    /// Headers sent to the collector (e.g. its API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// One export's deadline.
    pub timeout: Option<String>,
}

/// Validated trace export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Where spans are POSTed (`…/v1/traces`).
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// Share of new traces kept; refused requests are always kept.
    pub sample_ratio: f64,
    /// Headers sent with each export (values are secrets).
    pub headers: Vec<(String, Secret)>,
    /// One export's deadline.
    pub timeout: Duration,
}

/// Checks `telemetry.tracing`, filling unset keys from the environment.
pub(super) fn tracing(raw: Option<&RawTelemetry>, report: &mut Report) -> Option<TracingConfig> {
    tracing_with(raw, report, |name| std::env::var(name).ok())
}

fn tracing_with(
    raw: Option<&RawTelemetry>,
    report: &mut Report,
    env: impl Fn(&str) -> Option<String>,
) -> Option<TracingConfig> {
    let raw = raw?.tracing.as_ref()?;
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let p = "telemetry.tracing";
    if let Some(protocol) = raw.protocol.as_deref().filter(|p| *p != "http/protobuf") {
        report.error(
            format!("{p}.protocol"),
            format!("`{protocol}`: only http/protobuf (OTLP over HTTP, port 4318) is supported"),
        );
    }
    let endpoint = match (&raw.endpoint, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        (Some(url), _) => traces_url(url, false),
        (None, Some(url)) => url,
        (None, None) => env("OTEL_EXPORTER_OTLP_ENDPOINT").map_or_else(
            || "http://localhost:4318/v1/traces".to_owned(),
            |base| traces_url(&base, true),
        ),
    };
    match url::Url::parse(&endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
        _ => report.error(
            format!("{p}.endpoint"),
            format!("`{endpoint}` is not an http(s) URL"),
        ),
    }
    let sample_ratio = match raw.sample_ratio {
        Some(r) => r,
        None => env("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1.0),
    };
    if !(0.0..=1.0).contains(&sample_ratio) {
        report.error(format!("{p}.sample_ratio"), "between 0.0 and 1.0");
    }
    let mut headers: Vec<(String, Secret)> = if raw.headers.is_empty() {
        let list = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .unwrap_or_default();
        list.split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| {
                let v = percent_decode(v.trim());
                (k.trim().to_owned(), Secret(v.into_bytes()))
            })
            .collect()
    } else {
        raw.headers
            .iter()
            .map(|(k, v)| (k.clone(), Secret(v.clone().into_bytes())))
            .collect()
    };
    headers.retain(|(name, value)| {
        let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_bytes(&value.0).is_ok();
        if !ok {
            report.error(
                format!("{p}.headers"),
                format!("`{name}` is not a valid header name and value"),
            );
        }
        ok
    });
    let env_timeout = env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    let timeout = report.duration(
        &format!("{p}.timeout"),
        raw.timeout.as_deref(),
        env_timeout.unwrap_or(Duration::from_secs(10)),
    );
    Some(TracingConfig {
        endpoint,
        service_name: raw
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "mcp-auth-gateway".to_owned()),
        sample_ratio,
        headers,
        timeout,
    })
}

/// The traces URL for `base`: `/v1/traces` appended when `always` (the
/// OTLP environment variable's rule) or when `base` has no path.
fn traces_url(base: &str, always: bool) -> String {
    let trimmed = base.trim_end_matches('/');
    let bare = url::Url::parse(base).is_ok_and(|u| u.path() == "/" || u.path().is_empty());
    if always || bare {
        format!("{trimmed}/v1/traces")
    } else {
        base.to_owned()
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str, env: &[(&str, &str)]) -> (Option<TracingConfig>, Report) {
        let raw: RawTelemetry = serde_yaml::from_str(yaml).unwrap();
        let mut report = Report::default();
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        (tracing_with(Some(&raw), &mut report, lookup), report)
    }

    #[test]
    fn off_unless_the_block_is_there_and_the_environment_fills_the_rest() {
        assert!(
            parse("{}", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
                .0
                .is_none()
        );
        let (c, _) = parse("tracing: {}", &[]);
        let c = c.unwrap();
        assert_eq!(c.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(
            (c.service_name.as_str(), c.sample_ratio),
            ("mcp-auth-gateway", 1.0)
        );
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base"),
            ("OTEL_SERVICE_NAME", "edge"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%20cret,x-tenant=a"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ];
        let c = parse("tracing: {}", &env).0.unwrap();
        assert_eq!(c.endpoint, "http://collector:4318/base/v1/traces");
        assert_eq!((c.service_name.as_str(), c.sample_ratio), ("edge", 0.25));
        assert_eq!(c.headers[0].0, "api-key");
        assert_eq!(c.headers[0].1.0, b"s cret");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        // The file wins over the environment.
        let c = parse(
            "tracing: {endpoint: 'http://c:4318', service_name: gw, sample_ratio: 0.5}",
            &env,
        )
        .0
        .unwrap();
        assert_eq!(c.endpoint, "http://c:4318/v1/traces");
        assert_eq!((c.service_name.as_str(), c.sample_ratio), ("gw", 0.5));
        assert!(
            parse("tracing: {}", &[("OTEL_SDK_DISABLED", "true")])
                .0
                .is_none()
        );
    }

    #[test]
    fn bad_values_are_named() {
        let (_, report) = parse(
            "tracing: {endpoint: 'ftp://x', protocol: grpc, sample_ratio: 2, headers: {'bad name': x}}",
            &[],
        );
        let paths: Vec<&str> = report.errors().iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "telemetry.tracing.endpoint",
            "telemetry.tracing.protocol",
            "telemetry.tracing.sample_ratio",
            "telemetry.tracing.headers",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
    }
}
